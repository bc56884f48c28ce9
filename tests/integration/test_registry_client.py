"""The Resource Registry client against the dev registry server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from devtools.azurite import free_port
from devtools.registry import DevRegistry, publish_rule
from devtools.servers import BackgroundServer, bind_loopback
from shared.adapters.registry import ResourceRegistryClient
from shared.adapters.registry_credentials import SUBSCRIPTION_KEY_HEADER, SubscriptionKey
from shared.core.model import ACTION_ID, Attribute, PolicyRule
from shared.core.ports import RegistryUnavailable


async def test_rules_of_a_registered_resource(registry_client: ResourceRegistryClient) -> None:
    assert await registry_client.rules_for("demo-events") == (
        PolicyRule(
            subject=(Attribute("urn:altinn:org", "ttd"),),
            action=Attribute(ACTION_ID, "publish"),
            resource=(Attribute("urn:altinn:resource", "demo-events"),),
        ),
    )


async def test_unknown_resource_is_none(registry_client: ResourceRegistryClient) -> None:
    assert await registry_client.rules_for("unknown") is None


async def test_identifier_is_percent_encoded(registry: DevRegistry) -> None:
    async with aiohttp.ClientSession() as session:
        client = ResourceRegistryClient(
            session, base_url="https://r.example/api/", timeout_seconds=1
        )
        assert client.rules_url("a b?c") == "https://r.example/api/resource/a%20b%3Fc/policy/rules"
        assert (
            client.rules_url("x/../y") == "https://r.example/api/resource/x%2F..%2Fy/policy/rules"
        )


async def test_oversized_answer_is_refused(
    registry_client: ResourceRegistryClient, registry: DevRegistry
) -> None:
    rule = publish_rule("demo-events", ("urn:altinn:org", "x" * 1000))
    registry.rules["demo-events"] = [rule] * 1200  # over 1 MiB of JSON
    with pytest.raises(RegistryUnavailable, match="too large"):
        await registry_client.rules_for("demo-events")


async def test_timeout(registry_client: ResourceRegistryClient, registry: DevRegistry) -> None:
    registry.delay_seconds = 2
    with pytest.raises(RegistryUnavailable, match=r"did not answer within 0\.5 s"):
        await registry_client.rules_for("demo-events")


async def test_connection_refused() -> None:
    async with aiohttp.ClientSession() as session:
        client = ResourceRegistryClient(
            session, base_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1
        )
        with pytest.raises(RegistryUnavailable, match="could not be reached"):
            await client.rules_for("demo-events")


@pytest.fixture
def other_registry() -> Iterator[tuple[DevRegistry, str]]:
    """A second registry on another origin, which would permit anyone to publish anything."""
    other = DevRegistry({"demo-events": [publish_rule("demo-events", ("urn:altinn:org", "evil"))]})
    server = BackgroundServer(other.app, bind_loopback()).start()
    yield other, f"http://127.0.0.1:{server.port}"
    server.stop()


async def test_redirects_are_not_followed_and_credentials_stay_home(
    registry: DevRegistry,
    registry_service: tuple[DevRegistry, str],
    other_registry: tuple[DevRegistry, str],
) -> None:
    other, other_origin = other_registry
    registry.redirect_to = other_origin  # e.g. https -> http, or to another host
    async with aiohttp.ClientSession() as session:
        client = ResourceRegistryClient(
            session,
            base_url=registry_service[1],
            timeout_seconds=1,
            credentials=SubscriptionKey("apim-key-123"),
        )
        with pytest.raises(RegistryUnavailable, match="answered 302"):
            await client.rules_for("demo-events")
    assert registry.last_headers[SUBSCRIPTION_KEY_HEADER] == "apim-key-123"
    assert other.total_requests == 0  # neither the key nor the request ever reached it
