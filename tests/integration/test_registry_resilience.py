"""Authorization through the whole function when the registry is cold, hammered, down, or needs
credentials: the real handler or the real runtime, the dev registry server counting requests."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import requests

from devtools.issuer import DevIssuer
from devtools.registry import DevRegistry
from devtools.servers import BackgroundServer, bind_loopback
from devtools.tls import LocalTls, make_local_tls
from shared.adapters.registry_credentials import SUBSCRIPTION_KEY_HEADER
from shared.app.runtime import Runtime
from shared.app.settings import Settings
from shared.core.pipeline import PublishRequest, PublishResponse
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, Clock, QueueReader, body_of

UNREGISTERED = {**VALID_EVENT, "resource": "urn:altinn:resource:not-registered"}


async def test_flood_to_an_unregistered_resource_makes_one_registry_call(
    post: Post, registry: DevRegistry, queue: QueueReader
) -> None:
    statuses = [(await post(UNREGISTERED)).status_code for _ in range(50)]
    assert statuses == [403] * 50
    assert registry.requests["not-registered"] == 1
    assert queue.drain() == []


async def test_concurrent_publishes_to_a_cold_resource_make_one_registry_call(
    post: Post, registry: DevRegistry, queue: QueueReader, issuer: DevIssuer
) -> None:
    registry.delay_seconds = 0.3  # the registry is slower than 100 requests arriving
    token = issuer.mint()
    responses = await asyncio.gather(
        *(post({**VALID_EVENT, "id": f"e{n}"}, token=token) for n in range(100))
    )
    assert [response.status_code for response in responses] == [200] * 100
    assert registry.requests["demo-events"] == 1
    assert len(queue.drain()) == 100


async def test_log_line_says_how_the_rules_were_found(
    post: Post, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="events.publish"):
        await post(VALID_EVENT)
        await post(VALID_EVENT)
    lines = [record.getMessage() for record in caplog.records if record.name == "events.publish"]
    assert "authz=miss decision=permit" in lines[0]
    assert "authz=hit decision=permit" in lines[1]


# -- the runtime with a clock the test moves ---------------------------------------------------


def publish_request(token: str, event: dict[str, Any] = VALID_EVENT) -> PublishRequest:
    return PublishRequest(
        method="POST",
        path="/events",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        body=body_of(event),
    )


@pytest.fixture
async def runtime(function_env: dict[str, str]) -> AsyncIterator[tuple[Runtime, Clock]]:
    clock = Clock(50_000.0)
    built = Runtime.build(Settings(), clock=clock)  # type: ignore[call-arg]
    yield built, clock
    await built.close()


async def test_publishes_continue_on_stale_rules_until_the_limit_then_503(
    runtime: tuple[Runtime, Clock],
    registry: DevRegistry,
    issuer: DevIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    built, clock = runtime
    token = issuer.mint()
    settings = built.settings
    assert (await built.pipeline.handle(publish_request(token))).status == 200

    registry.fail_status = 500
    clock.now += settings.registry_cache_seconds
    with caplog.at_level(logging.INFO):
        stale = await built.pipeline.handle(publish_request(token))
    assert stale.status == 200
    assert "authz=stale decision=permit" in caplog.text
    assert "serving the rules of demo-events" in caplog.text

    clock.now += settings.registry_stale_seconds - 1
    assert (await built.pipeline.handle(publish_request(token))).status == 200
    clock.now += 1
    failed = await built.pipeline.handle(publish_request(token))
    assert failed.status == 503
    assert failed.headers["Retry-After"]


async def test_a_flood_of_made_up_resources_cannot_cost_a_publisher_its_stale_rules(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    registry: DevRegistry,
    issuer: DevIssuer,
) -> None:
    """The security review's flood, end to end: a cache of two, one good publish, a flood of
    more made-up resources than the cache holds, the registry down: the good resource is still
    published, from its stale rules."""
    monkeypatch.setenv("EVENTS_REGISTRY_CACHE_SIZE", "2")
    monkeypatch.setenv("EVENTS_REGISTRY_LOOKUPS_PER_MINUTE", "1000")
    clock = Clock(50_000.0)
    built = Runtime.build(Settings(), clock=clock)  # type: ignore[call-arg]
    try:
        token = issuer.mint()
        assert (await built.pipeline.handle(publish_request(token))).status == 200
        for number in range(20):
            flood = {**VALID_EVENT, "resource": f"urn:altinn:resource:made-up-{number}"}
            assert (await built.pipeline.handle(publish_request(token, flood))).status == 403
        registry.fail_status = 503
        clock.now += built.settings.registry_cache_seconds + 1
        assert (await built.pipeline.handle(publish_request(token))).status == 200
    finally:
        await built.close()


async def test_too_many_new_resources_from_one_publisher_is_429_with_retry_after(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    registry: DevRegistry,
    issuer: DevIssuer,
) -> None:
    monkeypatch.setenv("EVENTS_REGISTRY_LOOKUPS_PER_MINUTE", "5")
    built = Runtime.build(Settings(), clock=Clock(50_000.0))  # type: ignore[call-arg]
    try:
        token = issuer.mint()
        answers = []
        for number in range(7):
            flood = {**VALID_EVENT, "resource": f"urn:altinn:resource:made-up-{number}"}
            answers.append(await built.pipeline.handle(publish_request(token, flood)))
        assert [answer.status for answer in answers] == [403] * 5 + [429] * 2
        limited = answers[-1]
        assert limited.headers["Retry-After"] == "12"
        problem = json.loads(limited.body)
        assert problem["type"] == "urn:altinn:events:problem:too-many-resource-lookups"
        assert "5 a minute" in problem["detail"]
        assert registry.total_requests == 5
        # a resource already looked up is never limited
        assert (await built.pipeline.handle(publish_request(token))).status == 429
        cached = {**VALID_EVENT, "resource": "urn:altinn:resource:made-up-0"}
        assert (await built.pipeline.handle(publish_request(token, cached))).status == 403
        # another publisher has its own budget
        other = issuer.mint(org="skd")
        assert (await built.pipeline.handle(publish_request(other))).status == 403
    finally:
        await built.close()


# -- outbound credentials: a subscription key, and bearer tokens from msal ---------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return make_local_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_issuer(tls: LocalTls) -> Iterator[DevIssuer]:
    """A dev issuer over HTTPS (msal insists), with one OAuth client registered."""
    sock = bind_loopback()
    issuer = DevIssuer(f"https://127.0.0.1:{sock.getsockname()[1]}/tenant-1")
    issuer.clients["events-function"] = "client-secret-value"
    server = BackgroundServer(issuer.app, sock, ssl_context=tls.server_context()).start()
    yield issuer
    server.stop()


@pytest.fixture
def trusting_session(tls: LocalTls) -> requests.Session:
    """What msal talks through: trusts the test CA, and ignores REQUESTS_CA_BUNDLE."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(tls.ca_file)
    return session


def claims_of(authorization: str) -> dict[str, Any]:
    payload = authorization.removeprefix("Bearer ").split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


def client_credentials(authority: DevIssuer) -> dict[str, str]:
    """Settings for registry tokens by client credentials from ``authority``."""
    return {
        "EVENTS_REGISTRY_TOKEN_SCOPE": "api://resource-registry/.default",
        "EVENTS_REGISTRY_CLIENT_ID": "events-function",
        "EVENTS_REGISTRY_CLIENT_SECRET": "client-secret-value",
        "EVENTS_REGISTRY_AUTHORITY": authority.base_url,
    }


async def run_with(
    monkeypatch: pytest.MonkeyPatch,
    session: requests.Session,
    variables: dict[str, str],
    requests_to_send: list[PublishRequest],
) -> list[PublishResponse]:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    built = Runtime.build(Settings(), token_http_client=session)  # type: ignore[call-arg]
    try:
        return [await built.pipeline.handle(request) for request in requests_to_send]
    finally:
        await built.close()


async def test_client_credentials_token_and_subscription_key_reach_the_registry(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    https_issuer: DevIssuer,
    trusting_session: requests.Session,
    registry: DevRegistry,
    issuer: DevIssuer,
) -> None:
    token = issuer.mint()
    unregistered = {**VALID_EVENT, "resource": "urn:altinn:resource:other"}
    responses = await run_with(
        monkeypatch,
        trusting_session,
        {"EVENTS_REGISTRY_SUBSCRIPTION_KEY": "apim-key-123", **client_credentials(https_issuer)},
        [publish_request(token), publish_request(token, unregistered)],
    )
    assert [response.status for response in responses] == [200, 403]
    assert registry.total_requests == 2
    headers = registry.last_headers
    assert headers[SUBSCRIPTION_KEY_HEADER] == "apim-key-123"
    claims = claims_of(headers["Authorization"])
    assert claims["iss"] == https_issuer.base_url
    assert claims["aud"] == "api://resource-registry"
    assert claims["sub"] == "events-function"
    assert https_issuer.token_requests == 1  # the second registry call reused the token


@pytest.mark.parametrize(
    "identity",
    [
        {"EVENTS_REGISTRY_CLIENT_ID": "uami-client-id"},
        {"AZURE_CLIENT_ID": "uami-client-id"},  # what infra/ sets for the app's identity
    ],
)
async def test_managed_identity_token_reaches_the_registry(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    issuer: DevIssuer,
    registry: DevRegistry,
    identity: dict[str, str],
) -> None:
    # App Service and Functions expose the managed identity as these two variables.
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{issuer.base_url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", issuer.identity_header)
    requests_before = issuer.identity_requests
    session = requests.Session()
    session.trust_env = False
    responses = await run_with(
        monkeypatch,
        session,
        {"EVENTS_REGISTRY_TOKEN_SCOPE": "api://resource-registry/.default", **identity},
        [publish_request(issuer.mint())],
    )
    assert responses[0].status == 200
    claims = claims_of(registry.last_headers["Authorization"])
    assert (claims["aud"], claims["sub"]) == ("api://resource-registry", "uami-client-id")
    assert issuer.identity_requests == requests_before + 1


@pytest.mark.parametrize("status", [500, 400])
async def test_failing_token_endpoint_is_503_and_the_registry_is_not_called(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    https_issuer: DevIssuer,
    trusting_session: requests.Session,
    registry: DevRegistry,
    issuer: DevIssuer,
    status: int,
) -> None:
    https_issuer.token_failure_status = status
    responses = await run_with(
        monkeypatch,
        trusting_session,
        client_credentials(https_issuer),
        [publish_request(issuer.mint())],
    )
    assert responses[0].status == 503
    assert json.loads(responses[0].body)["type"].endswith(":registry-unavailable")
    assert registry.total_requests == 0


async def test_untrusted_authority_certificate_is_503_not_500(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    https_issuer: DevIssuer,
    registry: DevRegistry,
    issuer: DevIssuer,
) -> None:
    session = requests.Session()
    session.trust_env = False  # and no test CA: the issuer's certificate is not trusted
    responses = await run_with(
        monkeypatch,
        session,
        client_credentials(https_issuer),
        [publish_request(issuer.mint())],
    )
    assert responses[0].status == 503
    assert registry.total_requests == 0


async def test_registry_credentials_need_their_companions(
    post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_REGISTRY_CLIENT_SECRET", "only-a-secret")
    response = await post(VALID_EVENT)
    assert response.status_code == 500
    assert problem_of(response)["type"].endswith(":internal-error")
