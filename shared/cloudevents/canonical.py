"""When two events are the same content under the CloudEvents type system, whatever the content
mode or the serializer that wrote them: a digest that is equal exactly then.

- Attribute values are compared by their canonical string form (the spec's "Type System"): an
  Integer ``5`` and the String ``"5"`` (what binary mode's ``ce-ext: 5`` gives) are the same, as
  are the Boolean ``true`` and ``"true"``. ``time`` is a Timestamp, compared as the instant it
  names. ``datacontenttype`` is a media type, compared as RFC 9110 compares them
  (``canonical_media_type``). Every other string is compared exactly, with no Unicode
  normalisation (NFC and NFD are different content).
- In the JSON format an event with ``data`` and no ``datacontenttype`` is ``application/json``,
  which is also what binary mode's ``Content-Type: application/json`` gives.
- ``data`` with a JSON media type is compared as a JSON value (RFC 8785's canonical form, so
  member order and the spelling of numbers do not matter); ``data_base64`` with a JSON media type
  is the JSON text it encodes. Otherwise data is compared as bytes: a string as its UTF-8, and
  ``data_base64`` as what it decodes to, so the same bytes sent either way are the same content.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Mapping
from typing import Any

from shared.cloudevents.attributes import (
    canonical_media_type,
    canonical_timestamp,
    is_json_media_type,
)
from shared.cloudevents.event import DATA, DATA_BASE64
from shared.cloudevents.jsonformat import JsonFormatError, canonical_json, decode_json

#: The first bytes hashed: a later change to these rules gives other digests, never equal ones.
FORM = b"cloudevents-content/1\n"
_TIMESTAMPS = frozenset({"time"})
_MEDIA_TYPES = frozenset({"datacontenttype"})
_TYPED = _TIMESTAMPS | _MEDIA_TYPES


def canonical_string(name: str, value: Any) -> str:
    """An attribute value's canonical string form under the type system."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if name in _TIMESTAMPS:
        return canonical_timestamp(text)
    if name in _MEDIA_TYPES:
        return canonical_media_type(text)
    return text


def content_digest(members: Mapping[str, Any], *, ignore: Collection[str] = ()) -> str:
    """A SHA-256 hex digest of a valid event's content: equal for two events exactly when they
    are the same content (see the module docstring). ``ignore``: attributes left out (what an
    endpoint adds on its own, such as trace context, is never content)."""
    attributes = {
        name: value if type(value) is str and name not in _TYPED else canonical_string(name, value)
        for name, value in members.items()
        if name != DATA and name != DATA_BASE64 and name not in ignore
    }
    content_type = members.get("datacontenttype")
    if content_type is None and DATA in members:
        attributes["datacontenttype"] = "application/json"
    # names are [a-z0-9]+ and string attributes hold no control character: "=" and "\n" delimit
    listed = "".join([f"{name}={attributes[name]}\n" for name in sorted(attributes)])
    content = FORM + listed.encode("utf-8", "surrogatepass") + b"\x00"
    return hashlib.sha256(content + _data_form(members, content_type)).hexdigest()


def _data_form(members: Mapping[str, Any], content_type: str | None) -> bytes:
    if DATA in members:
        data = members[DATA]
        if is_json_media_type(content_type):
            return b"json:" + canonical_json(data)
        return b"bytes:" + str(data).encode("utf-8", "surrogatepass")
    if DATA_BASE64 in members:
        raw = base64.b64decode(members[DATA_BASE64])
        if content_type is not None and is_json_media_type(content_type):
            try:
                return b"json:" + canonical_json(decode_json(raw))
            except JsonFormatError:
                pass  # not JSON after all: its bytes are what it is
        return b"bytes:" + raw
    return b"none"
