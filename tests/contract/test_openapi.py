"""The OpenAPI 3.1 contract, docs/openapi.yaml: a valid document, in step with the code, and kept
by the running function (schemathesis against the dev host in its own process, on loopback)."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator.readers import read_from_filename
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from devtools.azurite import ROOT
from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE, DevIssuer
from devtools.registry import DevRegistry
from devtools.stack import LocalStack
from shared.app.settings import Settings
from shared.cloudevents import ContentMode, InvalidEvent, content_mode, parse_structured, serialize
from shared.core import problems
from shared.core.altinn import ALTINN_PROFILE
from shared.core.model import PUBLISHED, REPLAYED
from shared.core.pipeline import VALIDATE_ONLY_HEADERS, _dry_run_body, problem_response
from shared.core.problems import ProblemType
from shared.core.steps import VALIDATE_ONLY, validate_only
from shared.core.tracecontext import trace_id_of
from tests.support import VALID_EVENT, Served, reset_registry, serve_function

SPEC = ROOT / "docs" / "openapi.yaml"
ERRORS_MD = ROOT / "docs" / "errors.md"
DOCUMENT: dict[str, Any] = read_from_filename(str(SPEC))[0]
PROBLEM_JSON = "application/problem+json"
DEMO_RESOURCE = "urn:altinn:resource:demo-events"
#: The methods the function routes besides POST (Azure Functions has no TRACE or QUERY).
OTHER_METHODS = ("GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
#: The media type the contract documents binary mode with (any other works the same way).
BINARY_MEDIA_TYPE = "application/octet-stream"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its ``$ref`` (a local JSON pointer) points at."""
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@cache
def validator(pointer: str) -> jsonschema_rs.Validator:
    """A JSON Schema 2020-12 validator, formats included, for the schema at ``pointer``."""
    root = {"$ref": f"#{pointer}", "components": DOCUMENT["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


def schema_errors(pointer: str, instance: Any) -> list[str]:
    return [str(error) for error in validator(pointer).iter_errors(instance)]


def operation() -> dict[str, Any]:
    return DOCUMENT["paths"]["/events"]["post"]


def documented_response(status: int) -> dict[str, Any]:
    """The response the contract documents for ``status`` on /events (405: other methods)."""
    if status == 405:
        return DOCUMENT["components"]["responses"]["MethodNotAllowed"]
    return resolve(operation()["responses"][str(status)])


def response_schema_pointer(status: int) -> str:
    """A JSON pointer to the problem schema of ``status``, inline or behind a ``$ref``."""
    responses = "/components/responses/"
    if status == 405:
        return responses + "MethodNotAllowed/content/application~1problem+json/schema"
    ref = operation()["responses"][str(status)]["$ref"].removeprefix("#")
    return ref + "/content/application~1problem+json/schema"


#: Headers of every answer that the contract leaves to HTTP and the host (host.json).
TRANSPORT_HEADERS = frozenset({"content-type", "content-length", "date", "x-content-type-options"})


def header_errors(status: int, headers: dict[str, str]) -> list[str]:
    """What is wrong with a problem response's headers, measured against the contract."""
    errors: list[str] = []
    lower = {name.lower(): value for name, value in headers.items()}
    documented = {
        name.lower(): resolve(header)
        for name, header in documented_response(status).get("headers", {}).items()
    }
    for name, header in documented.items():
        if name not in lower:
            if header.get("required", False):
                errors.append(f"{name} is required but missing")
            continue
        value: Any = lower[name]
        if header["schema"].get("type") == "integer":
            value = int(value) if value.isdigit() else value
        schema = jsonschema_rs.validator_for(header["schema"], validate_formats=True)
        errors += [f"{name}: {error}" for error in schema.iter_errors(value)]
    undocumented = set(lower) - set(documented) - TRANSPORT_HEADERS
    errors += [f"{name} is sent but not documented for {status}" for name in sorted(undocumented)]
    return errors


BATCH_RESULT = "/components/schemas/BatchResult"
DRY_RUN_RESULT = "/components/schemas/DryRunResult"


def batch_result_errors(status: int, headers: dict[str, str], body: bytes) -> list[str]:
    """What is wrong with a batch's answer (200 or 207 with an outcome per element)."""
    lower = {name.lower(): value for name, value in headers.items()}
    if lower.get("content-type") != "application/json":
        return [f"Content-Type {lower.get('content-type')!r} of a batch result"]
    result = json.loads(body)
    errors = schema_errors(BATCH_RESULT, result)
    statuses = [entry["status"] for entry in result.get("results", [])]
    if (status == 200) != all(entry == 200 for entry in statuses):
        errors.append(f"{status} for entries {statuses}")
    if ("retry-after" in lower) != any(entry in (429, 503) for entry in statuses):
        errors.append(f"Retry-After {lower.get('retry-after')!r} for entries {statuses}")
    return errors


def contract_errors(status: int, headers: dict[str, str], body: bytes) -> list[str]:
    """What is wrong with a response to /events, measured against the contract."""
    if status == 200 and body == b"":
        return []
    if status == 200 and b'"results"' not in body:  # a dry run's answer for one event
        lower = {name.lower(): value for name, value in headers.items()}
        if lower.get("content-type") != "application/json":
            return [f"Content-Type {lower.get('content-type')!r} of a dry run's answer"]
        return schema_errors(DRY_RUN_RESULT, json.loads(body))
    if status in (200, 207):
        return batch_result_errors(status, headers, body)
    if status != 405 and str(status) not in operation()["responses"]:
        return [f"{status} is not documented"]
    lower = {name.lower(): value for name, value in headers.items()}
    if lower.get("content-type") not in documented_response(status)["content"]:
        return [f"Content-Type {lower.get('content-type')!r} is not documented for {status}"]
    return header_errors(status, headers) + schema_errors(
        response_schema_pointer(status), json.loads(body)
    )


# -- (a) the document -------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(DOCUMENT).validate()


def test_the_validator_can_fail() -> None:
    broken = json.loads(json.dumps(DOCUMENT))
    broken["paths"]["/events"]["post"]["responses"]["200"] = {"content": {}}  # no description
    assert list(OpenAPIV31SpecValidator(broken).iter_errors())


# -- (b) in step with the code ----------------------------------------------------------------


def schema_name(kind: ProblemType) -> str:
    return "".join(part.capitalize() for part in kind.name.split("_")) + "Problem"


@pytest.mark.parametrize("kind", list(ProblemType), ids=lambda kind: kind.slug)
def test_every_problem_type_is_documented_with_its_status_and_title(kind: ProblemType) -> None:
    properties = resolve(DOCUMENT["components"]["schemas"][schema_name(kind)])["properties"]
    assert properties["type"]["const"] == kind.uri
    assert properties["title"]["const"] == kind.title
    assert properties["status"]["const"] == kind.status
    schema = resolve(documented_response(kind.status)["content"][PROBLEM_JSON]["schema"])
    listed = [resolve(option) for option in schema.get("oneOf", [schema])]
    assert resolve(DOCUMENT["components"]["schemas"][schema_name(kind)]) in listed


def test_post_documents_exactly_the_statuses_the_code_produces() -> None:
    produced = {kind.status for kind in ProblemType if kind is not ProblemType.METHOD_NOT_ALLOWED}
    assert set(operation()["responses"]) == {"200", "207"} | {str(s) for s in produced}
    # one event's 200 is empty; a batch's answer is its result, a dry run's its own
    ok = operation()["responses"]["200"]["content"]
    assert list(ok) == ["application/json"]
    assert ok["application/json"]["schema"] == {
        "oneOf": [{"$ref": "#" + BATCH_RESULT}, {"$ref": "#" + DRY_RUN_RESULT}]
    }
    partial = operation()["responses"]["207"]["content"]
    assert list(partial) == ["application/json"]
    assert partial["application/json"]["schema"] == {"$ref": "#" + BATCH_RESULT}


def test_the_dry_run_parameter_is_the_one_the_code_reads() -> None:
    (parameter,) = [p for p in operation()["parameters"] if p["in"] == "query"]
    assert parameter["name"] == VALIDATE_ONLY
    assert parameter["schema"]["enum"] == ["true", "false"]
    assert [validate_only(f"{VALIDATE_ONLY}={value}") for value in ("true", "false")] == [
        True,
        False,
    ]
    header = DOCUMENT["components"]["headers"]["Validate-Only"]
    assert header["schema"]["const"] == VALIDATE_ONLY_HEADERS["Validate-Only"]


def test_a_dry_run_answer_matches_its_schema() -> None:
    for replayed in (False, True):
        body = _dry_run_body(REPLAYED if replayed else PUBLISHED)
        assert schema_errors(DRY_RUN_RESULT, json.loads(body)) == []
    assert schema_errors(DRY_RUN_RESULT, {"validateOnly": True, "status": 200}) != []


def test_the_security_scheme_names_the_scopes_the_code_checks() -> None:
    defaults = Settings.model_fields
    publish, admin = defaults["publish_scope"].default, defaults["admin_scope"].default
    assert operation()["security"] == [{"bearerAuth": [publish]}]
    scheme = DOCUMENT["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert f"`{publish}`" in scheme["description"]
    assert f"`{admin}`" in scheme["description"]


def test_the_request_media_types_are_the_ones_the_code_reads() -> None:
    content = operation()["requestBody"]["content"]
    expected = {
        variant
        for media_type in problems.ACCEPTED_CONTENT_TYPES
        for variant in (media_type, f"{media_type}; charset=utf-8")
    } | {BINARY_MEDIA_TYPE}
    assert set(content) == expected
    for media_type in content:
        mode = content_mode(media_type, []).mode
        if media_type == BINARY_MEDIA_TYPE:  # binary mode needs ce-specversion
            assert mode is ContentMode.UNSUPPORTED
            assert content_mode(media_type, ["ce-specversion"]).mode is ContentMode.BINARY
        elif "batch" in media_type:
            assert mode is ContentMode.BATCH
        else:
            assert mode is ContentMode.STRUCTURED


#: One call of every problem factory, with awkward arguments where the header depends on them.
PROBLEMS: dict[str, Callable[[], problems.Problem]] = {
    "method-not-allowed": lambda: problems.method_not_allowed("DELETE"),
    "invalid-parameter": lambda: problems.invalid_parameter(VALIDATE_ONLY),
    "missing-token": problems.missing_token,
    "invalid-token": lambda: problems.invalid_token("the token has expired"),
    "invalid-token-odd-reason": lambda: problems.invalid_token('a "quoted" \\ reason\nwith ü'),
    "invalid-token-long-reason": lambda: problems.invalid_token("kid " + "k" * 11_000),
    "insufficient-scope": lambda: problems.insufficient_scope(PUBLISH_SCOPE),
    "unsupported-media-type": lambda: problems.unsupported_media_type("No Content-Type."),
    "body-too-large": lambda: problems.body_too_large(1048576, 1100000),
    "body-too-large-streamed": lambda: problems.body_too_large(1048576, None),
    "event-too-large": lambda: problems.event_too_large(1048576, 1048600),
    "event-too-large-for-queue": lambda: problems.event_too_large_for_queue(
        49152, 51234, "it carries its own 'dataref' as well as data."
    ),
    "invalid-event": lambda: problems.invalid_event(
        {"type": ("The 'type' attribute is required.",), "RequestBody": ("missing: type",)}
    ),
    "invalid-event-body": lambda: problems.invalid_event({"RequestBody": ("Not JSON.",)}),
    "invalid-event-omitted": lambda: problems.invalid_event(
        {f"Bad{number}": ("not a valid attribute name",) for number in range(80)}
    ),
    "too-many-resource-lookups": lambda: problems.too_many_resource_lookups(120, 7),
    "batch-too-large": lambda: problems.batch_too_large(100, 101),
    "duplicate-event-id": lambda: problems.duplicate_event_id("/orders", "a1"),
    "publish-in-progress": problems.publish_in_progress,
    "records-unavailable": problems.records_unavailable,
    "blobs-unavailable": problems.blobs_unavailable,
    "batch-timeout": lambda: problems.batch_timeout(20),
    "queue-unavailable-maybe-stored": lambda: problems.queue_unavailable(maybe_stored=True),
    "not-authorized-for-resource": lambda: problems.not_authorized_for_resource(DEMO_RESOURCE),
    "registry-unavailable": problems.registry_unavailable,
    "issuer-unavailable": problems.issuer_unavailable,
    "queue-unavailable": problems.queue_unavailable,
    "internal-error": problems.internal_error,
}


def test_every_problem_type_has_a_factory_case() -> None:
    assert {factory().kind for factory in PROBLEMS.values()} == set(ProblemType)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_problem_responses_match_the_contract(name: str) -> None:
    problem = PROBLEMS[name]()
    response = problem_response(problem, instance="/events", trace_id=trace_id_of({}))
    assert list(documented_response(response.status)["content"]) == [PROBLEM_JSON]
    assert response.headers["Content-Type"] == PROBLEM_JSON
    body = json.loads(response.body)
    assert schema_errors(response_schema_pointer(response.status), body) == []
    assert header_errors(response.status, dict(response.headers)) == []


def errors_md_examples() -> list[tuple[int, dict[str, Any]]]:
    text = ERRORS_MD.read_text(encoding="utf-8")
    found = re.findall(r"^## (\d{3}) `[^`]+`\n.*?```json\n(.*?)```", text, re.M | re.S)
    return [(int(status), json.loads(body)) for status, body in found]


def test_errors_md_lists_every_problem_type() -> None:
    assert {body["type"] for _, body in errors_md_examples()} == {k.uri for k in ProblemType}


@pytest.mark.parametrize(
    ("status", "body"),
    [pytest.param(status, body, id=body["type"].rpartition(":")[2]) for status, body in
     errors_md_examples()],
)  # fmt: skip
def test_errors_md_examples_are_the_contracts_examples(status: int, body: dict[str, Any]) -> None:
    examples = documented_response(status)["content"][PROBLEM_JSON]["examples"]
    assert body in [example["value"] for example in examples.values()]
    assert schema_errors(response_schema_pointer(status), body) == []


def test_every_response_example_matches_its_schema() -> None:
    for status in [*map(int, operation()["responses"]), 405]:
        content = documented_response(status).get("content", {})
        for example in content.get(PROBLEM_JSON, {}).get("examples", {}).values():
            assert schema_errors(response_schema_pointer(status), example["value"]) == []


CLOUD_EVENT = "/components/schemas/CloudEvent"


def code_accepts(event: Any) -> bool:
    """Whether the function's validation accepts ``event`` as a request body."""
    try:
        serialize(parse_structured(json.dumps(event).encode(), ALTINN_PROFILE))
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("name", list(DOCUMENT["components"]["examples"]))
def test_request_examples_are_valid_events(name: str) -> None:
    example = DOCUMENT["components"]["examples"][name]["value"]
    events = example if isinstance(example, list) else [example]
    if isinstance(example, list):
        assert schema_errors("/components/schemas/CloudEventBatch", example) == []
    for event in events:
        assert schema_errors(CLOUD_EVENT, event) == []
        assert code_accepts(event)


MINIMAL: dict[str, Any] = DOCUMENT["components"]["examples"]["MinimalEvent"]["value"]


def changed(**members: Any) -> dict[str, Any]:
    """The minimal event with ``members`` set; ``...`` removes one."""
    event = {**MINIMAL, **members}
    return {name: value for name, value in event.items() if value is not ...}


#: Events on which the schema and the code must agree: (event, accepted).
AGREEMENT: dict[str, tuple[Any, bool]] = {
    "minimal": (changed(), True),
    "conftest's valid event": (VALID_EVENT, True),
    "no id": (changed(id=...), False),
    "no source": (changed(source=...), False),
    "no type": (changed(type=...), False),
    "no specversion": (changed(specversion=...), False),
    "no resource": (changed(resource=...), False),
    "null id": (changed(id=None), False),
    "null resource": (changed(resource=None), False),
    "specversion 1.1": (changed(specversion="1.1"), False),
    "specversion number": (changed(specversion=1.0), False),
    "empty id": (changed(id=""), False),
    "id with a control character": (changed(id="a\x01"), False),
    "id with a C1 control": (changed(id="a\x85"), False),
    "id with a noncharacter": (changed(id="a\ufdd0"), False),
    "id with U+FFFF": (changed(id="a\uffff"), False),
    "id with an emoji": (changed(id="a🎉"), True),
    "id number": (changed(id=1), False),
    "empty subject": (changed(subject=""), False),
    "null subject": (changed(subject=None), True),
    "empty resourceinstance": (changed(resourceinstance=""), True),
    "resourceinstance number": (changed(resourceinstance=1), False),
    "upper-case resource": (changed(resource="urn:altinn:resource:Demo"), False),
    "two-segment resource": (changed(resource="urn:altinn:resource:a:b"), False),
    "other urn": (changed(resource="urn:altinn:other:demo"), False),
    "empty identifier": (changed(resource="urn:altinn:resource:"), False),
    "identifier of 100": (changed(resource="urn:altinn:resource:" + "a" * 100), True),
    "identifier of 101": (changed(resource="urn:altinn:resource:" + "a" * 101), False),
    "identifier punctuation": (
        changed(resource="urn:altinn:resource:a(b)+c,d.e-f;g$h_i!j/k"),
        True,
    ),
    "time Z": (changed(time="2024-05-17T13:45:00Z"), True),
    "time lower case": (changed(time="2024-05-17t13:45:00.5z"), True),
    "time offset": (changed(time="2024-05-17T15:45:00.123+02:00"), True),
    "time without seconds": (changed(time="2024-05-17T13:45Z"), False),
    "time without offset": (changed(time="2024-05-17T13:45:00"), False),
    "time on 30 February": (changed(time="2024-02-30T00:00:00Z"), False),
    "time null": (changed(time=None), True),
    "relative source": (changed(source="/orders/42"), True),
    "urn source": (changed(source="urn:example:orders"), True),
    "phone-number source": (changed(source="1-555-123-4567"), True),
    "source with a space": (changed(source="a b"), False),
    "empty source": (changed(source=""), False),
    "absolute dataschema": (changed(dataschema="https://example.com/schema"), True),
    "relative dataschema": (changed(dataschema="/schema"), False),
    "json datacontenttype": (changed(datacontenttype="application/json", data={}), True),
    "text datacontenttype": (changed(datacontenttype="text/plain; charset=utf-8"), True),
    "quoted parameter": (changed(datacontenttype='text/plain; a="b;c"'), True),
    "not a media type": (changed(datacontenttype="not a media type"), False),
    "pdf with object data": (changed(datacontenttype="application/pdf", data={}), False),
    "pdf with string data": (changed(datacontenttype="application/pdf", data="x"), True),
    "pdf with null data": (changed(datacontenttype="application/pdf", data=None), True),
    "+json with object data": (changed(datacontenttype="application/vnd.x+JSON", data=[1]), True),
    "data and data_base64": (changed(data=1, data_base64="AA=="), False),
    "null data and data_base64": (changed(data=None, data_base64="AA=="), False),
    "data and null data_base64": (changed(data=1, data_base64=None), True),
    "data_base64": (changed(data_base64="AAE="), True),
    "data_base64 unpadded": (changed(data_base64="AA"), False),
    "data_base64 with a space": (changed(data_base64="AA A"), False),
    "extension string": (changed(traceversion="x"), True),
    "extension boolean": (changed(flag=False), True),
    "extension int32 min": (changed(n=-(2**31)), True),
    "extension beyond int32": (changed(n=2**31), False),
    "extension fraction": (changed(n=1.5), False),
    "extension array": (changed(n=[1]), False),
    "extension object": (changed(n={}), False),
    "extension null": (changed(n=None), True),
    "extension control character": (changed(n="\x7f"), False),
    "upper-case name": (changed(Foo=1), False),
    "upper-case name, null": (changed(Foo=None), False),
    "name with underscore": (changed(foo_bar="x"), False),
    "empty name": (changed(**{"": "x"}), False),
    "array body": ([MINIMAL], False),
    "string body": ("x", False),
}


@pytest.mark.parametrize("name", list(AGREEMENT))
def test_the_schema_and_the_code_agree(name: str) -> None:
    event, accepted = AGREEMENT[name]
    assert code_accepts(event) is accepted
    assert (schema_errors(CLOUD_EVENT, event) == []) is accepted


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


#: Rules the code checks that the schema does not state (its descriptions do): the schema
#: accepts these events and the code refuses them. A case that starts to agree belongs above.
BEYOND_THE_SCHEMA: dict[str, Any] = {
    "integral number as an integer": changed(n=1.0),
    "astral noncharacter": changed(id="a\U0001fffe"),
    "second 60 on a day without a leap second": changed(time="2024-05-17T23:59:60Z"),
    "data nested 65 levels": changed(data=nested(65)),
}


@pytest.mark.parametrize("name", list(BEYOND_THE_SCHEMA))
def test_rules_beyond_the_schema(name: str) -> None:
    event = BEYOND_THE_SCHEMA[name]
    assert schema_errors(CLOUD_EVENT, event) == []
    assert not code_accepts(event)


# -- (c) kept by the running function -----------------------------------------------------------


@pytest.fixture(scope="module")
def served(stack: LocalStack) -> Iterator[Served]:
    with serve_function(stack, queue_prefix="contract") as served:
        yield served


#: The credential a generated request carries, by bucket out of 20, picked from its content:
#: mostly valid tokens, so that generation gets past authentication to validation,
#: authorization and the queue.
CREDENTIAL_BUCKETS = (
    ("ttd", 10),  # may publish on demo-events (tests/conftest.py); other resources: 403
    ("admin", 4),  # also altinn:events.publish.admin: skips the registry, so valid means 200
    ("skd", 1),  # no rule grants skd 'publish': 403 not-authorized-for-resource
    ("no-scope", 1),  # valid, but without altinn:events.publish: 403 insufficient-scope
    ("expired", 1),  # 401 invalid-token
    ("garbage", 1),  # 401 invalid-token
    ("none", 2),  # no Authorization header: 401 missing-token
)


def credential_for(case: schemathesis.Case) -> str:
    digest = zlib.crc32(repr((case.method, case.media_type, case.body)).encode())
    bucket = digest % sum(weight for _, weight in CREDENTIAL_BUCKETS)
    for name, weight in CREDENTIAL_BUCKETS:
        if bucket < weight:
            return name
        bucket -= weight
    raise AssertionError("unreachable")


#: The tokens by credential name, minted by the ``tokens`` fixture once the issuer runs.
TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def tokens(issuer_service: DevIssuer) -> Iterator[dict[str, str]]:
    TOKENS.update(
        {
            "ttd": issuer_service.mint(),
            "admin": issuer_service.mint(scope=f"{PUBLISH_SCOPE} {ADMIN_SCOPE}"),
            "skd": issuer_service.mint(org="skd"),
            "no-scope": issuer_service.mint(scope="altinn:events.subscribe"),
            "expired": issuer_service.mint(lifetime_seconds=-600),
            "garbage": "not-a-jwt",
            "none": "",
        }
    )
    yield TOKENS
    TOKENS.clear()


#: Examples of the fuzzing phase; the examples and coverage phases add their cases on top. The
#: run is the same every time; to explore further, change the seed or the number of examples:
#: ``CONTRACT_SEED=7 CONTRACT_EXAMPLES=5000 .venv/bin/python -m pytest tests/contract -k keeps``.
FUZZ_EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "300"))
SEED = int(os.environ.get("CONTRACT_SEED", "20261126"))

schema = schemathesis.openapi.from_path(
    SPEC,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": 10,
            "generation": {"mode": "all", "deterministic": True, "max-examples": FUZZ_EXAMPLES},
            # A batch over maxItems is refused as too large (413), as the contract says.
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [
                        "400",
                        "401",
                        "403",
                        "404",
                        "405",
                        "406",
                        "409",
                        "413",
                        "415",
                        "422",
                        "428",
                        "429",
                        "5xx",
                    ]
                }
            },
            "phases": {
                "stateful": {"enabled": False},
                # Undeclared methods the coverage phase sends, expecting 405 with Allow: the
                # ones the function routes (HEAD, whose answer has no body, is tested below).
                "coverage": {"unexpected-methods": ["get", "put", "patch", "delete", "options"]},
            },
        }
    ),
)

#: Cases are generated at collection, before the issuer runs: the auth provider marks the
#: credential a case gets, and the test puts the real token in just before sending it.
#: (Schemathesis leaves cases that test the Authorization header itself alone.)
PLACEHOLDER = "Bearer credential:"


@schema.auth(refresh_interval=None)
class Credentials:
    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return credential_for(case)

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = PLACEHOLDER + data


def apply_credential(case: schemathesis.Case) -> str | None:
    """Put the marked credential's token in; its name, or None for schemathesis's own."""
    marked = case.headers.get("Authorization", "") if case.headers else ""
    if not marked.startswith(PLACEHOLDER):
        return None
    name = marked.removeprefix(PLACEHOLDER)
    if TOKENS[name]:
        case.headers["Authorization"] = f"Bearer {TOKENS[name]}"
    else:
        del case.headers["Authorization"]
    return name


@schema.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Send integral numbers in attributes as integers.

    JSON Schema cannot tell ``1.0`` from ``1``, so generation sends ``1.0`` for an integer; the
    function refuses a number with a fraction as an attribute value (docs/errors.md; pinned in
    ``BEYOND_THE_SCHEMA``).
    """
    if isinstance(body, list):
        return [integral_attributes(element) for element in body]
    return integral_attributes(body)


def integral_attributes(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    return {name: integral(value) if name != "data" else value for name, value in event.items()}


def fresh_identities(case: schemathesis.Case) -> None:
    """Each sent event a new identity: generation repeats its examples' ids, and a repeat of a
    published identity is a replay or a conflict (tests/integration/test_idempotency.py covers
    those), not what this test checks."""

    def renamed(event: Any) -> Any:
        if isinstance(event, dict) and isinstance(event.get("id"), str) and event["id"]:
            return {**event, "id": f"{event['id']}-{uuid.uuid4().hex[:12]}"}
        return event

    if isinstance(case.body, list):
        case.body = [renamed(element) for element in case.body]
    elif isinstance(case.body, dict):
        case.body = renamed(case.body)


def integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: The ce- headers a binary event needs, with a valid value for each one generation leaves out.
BINARY_DEFAULTS = {
    "ce-specversion": "1.0",
    "ce-id": "generated",
    "ce-source": "/generated",
    "ce-type": "no.altinn.generated",
    "ce-resource": DEMO_RESOURCE,
}


def coherent_ce_headers(case: schemathesis.Case) -> None:
    """Make the optional ce- headers mean what the media type says.

    The contract declares the binary-mode headers as optional parameters of the one operation,
    so generation may add them to a structured or batch request (where they are ignored, except
    that ``ce-specversion`` would turn ``application/json`` into binary mode) or leave a required
    one out of a binary request. Here structured and batch requests lose them, and a binary one
    gets every required one, as a publisher would send them.
    """
    headers = case.headers or {}
    ce = {name for name in headers if name.lower().startswith("ce-")}
    if case.media_type != BINARY_MEDIA_TYPE:
        for name in ce:
            del headers[name]
        return
    present = {name.lower() for name in ce}
    headers.update({n: v for n, v in BINARY_DEFAULTS.items() if n not in present})
    for name in headers:
        if name.lower() == "ce-id":  # a new identity each time, as unique_id does for bodies
            headers[name] = f"{headers[name]}-{uuid.uuid4().hex[:12]}"
    case.headers = headers


ACCEPTED_CONTENT_TYPES = frozenset(operation()["requestBody"]["content"])
#: A ce- header value that means itself: printable ASCII without escapes or quotes.
PLAIN_HEADER_VALUE = re.compile(r"[\x21\x23-\x24\x26-\x7e]+")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def request_parts(request: Any) -> tuple[dict[str, str], str, bytes]:
    headers = {name.lower(): value for name, value in request.headers.items()}
    body = request.body or b""
    return (
        headers,
        headers.get("content-type", ""),
        body if isinstance(body, bytes) else body.encode(),
    )


def valid_event(value: Any) -> dict[str, Any] | None:
    """``value`` when the contract says it is a valid event."""
    if not isinstance(value, dict) or schema_errors(CLOUD_EVENT, value):
        return None
    return value


def sent_event(request: Any) -> dict[str, Any] | None:
    """The one event a structured or binary request carried, when the contract says the
    function accepts it (binary: as it is queued)."""
    headers, content_type, body = request_parts(request)
    if content_type == BINARY_MEDIA_TYPE and "ce-specversion" in headers:
        event: dict[str, Any] = {
            name[3:]: value for name, value in headers.items() if name[:3] == "ce-"
        }
        if not all(PLAIN_HEADER_VALUE.fullmatch(value) for value in event.values()):
            return None  # a value to percent-decode: whether it decodes is the code's business
        event["datacontenttype"] = content_type
        if body:
            event["data_base64"] = base64.b64encode(body).decode()
        return valid_event(event)
    if content_type not in ACCEPTED_CONTENT_TYPES or not body or "batch" in content_type:
        return None
    try:
        return valid_event(json.loads(body))
    except ValueError:
        return None


def sent_batch(request: Any) -> list[dict[str, Any] | None] | None:
    """A batch's elements, each when the contract says it is a valid event; None if the request
    is not a batch the contract accepts."""
    _, content_type, body = request_parts(request)
    if not content_type.startswith(BATCH_MEDIA_TYPE):
        return None
    try:
        elements = json.loads(body)
    except ValueError:
        return None
    if not isinstance(elements, list) or len(elements) > 100:
        return None
    return [valid_event(element) for element in elements]


NOT_AUTHENTICATION_PROBLEMS = frozenset(
    {kind.slug for kind in ProblemType} - {"missing-token", "invalid-token", "insufficient-scope"}
) | {"200"}


def expected_outcome(credential: str, event: dict[str, Any] | None) -> set[str]:
    """The problem types (or "200") a request may get, from its credential and its event."""
    by_credential = {
        "no-scope": {"insufficient-scope"},
        "expired": {"invalid-token"},
        "garbage": {"invalid-token"},
        "none": {"missing-token"},
    }
    if credential in by_credential:
        return by_credential[credential]
    if event is None:  # not a valid event: validation answers (negative_data_rejection checks,
        # and a 200 for it fails below), so only authentication's answers are wrong here
        return NOT_AUTHENTICATION_PROBLEMS
    permitted = credential == "admin" or (
        credential == "ttd" and event["resource"] == DEMO_RESOURCE
    )
    return {"200" if permitted else "not-authorized-for-resource", "event-too-large"}


def queued_form(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the queue holds it: attributes sent as null are not set (``data`` is kept)."""
    return {name: value for name, value in event.items() if value is not None or name == "data"}


def by_content(events: list[dict[str, Any]]) -> list[str]:
    """Events in a comparable order (a batch's elements are enqueued concurrently)."""
    return sorted(json.dumps(event, sort_keys=True) for event in events)


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@schema.parametrize()
def test_the_function_keeps_the_contract(
    case: schemathesis.Case, served: Served, tokens: dict[str, str]
) -> None:
    credential = apply_credential(case)
    coherent_ce_headers(case)
    fresh_identities(case)
    response = case.call(base_url=served.url)
    # not_a_server_error, status_code_conformance, content_type_conformance,
    # response_headers_conformance, response_schema_conformance, positive_data_acceptance,
    # negative_data_rejection, missing_required_header, unsupported_method, ignored_auth, ...
    # One event's 200 has no body, which OpenAPI cannot say next to a batch's JSON 200:
    # contract_errors below checks that answer.
    excluded: list[Any] = []
    if response.status_code == 200 and not response.content:
        excluded += [content_type_conformance, response_schema_conformance]
    if (case.media_type or "").startswith(BATCH_MEDIA_TYPE) or case.media_type == BINARY_MEDIA_TYPE:
        # An invalid batch element fails alone, in its entry of a 207 (check_batch checks those);
        # binary-mode header schemas list values that certainly decode, not every one that does.
        excluded.append(negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)
    # ... which skip the coverage phase's probes (other methods, content types): checked here.
    headers = {name: values[0] for name, values in response.headers.items()}
    assert contract_errors(response.status_code, headers, response.content) == []

    body = json.loads(response.content) if response.content else None
    dry_run = validate_only(urlsplit(response.request.url).query)
    assert (headers.get("validate-only") == "true") == (dry_run is True)
    batch = sent_batch(response.request)
    if batch is not None and response.status_code in (200, 207):
        check_batch(credential, batch, body, served, dry_run=bool(dry_run))
        return
    outcome = "200" if response.status_code == 200 else body["type"].rpartition(":")[2]
    event = sent_event(response.request)
    if response.request.method != "POST":  # the coverage phase's probes of other methods
        assert outcome == "method-not-allowed"
    elif dry_run is None:  # the parameter is checked right after the method
        assert outcome == "invalid-parameter"
    elif credential is not None:
        assert outcome in expected_outcome(credential, event), (credential, event, body)
    if response.status_code == 200:
        assert event is not None
        assert served.queue.drain() == ([] if dry_run else [queued_form(event)])
    else:
        sent = response.request.headers.get("traceparent") or ""
        traceparent = _TRACEPARENT.fullmatch(sent.strip())
        if traceparent and traceparent.group(1) != "0" * 32:
            assert body["traceId"].split("-")[1] == traceparent.group(1)


def check_batch(
    credential: str | None,
    elements: list[dict[str, Any] | None],
    result: dict[str, Any],
    served: Served,
    *,
    dry_run: bool = False,
) -> None:
    """Each entry is the outcome its element alone would have had, and exactly the 200 entries
    are on the queue (none of a dry run's)."""
    assert result.get("validateOnly", False) is dry_run
    entries = result["results"]
    assert [entry["index"] for entry in entries] == list(range(len(elements)))
    published: list[dict[str, Any]] = []
    for element, entry in zip(elements, entries, strict=True):
        outcome = "200" if entry["status"] == 200 else entry["problem"]["type"].rpartition(":")[2]
        if credential is not None:
            assert outcome in expected_outcome(credential, element), (credential, element, entry)
        if entry["status"] == 200:
            assert element is not None
            published.append(queued_form(element))
    assert by_content(served.queue.drain()) == by_content([] if dry_run else published)


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(
    http: aiohttp.ClientSession, served: Served, method: str, body: bytes, **headers: str
) -> tuple[int, dict[str, Any] | None]:
    """Send a request to /events; its status and problem, once both match the contract."""
    async with http.request(
        method, f"{served.url}/events", data=body, headers=headers,
        skip_auto_headers=("Content-Type",),  # only the ones given
    ) as reply:  # fmt: skip
        content = await reply.read()
        errors = contract_errors(reply.status, dict(reply.headers), content)
    assert errors == []
    return reply.status, json.loads(content) if content else None


@pytest.mark.parametrize("method", OTHER_METHODS)
async def test_other_methods_get_the_documented_405(
    http: aiohttp.ClientSession, served: Served, method: str
) -> None:
    async with http.request(method, f"{served.url}/events", data=b"{}") as reply:
        assert reply.status == 405
        content = await reply.read()
        if method == "HEAD":  # the answer's headers, without its body
            assert content == b""
            assert reply.headers["Content-Type"] in documented_response(405)["content"]
            assert header_errors(405, dict(reply.headers)) == []
        else:
            assert contract_errors(405, dict(reply.headers), content) == []
            assert json.loads(content)["detail"].startswith(f"{method} is not supported")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/cloudevents-batch+xml"},
        {"Content-Type": "application/cloudevents+xml"},
        {"Content-Type": "application/json; charset=latin-1"},
        {"Content-Type": "text/plain", "ce-id": "1"},
        {"Content-Type": "text/plain; charset=latin-1", "ce-specversion": "1.0"},
        {"Content-Type": "not a media type"},
    ],
    ids=lambda headers: "; ".join(f"{name}={value}" for name, value in headers.items()) or "none",
)
async def test_unsupported_requests_get_the_documented_415(
    http: aiohttp.ClientSession, served: Served, tokens: dict[str, str], headers: dict[str, str]
) -> None:
    body = json.dumps(MINIMAL).encode()
    authorization = f"Bearer {tokens['ttd']}"
    status, problem = await send(http, served, "POST", body, Authorization=authorization, **headers)
    assert status == 415
    assert problem is not None
    assert problem["type"] == ProblemType.UNSUPPORTED_MEDIA_TYPE.uri


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (b" " * (1048576 + 1), ProblemType.BODY_TOO_LARGE),
        # over one queue message, with a dataref of its own: the claim check cannot take it
        (
            json.dumps(changed(data="x" * 50000, dataref="https://files.example/x")).encode(),
            ProblemType.EVENT_TOO_LARGE,
        ),
        (json.dumps([MINIMAL] * 101).encode(), ProblemType.BATCH_TOO_LARGE),
    ],
    ids=["body-too-large", "event-too-large", "batch-too-large"],
)
async def test_oversized_requests_get_the_documented_413(
    http: aiohttp.ClientSession,
    served: Served,
    tokens: dict[str, str],
    event: bytes,
    kind: ProblemType,
) -> None:
    media_type = BATCH_MEDIA_TYPE if kind is ProblemType.BATCH_TOO_LARGE else "application/json"
    status, problem = await send(
        http, served, "POST", event,
        Authorization=f"Bearer {tokens['ttd']}", **{"Content-Type": media_type},
    )  # fmt: skip
    assert (status, problem and problem["type"]) == (413, kind.uri)


async def test_an_unreachable_registry_gets_the_documented_503(
    http: aiohttp.ClientSession,
    served: Served,
    tokens: dict[str, str],
    registry_service: tuple[DevRegistry, str],
) -> None:
    registry = registry_service[0]
    event = changed(resource=f"urn:altinn:resource:never-seen-{uuid.uuid4().hex[:12]}")
    registry.fail_status = 503
    try:
        status, problem = await send(
            http, served, "POST", json.dumps(event).encode(),
            Authorization=f"Bearer {tokens['ttd']}", **{"Content-Type": "application/json"},
        )  # fmt: skip
    finally:
        reset_registry(registry)
    assert (status, problem and problem["type"]) == (503, ProblemType.REGISTRY_UNAVAILABLE.uri)
