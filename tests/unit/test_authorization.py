"""Token claims -> subject attributes, and flattened-rule evaluation (Altinn PEP semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.registry import parse_rules
from shared.adapters.tokens import publisher_from_claims
from shared.cloudevents import CloudEvent, parse_structured
from shared.core.altinn import ALTINN_PROFILE
from shared.core.authorization import permits_publish, resource_attributes, subject_attributes
from shared.core.model import ACTION_ID, Attribute, PolicyRule, Publisher
from tests.support import VALID_EVENT, body_of

ORG = "urn:altinn:org"
IDENTIFIER = "urn:altinn:organization:identifier-no"
LEGACY = "urn:altinn:organizationnumber"


def claims(**extra: Any) -> dict[str, Any]:
    return {"iss": "https://issuer.example", "sub": "x", "scope": "altinn:events.publish", **extra}


def rule(*subject: tuple[str, str], action: str = "publish", resource: str = "demo-events",
         extra_resource: tuple[tuple[str, str], ...] = ()) -> PolicyRule:  # fmt: skip
    return PolicyRule(
        subject=tuple(Attribute(kind, value) for kind, value in subject),
        action=Attribute(ACTION_ID, action),
        resource=(
            Attribute("urn:altinn:resource", resource),
            *(Attribute(kind, value) for kind, value in extra_resource),
        ),
    )


@pytest.fixture
def event() -> CloudEvent:
    return parse_structured(body_of(VALID_EVENT), ALTINN_PROFILE)


def decide(publisher: Publisher, rules: list[PolicyRule], event: CloudEvent) -> bool:
    return permits_publish(
        rules, subject_attributes(publisher), resource_attributes("demo-events", event)
    )


def test_org_claim_maps_to_org_attribute() -> None:
    held = subject_attributes(publisher_from_claims(claims(**{ORG: "ttd"})))
    assert (ORG, "ttd") in held


def test_org_number_maps_to_both_organisation_attributes() -> None:
    held = subject_attributes(
        publisher_from_claims(claims(**{"urn:altinn:orgNumber": "991825827"}))
    )
    assert {(IDENTIFIER, "991825827"), (LEGACY, "991825827")} <= held


def test_org_number_may_be_a_json_number() -> None:
    held = subject_attributes(publisher_from_claims(claims(**{"urn:altinn:orgNumber": 991825827})))
    assert (IDENTIFIER, "991825827") in held


def test_maskinporten_consumer_maps_to_identifier_only() -> None:
    consumer = {"authority": "iso6523-actorid-upis", "ID": "0192:991825827"}
    held = subject_attributes(publisher_from_claims(claims(consumer=consumer)))
    assert (IDENTIFIER, "991825827") in held
    assert (LEGACY, "991825827") not in held


@pytest.mark.parametrize(
    "consumer",
    [
        {"authority": "something-else", "ID": "0192:991825827"},
        {"authority": "iso6523-actorid-upis", "ID": "9908:991825827"},
        {"authority": "iso6523-actorid-upis", "ID": "991825827"},
        {"authority": "iso6523-actorid-upis", "ID": 991825827},
        "0192:991825827",
    ],
)
def test_other_consumers_map_to_nothing(consumer: Any) -> None:
    held = subject_attributes(publisher_from_claims(claims(consumer=consumer)))
    assert not any(kind == IDENTIFIER for kind, _ in held)


def test_urn_claims_pass_through_as_attributes() -> None:
    held = subject_attributes(publisher_from_claims(claims(**{"urn:altinn:partyid": 50001})))
    assert ("urn:altinn:partyid", "50001") in held


def test_permits_when_one_rule_grants_publish(event: CloudEvent) -> None:
    publisher = publisher_from_claims(claims(**{ORG: "ttd"}))
    rules = [rule((ORG, "skd")), rule((ORG, "ttd"))]
    assert decide(publisher, rules, event)


def test_org_codes_compare_without_case(event: CloudEvent) -> None:
    publisher = publisher_from_claims(claims(**{ORG: "TTD"}))
    assert decide(publisher, [rule((ORG, "ttd"))], event)
    assert decide(publisher_from_claims(claims(**{ORG: "skd"})), [rule((ORG, "SKD"))], event)


def test_org_numbers_compare_exactly(event: CloudEvent) -> None:
    publisher = publisher_from_claims(claims(**{"urn:altinn:orgNumber": "991825827"}))
    assert not decide(publisher, [rule((IDENTIFIER, "991825828"))], event)
    assert decide(publisher, [rule((IDENTIFIER, "991825827"))], event)
    assert decide(publisher, [rule((LEGACY, "991825827"))], event)


def test_every_subject_attribute_of_a_rule_is_required(event: CloudEvent) -> None:
    publisher = publisher_from_claims(claims(**{ORG: "ttd"}))
    assert not decide(publisher, [rule((ORG, "ttd"), (IDENTIFIER, "991825827"))], event)
    both = publisher_from_claims(claims(**{ORG: "ttd", "urn:altinn:orgNumber": "991825827"}))
    assert decide(both, [rule((ORG, "ttd"), (IDENTIFIER, "991825827"))], event)


@pytest.mark.parametrize("action", ["subscribe", "read", "Publish", "publish "])
def test_other_actions_grant_nothing(event: CloudEvent, action: str) -> None:
    publisher = publisher_from_claims(claims(**{ORG: "ttd"}))
    assert not decide(publisher, [rule((ORG, "ttd"), action=action)], event)


def test_a_rule_without_subject_attributes_grants_nobody(event: CloudEvent) -> None:
    publisher = publisher_from_claims(claims(**{ORG: "ttd"}))
    assert not decide(publisher, [rule()], event)


def test_no_rules_grant_nothing(event: CloudEvent) -> None:
    assert not decide(publisher_from_claims(claims(**{ORG: "ttd"})), [], event)


def test_rule_for_another_resource_grants_nothing(event: CloudEvent) -> None:
    publisher = publisher_from_claims(claims(**{ORG: "ttd"}))
    assert not decide(publisher, [rule((ORG, "ttd"), resource="other")], event)


def test_resource_conditions_must_match_the_event(event: CloudEvent) -> None:
    publisher = publisher_from_claims(claims(**{ORG: "ttd"}))
    instance = VALID_EVENT["resourceinstance"]
    matching = rule((ORG, "ttd"), extra_resource=(("urn:altinn:resourceinstance", instance),))
    other = rule((ORG, "ttd"), extra_resource=(("urn:altinn:resourceinstance", "nope"),))
    unknown = rule((ORG, "ttd"), extra_resource=(("urn:altinn:unknown", "x"),))
    assert decide(publisher, [matching], event)
    assert not decide(publisher, [other], event)
    assert not decide(publisher, [unknown], event)


def test_rules_parse_from_the_registry_contract() -> None:
    body = (
        b'[{"subject":[{"type":"urn:altinn:org","value":"ttd"}],'
        b'"action":{"type":"urn:oasis:names:tc:xacml:1.0:action:action-id","value":"publish"},'
        b'"resource":[{"type":"urn:altinn:resource","value":"demo-events"}],"extra":1}]'
    )
    assert parse_rules(body) == (rule((ORG, "ttd")),)
