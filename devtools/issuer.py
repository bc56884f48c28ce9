"""A development token issuer: OpenID discovery and a JWKS on loopback, and token minting.

Never used by ``shared/``. ``make run`` serves it on 127.0.0.1:7171 with a signing key kept in
``.local/dev-issuer/`` so that ``make token`` mints tokens it will verify; tests serve it on a
free port with in-memory keys and use its switches (rotation, outage) to exercise the function.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PUBLISH_SCOPE = "altinn:events.publish"
ADMIN_SCOPE = "altinn:events.publish.admin"
DEFAULT_KEY_FILE = Path(".local/dev-issuer/signing-key.pem")
DEV_ISSUER_PORT = 7171

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: a stable, content-derived key id."""
    import base64
    import hashlib

    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    private_key: PrivateKey
    algorithm: str

    @classmethod
    def generate(cls, algorithm: str = "RS256") -> SigningKey:
        if algorithm.startswith("ES"):
            curve = ec.SECP384R1() if algorithm == "ES384" else ec.SECP256R1()
            return cls(ec.generate_private_key(curve), algorithm)
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm)

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The RSA key in ``path``, created (mode 0600) on first use."""
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            return cls(loaded, "RS256")
        key = cls.generate("RS256")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
        return key

    def public_jwk(self) -> dict[str, Any]:
        return dict(self._public_jwk)

    @cached_property
    def _public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        jwk.update(kid=_thumbprint(jwk), use="sig", alg=self.algorithm)
        return jwk

    @property
    def kid(self) -> str:
        return str(self._public_jwk["kid"])


class DevIssuer:
    """Discovery + JWKS for ``base_url``, and tokens signed by its current key."""

    def __init__(self, base_url: str, key: SigningKey | None = None) -> None:
        self.base_url = base_url  # the exact "iss" value; Altinn's ends with a slash
        self.current_key = key or SigningKey.generate()
        self.published: list[SigningKey] = [self.current_key]
        #: False makes discovery and JWKS answer 503, as an issuer outage would.
        self.available = True
        #: When set, discovery answers a 302 to this URL.
        self.redirect_to: str | None = None
        self.discovery_requests = 0
        self.jwks_requests = 0
        #: OAuth clients allowed at the token endpoint (client credentials): id -> secret.
        self.clients: dict[str, str] = {}
        #: When set, the token endpoint answers this status with an OAuth error.
        self.token_failure_status: int | None = None
        self.token_requests = 0
        #: The secret App Service passes to code as IDENTITY_HEADER, for the managed identity
        #: endpoint (``…/msi/token``) that stands in for Azure's in tests.
        self.identity_header = "dev-identity-header"
        self.identity_requests = 0
        #: The ``iss`` of managed identity tokens, when it must look like Entra ID's (Azurite
        #: accepts only https://sts.windows.net/... issuers); by default this issuer's URL.
        self.managed_identity_issuer: str | None = None

    # -- switches for tests ------------------------------------------------------------------
    def rotate(self, algorithm: str = "RS256", *, publish: bool = True) -> SigningKey:
        """Sign with a new key from now on; publish it in the JWKS unless told not to."""
        self.current_key = SigningKey.generate(algorithm)
        if publish:
            self.published.append(self.current_key)
        return self.current_key

    # -- tokens ------------------------------------------------------------------------------
    def claims(
        self,
        *,
        org: str | None = "ttd",
        scope: str | None = PUBLISH_SCOPE,
        org_number: str | None = None,
        lifetime_seconds: int = 3600,
        audience: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.base_url,
            "sub": f"dev:{org or org_number or 'anonymous'}",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "jti": str(uuid.uuid4()),
        }
        if scope is not None:
            claims["scope"] = scope
        if org is not None:
            claims["urn:altinn:org"] = org
        if org_number is not None:
            claims["urn:altinn:orgNumber"] = org_number
            claims["consumer"] = {"authority": "iso6523-actorid-upis", "ID": f"0192:{org_number}"}
        if audience is not None:
            claims["aud"] = audience
        claims.update(extra)
        return claims

    def sign(self, claims: dict[str, Any], *, key: SigningKey | None = None, **header: Any) -> str:
        key = key or self.current_key
        headers = {"kid": key.kid, **header}
        return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=headers)

    def mint(self, **options: Any) -> str:
        """A token with ``claims(**options)``, signed with the current key."""
        return self.sign(self.claims(**options))

    # -- HTTP --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        prefix = urlsplit(self.base_url).path.rstrip("/")
        app = web.Application()
        app.router.add_get(f"{prefix}/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"{prefix}/jwks", self._jwks)
        app.router.add_post(f"{prefix}/token", self._token)
        app.router.add_get(f"{prefix}/msi/token", self._managed_identity_token)
        return app

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.base_url,
            "jwks_uri": f"{self.base_url.rstrip('/')}/jwks",
            "token_endpoint": f"{self.base_url.rstrip('/')}/token",
            "authorization_endpoint": f"{self.base_url.rstrip('/')}/authorize",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.algorithm for k in self.published}),
            "scopes_supported": [PUBLISH_SCOPE, ADMIN_SCOPE],
        }

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        if not self.available:
            return web.Response(status=503, text="issuer unavailable (dev switch)")
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to)
        return web.json_response(self.discovery_document())

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        if not self.available:
            return web.Response(status=503, text="issuer unavailable (dev switch)")
        return web.json_response({"keys": [key.public_jwk() for key in self.published]})

    async def _token(self, request: web.Request) -> web.Response:
        """OAuth 2.0 client credentials (RFC 6749 section 4.4), secret in the body or Basic."""
        self.token_requests += 1
        if self.token_failure_status is not None:
            return _oauth_error(self.token_failure_status, "temporarily_unavailable")
        form = await request.post()
        client_id, client_secret = (
            str(form.get("client_id", "")),
            str(form.get("client_secret", "")),
        )
        if request.headers.get("Authorization", "").startswith("Basic "):
            import base64

            decoded = base64.b64decode(request.headers["Authorization"][6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type")
        if not client_id or self.clients.get(client_id) != client_secret:
            return _oauth_error(401, "invalid_client")
        scope = str(form.get("scope", ""))
        audience = scope.split(" ")[0].removesuffix("/.default") if scope else None
        token = self.mint(org=None, scope=scope or None, audience=audience, sub=client_id)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        )

    async def _managed_identity_token(self, request: web.Request) -> web.Response:
        """App Service's managed identity endpoint (IDENTITY_ENDPOINT), api-version 2019-08-01."""
        self.identity_requests += 1
        if self.token_failure_status is not None:
            return web.json_response(
                {"statusCode": self.token_failure_status, "message": "dev switch"},
                status=self.token_failure_status,
            )
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return web.json_response({"statusCode": 401, "message": "bad header"}, status=401)
        resource = request.query.get("resource", "")
        client_id = request.query.get("client_id", "system-assigned")
        expires_on = int(time.time()) + 3600
        issuer = {"iss": self.managed_identity_issuer} if self.managed_identity_issuer else {}
        token = self.mint(org=None, scope=None, audience=resource, sub=client_id, **issuer)
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            }
        )


def _oauth_error(status: int, error: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": f"dev issuer: {error}"}, status=status
    )
