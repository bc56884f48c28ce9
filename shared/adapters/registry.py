"""Resource Registry client: a resource's flattened policy rules (Altinn's read contract).

``GET {base}/resource/{identifier}/policy/rules`` answers an array of
``{subject: [TV], action: TV, resource: [TV]}`` with ``TV = {type, value}``: one entry per
subject x action x resource combination of the resource's XACML policy. 404 means the resource
is unknown or has no policy. Anything else that is not a clean 200 is a failure the caller must
treat as "cannot tell", never as permission.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from shared.core.model import Attribute, PolicyRule
from shared.core.ports import RegistryCredentials, RegistryUnavailable

#: A policy larger than this is not a policy we want to evaluate on the request path.
MAX_RESPONSE_BYTES = 1024 * 1024


class _TypeValue(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    type: str
    value: str


class _RuleDto(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    subject: list[_TypeValue] = []
    action: _TypeValue
    resource: list[_TypeValue] = []


_RULES = TypeAdapter(list[_RuleDto])


def parse_rules(body: bytes) -> tuple[PolicyRule, ...]:
    """Rules from a registry response body; RegistryUnavailable when it is not the contract."""
    try:
        dtos = _RULES.validate_json(body)
    except ValidationError as error:
        raise RegistryUnavailable(
            f"the registry's policy rules do not follow the contract ({error.error_count()} "
            "problems)"
        ) from None
    return tuple(
        PolicyRule(
            subject=tuple(Attribute(item.type, item.value) for item in dto.subject),
            action=Attribute(dto.action.type, dto.action.value),
            resource=tuple(Attribute(item.type, item.value) for item in dto.resource),
        )
        for dto in dtos
    )


class ResourceRegistryClient:
    """Reads policy rules over HTTP with one pooled session and a total time limit per call."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        timeout_seconds: float,
        credentials: RegistryCredentials | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._timeout_seconds = timeout_seconds
        self._credentials = credentials

    def rules_url(self, identifier: str) -> str:
        return f"{self._base_url}/resource/{quote(identifier, safe='')}/policy/rules"

    async def rules_for(self, identifier: str) -> tuple[PolicyRule, ...] | None:
        """One call, credentials included, within the time limit."""
        try:
            async with asyncio.timeout(self._timeout_seconds):
                return await self._get_rules(identifier)
        except TimeoutError:
            raise RegistryUnavailable(
                f"the registry did not answer within {self._timeout_seconds:g} s"
            ) from None

    async def _get_rules(self, identifier: str) -> tuple[PolicyRule, ...] | None:
        url = self.rules_url(identifier)
        headers = {"Accept": "application/json"}
        if self._credentials is not None:
            headers.update(await self._credentials.headers())
        try:
            # No redirects: a redirect could take the subscription key or the bearer token to
            # another origin (https to http included), and rules from there are not the
            # registry's. A 3xx is a registry failure like any other.
            async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status in (404, 204):
                    return None
                if response.status != 200:
                    raise RegistryUnavailable(f"the registry answered {response.status}")
                if (response.content_length or 0) > MAX_RESPONSE_BYTES:
                    raise RegistryUnavailable("the registry's answer is too large")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise RegistryUnavailable("the registry's answer is too large")
                    chunks.append(chunk)
                body = b"".join(chunks)
        except aiohttp.ClientError as error:
            raise RegistryUnavailable(f"the registry could not be reached: {error}") from None
        return parse_rules(body)
