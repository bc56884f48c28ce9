"""Receiver rules of ../shared/reference/cloudevents-rules.md, both sides of each, as tables.

Each case names its rule id. Accept cases must parse; reject cases must fail with a message under
the named key that contains the given fragment.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.cloudevents import CloudEvent, InvalidEvent, parse_structured, serialize
from shared.cloudevents.attributes import check_media_type, check_string_characters
from shared.cloudevents.jsonformat import canonical
from shared.core.altinn import ALTINN_PROFILE, reference_errors
from tests.support import VALID_EVENT, body_of

MISSING = object()  # marks an attribute to delete


def with_changes(**changes: Any) -> dict[str, Any]:
    event = json.loads(json.dumps(VALID_EVENT))
    for name, value in changes.items():
        if value is MISSING:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def parse(body: bytes) -> CloudEvent:
    return parse_structured(body, ALTINN_PROFILE)


def errors_of(body: bytes) -> dict[str, tuple[str, ...]]:
    """The problems as the endpoint reports them: keyed by attribute, with the body's under
    the reference system's ``RequestBody`` (the Altinn profile's wording)."""
    with pytest.raises(InvalidEvent) as caught:
        parse(body)
    return reference_errors(caught.value)


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("R2 minimal required set", {
        "specversion": "1.0", "id": "1", "source": "/s", "type": "t",
        "resource": "urn:altinn:resource:demo-events",
    }),
    ("R14 relative source", with_changes(source="/mycontext")),
    ("R14 phone-number source", with_changes(source="1-555-123-4567")),
    ("R14 network-path source (conformance)", with_changes(source="//github.com/cloudevents/spec")),
    ("R11 fragment-only source", with_changes(source="#fragment")),
    ("R11 URN source", with_changes(source="urn:event:from:myapi")),
    ("R11 mailto source", with_changes(source="mailto:cncf-wg-serverless@lists.cncf.io")),
    ("R11 IPv6 literal source", with_changes(source="http://[2001:db8::1]:8080/x")),
    ("R11 percent-encoded source", with_changes(source="/a%20b?q=%C3%A6#f")),
    ("R12 lower-case t and z", with_changes(time="2018-04-05t17:31:00z")),
    ("R12 long fraction", with_changes(time="2018-04-05T17:31:00.123456789012Z")),
    ("R12 offset -00:00", with_changes(time="2018-04-05T17:31:00-00:00")),
    ("R12 offset +14:00", with_changes(time="2018-04-05T17:31:00+14:00")),
    ("R12 leap day", with_changes(time="2024-02-29T00:00:00Z")),
    ("A2 real leap second", with_changes(time="2016-12-31T23:59:60Z")),
    ("A2 real leap second with offset", with_changes(time="2017-01-01T00:59:60+01:00")),
    ("R26 null optional attribute is unset", with_changes(subject=None, time=None)),
    ("R19 subject absent", with_changes(subject=MISSING)),
    ("A4 long extension name", with_changes(averyveryverylongextensionname="x")),
    ("R3 leading digit name", with_changes(**{"1ext": "x", "123": "y"})),
    ("R7 Integer bounds", with_changes(lowest=-2147483648, highest=2147483647)),
    ("R6 Boolean extension", with_changes(flag=True, other=False)),
    ("R21 unknown extensions", with_changes(
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        comexampleextension1="value", sampledrate=5)),
    ("R18 absolute dataschema", with_changes(dataschema="https://example.com/schema.json")),
    ("A3 dataschema with fragment", with_changes(dataschema="https://x/s.json#/defs/a")),
    ("R17 datacontenttype with parameters", with_changes(
        datacontenttype="application/json; charset=utf-8")),
    ("R17 datacontenttype any case", with_changes(datacontenttype="Application/JSON")),
    ("R30 explicit null data", with_changes(data=None)),
    ("R30 string data stays string", with_changes(data='{"not":"parsed"}')),
    ("R30 array data", with_changes(data=[1, "two", None])),
    ("R30 +json subtype with object data", with_changes(
        datacontenttype="application/vnd.api+json", data={"a": 1})),
    ("R31 text data as string", with_changes(datacontenttype="text/plain", data="hello")),
    ("R29 empty data_base64", with_changes(data=MISSING, data_base64="")),
    ("R29 data_base64", with_changes(
        data=MISSING, data_base64="aGVsbG8=", datacontenttype="application/octet-stream")),
    ("R26 null data_base64 beside data", with_changes(data_base64=None)),
    ("R22 data may hold control characters", with_changes(data="line\nbreak\ttab\u0001")),
    ("R46/R47 empty Altinn strings", with_changes(resourceinstance="", alternativesubject="")),
    ("R47 person alternativesubject", with_changes(alternativesubject="/person/16069412345")),
    ("R45 resource with allowed punctuation", with_changes(
        resource="urn:altinn:resource:app_ttd_demo-1.v2(x)+y,z;$!")),
    ("R45 legacy app resource", with_changes(resource="urn:altinn:resource:altinnapp.ttd.demo")),
    ("A6 whitespace-only id", with_changes(id="  ")),
    ("R16 type with spaces", with_changes(type="a type with spaces")),
    ("nesting of exactly 64 levels in data", with_changes(data=json.loads("[" * 64 + "]" * 64))),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "event"), ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_accepts(rule: str, event: dict[str, Any]) -> None:
    parsed = parse(body_of(event))
    assert parsed.id == event["id"]


REJECTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("R2 missing id", with_changes(id=MISSING), "id", "required"),
    ("R2 missing source", with_changes(source=MISSING), "source", "required"),
    ("R2 missing type", with_changes(type=MISSING), "type", "required"),
    ("R2 missing specversion", with_changes(specversion=MISSING), "specversion", "required"),
    ("R26 null id is missing", with_changes(id=None), "id", "required"),
    ("R13 empty id", with_changes(id=""), "id", "non-empty"),
    ("R5 number id", with_changes(id=123), "id", "must be a string, not an integer"),
    ("R14 empty source", with_changes(source=""), "source", "non-empty"),
    ("R11 space in source", with_changes(source="a b"), "source", "not allowed in a URI path"),
    ("R11 bad escape in source", with_changes(source="/a%zz"), "source", "%XX"),
    ("R11 colon in 1st segment", with_changes(source="1-555:123"), "source", "first path segment"),
    ("R11 broken IP literal", with_changes(source="http://[zz::1]/"), "source", "IPv6"),
    ("R11 unclosed IP literal", with_changes(source="http://[::1/"), "source", "closing"),
    ("R11 raw non-ASCII in source", with_changes(source="/æøå"), "source", "not allowed"),
    ("R11 angle bracket in source", with_changes(source="/<x>"), "source", "not allowed"),
    ("R11 bad port", with_changes(source="http://host:80a/"), "source", "port"),
    ("R5 number source", with_changes(source=5), "source", "must be a string"),
    ("R15 specversion 1.0.2", with_changes(specversion="1.0.2"), "specversion", "'1.0.2'"),
    ("R15 specversion 1", with_changes(specversion="1"), "specversion", "use \"1.0\""),
    ("A11 specversion 0.3", with_changes(specversion="0.3"), "specversion", "not a supported"),
    ("R15 specversion 2.0", with_changes(specversion="2.0"), "specversion", "not a supported"),
    ("R15 specversion padded", with_changes(specversion=" 1.0"), "specversion", "not a supported"),
    ("R15 specversion number", with_changes(specversion=1.0), "specversion", "not a number"),
    ("R16 empty type", with_changes(type=""), "type", "non-empty"),
    ("R16 boolean type", with_changes(type=True), "type", "not a boolean"),
    ("R17 empty datacontenttype", with_changes(datacontenttype=""), "datacontenttype", "non-empty"),
    ("R17 bare json", with_changes(datacontenttype="json"), "datacontenttype", "media type"),
    ("R17 no subtype", with_changes(datacontenttype="text/"), "datacontenttype", "media type"),
    ("R18 relative dataschema", with_changes(dataschema="/schema"), "dataschema", "absolute URI"),
    ("R18 empty dataschema", with_changes(dataschema=""), "dataschema", "non-empty"),
    ("R19 empty subject", with_changes(subject=""), "subject", "non-empty"),
    ("R12 date only", with_changes(time="2018-04-05"), "time", "RFC 3339"),
    ("R12 no offset", with_changes(time="2018-04-05T17:31:00"), "time", "RFC 3339"),
    ("R12 no seconds", with_changes(time="2018-04-05T17:31Z"), "time", "RFC 3339"),
    ("R12 basic format", with_changes(time="20180405T173100Z"), "time", "RFC 3339"),
    ("R12 week date", with_changes(time="2018-W14-4T17:31:00Z"), "time", "RFC 3339"),
    ("R12 comma decimal", with_changes(time="2018-04-05T17:31:00,5Z"), "time", "RFC 3339"),
    ("R12 offset without colon", with_changes(time="2018-04-05T17:31:00+0200"), "time", "RFC 3339"),
    ("R12 RFC 1123 date", with_changes(time="Thu, 05 Apr 2018 17:31:00 GMT"), "time", "RFC 3339"),
    ("R12 epoch number", with_changes(time=1522949460), "time", "not an integer"),
    ("R12 non-ASCII digits", with_changes(time="٢٠١٨-04-05T17:31:00Z"), "time", "RFC 3339"),
    ("R12 February 30", with_changes(time="2018-02-30T00:00:00Z"), "time", "real date"),
    ("R12 Feb 29 in 2023", with_changes(time="2023-02-29T00:00:00Z"), "time", "real date"),
    ("R12 month 13", with_changes(time="2018-13-01T00:00:00Z"), "time", "real date"),
    ("R12 month 00", with_changes(time="2018-00-01T00:00:00Z"), "time", "real date"),
    ("R12 day 00", with_changes(time="2018-01-00T00:00:00Z"), "time", "real date"),
    ("R12 day 32", with_changes(time="2018-01-32T00:00:00Z"), "time", "real date"),
    ("R12 April 31", with_changes(time="2018-04-31T00:00:00Z"), "time", "real date"),
    ("R12 hour 24", with_changes(time="2018-04-05T24:00:00Z"), "time", "out of range"),
    ("R12 minute 60", with_changes(time="2018-04-05T23:60:00Z"), "time", "out of range"),
    ("A2 second 60 off a leap second", with_changes(time="2017-12-31T23:59:60Z"), "time", "leap"),
    ("R12 offset hour 24", with_changes(time="2018-04-05T17:31:00+24:00"), "time", "offset"),
    ("R3 upper-case name", with_changes(Foo="x"), "Foo", "did you mean 'foo'"),
    ("R3 hyphen in name", with_changes(**{"a-b": "x"}), "a-b", "not a valid attribute name"),
    ("R3 underscore in name", with_changes(foo_bar="x"), "foo_bar", "not a valid attribute name"),
    ("R3 dot in name", with_changes(**{"foo.bar": "x"}), "foo.bar", "not a valid attribute name"),
    ("R3 space in name", with_changes(**{"foo bar": "x"}), "foo bar", "not a valid attribute name"),
    ("R3 non-ASCII name", with_changes(**{"æøå": "x"}), "æøå", "not a valid attribute name"),
    ("R3 empty name", with_changes(**{"": "x"}), "", "empty string"),
    ("R25 extensions object", with_changes(extensions={"a": "b"}), "extensions", "an object"),
    ("R5 array value", with_changes(tags=["a"]), "tags", "an array"),
    ("R27 fraction", with_changes(ratio=1.5), "ratio", "fraction or exponent"),
    ("R27 integral float", with_changes(count=1.0), "count", "fraction or exponent"),
    ("R7 above Int32", with_changes(big=2147483648), "big", "between"),
    ("R7 below Int32", with_changes(small=-2147483649), "small", "between"),
    ("R8 control character", with_changes(subject="a\u0001b"), "subject", "U+0001"),
    ("R8 tab", with_changes(type="a\tb"), "type", "U+0009"),
    ("R8 line feed", with_changes(id="a\nb"), "id", "U+000A"),
    ("R8 DEL", with_changes(ext="a\u007fb"), "ext", "U+007F"),
    ("R8 C1 control", with_changes(ext="a\u0085b"), "ext", "U+0085"),
    ("R8 noncharacter FFFE", with_changes(ext="\ufffe"), "ext", "U+FFFE"),
    ("R8 noncharacter FDD0", with_changes(ext="\ufdd0"), "ext", "U+FDD0"),
    ("R8 plane-1 noncharacter", with_changes(ext="\U0001fffe"), "ext", "U+1FFFE"),
    ("R28 data and data_base64", with_changes(data_base64="aGk="), "data_base64", "both"),
    ("R9 non-alphabet Base64", with_changes(data=MISSING, data_base64="not base64!"),
     "data_base64", "strict Base64"),
    ("R9 unpadded Base64", with_changes(data=MISSING, data_base64="QQ"), "data_base64", "padded"),
    ("R9 Base64 with space", with_changes(data=MISSING, data_base64="QQ =="), "data_base64",
     "strict Base64"),
    ("R29 non-string data_base64", with_changes(data=MISSING, data_base64=12), "data_base64",
     "Base64 string"),
    ("A5 object data with text type", with_changes(datacontenttype="text/plain", data={"a": 1}),
     "data", "non-JSON datacontenttype"),
    ("X3 data nested 65 levels", with_changes(data=json.loads("[" * 65 + "]" * 65)), "data",
     "nested more than 64"),
    ("R45 missing resource", with_changes(resource=MISSING), "resource",
     "A 'resource' property must be defined."),
    ("R45 null resource", with_changes(resource=None), "resource", "must be defined"),
    ("R45 empty resource", with_changes(resource=""), "resource", "non-empty"),
    ("R45 upper case", with_changes(resource="urn:altinn:resource:MyId"), "resource", "valid urn"),
    ("R45 empty segments", with_changes(resource="urn:foo::::"), "resource", "valid urn"),
    ("R45 no identifier", with_changes(resource="urn:altinn:resource:"), "resource", "valid urn"),
    ("R45 other namespace", with_changes(resource="urn:nbib:bokoversikt.api"), "resource",
     "must start with 'urn:altinn:resource:'"),
    ("R45 two identifier segments", with_changes(resource="urn:altinn:resource:a:b"), "resource",
     "one identifier segment"),
    ("R45 leading space", with_changes(resource=" urn:altinn:resource:x"), "resource", "valid urn"),
    ("R45 dot identifier", with_changes(resource="urn:altinn:resource:."), "resource",
     "at least one letter or digit"),
    ("R45 dot-dot identifier", with_changes(resource="urn:altinn:resource:.."), "resource",
     "at least one letter or digit"),
    ("R45 percent sign", with_changes(resource="urn:altinn:resource:a%20b"), "resource",
     "valid urn"),
    ("R45 not a URN", with_changes(resource="https://example.com/r"), "resource", "valid urn"),
    ("R45 number", with_changes(resource=42), "resource", "must be a string"),
    ("R46 number resourceinstance", with_changes(resourceinstance=5), "resourceinstance",
     "must be a string"),
    ("R47 national id as a JSON number", with_changes(alternativesubject=16069412345),
     "alternativesubject", "must be a string"),
    ("R47 object alternativesubject", with_changes(alternativesubject={"id": 1}),
     "alternativesubject", "must be a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "event", "key", "fragment"), REJECTED, ids=[case[0] for case in REJECTED]
)
def test_rejects(rule: str, event: dict[str, Any], key: str, fragment: str) -> None:
    errors = errors_of(body_of(event))
    assert key in errors, errors
    assert any(fragment in message for message in errors[key]), errors[key]


@pytest.mark.parametrize("name", ["id", "source", "type"])
def test_missing_attribute_keeps_the_reference_wording(name: str) -> None:
    errors = errors_of(body_of(with_changes(**{name: MISSING})))
    assert errors["RequestBody"] == (f"CloudEvent is missing required attributes: {name}",)


def test_missing_attributes_are_listed_together_in_reference_order() -> None:
    errors = errors_of(body_of(with_changes(type=MISSING, id=MISSING, specversion=MISSING)))
    assert errors["RequestBody"] == (
        "CloudEvent is missing required attributes: id, type, specversion",
    )


def test_every_violation_is_reported_at_once() -> None:
    event = with_changes(
        id=MISSING,
        source="a b",
        specversion="0.3",
        time="yesterday",
        resource="urn:altinn:resource:Upper",
        Bad="x",
        data_base64="aGk=",
    )
    errors = errors_of(body_of(event))
    assert set(errors) == {
        "id",
        "RequestBody",
        "source",
        "specversion",
        "time",
        "resource",
        "Bad",
        "data_base64",
    }


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("R24 array", b"[]", "kind 'Array'"),
    ("R24 string", b'"event"', "kind 'String'"),
    ("R24 number", b"1", "kind 'Number'"),
    ("R24 null", b"null", "kind 'Null'"),
    ("R24 true", b"true", "kind 'True'"),
    ("R32 malformed", b'{"id": ', "not valid JSON"),
    ("R32 trailing comma", b'{"id": "1",}', "not valid JSON"),
    ("R32 comment", b'{"id": "1" /* c */}', "not valid JSON"),
    ("R32 single quotes", b"{'id': '1'}", "not valid JSON"),
    ("R32 trailing bytes", b'{"id": "1"} x', "Extra data"),
    ("R32 concatenated values", b'{"id": "1"}{"id": "2"}', "Extra data"),
    ("R32 NaN", b'{"id": "1", "data": NaN}', "'NaN' is not valid JSON"),
    ("R32 Infinity", b'{"id": "1", "data": Infinity}', "'Infinity' is not valid JSON"),
    ("R32 -Infinity", b'{"id": "1", "data": [-Infinity]}', "'-Infinity' is not valid JSON"),
    ("X2 duplicate attribute", b'{"resource": "a", "resource": "b"}', "'resource' appears more"),
    ("X2 duplicate key in data", b'{"id": "1", "data": {"a": 1, "a": 2}}', "'a' appears more"),
    ("R32 invalid UTF-8", b'{"id": "\xff"}', "not valid UTF-8"),
    ("R32 overlong UTF-8", b'{"id": "\xc0\xa0"}', "not valid UTF-8"),
    ("R32 UTF-16", '{"id": "1"}'.encode("utf-16"), "not valid UTF-8"),
    ("empty body", b"", "empty"),
    ("whitespace body", b" \r\n\t", "empty"),
    ("X3 nesting beyond the parser's limit", b'{"data":' + b"[" * 100_000, "nested too deeply"),
    ("X1 integer with 5000 digits", b'{"data": ' + b"9" * 5000 + b"}", "not valid JSON"),
]


@pytest.mark.parametrize(("case", "body", "fragment"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_rejects_body(case: str, body: bytes, fragment: str) -> None:
    errors = errors_of(body)
    assert list(errors) == ["RequestBody"], errors
    assert fragment in errors["RequestBody"][0]


def test_utf8_bom_is_ignored() -> None:
    assert parse(b"\xef\xbb\xbf" + body_of(VALID_EVENT)).id == VALID_EVENT["id"]


def with_raw_data(data: str) -> bytes:
    return body_of(with_changes(data=MISSING))[:-1] + f', "data": {data}}}'.encode()


@pytest.mark.parametrize(
    "data", ['"\\ud800"', '{"big": 123456789012345678901234567890, "s": "\\udc00"}']
)
def test_unpaired_surrogate_escape_in_data_is_rejected_when_encoding(data: str) -> None:
    event = parse(with_raw_data(data))
    with pytest.raises(InvalidEvent) as caught:
        serialize(event)
    assert "unpaired surrogate" in caught.value.errors["data"][0]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" * 400 + ".0"])
def test_numbers_beyond_a_double_are_rejected(number: str) -> None:
    assert "too large" in errors_of(with_raw_data(number))["RequestBody"][0]


def test_integers_beyond_64_bits_are_kept_exactly() -> None:
    encoded = serialize(parse(with_raw_data("123456789012345678901234567890")))
    assert encoded.endswith(b'"data":123456789012345678901234567890}')


def test_unpaired_surrogate_escape_in_an_attribute_is_rejected() -> None:
    body = body_of(with_changes(subject=MISSING))[:-1] + b', "subject": "\\udc00"}'
    assert "U+DC00" in errors_of(body)["subject"][0]


def test_serialization_keeps_values_as_received_and_drops_nulls() -> None:
    event = with_changes(subject=None, count=7, flag=False, time="2018-04-05t17:31:00.10z")
    encoded = serialize(parse(body_of(event)))
    expected = {name: value for name, value in event.items() if value is not None}
    assert (
        encoded
        == json.dumps(canonical(expected), ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert list(json.loads(encoded)) == [  # the one member order of every content mode
        "specversion", "id", "source", "type", "datacontenttype", "time",
        "alternativesubject", "count", "flag", "resource", "resourceinstance", "data",
    ]  # fmt: skip
    assert "subject" not in json.loads(encoded)


def test_serialization_keeps_explicit_null_data() -> None:
    decoded = json.loads(serialize(parse(body_of(with_changes(data=None)))))
    assert "data" in decoded
    assert decoded["data"] is None


def test_every_forbidden_character_is_unprintable() -> None:
    """The fast path of the R8 check relies on this (shared/cloudevents/attributes.py)."""
    forbidden = [
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        *range(0xD800, 0xE000),
        *range(0xFDD0, 0xFDF0),
        *(plane * 0x10000 + low for plane in range(0x11) for low in (0xFFFE, 0xFFFF)),
    ]
    for code_point in forbidden:
        character = chr(code_point)
        assert not character.isprintable(), f"U+{code_point:04X}"
        assert check_string_characters(f"a{character}b") is not None, f"U+{code_point:04X}"
    assert check_string_characters("\u00a0\u2028 æøå 🎉") is None  # unprintable but allowed


# -- every value that reaches a header is a valid header value --------------------------------


@settings(max_examples=300)
@given(
    st.builds(
        lambda essence, name, value: f"{essence}; {name}={value}",
        st.sampled_from(["text/plain", "application/json", "application/vnd.x+json"]),
        st.from_regex(r"[a-z]{1,8}", fullmatch=True),
        st.text(max_size=12).map(lambda text: '"' + text.replace('"', "") + '"')
        | st.text(min_size=1, max_size=12),
    )
    | st.text(max_size=40)
)
def test_every_accepted_media_type_is_a_header_value(value: str) -> None:
    """datacontenttype goes into headers (binary mode's Content-Type, a claim-checked blob's
    Content-Type): whatever validation accepts is printable ASCII, so no storage call can
    refuse it later (which would be a 503 for a client's error)."""
    if check_media_type(value) is None:
        assert value.isascii()
        assert all(" " <= ch <= "~" or ch == "\t" for ch in value)
        value.encode("latin-1")


def test_a_non_ascii_media_type_parameter_is_refused_saying_why() -> None:
    problem = check_media_type('text/plain; x="\u00e9"')
    assert problem is not None
    assert "ASCII" in problem
