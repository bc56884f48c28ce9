"""What the adapters share, and nothing else: reading a storage connection string, whether the
environment configures an HTTP proxy, and how an attacker-chosen value is quoted in a message.
The one module an adapter may import besides the core (docs/architecture.md)."""

from __future__ import annotations

import os
import urllib.request

#: At most this much of an attacker-chosen value (a ``kid``, an algorithm) is echoed.
MAX_SHOWN_CHARACTERS = 64


def shown(value: object) -> str:
    """An attacker-chosen value as it may appear in an answer or a log: quoted, and cut short."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARACTERS else text[: MAX_SHOWN_CHARACTERS - 1] + "…"


def environment_configures_http() -> bool:
    """True when proxy variables or a netrc file could change how the queue client connects.

    The SDK's aiohttp session honours them (``trust_env``) by looking both up again, in a thread,
    on every request: about a quarter of the function's CPU per publish (docs/performance.md).
    Without any of them that lookup always finds nothing, so it is switched off; with one, the
    SDK's default behaviour is kept.
    """
    if urllib.request.getproxies():
        return True
    return os.path.exists(os.environ.get("NETRC") or os.path.expanduser("~/.netrc"))


def _connection_parts(connection_string: str) -> dict[str, str]:
    """A connection string's ``name=value`` parts, names in lower case."""
    parts = {}
    for part in connection_string.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            parts[name.strip().lower()] = value.strip()
    return parts


def reaches_service(connection_string: str, service: str) -> bool:
    """Whether a storage connection string reaches ``service`` ("blob", "queue" or "table"):
    it names that endpoint, is Azurite's shorthand, or names an account without any endpoints
    (then every service of the account is reached)."""
    parts = _connection_parts(connection_string)
    if f"{service}endpoint" in parts or parts.get("usedevelopmentstorage", "").lower() == "true":
        return True
    return "accountname" in parts and not any(name.endswith("endpoint") for name in parts)


def has_table_endpoint(connection_string: str) -> bool:
    """Whether a storage connection string reaches a table service."""
    return reaches_service(connection_string, "table")


def has_blob_endpoint(connection_string: str) -> bool:
    """Whether a storage connection string reaches a blob service."""
    return reaches_service(connection_string, "blob")


#: Azurite's well-known development account (what ``UseDevelopmentStorage=true`` means).
_DEVELOPMENT_ACCOUNT = (
    "devstoreaccount1",
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    "http://127.0.0.1:10002/devstoreaccount1",
)


def table_endpoint(connection_string: str) -> tuple[str, str, str]:
    """The account name, key and table endpoint a connection string names."""
    parts = _connection_parts(connection_string)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return _DEVELOPMENT_ACCOUNT
    account, key = parts["accountname"], parts["accountkey"]
    endpoint = parts.get("tableendpoint")
    if endpoint is None:
        protocol = parts.get("defaultendpointsprotocol", "https")
        suffix = parts.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.table.{suffix}"
    return account, key, endpoint.rstrip("/")
