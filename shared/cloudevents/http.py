"""The CloudEvents HTTP binding: which content mode a request uses.

The binding picks the mode from ``Content-Type`` (http section 3): a CloudEvents event format is
structured mode, any other type with ``ce-`` headers is binary mode. This endpoint also reads a
plain ``application/json`` body without ``ce-`` headers as a structured event, because the Altinn
publishing guide lists that type and many HTTP clients send it by default.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from shared.cloudevents.attributes import MEDIA_TYPE

STRUCTURED_JSON = "application/cloudevents+json"
BATCH_JSON = "application/cloudevents-batch+json"
PLAIN_JSON = "application/json"


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
    """Classify a request by its Content-Type and whether it carries ``ce-`` headers."""
    has_ce_headers = any(name[:3].lower() == "ce-" for name in header_names)
    return _classify(content_type, has_ce_headers)


@functools.lru_cache(maxsize=256)  # publishers send the same few Content-Type values
def _classify(content_type: str | None, has_ce_headers: bool) -> ContentModeDecision:
    if content_type is None or not content_type.strip():
        if has_ce_headers:
            return ContentModeDecision(ContentMode.BINARY)
        return _unsupported("The request has no Content-Type.")
    match = MEDIA_TYPE.fullmatch(content_type.strip())
    if match is None:
        return _unsupported(f"The Content-Type '{content_type}' is not a valid media type.")
    essence = f"{match.group(1)}/{match.group(2)}".lower()
    parameters = _parameters(match.group(3))

    if essence.startswith("application/cloudevents-batch"):
        if essence == BATCH_JSON:
            return ContentModeDecision(ContentMode.BATCH)
        return _unsupported(f"'{essence}' is not a CloudEvents batch format this endpoint reads.")
    if essence.startswith("application/cloudevents"):
        if essence != STRUCTURED_JSON:
            return _unsupported(
                f"'{essence}' is not a CloudEvents event format this endpoint reads."
            )
        mode = ContentModeDecision(ContentMode.STRUCTURED)
    elif has_ce_headers:
        return ContentModeDecision(ContentMode.BINARY)
    elif essence == PLAIN_JSON:
        mode = ContentModeDecision(ContentMode.STRUCTURED)
    else:
        return _unsupported(f"The Content-Type '{essence}' is not accepted.")

    charset = parameters.get("charset")
    if charset is not None and charset.lower() != "utf-8":
        return _unsupported(f"The charset '{charset}' is not accepted; JSON must be UTF-8.")
    return mode
