"""Binary content mode (HTTP binding 3.1): the receiver rules of
../shared/reference/cloudevents-rules.md R37-R41 and A9/A14, both sides of each, as tables; and
the same event in binary and in structured mode becoming the same queue message."""

# ruff: noqa: E501 - rule tables read best one case per line
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.cloudevents import InvalidEvent, parse_binary, parse_structured, serialize
from shared.cloudevents.http import MAX_HEADER_VALUE_CHARACTERS, decode_header_value
from shared.core.altinn import ALTINN_PROFILE, reference_errors
from tests.support import VALID_EVENT

HEADERS: dict[str, str] = {
    "ce-specversion": "1.0",
    "ce-id": "f276b8b9-1d5c-4c5f-9f0a-2f3a0e8e6d11",
    "ce-source": "https://ttd.apps.altinn.no/ttd/demo/instances/50015641/a72223a3",
    "ce-type": "app.instance.process.completed",
    "ce-time": "2024-05-17T13:45:00.123456Z",
    "ce-subject": "/party/50015641",
    "ce-resource": "urn:altinn:resource:demo-events",
    "ce-resourceinstance": "50015641/a72223a3-16f3-4b2d-9ea6-9c6b1cd3b8b1",
    "content-type": "application/json",
}
JSON_BODY = b'{"status":"completed","items":[1,2,3]}'


def binary(headers: dict[str, str] | None = None, body: bytes = JSON_BODY, **changes: Any) -> Any:
    merged = {**HEADERS, **(headers or {})}
    for name, value in changes.items():
        header = "content-type" if name == "content_type" else f"ce-{name}"
        if value is None:
            merged.pop(header, None)
        else:
            merged[header] = value
    return parse_binary(merged, body, ALTINN_PROFILE)


def members_of(**changes: Any) -> dict[str, Any]:
    body = changes.pop("body", JSON_BODY)
    return dict(binary(body=body, **changes).members)


def errors_of(body: bytes = JSON_BODY, **changes: Any) -> dict[str, tuple[str, ...]]:
    with pytest.raises(InvalidEvent) as caught:
        binary(body=body, **changes)
    return reference_errors(caught.value)


# -- header values (R40) --------------------------------------------------------------------------

DECODED = [
    ("plain", "abc-123/x:y", "abc-123/x:y"),
    ("percent-encoded space", "a%20b", "a b"),
    ("lower-case hex", "%e2%82%ac", "€"),
    ("upper-case hex", "%E2%82%AC", "€"),
    ("needlessly encoded", "%41%42C", "ABC"),
    ("exactly one round", "%2541", "%41"),
    ("quoted-string", '"a b"', "a b"),
    ("quoted-string with escapes", '"a\\"b\\\\c"', 'a"b\\c'),
    ("quoted-string then percent", '"x%20y"', "x y"),
    ("an encoded comma", "a%2Cb", "a,b"),
    ("a comma in a quoted-string", '"a,b"', "a,b"),
]


@pytest.mark.parametrize(
    ("raw", "decoded"), [case[1:] for case in DECODED], ids=[c[0] for c in DECODED]
)
def test_r40_header_values_decode(raw: str, decoded: str) -> None:
    assert decode_header_value(raw) == decoded


UNDECODABLE = [
    ("invalid escape", "%ZZ", "invalid percent-escape"),
    ("truncated escape", "abc%4", "invalid percent-escape"),
    ("lone percent", "100%", "invalid percent-escape"),
    ("overlong UTF-8", "%C0%A0", "UTF-8"),
    ("lone continuation byte", "%80", "UTF-8"),
    ("raw space", "a b", "percent-encode"),
    ("two header lines joined as the dev host does", "a, b", "sent only once"),
    # the Functions host joins repeated lines with a bare "," (StringValues.ToString())
    ("two header lines joined as the Functions host does", "a,b", "sent only once"),
    ("raw non-ASCII", "blåbær", "percent-encode"),
    ("raw control character", "a\tb", "percent-encode"),
    ("unescaped quote in quoted-string", '"a"b"', "quoted-string"),
    ("quoted-string ending in a backslash", '"ab\\"', "backslash"),
]


@pytest.mark.parametrize(
    ("raw", "fragment"), [case[1:] for case in UNDECODABLE], ids=[c[0] for c in UNDECODABLE]
)
def test_r40_header_values_that_do_not_decode(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        decode_header_value(raw)


# -- accept cases ----------------------------------------------------------------------------------

ACCEPTED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("R37 a valid binary event", {}, {"id": HEADERS["ce-id"], "data": {"status": "completed", "items": [1, 2, 3]}}),
    ("R38 Content-Type is datacontenttype, as sent", {"content_type": "application/json; charset=utf-8"},
     {"datacontenttype": "application/json; charset=utf-8"}),
    ("R39 extensions are headers too", {"comexampleextension1": "value"}, {"comexampleextension1": "value"}),
    ("R39 header values are strings", {"sampledrate": "5"}, {"sampledrate": "5"}),
    ("R40 percent-decoded subject", {"subject": "/party/%C3%A6%20x"}, {"subject": "/party/æ x"}),
    ("R41 JSON body is a JSON value", {"body": b"[1,\"two\",null]"}, {"data": [1, "two", None]}),
    ("R41 +json suffix is JSON", {"content_type": "application/vnd.api+json", "body": b'{"a":1}'},
     {"data": {"a": 1}}),
    ("R41 text/json is JSON", {"content_type": "text/json", "body": b'"s"'}, {"data": "s"}),
    ("R41 text is a string", {"content_type": "text/plain; charset=utf-8", "body": "blåbær".encode()},
     {"data": "blåbær"}),
    ("R41 other types are data_base64", {"content_type": "application/octet-stream", "body": b"\x00\xff"},
     {"data_base64": "AP8="}),
    ("R41 no Content-Type: data_base64", {"content_type": None, "body": b"\x01"}, {"data_base64": "AQ=="}),
    ("A14 empty body: no data", {"body": b""}, {"datacontenttype": "application/json"}),
    ("A14 no body, no Content-Type", {"content_type": None, "body": b""}, {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "expected"), [case[1:] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED]
)
def test_binary_accepts(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    members = members_of(**changes)
    for name, value in expected.items():
        assert members[name] == value
    if "data" not in expected:
        assert "data" not in members or "body" not in changes or changes["body"]
    if changes.get("body") == b"":
        assert "data" not in members
        assert "data_base64" not in members


# -- reject cases: every problem at once, keyed by attribute --------------------------------------

REJECTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("R38 ce-datacontenttype is refused", {"datacontenttype": "application/json"}, "datacontenttype",
     "cannot be a header in binary mode"),
    ("R39 ce-data is not the data", {"data": "x"}, "data", "cannot be a header"),
    ("R39 id is required", {"id": None}, "id", "The 'id' attribute is required."),
    ("R39 resource is required", {"resource": None}, "resource", "A 'resource' property must be defined."),
    ("R39 specversion must be 1.0", {"specversion": "0.3"}, "specversion", "not a supported"),
    ("R39 time must be RFC 3339", {"time": "yesterday"}, "time", "RFC 3339"),
    ("R39 resource URN rule", {"resource": "urn:altinn:resource:UPPER"}, "resource", "valid urn"),
    ("R40 invalid escape", {"id": "%ZZ"}, "id", "invalid percent-escape"),
    ("R40 invalid UTF-8", {"subject": "%C0%A0"}, "subject", "UTF-8"),
    ("R40 decoded control character", {"subject": "%00"}, "subject", "U+0000"),
    ("R41 unparseable JSON body", {"body": b"not json"}, "data", "not valid JSON"),
    ("R41 invalid UTF-8 text", {"content_type": "text/plain", "body": b"\xff"}, "data", "UTF-8"),
    ("R41 duplicate names in JSON data", {"body": b'{"a":1,"a":2}'}, "data", "more than once"),
    ("A9 header over 8 KiB", {"subject": "x" * (MAX_HEADER_VALUE_CHARACTERS + 1)}, "subject",
     f"longer than {MAX_HEADER_VALUE_CHARACTERS}"),
    ("A9 ce- header lines sent twice", {"type": "a, b"}, "type", "sent only once"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [case[1:] for case in REJECTED],
    ids=[case[0] for case in REJECTED],
)
def test_binary_rejects(changes: dict[str, Any], key: str, fragment: str) -> None:
    body = changes.pop("body", JSON_BODY)
    errors = errors_of(body=body, **changes)
    assert any(fragment in message for message in errors[key]), errors[key]


def test_every_problem_is_reported_at_once_and_a_bad_header_is_not_also_missing() -> None:
    errors = errors_of(body=b"{", id="%ZZ", time="soon", type=None)
    assert set(errors) == {"id", "time", "type", "data", "RequestBody"}
    assert errors["id"] == ("'id' has an invalid percent-escape at position 0; write '%' as %25.",)
    assert errors["RequestBody"] == ("CloudEvent is missing required attributes: type",)


# -- the same event in both modes: the same bytes on the queue ------------------------------------


def structured_twin(members: dict[str, Any]) -> bytes:
    """The structured-mode body of the event ``members`` describes (in another member order)."""
    return json.dumps(dict(reversed(list(members.items()))), ensure_ascii=False).encode()


SAME_EVENT = [
    ("JSON object data", "application/json", JSON_BODY, {"data": json.loads(JSON_BODY)}),
    ("JSON string data", "application/json", b'"text"', {"data": "text"}),
    ("text data", "text/plain", "Ærlig talt 🎉".encode(), {"data": "Ærlig talt 🎉"}),
    ("binary data", "application/octet-stream", bytes(range(256)),
     {"data_base64": base64.b64encode(bytes(range(256))).decode()}),
    ("no data", "application/json", b"", {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [case[1:] for case in SAME_EVENT],
    ids=[case[0] for case in SAME_EVENT],
)
def test_binary_and_structured_make_byte_identical_messages(
    content_type: str, body: bytes, data: dict[str, Any]
) -> None:
    headers = {**HEADERS, "content-type": content_type, "ce-comexampleextension1": "value"}
    from_binary = serialize(parse_binary(headers, body, ALTINN_PROFILE))
    attributes = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    members = {**attributes, "datacontenttype": content_type, **data}
    from_structured = serialize(parse_structured(structured_twin(members), ALTINN_PROFILE))
    assert from_binary == from_structured


def test_the_valid_event_of_the_structured_tests_also_publishes_in_binary_mode() -> None:
    headers = {
        f"ce-{name}": value
        for name, value in VALID_EVENT.items()
        if name not in ("data", "datacontenttype")
    }
    headers["content-type"] = VALID_EVENT["datacontenttype"]
    body = json.dumps(VALID_EVENT["data"], ensure_ascii=False).encode()
    assert serialize(parse_binary(headers, body, ALTINN_PROFILE)) == serialize(
        parse_structured(json.dumps(VALID_EVENT).encode(), ALTINN_PROFILE)
    )
