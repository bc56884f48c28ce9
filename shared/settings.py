"""One typed Settings object, read once from the environment (Functions app settings in Azure).

Every variable is prefixed ``EVENTS_``; the README's configuration table and the Bicep templates
list the same names. Validation happens here, at start-up, so that a misconfiguration is reported
once with the variable's name instead of surfacing as a confusing failure on some later request.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_HOSTS = frozenset({"localhost"})
QUEUE_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


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


class Settings(BaseSettings):
    """Configuration of the publish endpoint. Field ``x`` is read from ``EVENTS_X``."""

    model_config = SettingsConfigDict(env_prefix="EVENTS_", frozen=True, extra="ignore")

    trusted_issuers: Annotated[tuple[str, ...], NoDecode] = Field(
        description="Comma-separated issuer URLs whose tokens are accepted."
    )
    audience: str | None = Field(default=None, description="Required `aud`, when set.")
    publish_scope: str = "altinn:events.publish"
    admin_scope: str = "altinn:events.publish.admin"
    clock_skew_seconds: int = Field(default=10, ge=0, le=300)

    registry_url: str = Field(description="Resource Registry base URL (…/resourceregistry/api/v1).")
    registry_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    queue_connection: SecretStr | None = None
    queue_account_url: str | None = None
    queue_name: str = "events-registration"
    queue_timeout_seconds: float = Field(default=3.0, gt=0, le=60)

    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)

    @field_validator("trusted_issuers", mode="before")
    @classmethod
    def _split_issuers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_issuers")
    @classmethod
    def _check_issuers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("EVENTS_TRUSTED_ISSUERS must name at least one issuer URL")
        for issuer in value:
            require_https_unless_loopback(issuer, "EVENTS_TRUSTED_ISSUERS")
        return value

    @field_validator("registry_url")
    @classmethod
    def _check_registry_url(cls, value: str) -> str:
        return require_https_unless_loopback(value.rstrip("/"), "EVENTS_REGISTRY_URL")

    @field_validator("queue_account_url")
    @classmethod
    def _check_queue_account_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return require_https_unless_loopback(value.strip(), "EVENTS_QUEUE_ACCOUNT_URL")

    @field_validator("queue_name")
    @classmethod
    def _check_queue_name(cls, value: str) -> str:
        if not QUEUE_NAME_PATTERN.fullmatch(value) or "--" in value:
            raise ValueError(
                "EVENTS_QUEUE_NAME must be 3-63 lower-case letters, digits and single hyphens, "
                f"starting and ending with a letter or digit; got {value!r}"
            )
        return value

    @field_validator("audience")
    @classmethod
    def _blank_audience_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _require_a_queue(self) -> Settings:
        connection = self.queue_connection.get_secret_value() if self.queue_connection else ""
        if not connection.strip() and not self.queue_account_url:
            raise ValueError(
                "set EVENTS_QUEUE_CONNECTION (a storage connection string; "
                "'UseDevelopmentStorage=true' for Azurite) or EVENTS_QUEUE_ACCOUNT_URL "
                "(https://<account>.queue.core.windows.net, used with the managed identity)"
            )
        if self.publish_scope == self.admin_scope:
            raise ValueError("EVENTS_PUBLISH_SCOPE and EVENTS_ADMIN_SCOPE must differ")
        return self


def describe_settings_error(error: Exception) -> str:
    """A one-paragraph, secret-free explanation of why the configuration was refused."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"])
        name = f"EVENTS_{location.upper()}" if location else "configuration"
        lines.append(f"{name}: {item['msg']}")
    return "invalid configuration: " + "; ".join(lines)
