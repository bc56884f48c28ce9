"""The Altinn profile: Altinn's extension attributes (``resource``, required;
``resourceinstance``, ``alternativesubject``), how a ``resource`` URN names a Resource Registry
identifier, and the reference system's wording of an invalid event (``RequestBody``), which
existing publishers' error handling expects."""

from __future__ import annotations

import re

from shared.cloudevents.attributes import check_nonempty_string, check_string, remembered
from shared.cloudevents.event import ExtensionProfile, InvalidEvent

RESOURCE_PREFIX = "urn:altinn:resource:"
#: The reference implementation's URN rule (UriExtensions.IsValidUrn): lower case only.
URN_PATTERN = re.compile(r"urn:[a-z0-9-]{1,30}(?::[a-z0-9()+,.\-;$_!/]{1,100}){1,10}")
_IDENTIFIER = re.compile(r"[a-z0-9()+,.\-;$_!/]{1,100}")
#: Apps' legacy resource form, ``urn:altinn:resource:altinnapp.{org}.{app}``.
_LEGACY_APP = re.compile(r"altinnapp\.([a-z0-9-]+)\.([a-z0-9-]+)")


@remembered
def check_resource(value: object) -> str | None:
    problem = check_nonempty_string(value)
    if problem:
        return problem
    assert isinstance(value, str)
    if not URN_PATTERN.fullmatch(value):
        return (
            "must be a valid urn: lower-case letters, digits and ()+,.-;$_!/ in ':'-separated "
            f"segments, such as {RESOURCE_PREFIX}my-resource"
        )
    if not value.startswith(RESOURCE_PREFIX):
        return f"must start with '{RESOURCE_PREFIX}', followed by the resource's identifier"
    identifier = value[len(RESOURCE_PREFIX) :]
    if not _IDENTIFIER.fullmatch(identifier):
        return (
            f"must be '{RESOURCE_PREFIX}' followed by one identifier segment, without further ':'"
        )
    if not any(character.isalnum() for character in identifier):
        # "." and ".." would also climb the registry's URL path
        return "must name a resource: its identifier needs at least one letter or digit"
    return None


ALTINN_PROFILE = ExtensionProfile(
    checkers={
        "resource": check_resource,
        "resourceinstance": check_string,
        "alternativesubject": check_string,
    },
    required={"resource": "A 'resource' property must be defined."},
)


def registry_identifier(resource: str) -> str:
    """The Resource Registry identifier a valid ``resource`` URN names.

    Altinn apps' legacy form ``altinnapp.{org}.{app}`` is looked up as ``app_{org}_{app}``, the
    identifier under which the registry serves app policies; the event itself keeps the value
    as sent.
    """
    identifier = resource[len(RESOURCE_PREFIX) :]
    legacy = _LEGACY_APP.fullmatch(identifier)
    if legacy:
        return f"app_{legacy.group(1)}_{legacy.group(2)}"
    return identifier


#: The key the reference system uses for problems with the request body as a whole.
REQUEST_BODY = "RequestBody"
#: What the reference (System.Text.Json) calls each JSON kind in its "cannot decode" message.
_DOTNET_KINDS = {
    "array": "Array",
    "string": "String",
    "number": "Number",
    "true": "True",
    "false": "False",
    "null": "Null",
}


def reference_errors(invalid: InvalidEvent) -> dict[str, tuple[str, ...]]:
    """An invalid event's problems keyed as the reference system keys them: each attribute's
    own, and under ``RequestBody`` the body's, in the reference's words where it has some
    ("CloudEvent is missing required attributes: type", "Cannot decode JSON element of kind
    'Array' as CloudEvent.")."""
    body = list(invalid.body)
    if invalid.kind is not None:
        body = [
            f"Cannot decode JSON element of kind '{_DOTNET_KINDS.get(invalid.kind, 'Object')}' "
            "as CloudEvent. Send one event as a JSON object."
        ]
    errors = dict(invalid.errors)
    if invalid.missing:
        body.append("CloudEvent is missing required attributes: " + ", ".join(invalid.missing))
    if body:
        errors[REQUEST_BODY] = errors.get(REQUEST_BODY, ()) + tuple(body)
    return errors
