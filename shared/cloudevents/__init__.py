"""CloudEvents 1.0.2, one module per spec layer: the type system (``attributes``), the event model
(``event``), the JSON format (``jsonformat``) and the HTTP binding (``http``)."""

from shared.cloudevents.event import CloudEvent, ExtensionProfile, InvalidEvent
from shared.cloudevents.http import ContentMode, content_mode
from shared.cloudevents.jsonformat import parse_structured, serialize

__all__ = [
    "CloudEvent",
    "ContentMode",
    "ExtensionProfile",
    "InvalidEvent",
    "content_mode",
    "parse_structured",
    "serialize",
]
