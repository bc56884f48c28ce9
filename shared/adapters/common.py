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


#: Azurite's well-known development account (what ``UseDevelopmentStorage=true`` means), and its
#: services' ports.
_DEVELOPMENT_ACCOUNT = (
    "devstoreaccount1",
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
)
_DEVELOPMENT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}


def service_endpoint(connection_string: str, service: str) -> tuple[str, str | None, str, str]:
    """What a connection string names for ``service`` ("queue" or "table"): the account name,
    its key (None when it has a shared access signature instead), the service's endpoint (no
    trailing slash) and the signature's query ("" with a key)."""
    parts = _connection_parts(connection_string)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        development, development_key = _DEVELOPMENT_ACCOUNT
        port = _DEVELOPMENT_PORTS[service]
        return development, development_key, f"http://127.0.0.1:{port}/{development}", ""
    named = parts.get(f"{service}endpoint")
    account = parts.get("accountname") or (named or "").split("//", 1)[-1].split(".", 1)[0]
    endpoint = named or (
        f"{parts.get('defaultendpointsprotocol', 'https')}://{account}.{service}."
        f"{parts.get('endpointsuffix', 'core.windows.net')}"
    )
    signature = parts.get("sharedaccesssignature", "").lstrip("?")
    key = None if signature else parts["accountkey"]
    return account, key, endpoint.rstrip("/"), signature


def table_endpoint(connection_string: str) -> tuple[str, str, str]:
    """The account name, key and table endpoint a connection string names."""
    account, key, endpoint, _ = service_endpoint(connection_string, "table")
    assert key is not None, "the records table is reached with an account key or an identity"
    return account, key, endpoint
