"""Bearer token -> Publisher: JWT verification (PyJWT) against the trusted issuers' keys.

Only the ``Authorization: Bearer`` header is read (never a query string or a cookie). The keys come
from a ``SigningKeys`` source: OpenID discovery in production (shared/adapters/oidc.py), fixed key
sets in tests. Everything in a token is the caller's choice until its signature verifies, so every
failure to read one, of any kind, is a 401 ``invalid_token``, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jwt

from shared.adapters.common import shown
from shared.core.model import Publisher
from shared.core.ports import InvalidToken, MissingToken

log = logging.getLogger("events.tokens")

#: Asymmetric algorithms only: ``none`` and HMAC (HS*) are refused before any key is looked at.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
MAX_TOKEN_LENGTH = 16 * 1024
#: A verified token is trusted again without a signature check for at most this long.
VERIFIED_TOKEN_MAX_AGE = 300.0
VERIFIED_TOKEN_CACHE_SIZE = 4096

CONSUMER_AUTHORITY = "iso6523-actorid-upis"
ORG_NUMBER_SCHEME = "0192"


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
