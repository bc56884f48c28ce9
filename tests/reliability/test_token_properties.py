"""Property-based: whatever bearer token arrives, the answer is 401, or 200 for a valid one.

The tokens are built from parts: a JOSE header and a payload that start valid and get members of
any JSON type and any depth (or are replaced by bytes that are not JSON at all), each segment
Base64url-encoded correctly or not, and a signature that is either real (the issuer's own key,
over exactly those segments) or made up. The real function handler answers (see harness.py);
no answer may be a 5xx or anything but 401 and 200, a 200 must have stored the event, and a
refused token must never be logged as an error or with a traceback.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.issuer import DevIssuer
from tests.reliability.harness import EXAMPLES, Harness
from tests.support import VALID_EVENT

#: Claims the property leaves alone: they decide the scope and the registry rule, not validity.
AUTHORIZING_CLAIMS = frozenset({"scope", "urn:altinn:scope", "urn:altinn:org"})
HEADER_NAMES = ["alg", "kid", "typ", "cty", "crit", "b64", "jku", "jwk", "x5u", "x5c", "zip"]
CLAIM_NAMES = ["iss", "exp", "nbf", "iat", "aud", "sub", "jti", "consumer", "urn:altinn:orgNumber"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
shallow_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


class Deep(str):
    """JSON text nested too deeply for ``json.dumps`` to write (it would recurse as deep)."""


@st.composite
def deep_values(draw: st.DrawFn) -> Deep:
    """A value nested up to 3000 levels: past the JSON decoder's recursion limit."""
    text = json.dumps(draw(json_scalars))
    for _ in range(draw(st.integers(min_value=1, max_value=3000))):
        text = f"[{text}]" if draw(st.booleans()) else f'{{"k":{text}}}'
    return Deep(text)


json_values = shallow_values | deep_values()


def to_json(value: Any) -> str:
    if isinstance(value, Deep):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def members(names: list[str], exclude: frozenset[str] = frozenset()) -> st.SearchStrategy[Any]:
    name = st.sampled_from(names) | st.text(max_size=8)
    return st.dictionaries(name.filter(lambda n: n not in exclude), json_values, max_size=3)


@st.composite
def segments(draw: st.DrawFn, valid: dict[str, Any], names: list[str], **kw: Any) -> str:
    """``valid`` with some members changed, as JSON or as bytes that are not; then Base64url,
    well or badly."""
    form = draw(st.sampled_from(["json", "json", "json", "bytes", "text"]))
    if form == "json":
        value = {**valid, **draw(members(names, **kw))}
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            value = draw(json_values)  # not an object at all
        raw = to_json(value).encode()
    elif form == "bytes":
        raw = draw(st.binary(max_size=40))
    else:
        raw = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
    encoded = b64url(raw)
    damage = draw(st.sampled_from(["none", "none", "none", "pad", "alphabet", "cut", "alien"]))
    if damage == "pad":
        encoded += "=" * draw(st.integers(min_value=1, max_value=3))
    elif damage == "alphabet":
        encoded = encoded.replace("-", "+").replace("_", "/") + draw(st.sampled_from("+/*.~"))
    elif damage == "cut":
        encoded = encoded[: draw(st.integers(min_value=0, max_value=max(0, len(encoded) - 1)))]
    elif damage == "alien":
        encoded += draw(st.text(min_size=1, max_size=3))
    return encoded


@st.composite
def tokens(draw: st.DrawFn, issuer: DevIssuer) -> tuple[str, bool]:
    """A token, and whether it is the untouched valid one (which must get a 200)."""
    key = issuer.current_key
    valid_header = {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}
    valid_claims = issuer.claims(lifetime_seconds=3600)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        header = b64url(json.dumps(valid_header).encode())
        payload = b64url(json.dumps(valid_claims).encode())
        untouched = True
    else:
        header = draw(segments(valid_header, HEADER_NAMES))
        payload = draw(segments(valid_claims, CLAIM_NAMES, exclude=AUTHORIZING_CLAIMS))
        untouched = False
    if draw(st.integers(min_value=0, max_value=3)) > 0:
        algorithm = jwt.get_algorithm_by_name(key.algorithm)
        prepared = algorithm.prepare_key(key.private_key)
        signed = algorithm.sign(f"{header}.{payload}".encode(), prepared)
        signature = b64url(signed)
    else:
        signature = draw(st.sampled_from(["", "c2ln", b64url(bytes(256))]))
        untouched = False
    return f"{header}.{payload}.{signature}", untouched


class ErrorRecords(logging.Handler):
    """Collects every log record at ERROR or above, and any record with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.bad.append(record)


@pytest.fixture(scope="module")
def error_records() -> Iterator[ErrorRecords]:
    handler = ErrorRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture(scope="module")
def token_strategy(issuer_service: DevIssuer) -> st.SearchStrategy[tuple[str, bool]]:
    issuer_service.available = True
    return tokens(issuer_service)


@EXAMPLES
@given(data=st.data())
def test_any_token_is_a_401_or_a_200(
    harness: Harness,
    token_strategy: st.SearchStrategy[tuple[str, bool]],
    error_records: ErrorRecords,
    data: st.DataObject,
) -> None:
    token, untouched = data.draw(token_strategy)
    event = {**VALID_EVENT, "id": str(uuid.uuid4())}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response = harness.call(json.dumps(event).encode(), headers)
    hypothesis.event(f"status {response.status_code}")
    assert response.status_code in (200, 401), response.get_body()
    if untouched:
        assert response.status_code == 200, response.get_body()
    if response.status_code == 401:
        problem = json.loads(response.get_body())
        assert problem["type"] in (
            "urn:altinn:events:problem:invalid-token",
            "urn:altinn:events:problem:missing-token",
        )
        assert len(response.headers["WWW-Authenticate"]) < 300
    harness.check(response, event if response.status_code == 200 else None)
    assert error_records.bad == [], [record.getMessage() for record in error_records.bad]
