"""Problem bodies (RFC 9457) and the catalog in docs/errors.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.core import problems
from shared.core.problems import ProblemType
from shared.core.tracecontext import trace_id_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_problem_body_has_every_member() -> None:
    problem = problems.invalid_event({"id": ("The 'id' attribute is required.",)})
    body = json.loads(problem.to_json(instance="/events", trace_id="00-abc-def-00"))
    assert body == {
        "type": "urn:altinn:events:problem:invalid-event",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "detail": body["detail"],
        "instance": "/events",
        "traceId": "00-abc-def-00",
        "errors": {"id": ["The 'id' attribute is required."]},
    }
    assert "id" in body["detail"]


def test_request_body_only_problem_explains_itself_in_detail() -> None:
    problem = problems.invalid_event({"RequestBody": ("The body is not valid JSON: x",)})
    assert problem.detail == "The request body is not a CloudEvent: The body is not valid JSON: x"


def test_bodies_without_errors_have_no_errors_member() -> None:
    body = json.loads(problems.missing_token().to_json(instance="/events", trace_id="t"))
    assert "errors" not in body
    assert body["status"] == 401


def test_challenge_parameters_cannot_be_broken_out_of() -> None:
    problem = problems.invalid_token('bad "quote" and \\ backslash\r\n')
    header = problem.headers["WWW-Authenticate"]
    assert header.startswith('Bearer realm="events", error="invalid_token", error_description="')
    description = header.split('error_description="', 1)[1]
    assert description == 'bad quote and  backslash"'


def test_insufficient_scope_names_the_scope() -> None:
    header = problems.insufficient_scope("altinn:events.publish").headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in header
    assert 'scope="altinn:events.publish"' in header


@pytest.mark.parametrize(
    "problem",
    [problems.registry_unavailable(), problems.queue_unavailable(), problems.issuer_unavailable()],
)
def test_unavailable_problems_say_when_to_retry(problem: problems.Problem) -> None:
    assert problem.status == 503
    assert int(problem.headers["Retry-After"]) > 0


def test_unsupported_media_type_lists_accepted_types() -> None:
    problem = problems.unsupported_media_type("The Content-Type 'text/plain' is not accepted.")
    assert problem.headers["Accept-Post"] == (
        "application/cloudevents+json, application/cloudevents-batch+json, application/json"
    )
    for accepted in ("application/cloudevents+json", "cloudevents-batch+json", "ce-specversion"):
        assert accepted in problem.detail


def test_every_problem_type_is_documented() -> None:
    documented = set(re.findall(r"urn:altinn:events:problem:([a-z-]+)", DOCS.read_text()))
    assert documented == {kind.slug for kind in ProblemType}


def test_documented_examples_match_the_catalog() -> None:
    blocks = re.findall(r"```json\n(.*?)\n```", DOCS.read_text(), flags=re.S)
    kinds = {kind.uri: kind for kind in ProblemType}
    assert len(blocks) == len(kinds)
    for block in blocks:
        example = json.loads(block)
        kind = kinds[example["type"]]
        assert (example["title"], example["status"]) == (kind.title, kind.status)
        assert set(example) >= {"type", "title", "status", "detail", "instance", "traceId"}


@pytest.mark.parametrize(
    ("traceparent", "continued"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),  # invalid version
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),  # all-zero trace
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),  # all-zero parent
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),  # upper case
        ("garbage", False),
    ],
)
def test_trace_id_continues_only_a_valid_traceparent(traceparent: str, continued: bool) -> None:
    trace_id = trace_id_of({"traceparent": traceparent})
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", trace_id)
    assert (trace_id.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736") is continued


def test_a_long_token_reason_is_cut_in_the_challenge() -> None:
    problem = problems.invalid_token("the issuer 'x" + "k" * 11_000 + "' is not trusted")
    challenge = problem.headers["WWW-Authenticate"]
    assert len(challenge) < 300
    assert challenge.endswith('..."')


def test_a_400_lists_at_most_50_attributes_and_says_how_many_more() -> None:
    errors = {
        f"Bad{number}": (f"'Bad{number}' is not a valid attribute name.",) for number in range(3000)
    }
    errors["id"] = ("The 'id' attribute is required.",)
    errors["RequestBody"] = ("CloudEvent is missing required attributes: id",)
    errors["x" * 5000] = ("y" * 5000,)
    problem = problems.invalid_event(errors)
    body = json.loads(problem.to_json(instance="/events", trace_id="00-x"))
    assert len(body["errors"]) == 50
    assert list(body["errors"])[:2] == ["RequestBody", "id"]  # the ones that matter first
    assert body["omittedErrors"] == len(errors) - 50
    assert f"{len(errors) - 50} more attributes have problems" in body["detail"]
    assert len(problem.to_json(instance="/events", trace_id="00-x")) < 16_000


def test_names_and_messages_in_a_400_are_cut_short() -> None:
    problem = problems.invalid_event({"x" * 5000: ("y" * 5000,)})
    body = json.loads(problem.to_json(instance="/events", trace_id="00-x"))
    [(name, messages)] = body["errors"].items()
    assert len(name) == 100
    assert len(messages[0]) == 500
    assert "omittedErrors" not in body
