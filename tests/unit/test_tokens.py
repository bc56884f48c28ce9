"""Bearer token verification with keys held in memory (the key discovery is tested over HTTP in
tests/integration/test_signing_keys.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE, DevIssuer, SigningKey
from shared.adapters.oidc import KeySet, StaticSigningKeys
from shared.adapters.tokens import TokenVerifier
from shared.core.model import Publisher
from shared.core.ports import InvalidToken, KeysUnavailable, MissingToken

ISSUER = "https://issuer.example/authentication/api/v1/openid/"


@pytest.fixture(scope="module")
def issuer() -> DevIssuer:
    return DevIssuer(ISSUER)


@pytest.fixture(scope="module")
def other_keys() -> dict[str, SigningKey]:
    return {alg: SigningKey.generate(alg) for alg in ("RS256", "ES256", "ES384")}


def verifier_for(
    issuer: DevIssuer, *keys: SigningKey, audience: str | None = None, skew: int = 10
) -> TokenVerifier:
    published = [issuer.current_key, *keys]
    key_set = KeySet([key.public_jwk() for key in published])
    return TokenVerifier(
        trusted_issuers=(issuer.base_url,),
        keys=StaticSigningKeys({issuer.base_url: key_set}),
        audience=audience,
        clock_skew_seconds=skew,
    )


async def authenticate(verifier: TokenVerifier, token: str) -> Publisher:
    return await verifier.authenticate(f"Bearer {token}")


async def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        await authenticate(verifier, token)
    return str(caught.value)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(claims).encode()),
            b64url(signature),
        ]
    )


async def test_valid_token_gives_the_publisher(issuer: DevIssuer) -> None:
    token = issuer.mint(org="ttd", org_number="991825827", scope=f"{PUBLISH_SCOPE} openid")
    publisher = await authenticate(verifier_for(issuer), token)
    assert publisher.issuer == ISSUER
    assert publisher.org == "ttd"
    assert publisher.org_number == "991825827"
    assert publisher.consumer_org_number == "991825827"
    assert publisher.scopes == {PUBLISH_SCOPE, "openid"}
    assert publisher.has_scope(PUBLISH_SCOPE)
    assert not publisher.has_scope(ADMIN_SCOPE)


async def test_expired_token(issuer: DevIssuer) -> None:
    token = issuer.sign(issuer.claims(exp=int(time.time()) - 60))
    assert "expired" in await rejected(verifier_for(issuer, skew=10), token)


async def test_expiry_within_clock_skew_is_tolerated(issuer: DevIssuer) -> None:
    token = issuer.sign(issuer.claims(exp=int(time.time()) - 5))
    assert (await authenticate(verifier_for(issuer, skew=30), token)).org == "ttd"


async def test_token_not_yet_valid(issuer: DevIssuer) -> None:
    token = issuer.sign(issuer.claims(nbf=int(time.time()) + 600))
    assert "not valid yet" in await rejected(verifier_for(issuer), token)


async def test_token_issued_in_the_future(issuer: DevIssuer) -> None:
    token = issuer.sign(issuer.claims(iat=int(time.time()) + 600))
    assert "not valid yet" in await rejected(verifier_for(issuer), token)


async def test_nbf_within_clock_skew_is_tolerated(issuer: DevIssuer) -> None:
    token = issuer.sign(issuer.claims(nbf=int(time.time()) + 5))
    assert (await authenticate(verifier_for(issuer, skew=30), token)).org == "ttd"


async def test_exp_is_required(issuer: DevIssuer) -> None:
    claims = issuer.claims()
    del claims["exp"]
    assert "'exp'" in await rejected(verifier_for(issuer), issuer.sign(claims))


async def test_untrusted_issuer(issuer: DevIssuer) -> None:
    stranger = DevIssuer("https://evil.example", issuer.current_key)
    assert "not trusted" in await rejected(verifier_for(issuer), stranger.mint())


async def test_issuer_must_match_exactly(issuer: DevIssuer) -> None:
    token = issuer.sign(issuer.claims(iss=ISSUER.rstrip("/")))
    assert "not trusted" in await rejected(verifier_for(issuer), token)


async def test_missing_issuer(issuer: DevIssuer) -> None:
    claims = issuer.claims()
    del claims["iss"]
    assert "'iss'" in await rejected(verifier_for(issuer), issuer.sign(claims))


async def test_audience_checked_when_configured(issuer: DevIssuer) -> None:
    verifier = verifier_for(issuer, audience="https://events.example")
    assert "audience" in await rejected(verifier, issuer.mint(audience="https://other.example"))
    assert "'aud'" in await rejected(verifier, issuer.mint())
    accepted = issuer.sign(issuer.claims(aud=["https://other.example", "https://events.example"]))
    assert (await authenticate(verifier, accepted)).org == "ttd"


async def test_audience_ignored_when_not_configured(issuer: DevIssuer) -> None:
    token = issuer.mint(audience="https://anything.example")
    assert (await authenticate(verifier_for(issuer), token)).org == "ttd"


async def test_alg_none_is_refused(issuer: DevIssuer) -> None:
    token = unsigned({"alg": "none", "typ": "JWT"}, issuer.claims())
    assert "'none' is not accepted" in await rejected(verifier_for(issuer), token)


async def test_hs256_signed_with_the_public_key_is_refused(issuer: DevIssuer) -> None:
    public_pem = issuer.current_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.current_key.kid}
    signing_input = unsigned(header, issuer.claims()).rsplit(".", 1)[0]
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"
    assert "'HS256' is not accepted" in await rejected(verifier_for(issuer), token)


async def test_tampered_payload_fails_the_signature(issuer: DevIssuer) -> None:
    header, _, signature = issuer.mint(org="skd").split(".")
    forged = b64url(json.dumps(issuer.claims(org="ttd")).encode())
    reason = await rejected(verifier_for(issuer), f"{header}.{forged}.{signature}")
    assert "signature does not verify" in reason


async def test_unknown_kid(issuer: DevIssuer, other_keys: dict[str, SigningKey]) -> None:
    token = issuer.sign(issuer.claims(), key=other_keys["RS256"])
    assert "no RS256 signing key with kid" in await rejected(verifier_for(issuer), token)


async def test_algorithm_must_fit_the_key(issuer: DevIssuer) -> None:
    _, payload, signature = issuer.mint().split(".")
    forged = b64url(json.dumps({"alg": "ES256", "kid": issuer.current_key.kid}).encode())
    reason = await rejected(verifier_for(issuer), f"{forged}.{payload}.{signature}")
    assert "no ES256 signing key" in reason


async def test_the_algorithm_a_jwk_names_is_binding(issuer: DevIssuer) -> None:
    token = jwt.encode(
        issuer.claims(),
        issuer.current_key.private_key,
        algorithm="RS384",
        headers={"kid": issuer.current_key.kid},
    )
    assert issuer.current_key.public_jwk()["alg"] == "RS256"
    assert "no RS384 signing key" in await rejected(verifier_for(issuer), token)


@pytest.mark.parametrize("algorithm", ["RS384", "RS512", "PS256"])
async def test_other_rsa_algorithms(issuer: DevIssuer, algorithm: str) -> None:
    key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm)
    token = issuer.sign(issuer.claims(), key=key)
    assert (await authenticate(verifier_for(issuer, key), token)).org == "ttd"


@pytest.mark.parametrize("algorithm", ["ES256", "ES384"])
async def test_ec_algorithms(
    issuer: DevIssuer, other_keys: dict[str, SigningKey], algorithm: str
) -> None:
    key = other_keys[algorithm]
    token = issuer.sign(issuer.claims(), key=key)
    assert (await authenticate(verifier_for(issuer, key), token)).org == "ttd"


async def test_short_rsa_keys_are_refused(issuer: DevIssuer) -> None:
    weak = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256")  # noqa: S505
    with pytest.warns(Warning, match="key"):  # PyJWT warns about signing with it, too
        token = issuer.sign(issuer.claims(), key=weak)
    assert "shorter than 2048" in await rejected(verifier_for(issuer, weak), token)


async def test_token_without_kid_uses_the_only_key(issuer: DevIssuer) -> None:
    token = jwt.encode(issuer.claims(), issuer.current_key.private_key, algorithm="RS256")
    assert (await authenticate(verifier_for(issuer), token)).org == "ttd"


async def test_token_without_kid_is_ambiguous_with_several_keys(
    issuer: DevIssuer, other_keys: dict[str, SigningKey]
) -> None:
    token = jwt.encode(issuer.claims(), issuer.current_key.private_key, algorithm="RS256")
    reason = await rejected(verifier_for(issuer, other_keys["RS256"]), token)
    assert "no 'kid'" in reason


@pytest.mark.parametrize(
    ("scope", "publish", "admin"),
    [
        (PUBLISH_SCOPE, True, False),
        (f"altinn:serviceowner {PUBLISH_SCOPE}", True, False),
        (f"x{PUBLISH_SCOPE}", False, False),
        (f"{PUBLISH_SCOPE}x", False, False),
        (PUBLISH_SCOPE.upper(), False, False),
        ("altinn:events", False, False),
        (f"{PUBLISH_SCOPE},{ADMIN_SCOPE}", False, False),
        (f"{PUBLISH_SCOPE} {ADMIN_SCOPE}", True, True),
        (f"{PUBLISH_SCOPE} somerandomprefix:{ADMIN_SCOPE}", True, False),
        (f"{PUBLISH_SCOPE} {ADMIN_SCOPE.upper()}", True, False),
        ("", False, False),
    ],
)
async def test_scopes_are_whole_case_sensitive_words(
    issuer: DevIssuer, scope: str, publish: bool, admin: bool
) -> None:
    publisher = await authenticate(verifier_for(issuer), issuer.mint(scope=scope))
    assert publisher.has_scope(PUBLISH_SCOPE) is publish
    assert publisher.has_scope(ADMIN_SCOPE) is admin


async def test_scope_from_urn_altinn_scope_and_lists(issuer: DevIssuer) -> None:
    token = issuer.mint(scope=None, **{"urn:altinn:scope": [PUBLISH_SCOPE]})
    assert (await authenticate(verifier_for(issuer), token)).has_scope(PUBLISH_SCOPE)


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Token abc", "Bearerabc"])
async def test_no_bearer_token(issuer: DevIssuer, header: str | None) -> None:
    with pytest.raises(MissingToken):
        await verifier_for(issuer).authenticate(header)


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("Bearer", "no token"),
        ("Bearer   ", "no token"),
        ("Bearer a b", "single compact JWT"),
        ("Bearer " + "a" * 20000, "single compact JWT"),
        ("Bearer abc", "three"),
        ("Bearer a.b.c", "Base64url-encoded JSON"),
        ("Bearer " + b64url(b"[]") + "." + b64url(b"{}") + ".x", "JSON objects"),
    ],
)
async def test_malformed_tokens(issuer: DevIssuer, header: str, fragment: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        await verifier_for(issuer).authenticate(header)
    assert fragment in str(caught.value)


async def test_bearer_scheme_is_case_insensitive(issuer: DevIssuer) -> None:
    publisher = await verifier_for(issuer).authenticate(f"bearer {issuer.mint()}")
    assert publisher.org == "ttd"


async def test_issuer_without_keys_is_unavailable(issuer: DevIssuer) -> None:
    verifier = TokenVerifier(
        trusted_issuers=(ISSUER,),
        keys=StaticSigningKeys({}),
        audience=None,
        clock_skew_seconds=0,
    )
    with pytest.raises(KeysUnavailable):
        await authenticate(verifier, issuer.mint())


def test_symmetric_and_malformed_keys_never_verify() -> None:
    key_set = KeySet([{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, {"kty": "RSA", "kid": "r"}])
    assert len(key_set) == 1
    with pytest.raises(InvalidToken, match="no HS256"):
        key_set.key("h", "HS256")
    with pytest.raises(InvalidToken, match="cannot be loaded"):
        key_set.key("r", "RS256")


class CountingKeys:
    """The issuer's keys in memory, counting how often a signature check needed one."""

    def __init__(self, issuer: DevIssuer) -> None:
        self.inner = StaticSigningKeys({issuer.base_url: KeySet([issuer.current_key.public_jwk()])})
        self.calls = 0

    async def key_for(self, issuer: str, kid: str | None, algorithm: str) -> jwt.PyJWK:
        self.calls += 1
        return await self.inner.key_for(issuer, kid, algorithm)


class WallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def remembering_verifier(issuer: DevIssuer) -> tuple[TokenVerifier, CountingKeys, WallClock]:
    keys, clock = CountingKeys(issuer), WallClock()
    verifier = TokenVerifier(
        trusted_issuers=(issuer.base_url,),
        keys=keys,
        audience=None,
        clock_skew_seconds=10,
        wall_clock=clock,
    )
    return verifier, keys, clock


async def test_a_verified_token_is_not_checked_again(issuer: DevIssuer) -> None:
    verifier, keys, _ = remembering_verifier(issuer)
    token = issuer.mint()
    publishers = [await authenticate(verifier, token) for _ in range(5)]
    assert keys.calls == 1
    assert all(publisher == publishers[0] for publisher in publishers)


async def test_a_remembered_token_is_checked_again_after_its_expiry(issuer: DevIssuer) -> None:
    verifier, keys, clock = remembering_verifier(issuer)
    token = issuer.mint(lifetime_seconds=60)
    await authenticate(verifier, token)
    clock.now += 60 + 10 - 1  # within exp + clock skew
    await authenticate(verifier, token)
    assert keys.calls == 1
    clock.now += 2
    await authenticate(verifier, token)  # (PyJWT itself still sees the real, earlier time)
    assert keys.calls == 2


async def test_a_remembered_token_is_checked_again_after_five_minutes(issuer: DevIssuer) -> None:
    verifier, keys, clock = remembering_verifier(issuer)
    token = issuer.mint(lifetime_seconds=3600)
    await authenticate(verifier, token)
    clock.now += 301
    await authenticate(verifier, token)
    assert keys.calls == 2


async def test_failures_are_never_remembered(issuer: DevIssuer) -> None:
    verifier, keys, _ = remembering_verifier(issuer)
    expired = issuer.sign(issuer.claims(exp=int(time.time()) - 60))
    for _ in range(3):
        await rejected(verifier, expired)
    assert keys.calls == 3


async def test_remembered_tokens_are_bounded(
    issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.adapters.tokens

    monkeypatch.setattr(shared.adapters.tokens, "VERIFIED_TOKEN_CACHE_SIZE", 3)
    verifier, keys, _ = remembering_verifier(issuer)
    tokens = [issuer.mint(jti=str(n)) for n in range(5)]
    for token in tokens:
        await authenticate(verifier, token)
    await authenticate(verifier, tokens[-1])  # still remembered
    assert keys.calls == 5
    await authenticate(verifier, tokens[0])  # evicted: checked again
    assert keys.calls == 6


# -- malformed JOSE: every one is a 401 invalid_token, never an exception of another kind --------


def signed_raw(key: SigningKey, header: bytes, payload: bytes) -> str:
    """A JWS over exactly these header and payload bytes, whatever they hold."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key.private_key))
    return f"{signing_input}.{b64url(signature)}"


@pytest.mark.parametrize(
    "alg", [["RS256"], {"RS256": True}, 256, 2.5, True, None, "", "rs256", "x" * 5000]
)
async def test_an_alg_of_any_json_type_is_refused(issuer: DevIssuer, alg: Any) -> None:
    reason = await rejected(verifier_for(issuer), unsigned({"alg": alg}, issuer.claims()))
    assert "is not accepted" in reason
    assert len(reason) < 200  # the caller's value is echoed cut short


@pytest.mark.parametrize("depth", [100, 2000, 5000])
async def test_deeply_nested_header_or_payload_is_refused(issuer: DevIssuer, depth: int) -> None:
    deep = b"[" * depth + b"]" * depth
    header = b'{"alg":"RS256","x":' + deep + b"}"
    payload = b'{"iss":"' + issuer.base_url.encode() + b'","x":' + deep + b"}"
    verifier = verifier_for(issuer)
    for token in (
        f"{b64url(header)}.{b64url(json.dumps(issuer.claims()).encode())}.c2ln",
        f"{b64url(json.dumps({'alg': 'RS256'}).encode())}.{b64url(payload)}.c2ln",
    ):
        if depth < 1000:  # parses: refused for its signature, like any other forgery
            assert await rejected(verifier, token)
        else:
            assert "not Base64url-encoded JSON" in await rejected(verifier, token)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**400},
        {"exp": [1]},
        {"iat": {"a": 1}},
        {"nbf": "soon"},
        {"sub": ["x"]},
        {"jti": 5},
        {"iss": ["x"]},
        {"consumer": [[["deep"]]]},
        {"urn:altinn:org": {"code": "ttd"}},
    ],
)
async def test_a_signed_token_with_odd_claim_types_is_refused_or_read(
    issuer: DevIssuer, claims: dict[str, Any]
) -> None:
    """Signed by a trusted key, so only the claims' JSON types are odd: a 401 or a publisher."""
    payload = json.dumps({**issuer.claims(), **claims}).encode()
    header = json.dumps({"alg": "RS256", "kid": issuer.current_key.kid}).encode()
    token = signed_raw(issuer.current_key, header, payload)
    try:
        publisher = await authenticate(verifier_for(issuer), token)
    except InvalidToken:
        return
    assert publisher.org is None or isinstance(publisher.org, str)


async def test_a_signed_token_with_an_exp_beyond_a_double_is_refused(issuer: DevIssuer) -> None:
    payload = json.dumps({**issuer.claims(), "exp": 10**400}).encode()
    header = json.dumps({"alg": "RS256", "kid": issuer.current_key.kid}).encode()
    reason = await rejected(verifier_for(issuer), signed_raw(issuer.current_key, header, payload))
    assert reason == "the token is malformed"


@pytest.mark.parametrize(
    "segment",
    ["e30=", "e30", "e3+0", "e3/0", "e30\u00e6", "e", "e30.", "%7B%7D", " e30"],
)
async def test_wrong_base64url_is_refused(issuer: DevIssuer, segment: str) -> None:
    payload = b64url(json.dumps(issuer.claims()).encode())
    token = f"{segment}.{payload}.c2ln"
    with pytest.raises((InvalidToken, MissingToken)):
        await authenticate(verifier_for(issuer), token)


async def test_non_ascii_token_is_refused(issuer: DevIssuer) -> None:
    assert "single compact JWT" in await rejected(verifier_for(issuer), "a\udcff.b.c")


async def test_an_echoed_kid_is_cut_short(issuer: DevIssuer) -> None:
    token = unsigned({"alg": "RS256", "kid": "k" * 11_000}, issuer.claims())
    reason = await rejected(verifier_for(issuer), token)
    assert "k" * 60 in reason
    assert len(reason) < 200
