"""One typed Settings object, read once from the environment (Functions app settings in Azure).

Every variable is prefixed ``EVENTS_``; the README's configuration table and the Bicep templates
list the same names. Validation happens here, at start-up, so that a misconfiguration is reported
once with the variable's name instead of surfacing as a confusing failure on some later request.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.adapters.common import has_table_endpoint
from shared.core.idempotency import minimum_window_seconds
from shared.core.urls import is_loopback_host, require_https_unless_loopback

QUEUE_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
TABLE_PREFIX_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]{2,39}")


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
    registry_cache_seconds: float = Field(default=300.0, ge=0, le=86400)
    registry_negative_cache_seconds: float = Field(default=30.0, ge=0, le=86400)
    registry_stale_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    registry_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    registry_negative_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    registry_lookups_per_minute: int = Field(default=120, ge=1, le=100_000)
    registry_subscription_key: SecretStr | None = None
    registry_token_scope: str | None = None
    registry_client_id: str | None = None
    registry_client_secret: SecretStr | None = None
    registry_authority: str | None = None

    queue_connection: SecretStr | None = None
    queue_account_url: str | None = None
    queue_name: str = "events-registration"
    #: Queues the events are spread over (docs/capacity.md): 1 is EVENTS_QUEUE_NAME itself;
    #: N > 1 are <EVENTS_QUEUE_NAME>-0 ... -<N-1>, an event's chosen by its identity.
    queue_partitions: int = Field(default=1, ge=1, le=64)
    queue_timeout_seconds: float = Field(default=3.0, gt=0, le=60)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_batch_events: int = Field(default=100, ge=1, le=1000)
    #: The largest event (compact JSON) accepted; over the queue's limit, its data goes to a blob.
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    blob_account_url: str | None = None
    blob_container: str = "events-data"

    idempotency_window_hours: float = Field(default=24.0, ge=0, le=30 * 24)
    idempotency_required: bool = False
    #: Each 200 waits for its record's commit, so that no commit is left running when the
    #: worker is stopped (docs/deploy.md, "When an instance stops").
    commit_before_answer: bool = False
    #: A batch is answered within this (below host.json's functionTimeout, 30 s).
    batch_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    idempotency_table: str = "eventids"
    table_account_url: str | None = None
    #: The cyclic garbage collector's first threshold for the worker process (shared/app/
    #: runtime.py ``tune_garbage_collection``); 0 leaves Python's (700).
    gc_threshold: int = Field(default=50_000, ge=0, le=1_000_000)

    @field_validator(
        "audience",
        "queue_connection",
        "queue_account_url",
        "table_account_url",
        "blob_account_url",
        "registry_subscription_key",
        "registry_token_scope",
        "registry_client_id",
        "registry_client_secret",
        "registry_authority",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An app setting left empty means "not set", not "set to the empty string"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("*", mode="before")
    @classmethod
    def _no_unresolved_reference(cls, value: object) -> object:
        """In Azure a Key Vault reference the platform could not resolve reaches the app as its
        own text; sent on as a secret it would only fail later, somewhere less clear."""
        if isinstance(value, str) and value.lstrip().startswith("@Microsoft.KeyVault("):
            raise ValueError(
                "is a Key Vault reference that the platform did not resolve: check the app's "
                "identity has Key Vault Secrets User on the vault, keyVaultReferenceIdentity, "
                "and the vault's network (docs/deploy.md, Secrets)"
            )
        return value

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
        if value is None:
            return None
        return require_https_unless_loopback(value, "EVENTS_QUEUE_ACCOUNT_URL")

    @field_validator("table_account_url")
    @classmethod
    def _check_table_account_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return require_https_unless_loopback(value, "EVENTS_TABLE_ACCOUNT_URL")

    @field_validator("blob_account_url")
    @classmethod
    def _check_blob_account_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return require_https_unless_loopback(value, "EVENTS_BLOB_ACCOUNT_URL")

    @field_validator("blob_container")
    @classmethod
    def _check_blob_container(cls, value: str) -> str:
        if not QUEUE_NAME_PATTERN.fullmatch(value) or "--" in value:
            raise ValueError(
                "EVENTS_BLOB_CONTAINER must be 3-63 lower-case letters, digits and single "
                f"hyphens, starting and ending with a letter or digit; got {value!r}"
            )
        return value

    @field_validator("idempotency_table")
    @classmethod
    def _check_idempotency_table(cls, value: str) -> str:
        if not TABLE_PREFIX_PATTERN.fullmatch(value):
            raise ValueError(
                "EVENTS_IDEMPOTENCY_TABLE must be 3-40 letters and digits, starting with a "
                f"letter (the tables are named <it><generation number>); got {value!r}"
            )
        return value

    @field_validator("registry_authority")
    @classmethod
    def _check_authority(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme != "https":
            raise ValueError(
                "EVENTS_REGISTRY_AUTHORITY must be an https:// URL such as "
                f"https://login.microsoftonline.com/<tenant>; got {value!r}"
            )
        return value

    @field_validator("queue_name")
    @classmethod
    def _check_queue_name(cls, value: str) -> str:
        if not QUEUE_NAME_PATTERN.fullmatch(value) or "--" in value:
            raise ValueError(
                "EVENTS_QUEUE_NAME must be 3-63 lower-case letters, digits and single hyphens, "
                f"starting and ending with a letter or digit; got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _require_a_queue(self) -> Settings:
        if self.queue_connection is None and self.queue_account_url is None:
            raise ValueError(
                "set EVENTS_QUEUE_CONNECTION (a storage connection string; "
                "'UseDevelopmentStorage=true' for Azurite) or EVENTS_QUEUE_ACCOUNT_URL "
                "(https://<account>.queue.core.windows.net, used with the managed identity)"
            )
        if (
            self.idempotency_window_hours > 0
            and self.table_account_url is None
            and not (
                self.queue_connection is not None
                and has_table_endpoint(self.queue_connection.get_secret_value())
            )
        ):
            raise ValueError(
                "idempotent publish needs a table service: EVENTS_QUEUE_CONNECTION with a "
                "TableEndpoint, or EVENTS_TABLE_ACCOUNT_URL (https://<account>.table.core."
                "windows.net, with the managed identity); or set "
                "EVENTS_IDEMPOTENCY_WINDOW_HOURS=0 to publish without de-duplication"
            )
        window = self.idempotency_window_hours * 3600
        shortest = minimum_window_seconds(self.queue_timeout_seconds)
        if 0 < window < shortest:
            raise ValueError(
                "EVENTS_IDEMPOTENCY_WINDOW_HOURS must be 0 (off) or at least "
                f"{shortest / 3600:.3g} hours ({shortest:g} s) with EVENTS_QUEUE_TIMEOUT_SECONDS="
                f"{self.queue_timeout_seconds:g}: a window holds several leases of a publish "
                "(five queue time budgets each); got "
                f"{self.idempotency_window_hours:g}"
            )
        if (
            self.queue_partitions > 1
            and len(self.queue_name) + 1 + len(str(self.queue_partitions - 1)) > 63
        ):
            raise ValueError(
                "with EVENTS_QUEUE_PARTITIONS > 1 the queues are <EVENTS_QUEUE_NAME>-<n>, at most "
                f"63 characters: shorten EVENTS_QUEUE_NAME ({len(self.queue_name)} characters)"
            )
        if self.publish_scope == self.admin_scope:
            raise ValueError("EVENTS_PUBLISH_SCOPE and EVENTS_ADMIN_SCOPE must differ")
        if self.registry_client_secret is not None:
            missing = [
                name
                for name, value in (
                    ("EVENTS_REGISTRY_TOKEN_SCOPE", self.registry_token_scope),
                    ("EVENTS_REGISTRY_CLIENT_ID", self.registry_client_id),
                    ("EVENTS_REGISTRY_AUTHORITY", self.registry_authority),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    "EVENTS_REGISTRY_CLIENT_SECRET (client credentials) also needs "
                    + ", ".join(missing)
                )
        elif self.registry_authority is not None:
            raise ValueError(
                "EVENTS_REGISTRY_AUTHORITY is used only with EVENTS_REGISTRY_CLIENT_SECRET; "
                "without a secret the managed identity is used and needs no authority"
            )
        return self


#: Issuers whose tokens carry no ``aud`` at all: Altinn's exchanged tokens drop Maskinporten's.
AUDIENCELESS_ISSUER_DOMAINS = ("altinn.no", "altinn.cloud")


def _sets_no_audience(host: str | None) -> bool:
    """Altinn's issuers, and loopback ones (local runs with the dev issuer)."""
    if is_loopback_host(host):
        return True
    host = (host or "").lower()
    return any(
        host == domain or host.endswith("." + domain) for domain in AUDIENCELESS_ISSUER_DOMAINS
    )


def unchecked_audience_warning(settings: Settings) -> str | None:
    """A warning when tokens are accepted whatever their audience, from issuers that have one.

    With ``EVENTS_AUDIENCE`` unset, ``aud`` is not checked. That is right for Altinn's issuer,
    whose tokens have no ``aud``; for any other issuer it means a token that issuer made for
    another service is accepted here too.
    """
    if settings.audience is not None:
        return None
    others = [
        issuer
        for issuer in settings.trusted_issuers
        if not _sets_no_audience(urlsplit(issuer).hostname)
    ]
    if not others:
        return None
    return (
        "EVENTS_AUDIENCE is not set, so tokens from " + ", ".join(others) + " are accepted "
        "whatever audience (aud) they were issued for; set EVENTS_AUDIENCE to this service's "
        "audience unless those issuers' tokens carry none"
    )


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
