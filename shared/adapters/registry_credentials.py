"""Outbound credentials for registries that need them; all optional, off by default.

Altinn's Resource Registry reads are anonymous. A registry behind an API gateway may want an
``Ocp-Apim-Subscription-Key``; one behind Entra ID (or any OAuth server) a bearer token, acquired
with msal: the managed identity in Azure, or client credentials elsewhere. msal is synchronous,
so tokens are acquired in a worker thread; a token is reused until shortly before it expires, so
the common request pays neither a thread hop nor a token call.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.core.ports import RegistryCredentials, RegistryUnavailable

if TYPE_CHECKING:
    import requests

SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
#: Get a new token this long before the current one expires (or at half its life if shorter).
REFRESH_MARGIN_SECONDS = 300.0
TOKEN_TIMEOUT_SECONDS = 10.0


class NoCredentials:
    async def headers(self) -> Mapping[str, str]:
        return {}


class CombinedCredentials:
    def __init__(self, *parts: RegistryCredentials) -> None:
        self._parts = parts

    async def headers(self) -> Mapping[str, str]:
        merged: dict[str, str] = {}
        for part in self._parts:
            merged.update(await part.headers())
        return merged


class SubscriptionKey:
    def __init__(self, key: str) -> None:
        self._headers = {SUBSCRIPTION_KEY_HEADER: key}

    async def headers(self) -> Mapping[str, str]:
        return self._headers


TokenAcquirer = Callable[[], Mapping[str, Any]]


class BearerToken:
    """A bearer token from an msal-style call (a dict with ``access_token`` and ``expires_in``,
    or ``error``), cached here until shortly before expiry."""

    def __init__(
        self,
        acquire: TokenAcquirer,
        *,
        timeout_seconds: float = TOKEN_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._acquire = acquire
        self._timeout = timeout_seconds
        self._clock = clock
        self._headers: dict[str, str] | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def headers(self) -> Mapping[str, str]:
        if self._headers is not None and self._clock() < self._renew_at:
            return self._headers
        async with self._lock:  # one acquisition at a time; the others reuse its token
            if self._headers is None or self._clock() >= self._renew_at:
                await self._renew()
        assert self._headers is not None
        return self._headers

    async def _renew(self) -> None:
        try:
            result = await asyncio.wait_for(asyncio.to_thread(self._acquire), self._timeout)
        except TimeoutError:
            raise RegistryUnavailable("no registry token within the time limit") from None
        except Exception as error:  # msal raises for transport failures; all mean "no token"
            raise RegistryUnavailable(f"no registry token: {type(error).__name__}") from None
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            reason = result.get("error") or "no access_token in the answer"
            raise RegistryUnavailable(f"no registry token: {reason}")
        lifetime = float(result.get("expires_in") or 0)
        self._headers = {"Authorization": f"Bearer {token}"}
        self._renew_at = self._clock() + max(
            0.0, min(lifetime - REFRESH_MARGIN_SECONDS, lifetime / 2)
        )


def _resource_of(scope: str) -> str:
    """Managed identity asks for a resource, not a scope: ``api://x/.default`` -> ``api://x``."""
    return scope.removesuffix("/.default")


def _is_entra_authority(authority: str) -> bool:
    from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

    host = (urlsplit(authority).hostname or "").lower()
    return host in WELL_KNOWN_AUTHORITY_HOSTS or host.endswith(".ciamlogin.com")


def default_http_client(timeout_seconds: float = TOKEN_TIMEOUT_SECONDS) -> requests.Session:
    """What msal talks through: a requests session whose every call has a timeout."""
    import requests

    session = requests.Session()
    session.request = functools.partial(session.request, timeout=timeout_seconds)  # type: ignore[method-assign]
    return session


def confidential_client_acquirer(
    *,
    client_id: str,
    client_secret: str,
    authority: str,
    scope: str,
    http_client: requests.Session,
) -> TokenAcquirer:
    """Client credentials against an Entra ID tenant or any OpenID Connect authority."""
    import msal

    application: msal.ConfidentialClientApplication | None = None

    def acquire() -> Mapping[str, Any]:
        nonlocal application
        if application is None:  # built on first use: it fetches the authority's metadata
            location: dict[str, str] = (
                {"authority": authority}
                if _is_entra_authority(authority)
                else {"oidc_authority": authority}
            )
            application = msal.ConfidentialClientApplication(
                client_id, client_credential=client_secret, http_client=http_client, **location
            )
        result: Mapping[str, Any] = application.acquire_token_for_client(scopes=[scope])
        return result

    return acquire


def managed_identity_acquirer(
    *, scope: str, client_id: str | None, http_client: requests.Session
) -> TokenAcquirer:
    """The app's managed identity (user-assigned when ``client_id`` is given)."""
    import msal

    identity: dict[str, Any] = (
        msal.UserAssignedManagedIdentity(client_id=client_id)
        if client_id
        else msal.SystemAssignedManagedIdentity()
    )
    client = msal.ManagedIdentityClient(identity, http_client=http_client)

    def acquire() -> Mapping[str, Any]:
        result: Mapping[str, Any] = client.acquire_token_for_client(resource=_resource_of(scope))
        return result

    return acquire


def registry_credentials(
    *,
    subscription_key: str | None,
    token_scope: str | None,
    client_id: str | None,
    client_secret: str | None,
    authority: str | None,
    timeout_seconds: float,
    http_client: requests.Session | None = None,
) -> RegistryCredentials:
    """The credentials the registry's settings name: a subscription key, a bearer token for
    ``token_scope`` (client credentials with a secret, else the managed identity), both, or
    none."""
    parts: list[RegistryCredentials] = []
    if subscription_key is not None:
        parts.append(SubscriptionKey(subscription_key))
    if token_scope:
        session = http_client or default_http_client()
        if client_secret is not None:
            assert client_id
            assert authority
            acquire = confidential_client_acquirer(
                client_id=client_id,
                client_secret=client_secret,
                authority=authority,
                scope=token_scope,
                http_client=session,
            )
        else:
            # A user-assigned identity is named by EVENTS_REGISTRY_CLIENT_ID, else by
            # AZURE_CLIENT_ID (what azure-identity reads, and what infra/ sets for the app).
            acquire = managed_identity_acquirer(
                scope=token_scope,
                client_id=client_id or os.environ.get("AZURE_CLIENT_ID") or None,
                http_client=session,
            )
        parts.append(BearerToken(acquire, timeout_seconds=timeout_seconds))
    if not parts:
        return NoCredentials()
    return parts[0] if len(parts) == 1 else CombinedCredentials(*parts)
