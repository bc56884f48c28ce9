"""CPU per event without I/O: our whole pipeline against the CloudEvents SDK merely parsing.

Ours: ``PublishPipeline.handle`` with the real token verifier (OIDC key cache warmed against the
dev issuer), the real registry cache (warmed against the dev registry), validation, and the
queue message encoded (JSON, then Base64) by a sink that stores nothing. Baseline: the official
SDK's ``cloudevents.v1.http.from_http`` on the same headers and body. Both run interleaved in one
process, round after round, and each figure is the median over rounds.

Every size is sent in structured mode (``application/cloudevents+json``); the typical event also
in binary mode (bench/events.py ``binary``: the attributes as ``ce-`` headers, the data as the
body), measured in the same rounds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.events import SIZES, binary, body
from bench.services import registry
from devtools.issuer import DevIssuer
from devtools.stack import LocalStack
from shared.adapters.oidc import OidcSigningKeys
from shared.adapters.registry import ResourceRegistryClient
from shared.adapters.tokens import TokenVerifier
from shared.core.pipeline import Limits, Ports, PublishPipeline, PublishRequest
from shared.core.ports import BlobStore
from shared.core.registry_cache import CachedPolicyRules
from shared.core.telemetry import NoTelemetry, Telemetry


class EncodingSink:
    """Encodes the queue message as the Storage SDK would (Base64), and drops it."""

    #: as shared/adapters/queue.py's sink: 64 KiB after Base64
    max_message_bytes = 64 * 1024 // 4 * 3
    destinations: Sequence[str] = ("bench-cpu",)  # the queue names, for telemetry: none

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, message: bytes, partition: int = 0) -> None:
        base64.b64encode(message)
        self.sent += 1

    async def close(self) -> None:
        return None


#: The content modes measured, in the order of the figures; binary only for these sizes.
MODES = ("structured", "binary")
BINARY_SIZES = ("typical",)


@dataclass
class CpuFigure:
    size: str
    body_bytes: int
    ours_us: float
    ours_fresh_token_us: float
    sdk_us: float
    #: structured or binary (results saved before binary was measured have no mode: structured).
    mode: str = "structured"

    @property
    def ratio(self) -> float:
        return self.ours_us / self.sdk_us

    @property
    def fresh_token_ratio(self) -> float:
        return self.ours_fresh_token_us / self.sdk_us


def time_per_call(run: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - started) / calls * 1e6


async def time_per_handle(
    pipeline: PublishPipeline, requests: list[PublishRequest], calls: int
) -> float:
    started = time.perf_counter()
    for n in range(calls):
        response = await pipeline.handle(requests[n % len(requests)])
        if response.status != 200:
            raise RuntimeError(f"benchmark request failed: {response.status} {response.body!r}")
    return (time.perf_counter() - started) / calls * 1e6


class _Setup:
    """Real verifier and registry cache, warmed against dev servers; a sink that stores nothing."""

    def __init__(self, session: aiohttp.ClientSession, issuer: DevIssuer, registry_url: str):
        self.issuer = issuer
        self.keys = OidcSigningKeys(session)
        self.rules = CachedPolicyRules(
            ResourceRegistryClient(session, base_url=registry_url, timeout_seconds=2),
            ttl=3600,
            negative_ttl=30,
            stale=3600,
            max_entries=1000,
        )

    def pipeline(
        self,
        *,
        telemetry: Telemetry | None = None,
        blobs: BlobStore | None = None,
        max_body_bytes: int = 256 * 1024,
    ) -> PublishPipeline:
        """A pipeline with a new token memory (the key cache and the rules stay warm), with
        NoTelemetry unless ``telemetry`` is given, and without a blob store (events over one
        queue message get 413) unless ``blobs`` is given."""
        verifier = TokenVerifier(
            trusted_issuers=(self.issuer.base_url,),
            keys=self.keys,
            audience=None,
            clock_skew_seconds=10,
        )
        return PublishPipeline(
            Ports(verifier=verifier, rules=self.rules, sink=EncodingSink(), blobs=blobs),
            Limits(max_body_bytes=max_body_bytes),
            telemetry=telemetry if telemetry is not None else NoTelemetry(),
        )


@contextlib.asynccontextmanager
async def warm_setup() -> AsyncIterator[_Setup]:
    """The dev issuer and the dev registry on loopback (no Azurite: nothing is stored), and a
    ``_Setup`` against them; the production log level (host.json's Warning)."""
    logging.getLogger("events").setLevel(logging.WARNING)
    with LocalStack(registry=registry(), azurite_services=()) as stack:
        assert stack.issuer is not None
        async with aiohttp.ClientSession() as session:
            setup = _Setup(session, stack.issuer, stack.registry_url)
            try:
                yield setup
            finally:
                await setup.rules.close()


def _request(mode: str, event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """The headers (lower case, no Authorization) and body of ``event`` sent in ``mode``."""
    if mode == "binary":
        return binary(event)
    return {"content-type": "application/cloudevents+json"}, body(event)


def with_token(headers: dict[str, str], payload: bytes, bearer: str) -> PublishRequest:
    return PublishRequest(
        "POST", "/events", {"authorization": f"Bearer {bearer}", **headers}, payload
    )


async def _measure_size(
    setup: _Setup, size: str, event: dict[str, Any], modes: tuple[str, ...], rounds: int, calls: int
) -> list[CpuFigure]:
    from cloudevents.v1.http import from_http

    same_token = setup.issuer.mint(lifetime_seconds=7200)
    new_tokens = [setup.issuer.mint(lifetime_seconds=7200, jti=str(n)) for n in range(calls)]
    warm = setup.pipeline()
    ours: dict[str, list[PublishRequest]] = {}
    ours_new_tokens: dict[str, list[PublishRequest]] = {}
    sdk: dict[str, Callable[[], object]] = {}
    payloads: dict[str, bytes] = {}
    for mode in modes:
        headers, payload = _request(mode, event)
        ours[mode] = [with_token(headers, payload, same_token)]
        ours_new_tokens[mode] = [with_token(headers, payload, token) for token in new_tokens]
        sdk[mode] = functools.partial(from_http, headers, payload)
        payloads[mode] = payload
        await time_per_handle(warm, ours[mode], 50)  # warm: keys, rules, code paths
        time_per_call(sdk[mode], 50)
    times: dict[tuple[str, str], list[float]] = {
        (mode, kind): [] for mode in modes for kind in ("ours", "new", "sdk")
    }
    gc.collect()
    for _ in range(rounds):
        for mode in modes:
            times[mode, "ours"].append(await time_per_handle(warm, ours[mode], calls))
            times[mode, "sdk"].append(time_per_call(sdk[mode], calls))
            # a token never seen before on every request: the signature is checked every time
            times[mode, "new"].append(
                await time_per_handle(setup.pipeline(), ours_new_tokens[mode], calls)
            )
    return [
        CpuFigure(
            size,
            len(payloads[mode]),
            statistics.median(times[mode, "ours"]),
            statistics.median(times[mode, "new"]),
            statistics.median(times[mode, "sdk"]),
            mode,
        )
        for mode in modes
    ]


async def measure(rounds: int = 15, calls: int = 200) -> list[CpuFigure]:
    async with warm_setup() as setup:
        figures = [
            figure
            for size, make in SIZES.items()
            for figure in await _measure_size(
                setup, size, make(), MODES if size in BINARY_SIZES else MODES[:1], rounds, calls
            )
        ]
    return sorted(figures, key=lambda figure: MODES.index(figure.mode))


if __name__ == "__main__":
    for figure in asyncio.run(measure()):
        print(
            f"{figure.size:8} {figure.mode:10} {figure.body_bytes:6} B  "
            f"ours {figure.ours_us:7.1f} us  "
            f"sdk {figure.sdk_us:7.1f} us  ratio {figure.ratio:.2f}  "
            f"(fresh token every request: {figure.ours_fresh_token_us:7.1f} us, "
            f"{figure.fresh_token_ratio:.2f})"
        )
