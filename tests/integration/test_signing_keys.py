"""Key discovery over HTTP against the dev issuer: caching, rotation, refresh limits, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from devtools.issuer import DevIssuer, SigningKey
from shared.adapters.oidc import KEY_SET_MAX_AGE, UNKNOWN_KID_REFRESH_INTERVAL, OidcSigningKeys
from shared.adapters.tokens import TokenVerifier
from shared.core.ports import InvalidToken, KeysUnavailable
from tests.support import Clock


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def keys(session: aiohttp.ClientSession, clock: Clock) -> OidcSigningKeys:
    return OidcSigningKeys(session, clock=clock)


async def test_keys_are_discovered_once_and_cached(
    own_issuer: DevIssuer, keys: OidcSigningKeys
) -> None:
    kid = own_issuer.current_key.kid
    for _ in range(5):
        await keys.key_for(own_issuer.base_url, kid, "RS256")
    assert (own_issuer.discovery_requests, own_issuer.jwks_requests) == (1, 1)


async def test_rotated_key_is_fetched_when_first_seen(
    own_issuer: DevIssuer, keys: OidcSigningKeys, clock: Clock
) -> None:
    verifier = TokenVerifier(
        trusted_issuers=(own_issuer.base_url,), keys=keys, audience=None, clock_skew_seconds=0
    )
    assert (await verifier.authenticate(f"Bearer {own_issuer.mint()}")).org == "ttd"
    own_issuer.rotate()
    clock.now += UNKNOWN_KID_REFRESH_INTERVAL  # a rotation a minute or more after the last fetch
    rotated = own_issuer.mint(org="skd")
    assert (await verifier.authenticate(f"Bearer {rotated}")).org == "skd"
    assert own_issuer.jwks_requests == 2


async def test_unknown_kid_refreshes_at_most_once_a_minute(
    own_issuer: DevIssuer, keys: OidcSigningKeys, clock: Clock
) -> None:
    await keys.key_for(own_issuer.base_url, own_issuer.current_key.kid, "RS256")
    stranger = SigningKey.generate()
    for _ in range(10):
        with pytest.raises(InvalidToken, match="no RS256 signing key"):
            await keys.key_for(own_issuer.base_url, stranger.kid, "RS256")
    assert own_issuer.jwks_requests == 1  # the first fetch just happened: no refresh yet

    clock.now += UNKNOWN_KID_REFRESH_INTERVAL + 1
    for _ in range(10):
        with pytest.raises(InvalidToken):
            await keys.key_for(own_issuer.base_url, stranger.kid, "RS256")
    assert own_issuer.jwks_requests == 2


async def test_known_keys_keep_working_through_an_issuer_outage(
    own_issuer: DevIssuer, keys: OidcSigningKeys, clock: Clock
) -> None:
    kid = own_issuer.current_key.kid
    await keys.key_for(own_issuer.base_url, kid, "RS256")
    own_issuer.available = False
    clock.now += UNKNOWN_KID_REFRESH_INTERVAL + 1
    await keys.key_for(own_issuer.base_url, kid, "RS256")
    with pytest.raises(InvalidToken):
        await keys.key_for(own_issuer.base_url, SigningKey.generate().kid, "RS256")
    assert own_issuer.jwks_requests == 1  # the refresh attempt failed at discovery
    assert own_issuer.discovery_requests == 2


async def test_cold_outage_fails_fast_then_recovers(
    own_issuer: DevIssuer, keys: OidcSigningKeys, clock: Clock
) -> None:
    own_issuer.available = False
    kid = own_issuer.current_key.kid
    for _ in range(3):
        with pytest.raises(KeysUnavailable):
            await keys.key_for(own_issuer.base_url, kid, "RS256")
    assert own_issuer.discovery_requests == 1

    own_issuer.available = True
    clock.now += 6
    await keys.key_for(own_issuer.base_url, kid, "RS256")
    assert own_issuer.discovery_requests == 2


async def test_concurrent_cold_requests_share_one_fetch(
    own_issuer: DevIssuer, keys: OidcSigningKeys
) -> None:
    kid = own_issuer.current_key.kid
    await asyncio.gather(*(keys.key_for(own_issuer.base_url, kid, "RS256") for _ in range(20)))
    assert (own_issuer.discovery_requests, own_issuer.jwks_requests) == (1, 1)


async def test_old_key_sets_are_refreshed_in_the_background(
    own_issuer: DevIssuer, keys: OidcSigningKeys, clock: Clock
) -> None:
    kid = own_issuer.current_key.kid
    await keys.key_for(own_issuer.base_url, kid, "RS256")
    clock.now += KEY_SET_MAX_AGE + 1
    await keys.key_for(own_issuer.base_url, kid, "RS256")  # answers from the cache at once
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert len(pending) == 1
    await asyncio.gather(*pending)
    assert own_issuer.jwks_requests == 2


async def test_discovery_for_another_issuer_is_refused(
    own_issuer: DevIssuer, keys: OidcSigningKeys
) -> None:
    impostor = own_issuer.base_url.rstrip("/")  # discovery answers with the slash-ended issuer
    with pytest.raises(KeysUnavailable):
        await keys.key_for(impostor, own_issuer.current_key.kid, "RS256")


async def test_key_discovery_follows_no_redirect(
    own_issuer: DevIssuer, issuer: DevIssuer, keys: OidcSigningKeys
) -> None:
    """Keys come from the issuer's own origin or not at all."""
    own_issuer.redirect_to = issuer.base_url.rstrip("/") + "/.well-known/openid-configuration"
    elsewhere_before = issuer.discovery_requests
    with pytest.raises(KeysUnavailable):
        await keys.key_for(own_issuer.base_url, own_issuer.current_key.kid, "RS256")
    assert own_issuer.discovery_requests == 1
    assert issuer.discovery_requests == elsewhere_before
