"""The CloudEvent model: context attributes and data, validated against CloudEvents 1.0.2.

Validation never stops at the first problem: every violation is collected, keyed by attribute
name, so a publisher can fix an event in one round trip. Extension rules (such as Altinn's
``resource``) plug in through an ``ExtensionProfile``; this module knows only the core spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.cloudevents.attributes import (
    ATTRIBUTE_NAME,
    Checker,
    check_absolute_uri,
    check_base64,
    check_extension_value,
    check_media_type,
    check_nonempty_string,
    check_string_characters,
    check_timestamp,
    check_uri_reference,
    has_forbidden_characters,
    is_json_media_type,
    type_name,
)

SPEC_VERSION = "1.0"
#: Key in ``errors`` for problems with the request body as a whole (the reference's name).
REQUEST_BODY = "RequestBody"  # the same key as shared.problems.REQUEST_BODY
#: Required core attributes, in the order the reference implementation lists them.
REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
DATA = "data"
DATA_BASE64 = "data_base64"


def check_specversion(value: object) -> str | None:
    if not isinstance(value, str):
        return f'must be the string "{SPEC_VERSION}", not {type_name(value)}'
    if value != SPEC_VERSION:
        return f"'{value}' is not a supported CloudEvents spec version; use \"{SPEC_VERSION}\""
    return None


CORE_CHECKERS: Mapping[str, Checker] = {
    "id": check_nonempty_string,
    "source": check_uri_reference,
    "specversion": check_specversion,
    "type": check_nonempty_string,
    "datacontenttype": check_media_type,
    "dataschema": check_absolute_uri,
    "subject": check_nonempty_string,
    "time": check_timestamp,
}


@dataclass(frozen=True, slots=True)
class ExtensionProfile:
    """Rules a deployment adds on top of the core spec for particular extension attributes."""

    checkers: Mapping[str, Checker] = field(default_factory=dict)
    #: Extensions that must be present, with the message to give when one is missing.
    required: Mapping[str, str] = field(default_factory=dict)


class InvalidEvent(ValueError):
    """The input is not a valid event. ``errors`` maps attribute names to messages."""

    def __init__(self, errors: Mapping[str, tuple[str, ...]]) -> None:
        super().__init__("invalid CloudEvent")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """A valid event. ``members`` is the event as received, minus attributes sent as ``null``."""

    members: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.members["id"])

    @property
    def source(self) -> str:
        return str(self.members["source"])

    @property
    def type(self) -> str:
        return str(self.members["type"])

    def attribute(self, name: str) -> Any:
        """An attribute's value as received, or None when it is not set."""
        return None if name in (DATA, DATA_BASE64) else self.members.get(name)


class _Errors:
    def __init__(self) -> None:
        self.by_name: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.by_name.setdefault(name, []).append(message)

    def frozen(self) -> dict[str, tuple[str, ...]]:
        return {name: tuple(messages) for name, messages in self.by_name.items()}


def _name_problem(name: str) -> str:
    hint = ""
    if ATTRIBUTE_NAME.fullmatch(name.lower()):
        hint = f" (did you mean '{name.lower()}'?)"
    elif not name:
        return "The empty string is not a valid attribute name."
    return (
        f"'{name}' is not a valid attribute name: names may contain only lower-case letters "
        f"a-z and digits 0-9{hint}."
    )


def event_from_members(members: Mapping[str, Any], profile: ExtensionProfile) -> CloudEvent:
    """Validate a decoded JSON object as a structured-mode event; raise ``InvalidEvent``."""
    errors = _Errors()
    kept: dict[str, Any] = {}
    strings: list[str] = []
    for name, value in members.items():
        if name == DATA:
            kept[name] = value
            continue
        if name == DATA_BASE64:
            if value is not None:
                kept[name] = value
                problem = check_base64(value)
                if problem:
                    errors.add(name, f"'{name}' {problem}.")
            continue
        if name not in CORE_CHECKERS and not ATTRIBUTE_NAME.fullmatch(name):
            errors.add(name, _name_problem(name))
            continue
        if value is None:  # JSON format: null means the attribute is not set
            continue
        kept[name] = value
        checker = CORE_CHECKERS.get(name) or profile.checkers.get(name) or check_extension_value
        problem = checker(value)
        if problem:
            errors.add(name, f"'{name}' {problem}.")
        if type(value) is str:
            strings.append(value)
    # R8 for every string attribute, in one search; per attribute only when something is wrong
    if has_forbidden_characters(" ".join(strings)):
        for name, value in kept.items():
            if name != DATA and name != DATA_BASE64 and isinstance(value, str):
                problem = check_string_characters(value)
                if problem:
                    errors.add(name, f"'{name}' {problem}.")

    missing = [name for name in REQUIRED_ATTRIBUTES if name not in kept]
    for name in missing:
        errors.add(name, f"The '{name}' attribute is required.")
    if missing:
        errors.add(REQUEST_BODY, "CloudEvent is missing required attributes: " + ", ".join(missing))
    for name, message in profile.required.items():
        if name not in kept:
            errors.add(name, message)

    if DATA in kept and DATA_BASE64 in kept:
        errors.add(
            DATA_BASE64,
            "Structured mode content cannot contain both 'data' and 'data_base64' properties.",
        )
    content_type = kept.get("datacontenttype")
    if (
        isinstance(content_type, str)
        and not is_json_media_type(content_type)
        and kept.get(DATA) is not None
        and not isinstance(kept[DATA], str)
    ):
        errors.add(
            DATA,
            "CloudEvents with a non-JSON datacontenttype can only have string data values. "
            f"'data' is {type_name(kept[DATA])} but datacontenttype is '{content_type}'; send the "
            "content as a string, or binary content as data_base64.",
        )

    if errors.by_name:
        raise InvalidEvent(errors.frozen())
    return CloudEvent(kept)
