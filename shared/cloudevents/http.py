"""The CloudEvents HTTP binding: which content mode a request uses, and binary mode's decoding.

The mode comes from ``Content-Type`` (http section 3) and the ``ce-specversion`` header:
``application/cloudevents-batch+json`` is a batch, ``application/cloudevents+json`` one
structured event (``ce-`` headers ignored), any type with ``ce-specversion`` binary mode. This
endpoint also reads a plain ``application/json`` body without ``ce-specversion`` as a structured
event, because the Altinn publishing guide lists that type and many HTTP clients send it.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from shared.cloudevents.attributes import MEDIA_TYPE, is_json_media_type
from shared.cloudevents.event import (
    DATA,
    DATA_BASE64,
    CloudEvent,
    ExtensionProfile,
    InvalidEvent,
    event_from_members,
)
from shared.cloudevents.jsonformat import (
    MAX_DATA_DEPTH,
    JsonFormatError,
    decode_json,
    may_nest_deeper_than,
    nesting_depth_exceeds,
)

STRUCTURED_JSON = "application/cloudevents+json"
BATCH_JSON = "application/cloudevents-batch+json"
PLAIN_JSON = "application/json"
SPECVERSION_HEADER = "ce-specversion"
#: Attributes a binary-mode request carries in its body and Content-Type, never as ce- headers.
BODY_ATTRIBUTES = frozenset({"datacontenttype", DATA, DATA_BASE64})
#: A ce- header longer than this is refused (a header that size is no attribute value).
MAX_HEADER_VALUE_CHARACTERS = 8 * 1024


class ContentMode(Enum):
    STRUCTURED = "structured"
    BINARY = "binary"
    BATCH = "batch"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class ContentModeDecision:
    mode: ContentMode
    #: Why the request cannot be read, for a 415 detail (empty for a readable mode).
    reason: str = ""


def _unsupported(reason: str) -> ContentModeDecision:
    return ContentModeDecision(ContentMode.UNSUPPORTED, reason)


def _parameters(raw: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for item in raw.split(";"):
        name, equals, value = item.strip().partition("=")
        if equals:
            parameters[name.lower()] = value.strip().strip('"')
    return parameters


def content_mode(content_type: str | None, header_names: Iterable[str]) -> ContentModeDecision:
    """Classify a request by its Content-Type and whether it carries ``ce-specversion``."""
    has_specversion = any(name.lower() == SPECVERSION_HEADER for name in header_names)
    return _classify(content_type, has_specversion)


@functools.lru_cache(maxsize=256)  # publishers send the same few Content-Type values
def _classify(content_type: str | None, has_specversion: bool) -> ContentModeDecision:
    if content_type is None or not content_type.strip():
        if has_specversion:
            return ContentModeDecision(ContentMode.BINARY)
        return _unsupported("The request has no Content-Type.")
    match = MEDIA_TYPE.fullmatch(content_type.strip())
    if match is None:
        if has_specversion:  # binary mode: it is the event's datacontenttype, validated as one
            return ContentModeDecision(ContentMode.BINARY)
        return _unsupported(f"The Content-Type '{content_type}' is not a valid media type.")
    essence = f"{match.group(1)}/{match.group(2)}".lower()
    parameters = _parameters(match.group(3))

    if essence.startswith("application/cloudevents-batch"):
        if essence != BATCH_JSON:
            return _unsupported(
                f"'{essence}' is not a CloudEvents batch format this endpoint reads."
            )
        mode = ContentModeDecision(ContentMode.BATCH)
    elif essence.startswith("application/cloudevents"):
        if essence != STRUCTURED_JSON:
            return _unsupported(
                f"'{essence}' is not a CloudEvents event format this endpoint reads."
            )
        mode = ContentModeDecision(ContentMode.STRUCTURED)
    elif has_specversion:
        mode = ContentModeDecision(ContentMode.BINARY)
    elif essence == PLAIN_JSON:
        mode = ContentModeDecision(ContentMode.STRUCTURED)
    else:
        return _unsupported(
            f"The Content-Type '{essence}' is not accepted without a ce-specversion header."
        )

    charset = parameters.get("charset")
    if charset is not None and charset.lower() != "utf-8":
        return _unsupported(f"The charset '{charset}' is not accepted; send UTF-8.")
    return mode


# -- binary mode: attributes from ce- headers, data from the body --------------------------------


def decode_header_value(raw: str) -> str:
    """A ``ce-`` header's value as the binding decodes it (http 3.1.3.2).

    An RFC 7230 quoted-string is unquoted first (backslash escapes); then exactly one round of
    percent-decoding, any hex case, needlessly encoded characters accepted; the bytes must be
    UTF-8. Raises ValueError with a message for a publisher.
    """
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        raw = _unquote(raw[1:-1])  # a quoted-string may hold spaces; they are the value's
        if not raw.isascii() or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
            raise ValueError(_MUST_BE_ENCODED)
    elif _UNENCODED.search(raw):
        # The binding's senders percent-encode space and everything outside U+0021-U+007E, so
        # such a character means a sender that did not, or two header lines joined by the
        # server (the dev host joins them with ", "): either way the value is not one value.
        raise ValueError(_MUST_BE_ENCODED + ", and a ce- header may be sent only once")
    elif "," in raw:
        # The Functions host joins repeated header lines with a bare ","
        # (StringValues.ToString(), docs/contract.md "Binary mode"): a comma cannot tell one
        # value from two, so a value's own comma must come percent-encoded.
        raise ValueError(_REPEATED)
    if "%" not in raw:
        return raw
    decoded = bytearray()
    position = 0
    for escape in _PERCENT.finditer(raw):
        decoded += raw[position : escape.start()].encode("ascii")
        hexdigits = escape.group(1)
        if hexdigits is None:
            raise ValueError(
                f"has an invalid percent-escape at position {escape.start()}; write '%' as %25"
            )
        decoded.append(int(hexdigits, 16))
        position = escape.end()
    decoded += raw[position:].encode("ascii")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("does not percent-decode to valid UTF-8") from None


_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})?")
_UNENCODED = re.compile(r"[^\x21-\x7e]")
_REPEATED = (
    "has a ',': a ce- header may be sent only once, and the Functions host joins repeated "
    "header lines with ','; percent-encode a comma in a value as %2C (or send the value as a "
    "quoted-string)"
)
_MUST_BE_ENCODED = (
    "has a space, a control character or a character outside ASCII; percent-encode it as "
    "UTF-8 (%20 for a space)"
)


def _unquote(inner: str) -> str:
    out: list[str] = []
    characters = iter(inner)
    for ch in characters:
        if ch == "\\":
            escaped = next(characters, None)
            if escaped is None:
                raise ValueError("is a quoted-string that ends in a lone backslash")
            out.append(escaped)
        elif ch == '"':
            raise ValueError("is a quoted-string with an unescaped '\"' inside")
        else:
            out.append(ch)
    return "".join(out)


def binary_members(
    headers: Mapping[str, str], body: bytes
) -> tuple[dict[str, Any], dict[str, str]]:
    """The members of a binary-mode event, and the problems found reading them (attribute name
    -> message, without the attribute's name in front).

    ``headers`` keys are lower case. Every ``ce-<name>`` header is attribute ``<name>``;
    ``Content-Type`` is ``datacontenttype``, as sent; the body is ``data``: a JSON value for a
    JSON media type, a string for ``text/*``, otherwise ``data_base64``; an empty body is no
    data, whatever the media type.
    """
    members: dict[str, Any] = {}
    problems: dict[str, str] = {}
    ce = {name[3:]: raw for name, raw in headers.items() if name[:3] == "ce-"}
    # The common header is plain printable ASCII without escapes or quotes: one search over all
    # of them finds that out, and only the others are decoded one by one.
    joined = "!".join(ce.values())
    plain = (
        not _UNENCODED.search(joined)
        and "%" not in joined
        and '"' not in joined
        and "," not in joined
    )
    if plain and len(joined) <= MAX_HEADER_VALUE_CHARACTERS and BODY_ATTRIBUTES.isdisjoint(ce):
        members.update(ce)
        ce = {}
    for attribute, raw in ce.items():
        if attribute in BODY_ATTRIBUTES:
            problems[attribute] = (
                f"cannot be a header in binary mode: the body is the data, and Content-Type its "
                f"datacontenttype (remove the ce-{attribute} header)"
            )
            continue
        if len(raw) > MAX_HEADER_VALUE_CHARACTERS:
            problems[attribute] = (
                f"is longer than {MAX_HEADER_VALUE_CHARACTERS} characters as a header"
            )
            continue
        try:
            members[attribute] = decode_header_value(raw)
        except ValueError as error:
            problems[attribute] = str(error)
    content_type = headers.get("content-type")
    if content_type is not None and content_type.strip():
        members["datacontenttype"] = content_type
    if body:
        _read_data(content_type, body, members, problems)
    return members, problems


def _read_data(
    content_type: str | None, body: bytes, members: dict[str, Any], problems: dict[str, str]
) -> None:
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    if content_type is not None and is_json_media_type(content_type):
        try:
            members[DATA] = decode_json(body)
        except JsonFormatError as error:
            problems[DATA] = f"is not valid JSON, as its media type '{essence}' says: {error}"
            return
        if may_nest_deeper_than(body, MAX_DATA_DEPTH) and nesting_depth_exceeds(
            members[DATA], MAX_DATA_DEPTH
        ):
            problems[DATA] = f"is nested more than {MAX_DATA_DEPTH} levels deep"
    elif essence.startswith("text/"):
        try:
            members[DATA] = body.decode("utf-8")
        except UnicodeDecodeError as error:
            problems[DATA] = (
                f"is not valid UTF-8 text (invalid byte at offset {error.start}), as its media "
                f"type '{essence}' says"
            )
    else:
        members[DATA_BASE64] = base64.b64encode(body).decode("ascii")


def parse_binary(headers: Mapping[str, str], body: bytes, profile: ExtensionProfile) -> CloudEvent:
    """Decode and validate one binary-mode event; ``InvalidEvent`` with every problem, the
    headers' own (a bad escape, bad UTF-8) in place of any other for the same attribute."""
    members, problems = binary_members(headers, body)
    header_errors = {name: (f"'{name}' {message}.",) for name, message in problems.items()}
    try:
        event = event_from_members(members, profile)
    except InvalidEvent as invalid:
        errors = {**invalid.errors, **header_errors}
        missing = tuple(name for name in invalid.missing if name not in header_errors)
        raise InvalidEvent(errors, missing=missing) from None
    if header_errors:
        raise InvalidEvent(header_errors)
    return event
