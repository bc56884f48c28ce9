"""Bearer token -> Publisher: JWT verification against keys discovered from trusted issuers.

Only the ``Authorization: Bearer`` header is read (never a query string or a cookie). Keys come
from each issuer's OpenID discovery document and JWKS, fetched asynchronously, cached per issuer,
and refreshed when a token names an unknown ``kid`` (at most once a minute per issuer) or when
the cached set is more than an hour old (in the background, never blocking a request).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.settings import require_https_unless_loopback

log = logging.getLogger("events.tokens")

#: Asymmetric algorithms only: ``none`` and HMAC (HS*) are refused before any key is looked at.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384"}
MIN_RSA_BITS = 2048
MAX_TOKEN_LENGTH = 16 * 1024
#: An unknown ``kid`` triggers at most one JWKS refresh per issuer in this many seconds.
UNKNOWN_KID_REFRESH_INTERVAL = 60.0
#: A key set older than this is refreshed in the background on its next use.
KEY_SET_MAX_AGE = 3600.0
#: After a failed first fetch, further requests fail fast for this long before trying again.
COLD_RETRY_INTERVAL = 5.0
#: A verified token is trusted again without a signature check for at most this long.
VERIFIED_TOKEN_MAX_AGE = 300.0
VERIFIED_TOKEN_CACHE_SIZE = 4096
FETCH_TIMEOUT_SECONDS = 5.0
#: At most this much of an attacker-chosen header value (``alg``, ``kid``, ``iss``) is echoed.
MAX_SHOWN_CHARACTERS = 64

CONSUMER_AUTHORITY = "iso6523-actorid-upis"
ORG_NUMBER_SCHEME = "0192"


class MissingToken(Exception):
    """No bearer token was sent."""


class InvalidToken(Exception):
    """A token was sent but cannot be trusted. ``str()`` says why, in a publisher's terms."""


class KeysUnavailable(Exception):
    """The issuer's keys have never been fetched and cannot be fetched now."""


@dataclass(frozen=True, slots=True)
class Publisher:
    """The verified caller: who issued the token, for whom, and with which scopes."""

    issuer: str
    subject: str | None
    scopes: frozenset[str]
    #: ``urn:altinn:org``: the service owner's code, such as ``ttd``.
    org: str | None = None
    #: ``urn:altinn:orgNumber``: the organisation number of an exchanged Altinn token.
    org_number: str | None = None
    #: The organisation number in Maskinporten's ``consumer`` claim (``0192:<orgno>``).
    consumer_org_number: str | None = None
    #: Every ``urn:``-typed string claim, passed to authorization as the Altinn PEP does.
    urn_claims: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def label(self) -> str:
        """A non-secret name for logs: the org code, else the org number, else the subject."""
        return self.org or self.org_number or self.consumer_org_number or self.subject or "?"


class SigningKeys(Protocol):
    async def key_for(self, issuer: str, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key that verifies ``algorithm`` for ``kid``.

        Raises InvalidToken (no such key) or KeysUnavailable (the keys cannot be fetched).
        """
        ...


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; MissingToken otherwise."""
    if authorization is None:
        raise MissingToken()
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken()
    token = token.strip()
    if not token:
        raise InvalidToken("the Authorization header has the Bearer scheme but no token")
    if " " in token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise InvalidToken("the Authorization header does not hold a single compact JWT")
    return token


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64url_json(segment: str) -> Any:
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not unpadded Base64url")
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token's JOSE header and claims, decoded but not trusted; InvalidToken if malformed.

    Every byte here is chosen by an anonymous caller: any failure to decode, of any kind
    (bad Base64url, bad UTF-8, bad JSON, nesting deep enough to exhaust the recursion limit),
    is a malformed token and nothing else.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is not a compact JWT (expected three '.'-separated parts)")
    try:
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
    except (ValueError, UnicodeError, RecursionError):
        raise InvalidToken("the token's header or payload is not Base64url-encoded JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("the token's header and payload must be JSON objects")
    return header, claims


def shown(value: object) -> str:
    """An attacker-chosen value as it may appear in an answer or a log: quoted, and cut short."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARACTERS else text[: MAX_SHOWN_CHARACTERS - 1] + "…"


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (space-separated) and ``urn:altinn:scope``; exact, case-sensitive."""
    scopes: set[str] = set()
    for claim in ("scope", "urn:altinn:scope"):
        value = claims.get(claim)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                scopes.update(part for part in item.split(" ") if part)
    return frozenset(scopes)


def _claim_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int):
        text = str(value).strip()
        return text or None
    return None


def _consumer_org_number(consumer: Any) -> str | None:
    if not isinstance(consumer, dict) or consumer.get("authority") != CONSUMER_AUTHORITY:
        return None
    consumer_id = consumer.get("ID")
    if not isinstance(consumer_id, str):
        return None
    scheme, colon, number = consumer_id.partition(":")
    return number.strip() or None if colon and scheme == ORG_NUMBER_SCHEME else None


def publisher_from_claims(claims: Mapping[str, Any]) -> Publisher:
    urn_claims = tuple(
        (name, text)
        for name, value in claims.items()
        if name.startswith("urn:") and (text := _claim_text(value)) is not None
    )
    return Publisher(
        issuer=str(claims["iss"]),
        subject=_claim_text(claims.get("sub")),
        scopes=scopes_of(claims),
        org=_claim_text(claims.get("urn:altinn:org")),
        org_number=_claim_text(claims.get("urn:altinn:orgNumber")),
        consumer_org_number=_consumer_org_number(claims.get("consumer")),
        urn_claims=urn_claims,
    )


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (its nbf or iat is in the future)"),
    (jwt.InvalidAudienceError, "the token's audience (aud) is not this service"),
    (jwt.InvalidIssuerError, "the token's issuer (iss) is not trusted"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's algorithm does not match its signing key"),
    (jwt.InvalidKeyError, "the issuer's signing key cannot verify this token"),
    (jwt.DecodeError, "the token is malformed"),
)


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no '{error.claim}' claim"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "the token is invalid"


class TokenVerifier:
    """Verifies bearer tokens from the trusted issuers.

    A publisher sends the same token with every event until it expires, so a verified token is
    remembered (by its SHA-256, never the token itself) for at most ``VERIFIED_TOKEN_MAX_AGE``
    seconds and never past its own expiry: a repeat costs a hash and a lookup instead of a
    signature check. The memory is bounded (``VERIFIED_TOKEN_CACHE_SIZE``, least recently used
    evicted first), and only successes are remembered.
    """

    def __init__(
        self,
        *,
        trusted_issuers: tuple[str, ...],
        keys: SigningKeys,
        audience: str | None,
        clock_skew_seconds: int,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._trusted = frozenset(trusted_issuers)
        self._keys = keys
        self._audience = audience
        self._leeway = clock_skew_seconds
        self._wall_clock = wall_clock
        self._verified: OrderedDict[bytes, tuple[Publisher, float]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Publisher:
        """The verified publisher; raise MissingToken, InvalidToken or KeysUnavailable."""
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode()).digest()
        remembered = self._verified.get(digest)
        if remembered is not None:
            publisher, valid_until = remembered
            if self._wall_clock() < valid_until:
                self._verified.move_to_end(digest)
                return publisher
            del self._verified[digest]
        publisher, expires_at = await self._verify(token)
        valid_until = min(expires_at + self._leeway, self._wall_clock() + VERIFIED_TOKEN_MAX_AGE)
        self._verified[digest] = (publisher, valid_until)
        if len(self._verified) > VERIFIED_TOKEN_CACHE_SIZE:
            self._verified.popitem(last=False)
        return publisher

    async def _verify(self, token: str) -> tuple[Publisher, float]:
        header, unverified = _unverified_parts(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidToken(
                f"the algorithm {shown(algorithm)} is not accepted; "
                f"use one of {', '.join(sorted(ALLOWED_ALGORITHMS))}"
            )
        issuer = unverified.get("iss")
        if not isinstance(issuer, str):
            raise InvalidToken("the token has no 'iss' claim")
        if issuer not in self._trusted:
            raise InvalidToken(f"the issuer {shown(issuer)} is not trusted by this service")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's 'kid' header must be a string")
        key = await self._keys.key_for(issuer, kid, algorithm)
        return self._decode(token, key, algorithm, issuer)

    def _decode(
        self, token: str, key: jwt.PyJWK, algorithm: str, issuer: str
    ) -> tuple[Publisher, float]:
        """Signature and claims. Past the checks above, the header and the claims are still the
        caller's own JSON: whatever PyJWT or the claim mapping make of an odd member (a type
        they do not expect, a number beyond a double), the token is refused, never a 500."""
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", "iss"],
                    "verify_aud": self._audience is not None,
                },
            )
            return publisher_from_claims(claims), float(claims["exp"])
        except jwt.PyJWTError as error:
            raise InvalidToken(_reason(error)) from None
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as error:
            log.info("token refused as malformed: %s", type(error).__name__)
            raise InvalidToken("the token is malformed") from None


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
