"""The claim check's pure halves (shared/core/claimcheck.py, shared/subscriber.py): the data's
exact bytes, the queued members, and reading them back, for every kind of data an event can
carry; and the subscriber's copy of the format kept in step with the CloudEvents layer's."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.cloudevents.jsonformat import encode_compact
from shared.core.claimcheck import stored_data, with_reference
from shared.subscriber import DATAREF, claim_checked, read_message, restore_event, restored

CONTAINER = "https://account.blob.core.windows.net/events-data"
ATTRIBUTES = {"specversion": "1.0", "id": "1", "source": "https://x.example", "type": "t"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def round_trip(event: dict[str, Any]) -> dict[str, Any]:
    """Store the event's data as the endpoint does, queue it, and read it back."""
    data = stored_data(event, encode_compact)
    url = f"{CONTAINER}/2026/11/30/abc"
    message = json.dumps(with_reference(event, url))
    blobs = {url: (data.content, {"cedataform": data.form})}
    return restore_event(message, blobs.__getitem__, container_url=CONTAINER)


@given(json_values)
def test_json_data_comes_back_as_the_same_value(data: Any) -> None:
    event = {**ATTRIBUTES, "datacontenttype": "application/json", "data": data}
    stored = stored_data(event, encode_compact)
    assert stored.content == encode_compact(data)
    assert stored.form == "data"
    assert encode_compact(round_trip(event)["data"]) == encode_compact(data)


@given(st.text())
def test_text_data_comes_back_as_the_same_string(text: str) -> None:
    event = {**ATTRIBUTES, "datacontenttype": "text/csv; charset=utf-8", "data": text}
    stored = stored_data(event, encode_compact)
    assert stored.content == text.encode("utf-8")
    assert stored.content_type == "text/csv; charset=utf-8"
    assert round_trip(event) == event


@given(st.binary(), st.sampled_from([None, "application/json", "image/png"]))
def test_base64_data_comes_back_byte_for_byte(payload: bytes, content_type: str | None) -> None:
    event = {**ATTRIBUTES, "data_base64": base64.b64encode(payload).decode()}
    if content_type is not None:
        event["datacontenttype"] = content_type
    stored = stored_data(event, encode_compact)
    assert stored.content == payload
    assert stored.form == "data_base64"
    assert stored.content_type == (content_type or "application/octet-stream")
    assert round_trip(event) == event


def test_a_json_string_with_a_json_type_is_stored_as_json() -> None:
    """With a JSON datacontenttype (or none), a string is a JSON value: stored with quotes."""
    event = {**ATTRIBUTES, "data": "hello"}
    assert stored_data(event, encode_compact).content == b'"hello"'
    assert round_trip(event) == event


def test_the_queued_members_have_no_data_and_the_reference() -> None:
    event = {**ATTRIBUTES, "datacontenttype": "text/plain", "data": "x"}
    queued = with_reference(event, f"{CONTAINER}/n")
    assert queued == {**ATTRIBUTES, "datacontenttype": "text/plain", DATAREF: f"{CONTAINER}/n"}


@pytest.mark.parametrize(
    ("event", "ours"),
    [
        ({**ATTRIBUTES, DATAREF: f"{CONTAINER}/2026/11/30/abc"}, True),
        ({**ATTRIBUTES, DATAREF: "https://files.example.org/a.pdf"}, False),
        ({**ATTRIBUTES, DATAREF: f"{CONTAINER}-other/abc"}, False),  # a container named alike
        ({**ATTRIBUTES, DATAREF: f"{CONTAINER}/abc", "data": 1}, False),  # data is present
        (ATTRIBUTES, False),
    ],
)
def test_only_our_references_are_followed(event: dict[str, Any], ours: bool) -> None:
    assert (claim_checked(event, CONTAINER) is not None) is ours
    assert (claim_checked(event, CONTAINER + "/") is not None) is ours


def test_events_without_a_claim_check_come_back_unchanged() -> None:
    def never(url: str) -> tuple[bytes, dict[str, str]]:
        raise AssertionError("nothing to fetch")

    own = {**ATTRIBUTES, DATAREF: "https://files.example.org/a.pdf"}
    for event in (ATTRIBUTES, {**ATTRIBUTES, "data": {"a": 1}}, own):
        assert restore_event(json.dumps(event), never, container_url=CONTAINER) == event


def test_a_message_is_json_or_base64_of_json() -> None:
    event = {**ATTRIBUTES, "data": "ø"}
    text = json.dumps(event, ensure_ascii=False)
    assert read_message(text) == event
    assert read_message(text.encode()) == event
    assert read_message(base64.b64encode(text.encode()).decode()) == event
    with pytest.raises(ValueError, match="neither JSON nor Base64"):
        read_message("not base64!")
    with pytest.raises(ValueError, match="not one event"):
        read_message("[1, 2]")


def test_an_unknown_form_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="cedataform"):
        restored({**ATTRIBUTES, DATAREF: f"{CONTAINER}/x"}, b"x", "data_hex")


def test_the_subscribers_copy_of_the_format_is_the_cloudevents_layers() -> None:
    """shared/subscriber.py needs only the standard library, so it names the JSON format's data
    members and its JSON media types itself: the same as the CloudEvents layer's."""
    from shared import subscriber
    from shared.cloudevents import DATA, DATA_BASE64
    from shared.cloudevents.attributes import is_json_media_type

    assert (subscriber.DATA, subscriber.DATA_BASE64) == (DATA, DATA_BASE64)
    kinds = [None, "application/json", "text/json", "application/cloudevents+json", "TEXT/JSON"]
    kinds += ["text/plain", "application/octet-stream", "application/json; charset=utf-8", ""]
    kinds += ["application/jsonx", "application/x+json ;a=b", "json"]
    for kind in kinds:
        assert subscriber.is_json_media_type(kind) == is_json_media_type(kind), kind
