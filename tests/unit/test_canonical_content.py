"""When two events are the same content (shared/cloudevents/canonical.py): JSON data by its
RFC 8785 canonical form, attributes by the type system's canonical strings, data as bytes
otherwise. Properties over generated values, and the cases publishers meet."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.cloudevents import parse_binary, parse_structured
from shared.cloudevents.attributes import canonical_media_type, canonical_timestamp
from shared.cloudevents.canonical import content_digest
from shared.cloudevents.jsonformat import canonical_json, decode_json, encode_compact
from shared.core.altinn import ALTINN_PROFILE
from tests.support import VALID_EVENT, body_of

EXACT = 2**53 - 1
names = st.text(max_size=8)
integers = st.integers(min_value=-EXACT, max_value=EXACT)
scalars = st.none() | st.booleans() | integers | st.text(max_size=12)
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70)
without_fractions = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=20,
)
any_json = st.recursive(
    scalars | numbers,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=20,
)


def reference(value: Any) -> bytes:
    """rfc8785's canonical form, with integers beyond a double as the doubles they name."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        return rfc8785.dumps(json.loads(json.dumps(value), parse_int=float))


@settings(max_examples=300)
@given(without_fractions)
def test_the_fast_path_is_rfc8785_byte_for_byte(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=300)
@given(any_json)
def test_every_value_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == reference(value)


def shuffled(value: Any, chooser: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        chooser.shuffle(items)
        return {name: shuffled(member, chooser) for name, member in items}
    if isinstance(value, list):
        return [shuffled(member, chooser) for member in value]
    return value


@settings(max_examples=200)
@given(any_json, st.randoms())
def test_member_order_never_matters(value: Any, chooser: random.Random) -> None:
    assert canonical_json(shuffled(value, chooser)) == canonical_json(value)


def test_numbers_are_compared_as_numbers() -> None:
    same = [decode_json(text) for text in (b"[1,2.5]", b"[1.0,25e-1]", b"[1e0,2.50]")]
    assert len({canonical_json(value) for value in same}) == 1
    assert canonical_json(decode_json(b"1")) != canonical_json(decode_json(b"true"))
    assert canonical_json(decode_json(b"1")) != canonical_json(decode_json(b'"1"'))


def test_member_names_sort_by_utf16_where_code_points_differ() -> None:
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\U0001f600".encode()) < canonical_json(value).index(
        "\ue000".encode()
    )


def test_an_integer_beyond_any_double_is_still_content() -> None:
    huge = decode_json(b"1" + b"0" * 400)
    assert canonical_json(huge) != canonical_json(decode_json(b"1" + b"0" * 399))


# -- attributes under the type system -----------------------------------------------------------


def test_timestamps_are_compared_as_instants() -> None:
    same = [
        "2024-05-17T10:00:00Z",
        "2024-05-17T10:00:00.000Z",
        "2024-05-17t11:00:00+01:00",
        "2024-05-17T09:30:00-00:30",
    ]
    assert {canonical_timestamp(text) for text in same} == {"2024-05-17T10:00:00Z"}
    assert canonical_timestamp("2024-05-17T10:00:00.5+01:00") == "2024-05-17T09:00:00.5Z"
    assert canonical_timestamp("2016-12-31T23:59:60Z") == "2016-12-31T23:59:60Z"
    assert canonical_timestamp("2017-01-01T00:59:60+01:00") == "2016-12-31T23:59:60Z"
    assert canonical_timestamp("0001-01-01T00:30:00+01:00") == "0001-01-01T00:30:00+01:00"


def test_media_types_are_compared_as_rfc_9110_compares_them() -> None:
    json_types = [
        "application/json",
        "Application/JSON; charset=UTF-8",
        'application/json;charset="utf-8"',
    ]
    assert {canonical_media_type(text) for text in json_types} == {"application/json"}
    assert canonical_media_type("text/plain; b=2; A=1") == canonical_media_type(
        "text/plain;a=1;b=2"
    )
    assert canonical_media_type("text/plain; charset=latin1") != "text/plain"
    assert canonical_media_type('text/plain;x="a;b=c"') != canonical_media_type(
        "text/plain;x=a;b=c"
    )


# -- events ---------------------------------------------------------------------------------------


def digest(members: dict[str, Any]) -> str:
    return content_digest(parse_structured(body_of(members), ALTINN_PROFILE).members)


def binary_digest(headers: dict[str, str], body: bytes) -> str:
    event = parse_binary({k.lower(): v for k, v in headers.items()}, body, ALTINN_PROFILE)
    return content_digest(event.members)


def test_the_same_event_in_binary_and_structured_mode_is_the_same_content() -> None:
    event = {**VALID_EVENT, "ext": 5, "flag": True}
    headers = {
        f"ce-{name}": str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in event.items()
        if name not in ("data", "datacontenttype")
    }
    headers = {
        name: value.replace(" ", "%20").replace("Æ", "%C3%86") for name, value in headers.items()
    }
    headers["content-type"] = "application/json; charset=utf-8"
    body = json.dumps(event["data"], separators=(", ", ": ")).encode()  # ASCII escapes, spaces
    assert binary_digest(headers, body) == digest(event)


def test_what_the_endpoint_adds_is_not_content() -> None:
    traced = {**VALID_EVENT, "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    plain = parse_structured(body_of(VALID_EVENT), ALTINN_PROFILE).members
    members = parse_structured(body_of(traced), ALTINN_PROFILE).members
    ignore = {"traceparent", "tracestate"}
    assert content_digest(members, ignore=ignore) == content_digest(plain, ignore=ignore)


def test_data_is_compared_as_bytes_when_it_is_not_json() -> None:
    text = {**VALID_EVENT, "datacontenttype": "text/plain", "data": "hello æ"}
    raw = {k: v for k, v in text.items() if k != "data"}
    raw["data_base64"] = base64.b64encode("hello æ".encode()).decode()
    assert digest(text) == digest(raw)
    json_in_base64 = {k: v for k, v in VALID_EVENT.items() if k != "data"}
    json_in_base64["data_base64"] = base64.b64encode(encode_compact(VALID_EVENT["data"])).decode()
    assert digest(json_in_base64) == digest(VALID_EVENT)


def test_strings_are_compared_exactly() -> None:
    nfc = {**VALID_EVENT, "subject": "/party/\u00e9"}
    nfd = {**VALID_EVENT, "subject": "/party/e\u0301"}
    assert digest(nfc) != digest(nfd)
    assert digest({**VALID_EVENT, "subject": "/a"}) != digest({**VALID_EVENT, "subject": "/a "})


def test_no_datacontenttype_with_data_is_application_json() -> None:
    without = {k: v for k, v in VALID_EVENT.items() if k != "datacontenttype"}
    assert digest(without) == digest({**VALID_EVENT, "datacontenttype": "application/json"})
    no_data = {k: v for k, v in without.items() if k != "data"}
    assert digest(no_data) != digest({**no_data, "datacontenttype": "application/json"})


@settings(max_examples=100)
@given(
    st.dictionaries(
        st.from_regex(r"x[a-z0-9]{1,6}", fullmatch=True),
        st.integers(-5, 5) | st.booleans(),
        max_size=4,
    )
)
def test_an_extension_and_its_string_form_are_the_same_content(extensions: dict[str, Any]) -> None:
    as_strings = {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in extensions.items()
    }
    assert digest({**VALID_EVENT, **extensions}) == digest({**VALID_EVENT, **as_strings})
