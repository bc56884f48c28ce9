"""POST /events through the real function handler, against real Azurite, a real token issuer and
a real Resource Registry server on loopback."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.azurite import Azurite, free_port
from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE, DevIssuer
from devtools.registry import DevRegistry, publish_rule
from shared.cloudevents.jsonformat import canonical
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, QueueReader, body_of

pytestmark = pytest.mark.asyncio


def compact(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


# -- the accepted path ----------------------------------------------------------------------


async def test_accepted_event_is_on_the_queue_exactly_as_sent(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    event["comexampleextension1"] = 7
    event["subject"] = None  # null means unset
    response = await post(event)
    assert response.status_code == 200
    assert response.get_body() == b""

    expected = {name: value for name, value in event.items() if value is not None}
    [raw] = queue.raw_bodies()
    [stored] = queue.drain(keep_trace=True)
    # the event as sent, in the one member order, with the trace context the endpoint adds
    with_trace = {**expected, "traceparent": stored["traceparent"]}
    assert raw == base64.b64encode(compact(canonical(with_trace))).decode()
    assert stored == with_trace


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+json; charset=utf-8",
        "application/json",
        "application/json; charset=UTF-8",
    ],
)
async def test_structured_content_types(
    post: Post, event: dict[str, Any], queue: QueueReader, content_type: str
) -> None:
    assert (await post(event, content_type=content_type)).status_code == 200
    assert [message["id"] for message in queue.drain()] == [event["id"]]


async def test_each_accepted_event_is_one_message(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    ids = [f"event-{n}" for n in range(5)]
    for event_id in ids:
        assert (await post({**event, "id": event_id})).status_code == 200
    assert [message["id"] for message in queue.drain()] == ids


#: What the endpoint adds to each queued event: ,"traceparent":"00-<32>-<16>-01" (72 bytes).
TRACE_CONTEXT_BYTES = len(',"traceparent":""') + 55


async def test_an_event_just_under_the_queue_limit_is_accepted(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    """The limit holds for the message: the event and the trace context the endpoint adds."""
    room = 49152 - TRACE_CONTEXT_BYTES
    event["data"] = "x" * (room - len(compact({**event, "data": ""})))
    assert len(compact(event)) + TRACE_CONTEXT_BYTES == 49152
    assert (await post(event)).status_code == 200
    assert queue.drain() == [event]


# -- method, authentication and scope: before the body is looked at --------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
async def test_other_methods_get_405(post: Post, method: str, queue: QueueReader) -> None:
    response = await post(VALID_EVENT, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert problem_of(response)["type"].endswith(":method-not-allowed")
    assert queue.drain() == []


async def test_missing_token_is_401_before_the_body_is_read(post: Post, queue: QueueReader) -> None:
    response = await post(b"not json at all", token=None, content_type="text/plain")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="events"'
    assert problem_of(response)["type"].endswith(":missing-token")


async def test_token_in_query_string_or_cookie_is_ignored(
    post: Post, issuer: DevIssuer, event: dict[str, Any]
) -> None:
    token = issuer.mint()
    response = await post(event, token=None, headers={"Cookie": f"AltinnStudioRuntime={token}"})
    assert response.status_code == 401


async def test_invalid_token_is_401_with_the_reason(post: Post, issuer: DevIssuer) -> None:
    expired = issuer.sign(issuer.claims(exp=int(time.time()) - 3600))
    response = await post(b"{", token=expired)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge
    assert "expired" in challenge
    assert "expired" in problem_of(response)["detail"]


async def test_token_from_an_untrusted_issuer(post: Post, event: dict[str, Any]) -> None:
    stranger = DevIssuer("http://127.0.0.1:9")
    response = await post(event, token=stranger.mint())
    assert response.status_code == 401
    assert "not trusted" in problem_of(response)["detail"]


async def test_missing_scope_is_403_before_the_body_is_read(
    post: Post, issuer: DevIssuer, queue: QueueReader
) -> None:
    token = issuer.mint(scope="altinn:serviceowner")
    response = await post(b"{", token=token, content_type="text/plain")
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert problem_of(response)["type"].endswith(":insufficient-scope")


async def test_scope_as_substring_does_not_count(post: Post, issuer: DevIssuer) -> None:
    response = await post(VALID_EVENT, token=issuer.mint(scope=f"x{PUBLISH_SCOPE}"))
    assert response.status_code == 403


async def test_audience_is_checked_when_configured(
    post: Post, issuer: DevIssuer, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_AUDIENCE", "https://events.example")
    wrong = await post(event, token=issuer.mint(audience="https://other.example"))
    assert wrong.status_code == 401
    right = await post(event, token=issuer.mint(audience="https://events.example"))
    assert right.status_code == 200


async def test_issuer_unreachable_on_first_use_is_503(
    post: Post, issuer: DevIssuer, event: dict[str, Any]
) -> None:
    issuer.available = False
    response = await post(event)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert problem_of(response)["type"].endswith(":issuer-unavailable")


# -- content type and size -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "headers", "fragment"),
    [
        ("text/plain", {}, "'text/plain' is not accepted without a ce-specversion header"),
        (None, {}, "no Content-Type"),
        ("application/xml", {"ce-id": "1"}, "not accepted"),
        ("application/cloudevents+avro", {}, "not a CloudEvents event format"),
        ("application/cloudevents-batch+avro", {}, "not a CloudEvents batch format"),
        ("application/cloudevents+json; charset=utf-16", {}, "UTF-8"),
        ("text/plain; charset=latin-1", {"ce-specversion": "1.0"}, "UTF-8"),
    ],
)
async def test_unsupported_media_types_get_415(
    post: Post,
    content_type: str | None,
    headers: dict[str, str],
    fragment: str,
    queue: QueueReader,
) -> None:
    response = await post(VALID_EVENT, content_type=content_type, headers=headers)
    assert response.status_code == 415
    assert response.headers["Accept-Post"] == (
        "application/cloudevents+json, application/cloudevents-batch+json, application/json"
    )
    assert fragment in problem_of(response)["detail"]
    assert queue.drain() == []


async def test_structured_mode_ignores_ce_headers(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    response = await post(event, headers={"ce-id": "from-header", "ce-resource": "urn:x:y"})
    assert response.status_code == 200
    assert queue.drain() == [event]


async def test_body_over_the_limit_is_413_from_content_length(post: Post) -> None:
    response = await post(VALID_EVENT, headers={"Content-Length": str(1024 * 1024 + 1)})
    assert response.status_code == 413
    assert "1048576 bytes" in problem_of(response)["detail"]


async def test_body_over_the_limit_is_413_by_counting(post: Post) -> None:
    response = await post(b"{" + b" " * (1024 * 1024) + b"}")
    assert response.status_code == 413
    assert problem_of(response)["type"].endswith(":body-too-large")


async def test_configured_body_limit(
    post: Post, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_MAX_BODY_BYTES", "2048")
    event["data"] = "y" * 3000
    response = await post(event)
    assert response.status_code == 413
    assert "2048 bytes" in problem_of(response)["detail"]


async def test_one_byte_over_a_queue_message_goes_by_claim_check(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    """49152 bytes with the trace context is the most one message holds: one more, and the
    data goes to a blob (tests/integration/test_claim_check.py has the rest)."""
    event["data"] = "x" * (49153 - TRACE_CONTEXT_BYTES - len(compact({**event, "data": ""})))
    response = await post(event)
    assert response.status_code == 200
    [message] = queue.drain()
    assert "data" not in message
    assert message["dataref"].startswith("http://127.0.0.1:")


async def test_an_event_too_large_for_a_message_and_the_claim_check_is_413_stating_why(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    event["dataref"] = "https://files.example.org/x"
    event["data"] = "x" * (49153 - TRACE_CONTEXT_BYTES - len(compact({**event, "data": ""})))
    response = await post(event)
    assert response.status_code == 413
    body = problem_of(response)
    assert body["type"].endswith(":event-too-large")
    assert f"{49153 - TRACE_CONTEXT_BYTES} bytes" in body["detail"]
    assert "one queue message holds at most 49152 bytes" in body["detail"]
    assert "its own 'dataref'" in body["detail"]
    assert queue.drain() == []


# -- validation ------------------------------------------------------------------------------


async def test_invalid_event_lists_every_problem(
    post: Post, event: dict[str, Any], queue: QueueReader, registry: DevRegistry
) -> None:
    del event["type"]
    event["time"] = "2024-05-17"
    event["resource"] = "urn:altinn:resource:Demo"
    response = await post(event)
    assert response.status_code == 400
    body = problem_of(response)
    assert body["title"] == "One or more validation errors occurred."
    assert set(body["errors"]) == {"type", "RequestBody", "time", "resource"}
    assert body["errors"]["RequestBody"] == ["CloudEvent is missing required attributes: type"]
    assert queue.drain() == []
    assert registry.total_requests == 0  # invalid events never reach authorization


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"id": 1,}',
        b"\xff\xfe",
        b'{"a": NaN}',
        b'{"resource": "urn:altinn:resource:a", "resource": "urn:altinn:resource:b"}',
        b"[" * 50_000,
        b'{"data": ' + b"1" * 10_000 + b"}",
        b'{"specversion": "1.0", "data": 1e999}',
        b"\x00" * 64,
    ],
)
async def test_malformed_bodies_get_400(post: Post, body: bytes) -> None:
    response = await post(body)
    assert response.status_code == 400
    assert "RequestBody" in problem_of(response)["errors"]


async def test_values_json_cannot_carry_are_400_not_500(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    del event["data"]
    body = body_of(event)[:-1] + b', "data": {"text": "\\ud800", "big": 1e400}}'
    response = await post(body)
    assert response.status_code == 400
    assert "too large" in problem_of(response)["errors"]["RequestBody"][0]
    surrogate_only = body_of(event)[:-1] + b', "data": {"text": "\\ud800"}}'
    response = await post(surrogate_only)
    assert response.status_code == 400
    assert "unpaired surrogate" in problem_of(response)["errors"]["data"][0]
    assert queue.drain() == []


# -- authorization against the registry ------------------------------------------------------


async def test_registry_is_asked_for_the_resource(
    post: Post, event: dict[str, Any], registry: DevRegistry
) -> None:
    assert (await post(event)).status_code == 200
    assert registry.requests == {"demo-events": 1}
    assert registry.last_headers["Accept"] == "application/json"


async def test_unregistered_resource_is_403(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    event["resource"] = "urn:altinn:resource:not-registered"
    response = await post(event)
    assert response.status_code == 403
    body = problem_of(response)
    assert body["type"].endswith(":not-authorized-for-resource")
    assert "urn:altinn:resource:not-registered" in body["detail"]
    assert queue.drain() == []


async def test_another_orgs_resource_is_403(
    post: Post, issuer: DevIssuer, event: dict[str, Any], queue: QueueReader
) -> None:
    response = await post(event, token=issuer.mint(org="skd"))
    assert response.status_code == 403
    assert queue.drain() == []


async def test_maskinporten_consumer_matches_an_organisation_rule(
    post: Post, issuer: DevIssuer, registry: DevRegistry, event: dict[str, Any]
) -> None:
    registry.rules["demo-events"] = [
        publish_rule("demo-events", ("urn:altinn:organization:identifier-no", "991825827"))
    ]
    token = issuer.mint(
        org=None, consumer={"authority": "iso6523-actorid-upis", "ID": "0192:991825827"}
    )
    assert (await post(event, token=token)).status_code == 200
    assert (await post(event, token=issuer.mint(org="ttd"))).status_code == 403


async def test_admin_scope_skips_the_registry(
    post: Post, issuer: DevIssuer, registry: DevRegistry, event: dict[str, Any], queue: QueueReader
) -> None:
    event["resource"] = "urn:altinn:resource:not-registered"
    token = issuer.mint(org="digdir", scope=f"{PUBLISH_SCOPE} {ADMIN_SCOPE}")
    assert (await post(event, token=token)).status_code == 200
    assert registry.total_requests == 0
    assert queue.drain() == [event]


async def test_admin_scope_alone_is_not_enough(post: Post, issuer: DevIssuer) -> None:
    response = await post(VALID_EVENT, token=issuer.mint(scope=ADMIN_SCOPE))
    assert response.status_code == 403
    assert problem_of(response)["type"].endswith(":insufficient-scope")


@pytest.mark.parametrize("status", [500, 502, 503, 429, 401])
async def test_registry_errors_are_503(
    post: Post, registry: DevRegistry, event: dict[str, Any], queue: QueueReader, status: int
) -> None:
    registry.fail_status = status
    response = await post(event)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert problem_of(response)["type"].endswith(":registry-unavailable")
    assert queue.drain() == []


async def test_malformed_registry_answer_is_503(
    post: Post, registry: DevRegistry, event: dict[str, Any]
) -> None:
    registry.rules["demo-events"] = [{"subject": "not a list", "action": 1}]  # type: ignore[list-item]
    assert (await post(event)).status_code == 503


async def test_slow_registry_is_503_within_the_timeout(
    post: Post, registry: DevRegistry, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_REGISTRY_TIMEOUT_SECONDS", "0.5")
    registry.delay_seconds = 3
    started = time.monotonic()
    response = await post(event)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 0.5 + 0.5


async def test_unreachable_registry_is_503(
    post: Post, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_REGISTRY_URL", f"http://127.0.0.1:{free_port()}/api")
    response = await post(event)
    assert response.status_code == 503
    assert problem_of(response)["type"].endswith(":registry-unavailable")


# -- the queue -------------------------------------------------------------------------------


async def test_queue_is_created_on_first_use(
    post: Post, event: dict[str, Any], queue: QueueReader
) -> None:
    assert queue.raw_bodies() == []  # does not exist yet
    assert (await post(event)).status_code == 200
    assert len(queue.drain()) == 1


async def test_queue_outage_is_503_and_nothing_acknowledged_is_lost(
    post: Post,
    event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    queue_name: str,
    tmp_path: Path,
) -> None:
    own = Azurite(services=("queue", "table"), location=tmp_path / "azurite").start()
    try:
        monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", own.connection_string)
        monkeypatch.setenv("EVENTS_QUEUE_TIMEOUT_SECONDS", "1")
        acknowledged = []
        for n in range(3):
            response = await post({**event, "id": f"before-{n}"})
            assert response.status_code == 200
            acknowledged.append(f"before-{n}")

        own.stop_service("queue")
        started = time.monotonic()
        response = await post({**event, "id": "during"})
        assert response.status_code == 503
        assert time.monotonic() - started < 1 + 1
        assert int(response.headers["Retry-After"]) > 0
        assert problem_of(response)["type"].endswith(":queue-unavailable")

        own.start_service("queue")
        response = await post({**event, "id": "after"})
        assert response.status_code == 200
        acknowledged.append("after")
        stored = [
            message["id"] for message in QueueReader(own.connection_string, queue_name).drain()
        ]
        assert stored == acknowledged
    finally:
        own.stop()


# -- operations ------------------------------------------------------------------------------


async def test_log_line_never_holds_token_data_or_alternativesubject(
    post: Post, issuer: DevIssuer, event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    token = issuer.mint()
    event["data"] = {"secret": "data-value-8c1f"}
    event["alternativesubject"] = "/person/16069412345"
    with caplog.at_level(logging.DEBUG):
        assert (await post(event, token=token)).status_code == 200
        assert (await post({**event, "time": "bad"}, token=token)).status_code == 400
    text = caplog.text
    assert "publish 200" in text
    assert "publish 400" in text
    for secret in (token, token.split(".")[2], "data-value-8c1f", "16069412345"):
        assert secret not in text


async def test_a_newline_in_a_signed_claim_cannot_forge_a_log_line(
    post: Post, issuer: DevIssuer, event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    forged = "ttd publisher=admin decision=permit\npublish 200 ms=1.0 publisher=skd"
    with caplog.at_level(logging.INFO, logger="events.publish"):
        response = await post(event, token=issuer.mint(org=forged))
    assert response.status_code == 403
    [line] = [r.getMessage() for r in caplog.records if r.name == "events.publish"]
    assert "\n" not in line
    assert "publisher='ttd publisher=admin decision=permit\\npublish 200" in line
    assert line.count("publisher=") == 1 + 2  # ours, and the two inside the quoted value


async def test_a_body_of_thousands_of_bad_names_gets_a_small_400(post: Post) -> None:
    body = {f"B{number}": 0 for number in range(20_000)}  # about 200 KB
    response = await post(body)
    assert response.status_code == 400
    problem = problem_of(response)
    assert len(response.get_body()) < 16_000
    # the names, the five required attributes, and RequestBody
    assert problem["omittedErrors"] == 20_006 - 50
    assert list(problem["errors"])[:3] == ["RequestBody", "id", "source"]


async def test_misconfiguration_is_a_500_naming_the_variable(
    post: Post,
    event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("EVENTS_REGISTRY_URL")
    with caplog.at_level(logging.ERROR):
        response = await post(event)
    assert response.status_code == 500
    assert problem_of(response)["type"].endswith(":internal-error")
    assert "EVENTS_REGISTRY_URL" in caplog.text


async def test_trace_id_follows_the_callers_traceparent(post: Post) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = await post(VALID_EVENT, token=None, headers={"traceparent": traceparent})
    assert problem_of(response)["traceId"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
