"""Where tokens and authorization data may be sent: over HTTPS, or plain HTTP to this machine
only (local runs and tests). Every configured URL and every discovered jwks_uri is checked."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost"})


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only hosts where plain HTTP is allowed."""
    if not host:
        return False
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https_unless_loopback(url: str, variable: str) -> str:
    """Refuse URLs that would send tokens or authorization data in clear text over a network."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{variable} must be an absolute https:// URL, got {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"{variable} must use https:// (plain http is allowed only for 127.0.0.1, ::1 and "
            f"localhost), got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{variable} must not have a query or fragment, got {url!r}")
    return url
