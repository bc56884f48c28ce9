"""Process-wide wiring: Settings -> one HTTP session, one key cache, one registry client, one queue
client, the records' and the blobs' clients -> the publish pipeline. Built lazily on the first
request, inside the event loop that serves it, and reused by every later request; nothing is
fetched or connected at import time. This is the one place that reads Settings into the
adapters' and the pipeline's parameters.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared.adapters.blobs import StorageBlobStore
from shared.adapters.identity import ManagedIdentity
from shared.adapters.oidc import OidcSigningKeys
from shared.adapters.queue import StorageQueueSink
from shared.adapters.registry import ResourceRegistryClient
from shared.adapters.registry_credentials import registry_credentials
from shared.adapters.tables import TableStorage
from shared.adapters.tokens import TokenVerifier
from shared.app.settings import Settings, describe_settings_error, unchecked_audience_warning
from shared.app.telemetry import telemetry_for
from shared.core import problems
from shared.core.idempotency import COMMIT_LINGER_SECONDS, IdempotentRecords
from shared.core.pipeline import (
    Limits,
    Ports,
    PublishPipeline,
    PublishRequest,
    PublishResponse,
    problem_response,
)
from shared.core.ports import Clock, RegistryCredentials
from shared.core.registry_cache import CachedPolicyRules
from shared.core.telemetry import Telemetry
from shared.core.timing import SYSTEM_CLOCK
from shared.core.tracecontext import trace_id_of

log = logging.getLogger("events.runtime")


def limits_of(settings: Settings) -> Limits:
    """The pipeline's limits and knobs, from the settings."""
    return Limits(
        publish_scope=settings.publish_scope,
        admin_scope=settings.admin_scope,
        max_body_bytes=settings.max_body_bytes,
        max_batch_events=settings.max_batch_events,
        max_event_bytes=settings.max_event_bytes,
        queue_timeout_seconds=settings.queue_timeout_seconds,
        lookups_per_minute=settings.registry_lookups_per_minute,
        records_required=settings.idempotency_required,
        commit_before_answer=settings.commit_before_answer,
        batch_timeout_seconds=settings.batch_timeout_seconds,
    )


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def queue_sink(
    settings: Settings, identity: ManagedIdentity, **client_options: Any
) -> StorageQueueSink:
    """The events queue's sink (or its ``EVENTS_QUEUE_PARTITIONS`` queues):
    ``EVENTS_QUEUE_CONNECTION``, else ``EVENTS_QUEUE_ACCOUNT_URL`` with the managed identity."""
    connection = _secret(settings.queue_connection)
    return StorageQueueSink.connect(
        connection_string=connection,
        account_url=settings.queue_account_url,
        queue_name=settings.queue_name,
        budget_seconds=settings.queue_timeout_seconds,
        credential=identity.credential() if connection is None else None,
        partitions=settings.queue_partitions,
        **client_options,
    )


def record_tables(
    settings: Settings, identity: ManagedIdentity, **transport_options: Any
) -> TableStorage:
    """The records' table service: the ``TableEndpoint`` of ``EVENTS_QUEUE_CONNECTION``, else
    ``EVENTS_TABLE_ACCOUNT_URL`` with the managed identity."""
    connection = _secret(settings.queue_connection)
    from shared.adapters.common import has_table_endpoint

    by_key = connection is not None and has_table_endpoint(connection)
    return TableStorage.connect(
        connection_string=connection if by_key else None,
        account_url=settings.table_account_url,
        credential=None if by_key else identity.credential(),
        **transport_options,
    )


def idempotent_records(
    settings: Settings, identity: ManagedIdentity, clock: Clock = SYSTEM_CLOCK, **options: Any
) -> IdempotentRecords | None:
    """The records of idempotent publish; None when de-duplication is off (a window of 0)."""
    if settings.idempotency_window_hours == 0:
        return None
    return IdempotentRecords(
        record_tables(settings, identity, **options),
        prefix=settings.idempotency_table,
        window_seconds=settings.idempotency_window_hours * 3600,
        budget_seconds=settings.queue_timeout_seconds,
        clock=clock,
        commit_linger_seconds=COMMIT_LINGER_SECONDS,
    )


def blob_store(
    settings: Settings, identity: ManagedIdentity, **client_options: Any
) -> StorageBlobStore | None:
    """The claim check's blobs: the ``BlobEndpoint`` of ``EVENTS_QUEUE_CONNECTION``, else
    ``EVENTS_BLOB_ACCOUNT_URL`` with the managed identity; None with neither."""
    connection = _secret(settings.queue_connection)
    from shared.adapters.common import has_blob_endpoint

    by_key = connection is not None and has_blob_endpoint(connection)
    return StorageBlobStore.connect(
        connection_string=connection if by_key else None,
        account_url=settings.blob_account_url,
        container=settings.blob_container,
        credential=None if by_key or settings.blob_account_url is None else identity.credential(),
        **client_options,
    )


def credentials_of(settings: Settings, *, http_client: Any = None) -> RegistryCredentials:
    return registry_credentials(
        subscription_key=_secret(settings.registry_subscription_key),
        token_scope=settings.registry_token_scope,
        client_id=settings.registry_client_id,
        client_secret=_secret(settings.registry_client_secret),
        authority=settings.registry_authority,
        timeout_seconds=settings.registry_timeout_seconds,
        http_client=http_client,
    )


#: The older generations' thresholds set with ``EVENTS_GC_THRESHOLD``: each collected after this
#: many collections of the one below.
GC_OLDER_THRESHOLDS = (50, 100)


def tune_garbage_collection(threshold: int) -> None:
    """Collect reference cycles after ``threshold`` net allocations instead of Python's 700 (0:
    leave Python's). Nearly everything a request allocates is freed by reference counting; what
    the collector does under load is mostly traverse the objects of the requests in flight (a
    batch's parsed events, its tasks and futures) again and again: at concurrency 32, batches
    of 100 spent about 40% of their CPU in it with Python's 700, and about 12% with 10000 (the
    objects of 32 batches in flight outlive that many allocations); with 50000 (the setting's
    default), about 2% (docs/performance.md)."""
    if threshold > 0:
        gc.set_threshold(threshold, *GC_OLDER_THRESHOLDS)


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
        telemetry: Telemetry | None = None,
        records_clock: Clock = SYSTEM_CLOCK,
    ) -> Runtime:
        """Create the clients. Must run inside the event loop that will use them.

        ``token_http_client`` replaces the requests session msal uses for registry tokens,
        ``queue_client_options``, ``table_client_options`` and ``blob_client_options`` extend
        the storage clients', ``clock`` is the registry cache's clock and ``records_clock`` the
        clock of publishing (records, leases, send budgets; the tests use them for their own
        certificate authority and time); ``telemetry`` replaces the one the global
        OpenTelemetry provider decides on (tests give one with in-memory exporters).
        """
        loop = asyncio.get_running_loop()
        tune_garbage_collection(settings.gc_threshold)
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
            credentials=credentials_of(settings, http_client=token_http_client),
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
        sink = queue_sink(settings, identity, **(queue_client_options or {}))
        records = idempotent_records(
            settings, identity, records_clock, **(table_client_options or {})
        )
        blobs = blob_store(settings, identity, **(blob_client_options or {}))
        if blobs is None:
            log.warning(
                "no blob service (EVENTS_BLOB_ACCOUNT_URL, or a BlobEndpoint in "
                "EVENTS_QUEUE_CONNECTION): events too large for one queue message get 413"
            )
        pipeline = PublishPipeline(
            Ports(verifier=verifier, rules=rules, sink=sink, records=records, blobs=blobs),
            limits_of(settings),
            telemetry=telemetry,
            clock=records_clock,
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
    """The runtime of the running event loop, built from the environment on first use. A
    runtime left from another event loop (tests, a restarted dev host) is retired first.

    Raises the settings' ValidationError when the configuration is invalid; it is read again
    on the next request, so fixing the app settings takes effect without a redeploy.
    """
    global _current
    loop = asyncio.get_running_loop()
    if _current is not None and _current.loop is not loop:
        _retire(_current)
        _current = None
    if _current is None:
        _current = Runtime.build(Settings())  # type: ignore[call-arg]
    return _current


def _retire(runtime: Runtime) -> None:
    """Close a runtime of another event loop on that loop, where its clients live, when it still
    runs; a loop that is closed (or stopped) took its connections with it."""
    if runtime.loop.is_running() and not runtime.loop.is_closed():
        asyncio.run_coroutine_threadsafe(runtime.close(), runtime.loop)
    else:
        log.info("dropping the runtime of an event loop that no longer runs")


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
