"""May this publisher publish on this resource? Pure rule evaluation, no I/O.

A flattened rule permits when its action is ``publish``, every subject attribute it names is held
by the publisher, and every resource attribute it names is one the event has. The publisher's
attributes come from token claims mapped as the Altinn PEP maps them. Anything unknown or empty
grants nothing: a rule without subject attributes permits nobody.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.cloudevents import CloudEvent
from shared.core.model import ACTION_ID, Attribute, PolicyRule, Publisher

PUBLISH = "publish"
ORG = "urn:altinn:org"
ORG_IDENTIFIER = "urn:altinn:organization:identifier-no"
LEGACY_ORG_NUMBER = "urn:altinn:organizationnumber"
RESOURCE = "urn:altinn:resource"
#: Attribute types compared without regard to case (service-owner codes: "ttd", "SKD").
CASE_INSENSITIVE = frozenset({ORG})

AttributeKey = tuple[str, str]


def _key(attribute_type: str, value: str) -> AttributeKey:
    return (attribute_type, value.lower() if attribute_type in CASE_INSENSITIVE else value)


def subject_attributes(publisher: Publisher) -> frozenset[AttributeKey]:
    """The XACML subject attributes a publisher holds, from its token's claims."""
    held = {_key(name, value) for name, value in publisher.urn_claims}
    if publisher.org:
        held.add(_key(ORG, publisher.org))
    if publisher.org_number:
        held.add((ORG_IDENTIFIER, publisher.org_number))
        held.add((LEGACY_ORG_NUMBER, publisher.org_number))
    if publisher.consumer_org_number:
        held.add((ORG_IDENTIFIER, publisher.consumer_org_number))
    return frozenset(held)


def resource_attributes(identifier: str, event: CloudEvent) -> frozenset[AttributeKey]:
    """The XACML resource attributes of a publish request, as the reference's mapper builds them."""
    attributes = {
        (RESOURCE, identifier),
        ("urn:altinn:event-id", event.id),
        ("urn:altinn:eventtype", event.type),
        ("urn:altinn:eventsource", event.source),
    }
    instance = event.attribute("resourceinstance")
    if isinstance(instance, str):
        attributes.add(("urn:altinn:resourceinstance", instance))
    return frozenset(attributes)


def _all_held(required: Iterable[Attribute], held: frozenset[AttributeKey]) -> bool:
    return all(_key(item.type, item.value) in held for item in required)


def permits_publish(
    rules: Iterable[PolicyRule],
    subject: frozenset[AttributeKey],
    resource: frozenset[AttributeKey],
) -> bool:
    for rule in rules:
        if rule.action.type != ACTION_ID or rule.action.value != PUBLISH:
            continue
        if not rule.subject:
            continue
        if _all_held(rule.subject, subject) and _all_held(rule.resource, resource):
            return True
    return False
