"""Property-based: whatever arrives, the answer is never a 5xx, every 200 put exactly the event
that was sent on the queue, and nothing else ever reaches the queue.

The real function handler runs against the session's Azurite, dev issuer and dev registry
(tests/reliability/harness.py).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import EXAMPLES, Harness
from tests.support import VALID_EVENT

# -- strategies ---------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
attribute_names = st.sampled_from(sorted(VALID_EVENT)) | st.from_regex(
    r"[a-z0-9]{1,24}", fullmatch=True
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event, then up to four of: drop, retype, rename, Unicode-fill, nest, extend."""
    event: dict[str, Any] = {**json.loads(json.dumps(VALID_EVENT)), "id": str(uuid.uuid4())}
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        mutation = draw(st.sampled_from(["drop", "retype", "rename", "unicode", "nest", "extend"]))
        if not event:
            break
        name = draw(st.sampled_from(sorted(event)))
        if mutation == "drop":
            del event[name]
        elif mutation == "retype":
            event[name] = draw(json_values)
        elif mutation == "rename":
            event[draw(st.text(max_size=12) | attribute_names)] = event.pop(name)
        elif mutation == "unicode":
            event[name] = draw(st.text(max_size=30))
        elif mutation == "nest":
            event[name] = draw(st.sampled_from([[event[name]], {"value": event[name]}]))
        else:
            event[draw(attribute_names)] = draw(json_scalars)
    return event


content_types = st.sampled_from(
    [
        "application/cloudevents+json",
        "application/json",
        "application/json; charset=utf-8",
        "application/cloudevents+json; charset=UTF-8",
    ]
)
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)


# -- properties ---------------------------------------------------------------------------------


@EXAMPLES
@given(event=mutated_events(), content_type=content_types)
def test_mutated_events(harness: Harness, event: dict[str, Any], content_type: str) -> None:
    body = json.dumps(event, ensure_ascii=False).encode()
    headers = {"Authorization": f"Bearer {harness.token}", "Content-Type": content_type}
    harness.check(harness.call(body, headers), event)


@EXAMPLES
@given(event=mutated_events())
def test_mutated_events_with_the_admin_scope(harness: Harness, event: dict[str, Any]) -> None:
    """Without the registry check, more mutations reach the queue: they must arrive intact."""
    body = json.dumps(event, ensure_ascii=False).encode()
    headers = {"Authorization": f"Bearer {harness.admin_token}", "Content-Type": "application/json"}
    harness.check(harness.call(body, headers), event)


@EXAMPLES
@given(
    body=st.binary(max_size=600) | json_values.map(lambda v: json.dumps(v).encode()),
    content_type=content_types | header_text,
)
def test_arbitrary_bodies(harness: Harness, body: bytes, content_type: str) -> None:
    headers = {"Authorization": f"Bearer {harness.token}", "Content-Type": content_type}
    response = harness.call(body, headers)
    sent = None
    if response.status_code == 200:
        sent = json.loads(body)
    harness.check(response, sent)


@EXAMPLES
@given(
    authorization=header_text | header_text.map(lambda text: f"Bearer {text}"),
    extra=st.dictionaries(
        st.from_regex(r"(ce-)?[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True), header_text, max_size=4
    ),
    method=st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
)
def test_arbitrary_headers(
    harness: Harness, authorization: str, extra: dict[str, str], method: str
) -> None:
    headers = {**extra, "Authorization": authorization}
    body = json.dumps(VALID_EVENT).encode()
    response = harness.call(body, headers, method)
    assert response.status_code in {401, 403, 405, 415, 400, 413}, response.get_body()
    harness.check(response, None)


# -- binary mode and batches ----------------------------------------------------------------------

BINARY_BASE = {
    "ce-specversion": "1.0",
    "ce-id": "f276b8b9-1d5c-4c5f-9f0a-2f3a0e8e6d11",
    "ce-source": "/orders/42",
    "ce-type": "no.altinn.demo.order.created",
    "ce-resource": "urn:altinn:resource:demo-events",
}
header_values = (
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
    | st.text(max_size=10).map(lambda text: urllib.parse.quote(text, safe=""))
    | st.sampled_from(["%ZZ", "%C0%A0", "a b", '"quoted"', '"', "%", "1.0", ""])
)
binary_types = st.sampled_from(
    [None, "application/json", "text/plain", "application/octet-stream", "application/vnd.x+json",
     "text/plain; charset=utf-8", "image/png"]
)  # fmt: skip


def decoded(value: str) -> str:
    """A ce- header's value as the binding decodes it, by an independent route (the stdlib)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return urllib.parse.unquote(value, errors="strict")


def binary_event(headers: dict[str, str], content_type: str | None, body: bytes) -> dict[str, Any]:
    """The event a binary request describes, if it is valid (the 200 must have stored this)."""
    event: dict[str, Any] = {name[3:]: decoded(value) for name, value in headers.items()}
    if content_type is not None:
        event["datacontenttype"] = content_type
    if body:
        essence = (content_type or "").split(";")[0]
        if essence.endswith("json"):
            event["data"] = json.loads(body)
        elif essence.startswith("text/"):
            event["data"] = body.decode()
        else:
            event["data_base64"] = base64.b64encode(body).decode()
    return event


@EXAMPLES
@given(
    changes=st.dictionaries(
        st.sampled_from([*BINARY_BASE, "ce-time", "ce-subject", "ce-extension1", "ce-data"]),
        header_values | st.none(),
        max_size=4,
    ),
    content_type=binary_types,
    body=st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_binary_requests(
    harness: Harness, changes: dict[str, str | None], content_type: str | None, body: bytes
) -> None:
    ce = {name: value for name, value in {**BINARY_BASE, **changes}.items() if value is not None}
    headers = {"Authorization": f"Bearer {harness.admin_token}", **ce}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = harness.call(body, headers)
    sent = binary_event(ce, content_type, body) if response.status_code == 200 else None
    harness.check(response, sent)


batch_elements = mutated_events() | json_values


@EXAMPLES
@given(elements=st.lists(batch_elements, max_size=8), admin=st.booleans())
def test_batches(harness: Harness, elements: list[Any], admin: bool) -> None:
    headers = {
        "Authorization": f"Bearer {harness.admin_token if admin else harness.token}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    response = harness.call(json.dumps(elements, ensure_ascii=False).encode(), headers)
    harness.check_batch(response, elements)
