"""Process-wide wiring: Settings -> one HTTP session, one key cache, one registry client, one queue
client -> the publish pipeline. Built lazily on the first request, inside the event loop that
serves it, and reused by every later request; nothing is fetched or connected at import time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared import problems
from shared.blobs import StorageBlobStore
from shared.idempotency import IdempotentRecords
from shared.identity import ManagedIdentity
from shared.oidc import OidcSigningKeys
from shared.ports import Clock
from shared.publish import (
    PublishPipeline,
    PublishRequest,
    PublishResponse,
    problem_response,
    trace_id_of,
)
from shared.queue import StorageQueueSink
from shared.records import TableStorage
from shared.registry import ResourceRegistryClient
from shared.registry_cache import CachedPolicyRules
from shared.registry_credentials import credentials_from_settings
from shared.settings import Settings, describe_settings_error, unchecked_audience_warning
from shared.telemetry import NoTelemetry, telemetry_for
from shared.timing import SYSTEM_CLOCK
from shared.tokens import TokenVerifier

log = logging.getLogger("events.runtime")


@dataclass(slots=True)
class Runtime:
    """Everything one event loop needs to publish, and the means to close it."""

    loop: asyncio.AbstractEventLoop
    settings: Settings
    session: aiohttp.ClientSession
    rules: CachedPolicyRules
    sink: StorageQueueSink
    records: IdempotentRecords | None
    blobs: StorageBlobStore | None
    identity: ManagedIdentity
    pipeline: PublishPipeline

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        token_http_client: Any = None,
        queue_client_options: dict[str, Any] | None = None,
        table_client_options: dict[str, Any] | None = None,
        blob_client_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        telemetry: NoTelemetry | None = None,
        records_clock: Clock = SYSTEM_CLOCK,
    ) -> Runtime:
        """Create the clients. Must run inside the event loop that will use them.

        ``token_http_client`` replaces the requests session msal uses for registry tokens,
        ``queue_client_options``, ``table_client_options`` and ``blob_client_options`` extend
        the storage clients', and
        ``clock`` is the registry cache's clock and ``records_clock`` the clock of publishing
        (records, leases, send budgets; the tests use them for their own certificate authority
        and time); ``telemetry`` replaces the one the global OpenTelemetry provider
        decides on (tests give one with in-memory exporters).
        """
        loop = asyncio.get_running_loop()
        audience_warning = unchecked_audience_warning(settings)
        if audience_warning:
            log.warning(audience_warning)
        telemetry = telemetry if telemetry is not None else telemetry_for()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
            raise_for_status=False,
            trace_configs=_client_tracing() if telemetry.enabled else None,
        )
        verifier = TokenVerifier(
            trusted_issuers=settings.trusted_issuers,
            keys=OidcSigningKeys(session),
            audience=settings.audience,
            clock_skew_seconds=settings.clock_skew_seconds,
        )
        registry = ResourceRegistryClient(
            session,
            base_url=settings.registry_url,
            timeout_seconds=settings.registry_timeout_seconds,
            credentials=credentials_from_settings(settings, http_client=token_http_client),
        )
        rules = CachedPolicyRules(
            registry,
            ttl=settings.registry_cache_seconds,
            negative_ttl=settings.registry_negative_cache_seconds,
            stale=settings.registry_stale_seconds,
            max_entries=settings.registry_cache_size,
            max_negative_entries=settings.registry_negative_cache_size,
            lookups_per_minute=settings.registry_lookups_per_minute,
            clock=clock,
        )
        identity = ManagedIdentity()
        sink = StorageQueueSink.from_settings(settings, identity, **(queue_client_options or {}))
        records = None
        if settings.idempotency_window_hours > 0:
            records = IdempotentRecords(
                TableStorage.from_settings(settings, identity, **(table_client_options or {})),
                prefix=settings.idempotency_table,
                window_seconds=settings.idempotency_window_hours * 3600,
                budget_seconds=settings.queue_timeout_seconds,
                clock=records_clock,
            )
        blobs = StorageBlobStore.from_settings(settings, identity, **(blob_client_options or {}))
        if blobs is None:
            log.warning(
                "no blob service (EVENTS_BLOB_ACCOUNT_URL, or a BlobEndpoint in "
                "EVENTS_QUEUE_CONNECTION): events too large for one queue message get 413"
            )
        pipeline = PublishPipeline(
            verifier=verifier,
            rules=rules,
            sink=sink,
            publish_scope=settings.publish_scope,
            admin_scope=settings.admin_scope,
            max_body_bytes=settings.max_body_bytes,
            max_batch_events=settings.max_batch_events,
            queue_timeout_seconds=settings.queue_timeout_seconds,
            lookups_per_minute=settings.registry_lookups_per_minute,
            records=records,
            records_required=settings.idempotency_required,
            blobs=blobs,
            max_event_bytes=settings.max_event_bytes,
            telemetry=telemetry,
            clock=records_clock,
            commit_before_answer=settings.commit_before_answer,
        )
        return cls(loop, settings, session, rules, sink, records, blobs, identity, pipeline)

    async def close(self) -> None:
        await self.pipeline.close()  # sends and record settlements still under way
        await self.rules.close()
        await self.sink.close()
        if self.records is not None:
            await self.records.close()
        if self.blobs is not None:
            await self.blobs.close()
        await self.identity.close()
        await self.session.close()


def _client_tracing() -> list[Any]:
    """The registry's and the key discovery's HTTP calls as client spans (dependencies), with
    OpenTelemetry's maintained aiohttp instrumentation, when it is installed."""
    try:
        from opentelemetry.instrumentation.aiohttp_client import create_trace_config
    except ImportError:
        return []
    return [create_trace_config()]


_current: Runtime | None = None


def current_runtime() -> Runtime:
    """The runtime of the running event loop, built from the environment on first use.

    Raises the settings' ValidationError when the configuration is invalid; it is read again
    on the next request, so fixing the app settings takes effect without a redeploy.
    """
    global _current
    loop = asyncio.get_running_loop()
    if _current is None or _current.loop is not loop:
        _current = Runtime.build(Settings())  # type: ignore[call-arg]
    return _current


async def close_current_runtime() -> None:
    global _current
    if _current is not None and not _current.loop.is_closed():
        await _current.close()
    _current = None


async def handle(request: PublishRequest) -> PublishResponse:
    """Serve one request with the current runtime; a broken configuration is a 500, not a crash."""
    try:
        runtime = current_runtime()
    except Exception as error:  # the settings' ValidationError, or a client that cannot be built
        log.error("cannot serve /events: %s", describe_settings_error(error))
        return problem_response(
            problems.internal_error(),
            instance=request.path,
            trace_id=trace_id_of(request.headers),
        )
    return await runtime.pipeline.handle(request)


async def drop_expired_records() -> list[str]:
    """Drop the records tables of generations that no longer count (the timer function's work);
    their names. Nothing to do when de-duplication is off."""
    runtime = current_runtime()
    if runtime.records is None:
        return []
    dropped = await runtime.records.drop_expired_tables()
    if dropped:
        log.info("dropped %d expired records tables: %s", len(dropped), ", ".join(dropped))
    return dropped
