"""OpenID Connect key discovery: an issuer's signing keys, from
``<issuer>/.well-known/openid-configuration`` -> ``jwks_uri``.

Keys are fetched asynchronously, cached per issuer, and refreshed when a token names an unknown
``kid`` (at most once a minute per issuer) or when the cached set is more than an hour old (in
the background, never blocking a request). Only asymmetric public keys of sufficient size ever
verify a token; a JWK that cannot be loaded verifies nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.adapters.common import shown
from shared.core.ports import InvalidToken, KeysUnavailable
from shared.core.urls import require_https_unless_loopback

log = logging.getLogger("events.tokens")

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384"}
MIN_RSA_BITS = 2048
#: An unknown ``kid`` triggers at most one JWKS refresh per issuer in this many seconds.
UNKNOWN_KID_REFRESH_INTERVAL = 60.0
#: A key set older than this is refreshed in the background on its next use.
KEY_SET_MAX_AGE = 3600.0
#: After a failed first fetch, further requests fail fast for this long before trying again.
COLD_RETRY_INTERVAL = 5.0
FETCH_TIMEOUT_SECONDS = 5.0


def _compatible(jwk: Mapping[str, Any], algorithm: str) -> bool:
    if jwk.get("use") not in (None, "sig"):
        return False
    if jwk.get("alg") not in (None, algorithm):
        return False
    if algorithm in _EC_CURVES:
        return jwk.get("kty") == "EC" and jwk.get("crv") == _EC_CURVES[algorithm]
    return jwk.get("kty") == "RSA"


def _load_key(jwk: Mapping[str, Any], algorithm: str) -> jwt.PyJWK:
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=algorithm)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):  # a malformed JWK in the JWKS
        raise InvalidToken("the issuer's signing key for this token cannot be loaded") from None
    material = key.key
    if isinstance(material, rsa.RSAPublicKey) and material.key_size < MIN_RSA_BITS:
        raise InvalidToken(f"the issuer's RSA key is shorter than {MIN_RSA_BITS} bits")
    if not isinstance(material, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise InvalidToken("the issuer's signing key is not a public key")
    return key


class KeySet:
    """One issuer's published keys (a JWKS ``keys`` array), and the keys loaded from it so far."""

    def __init__(self, jwks: list[dict[str, Any]]) -> None:
        self._by_kid: dict[str, dict[str, Any]] = {}
        self._without_kid: list[dict[str, Any]] = []
        for jwk in jwks:
            if jwk.get("kty") == "oct":
                continue  # symmetric keys never verify a token here
            kid = jwk.get("kid")
            if isinstance(kid, str):
                self._by_kid[kid] = jwk
            else:
                self._without_kid.append(jwk)
        self._loaded: dict[tuple[str | None, str], jwt.PyJWK] = {}

    def __len__(self) -> int:
        return len(self._by_kid) + len(self._without_kid)

    def has(self, kid: str | None, algorithm: str) -> bool:
        return self._find(kid, algorithm) is not None

    def key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The loaded key for ``kid`` and ``algorithm``; InvalidToken when there is none."""
        cached = self._loaded.get((kid, algorithm))
        if cached is not None:
            return cached
        jwk = self._find(kid, algorithm)
        if jwk is None:
            if kid is None:
                raise InvalidToken("the token has no 'kid' header and the issuer has several keys")
            raise InvalidToken(f"the issuer has no {algorithm} signing key with kid {shown(kid)}")
        loaded = self._loaded[(kid, algorithm)] = _load_key(jwk, algorithm)
        return loaded

    def _find(self, kid: str | None, algorithm: str) -> dict[str, Any] | None:
        if kid is not None:
            jwk = self._by_kid.get(kid)
            return jwk if jwk is not None and _compatible(jwk, algorithm) else None
        candidates = [
            jwk
            for jwk in (*self._by_kid.values(), *self._without_kid)
            if _compatible(jwk, algorithm)
        ]
        return candidates[0] if len(candidates) == 1 else None


class StaticSigningKeys:
    """Fixed key sets per issuer, for issuers whose keys are known in advance (and for tests)."""

    def __init__(self, key_sets: Mapping[str, KeySet]) -> None:
        self._key_sets = dict(key_sets)

    async def key_for(self, issuer: str, kid: str | None, algorithm: str) -> jwt.PyJWK:
        key_set = self._key_sets.get(issuer)
        if key_set is None:
            raise KeysUnavailable(issuer)
        return key_set.key(kid, algorithm)


@dataclass
class _IssuerState:
    keys: KeySet | None = None
    fetched_at: float | None = None
    attempted_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    background: asyncio.Task[None] | None = None


class OidcSigningKeys:
    """Signing keys from OpenID discovery: ``/.well-known/openid-configuration`` -> ``jwks_uri``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout_seconds: float = FETCH_TIMEOUT_SECONDS,
    ) -> None:
        self._session = session
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._issuers: dict[str, _IssuerState] = {}

    async def key_for(self, issuer: str, kid: str | None, algorithm: str) -> jwt.PyJWK:
        state = self._issuers.setdefault(issuer, _IssuerState())
        if state.keys is None:
            await self._refresh(issuer, state, min_interval=COLD_RETRY_INTERVAL)
        elif (
            state.fetched_at is not None
            and self._clock() - state.fetched_at > KEY_SET_MAX_AGE
            and state.background is None
        ):
            state.background = asyncio.create_task(self._refresh_in_background(issuer, state))
        if state.keys is None:
            raise KeysUnavailable(issuer)
        if not state.keys.has(kid, algorithm):
            await self._refresh(issuer, state, min_interval=UNKNOWN_KID_REFRESH_INTERVAL)
        return state.keys.key(kid, algorithm)

    async def _refresh_in_background(self, issuer: str, state: _IssuerState) -> None:
        try:
            await self._refresh(issuer, state, min_interval=UNKNOWN_KID_REFRESH_INTERVAL)
        finally:
            state.background = None

    async def _refresh(self, issuer: str, state: _IssuerState, *, min_interval: float) -> None:
        """Fetch the keys at most once per ``min_interval``; concurrent callers share one fetch."""
        attempted_before = state.attempted_at
        async with state.lock:
            if state.attempted_at != attempted_before:
                return  # another request refreshed while this one waited: use its result
            if self._clock() - state.attempted_at < min_interval:
                return
            state.attempted_at = self._clock()
            try:
                keys = KeySet(await self._fetch_jwks(issuer))
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                log.warning("signing keys of %s could not be fetched: %s", issuer, error)
                return
            state.keys, state.fetched_at = keys, self._clock()
            log.info("signing keys of %s refreshed: %d keys", issuer, len(keys))

    async def _get_json(self, url: str) -> Any:
        # No redirects: keys must come from the issuer's own origin, over the scheme it was
        # configured with; a redirect elsewhere (or to plain http) is a failed fetch.
        async with self._session.get(
            url,
            timeout=self._timeout,
            headers={"Accept": "application/json"},
            allow_redirects=False,
        ) as response:
            if response.status != 200:
                raise ValueError(f"GET {url} answered {response.status}")
            return await response.json(content_type=None)

    async def _fetch_jwks(self, issuer: str) -> list[dict[str, Any]]:
        discovery = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
            raise ValueError("the discovery document's 'issuer' does not match the issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no 'jwks_uri'")
        require_https_unless_loopback(jwks_uri, "jwks_uri")
        document = await self._get_json(jwks_uri)
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ValueError("the JWKS document has no 'keys' array")
        return [key for key in keys if isinstance(key, dict)]
