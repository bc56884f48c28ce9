"""The CloudEvent model: context attributes and data, validated against CloudEvents 1.0.2.

Validation never stops at the first problem: every violation is collected, keyed by attribute
name, so a publisher can fix an event in one round trip. Extension rules (such as Altinn's
``resource``) plug in through an ``ExtensionProfile``; this module knows only the core spec, and
says nothing about how a deployment words the problems it reports (shared/core/altinn.py does).
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

__all__ = [
    "DATA",
    "DATA_BASE64",
    "CloudEvent",
    "ExtensionProfile",
    "InvalidEvent",
    "event_from_members",
]

#: The members of the JSON format that hold an event's data (the only members that are not
#: context attributes).
DATA = "data"
DATA_BASE64 = "data_base64"


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


SPEC_VERSION = "1.0"
#: The required core attributes, in the order a missing-attributes message lists them.
REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")


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

#: Documented CloudEvents extensions whose type the spec fixes, checked wherever they appear:
#: ``dataref`` (extensions/dataref.md) is a URI-reference to the event's data.
DOCUMENTED_EXTENSIONS: Mapping[str, Checker] = {
    "dataref": check_uri_reference,
}


@dataclass(frozen=True, slots=True)
class ExtensionProfile:
    """Rules a deployment adds on top of the core spec for particular extension attributes."""

    checkers: Mapping[str, Checker] = field(default_factory=dict)
    #: Extensions that must be present, with the message to give when one is missing.
    required: Mapping[str, str] = field(default_factory=dict)
    #: The core checkers, the documented extensions' and the profile's, in one map (the core's
    #: win, then the documented extensions'): one lookup per member.
    all_checkers: Mapping[str, Checker] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checkers = {**self.checkers, **DOCUMENTED_EXTENSIONS, **CORE_CHECKERS}
        object.__setattr__(self, "all_checkers", checkers)


class InvalidEvent(ValueError):
    """The input is not a valid event.

    - ``errors``: each offending attribute's messages;
    - ``body``: problems with the input as a whole (not JSON, not UTF-8, ...);
    - ``missing``: the required core attributes that are absent (also in ``errors``);
    - ``kind``: when the input is JSON but not an object, its JSON kind ("array", "string",
      "number", "true", "false" or "null").
    """

    def __init__(
        self,
        errors: Mapping[str, tuple[str, ...]] | None = None,
        *,
        body: tuple[str, ...] = (),
        missing: tuple[str, ...] = (),
        kind: str | None = None,
    ) -> None:
        super().__init__("invalid CloudEvent")
        self.errors: Mapping[str, tuple[str, ...]] = errors or {}
        self.body = body
        self.missing = missing
        self.kind = kind

    def merged(self, errors: Mapping[str, tuple[str, ...]]) -> InvalidEvent:
        """The same problems, plus ``errors``."""
        combined = dict(self.errors)
        for name, messages in errors.items():
            combined[name] = combined.get(name, ()) + messages
        return InvalidEvent(combined, body=self.body, missing=self.missing, kind=self.kind)


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


def _check_members(
    members: Mapping[str, Any], profile: ExtensionProfile, errors: _Errors
) -> dict[str, Any]:
    """Pass 1: each member's name and type. Returns the members that are set (JSON ``null``
    means "not set"), data included."""
    kept: dict[str, Any] = {}
    checkers = profile.all_checkers
    for name, value in members.items():
        checker = checkers.get(name)
        if checker is None:
            if name == DATA:
                kept[name] = value
                continue
            if name == DATA_BASE64:
                if value is not None:
                    kept[name] = value
                    _report(errors, name, check_base64(value))
                continue
            if not ATTRIBUTE_NAME.fullmatch(name):
                errors.add(name, _name_problem(name))
                continue
            checker = check_extension_value
        if value is not None:
            kept[name] = value
            problem = checker(value)
            if problem:
                errors.add(name, f"'{name}' {problem}.")
    return kept


def _report(errors: _Errors, name: str, problem: str | None) -> None:
    if problem:
        errors.add(name, f"'{name}' {problem}.")


def _check_characters(kept: Mapping[str, Any], errors: _Errors) -> None:
    """Pass 2: no string attribute holds a control character, an unpaired surrogate or a
    noncharacter. One search over all of them; per attribute only when something is wrong."""
    strings = {
        name: value
        for name, value in kept.items()
        if name != DATA and name != DATA_BASE64 and type(value) is str
    }
    if has_forbidden_characters(" ".join(strings.values())):
        for name, value in strings.items():
            _report(errors, name, check_string_characters(value))


def _check_required(
    kept: Mapping[str, Any], profile: ExtensionProfile, errors: _Errors
) -> tuple[str, ...]:
    """Pass 3: the required core attributes, then the profile's. Returns the missing core ones."""
    missing = tuple(name for name in REQUIRED_ATTRIBUTES if name not in kept)
    for name in missing:
        errors.add(name, f"The '{name}' attribute is required.")
    for name, message in profile.required.items():
        if name not in kept:
            errors.add(name, message)
    return missing


def _check_data(kept: Mapping[str, Any], errors: _Errors) -> None:
    """Pass 4: ``data`` and ``data_base64`` exclude each other, and ``data`` fits the
    ``datacontenttype`` (with a non-JSON type, only a string can be sent as ``data``)."""
    if DATA in kept and DATA_BASE64 in kept:
        errors.add(
            DATA_BASE64,
            "Structured mode content cannot contain both 'data' and 'data_base64' properties.",
        )
    content_type = kept.get("datacontenttype")
    data = kept.get(DATA)
    if (
        isinstance(content_type, str)
        and not is_json_media_type(content_type)
        and data is not None
        and not isinstance(data, str)
    ):
        errors.add(
            DATA,
            "CloudEvents with a non-JSON datacontenttype can only have string data values. "
            f"'data' is {type_name(data)} but datacontenttype is '{content_type}'; send the "
            "content as a string, or binary content as data_base64.",
        )


def event_from_members(members: Mapping[str, Any], profile: ExtensionProfile) -> CloudEvent:
    """Validate a decoded JSON object as a structured-mode event; raise ``InvalidEvent`` with
    every problem found by the four passes."""
    errors = _Errors()
    kept = _check_members(members, profile, errors)
    _check_characters(kept, errors)
    missing = _check_required(kept, profile, errors)
    _check_data(kept, errors)
    if errors.by_name:
        raise InvalidEvent(errors.frozen(), missing=missing)
    return CloudEvent(kept)
