"""Which content mode a request is in, from Content-Type and ce-specversion (docs/contract.md,
"Content modes")."""

from __future__ import annotations

import pytest

from shared.cloudevents import ContentMode, content_mode

CASES: list[tuple[str | None, list[str], ContentMode]] = [
    ("application/cloudevents+json", [], ContentMode.STRUCTURED),
    ("application/cloudevents+json; charset=utf-8", [], ContentMode.STRUCTURED),
    ("application/cloudevents+json; charset=UTF-8", [], ContentMode.STRUCTURED),
    ('application/cloudevents+json;charset="utf-8"', [], ContentMode.STRUCTURED),
    ("Application/CloudEvents+JSON", [], ContentMode.STRUCTURED),
    # R35: ce- headers never switch a structured request to binary mode
    ("application/cloudevents+json", ["ce-id", "ce-type"], ContentMode.STRUCTURED),
    # A17: plain JSON without ce- headers is read as a structured event
    ("application/json", [], ContentMode.STRUCTURED),
    ("application/json; charset=utf-8", ["authorization"], ContentMode.STRUCTURED),
    # docs/contract.md, content modes: ce-specversion with any other type (or none) is binary mode
    ("application/json", ["CE-SPECVERSION", "ce-source"], ContentMode.BINARY),
    ("text/plain", ["Ce-Specversion"], ContentMode.BINARY),
    ("application/octet-stream", ["ce-specversion"], ContentMode.BINARY),
    ("application/xml", ["ce-specversion", "ce-id"], ContentMode.BINARY),
    (None, ["ce-specversion"], ContentMode.BINARY),
    ("", ["ce-specversion"], ContentMode.BINARY),
    # ... even an invalid one: it is the event's datacontenttype, a 400 on it when validated
    ('text/plain; x="\u00e9"', ["ce-specversion"], ContentMode.BINARY),
    ("not a media type", ["ce-specversion"], ContentMode.BINARY),
    # ... but without ce-specversion other ce- headers mean nothing: plain JSON is structured
    ("application/json", ["CE-ID", "ce-source"], ContentMode.STRUCTURED),
    ("text/plain", ["ce-id"], ContentMode.UNSUPPORTED),
    (None, ["ce-id"], ContentMode.UNSUPPORTED),
    # batches, whatever the ce- headers
    ("application/cloudevents-batch+json", ["ce-specversion"], ContentMode.BATCH),
    ("application/cloudevents-batch+json; charset=utf-8", [], ContentMode.BATCH),
    ("application/cloudevents+json", ["ce-specversion"], ContentMode.STRUCTURED),
    ("application/cloudevents-batch+json", [], ContentMode.BATCH),
    # R36: an unknown CloudEvents format
    ("application/cloudevents+avro", [], ContentMode.UNSUPPORTED),
    ("application/cloudevents-batch+avro", [], ContentMode.UNSUPPORTED),
    ("text/plain", [], ContentMode.UNSUPPORTED),
    ("application/xml", [], ContentMode.UNSUPPORTED),
    ("multipart/form-data; boundary=x", [], ContentMode.UNSUPPORTED),
    (None, [], ContentMode.UNSUPPORTED),
    ("", [], ContentMode.UNSUPPORTED),
    ("not a media type", [], ContentMode.UNSUPPORTED),
    # A15: UTF-8 only
    ("application/cloudevents+json; charset=utf-16", [], ContentMode.UNSUPPORTED),
    ("application/json; charset=iso-8859-1", [], ContentMode.UNSUPPORTED),
    ("application/cloudevents-batch+json; charset=utf-16", [], ContentMode.UNSUPPORTED),
    ("text/plain; charset=latin-1", ["ce-specversion"], ContentMode.UNSUPPORTED),
]


@pytest.mark.parametrize(("content_type", "headers", "mode"), CASES)
def test_content_mode(content_type: str | None, headers: list[str], mode: ContentMode) -> None:
    assert content_mode(content_type, headers).mode is mode


def test_unsupported_says_why() -> None:
    decision = content_mode("application/json; charset=utf-16", [])
    assert "utf-16" in decision.reason
    assert "UTF-8" in decision.reason
