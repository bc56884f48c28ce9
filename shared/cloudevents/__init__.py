"""CloudEvents 1.0.2, one module per spec layer: the type system (``attributes``), the event model
(``event``), the JSON format (``jsonformat``) and the HTTP binding (``http``)."""

from shared.cloudevents.event import DATA, DATA_BASE64, CloudEvent, ExtensionProfile, InvalidEvent
from shared.cloudevents.http import ContentMode, binary_members, content_mode, parse_binary
from shared.cloudevents.jsonformat import (
    batch_element,
    parse_batch,
    parse_structured,
    serialize,
    validate_object,
)

__all__ = [
    "DATA",
    "DATA_BASE64",
    "CloudEvent",
    "ContentMode",
    "ExtensionProfile",
    "InvalidEvent",
    "batch_element",
    "binary_members",
    "content_mode",
    "parse_batch",
    "parse_binary",
    "parse_structured",
    "serialize",
    "validate_object",
]
