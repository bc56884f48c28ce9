"""CPU per event without I/O: our whole pipeline against the CloudEvents SDK merely parsing.

Ours: ``PublishPipeline.handle`` with the real token verifier (OIDC key cache warmed against the
dev issuer), the real registry cache (warmed against the dev registry), validation, and the
queue message encoded (JSON, then Base64) by a sink that stores nothing. Baseline: the official
SDK's ``cloudevents.v1.http.from_http`` on the same headers and body. Both run interleaved in one
process, round after round, and each figure is the median over rounds.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.events import SIZES, body
from bench.services import registry
from devtools.issuer import DevIssuer
from devtools.stack import LocalStack
from shared.oidc import OidcSigningKeys
from shared.publish import PublishPipeline, PublishRequest
from shared.registry import ResourceRegistryClient
from shared.registry_cache import CachedPolicyRules
from shared.tokens import TokenVerifier


class EncodingSink:
    """Encodes the queue message as the Storage SDK would (Base64), and drops it."""

    max_message_bytes = 64 * 1024 // 4 * 3  # as shared/queue.py's sink: 64 KiB after Base64

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, message: bytes) -> None:
        base64.b64encode(message)
        self.sent += 1

    async def close(self) -> None:
        return None


@dataclass
class CpuFigure:
    size: str
    body_bytes: int
    ours_us: float
    ours_fresh_token_us: float
    sdk_us: float

    @property
    def ratio(self) -> float:
        return self.ours_us / self.sdk_us

    @property
    def fresh_token_ratio(self) -> float:
        return self.ours_fresh_token_us / self.sdk_us


def _time_per_call(run: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - started) / calls * 1e6


async def _time_per_handle(
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

    def pipeline(self) -> PublishPipeline:
        """A pipeline with a new token memory (the key cache and the rules stay warm)."""
        verifier = TokenVerifier(
            trusted_issuers=(self.issuer.base_url,),
            keys=self.keys,
            audience=None,
            clock_skew_seconds=10,
        )
        return PublishPipeline(
            verifier=verifier,
            rules=self.rules,
            sink=EncodingSink(),
            publish_scope="altinn:events.publish",
            admin_scope="altinn:events.publish.admin",
            max_body_bytes=256 * 1024,
        )


async def _measure_size(
    setup: _Setup, size: str, payload: bytes, rounds: int, calls: int
) -> CpuFigure:
    from cloudevents.v1.http import from_http

    headers = {"content-type": "application/cloudevents+json"}

    def request(bearer: str) -> PublishRequest:
        return PublishRequest(
            "POST", "/events", {"authorization": f"Bearer {bearer}", **headers}, payload
        )

    def sdk_parse() -> object:
        return from_http(headers, payload)

    warm = setup.pipeline()
    same_token = [request(setup.issuer.mint(lifetime_seconds=7200))]
    new_tokens = [
        request(setup.issuer.mint(lifetime_seconds=7200, jti=str(n))) for n in range(calls)
    ]
    await _time_per_handle(warm, same_token, 50)  # warm: keys, rules, code paths
    _time_per_call(sdk_parse, 50)
    ours, ours_new_tokens, sdk = [], [], []
    gc.collect()
    for _ in range(rounds):
        ours.append(await _time_per_handle(warm, same_token, calls))
        sdk.append(_time_per_call(sdk_parse, calls))
        # a token never seen before on every request: the signature is checked every time
        ours_new_tokens.append(await _time_per_handle(setup.pipeline(), new_tokens, calls))
    return CpuFigure(
        size,
        len(payload),
        statistics.median(ours),
        statistics.median(ours_new_tokens),
        statistics.median(sdk),
    )


async def measure(rounds: int = 15, calls: int = 200) -> list[CpuFigure]:
    logging.getLogger("events").setLevel(logging.WARNING)  # as in production's host.json
    with LocalStack(registry=registry()) as stack:  # its Azurite idles: the sink stores nothing
        assert stack.issuer is not None
        async with aiohttp.ClientSession() as session:
            setup = _Setup(session, stack.issuer, stack.registry_url)
            figures = [
                await _measure_size(setup, size, body(make()), rounds, calls)
                for size, make in SIZES.items()
            ]
            await setup.rules.close()
    return figures


if __name__ == "__main__":
    for figure in asyncio.run(measure()):
        print(
            f"{figure.size:8} {figure.body_bytes:6} B  ours {figure.ours_us:7.1f} us  "
            f"sdk {figure.sdk_us:7.1f} us  ratio {figure.ratio:.2f}  "
            f"(fresh token every request: {figure.ours_fresh_token_us:7.1f} us, "
            f"{figure.fresh_token_ratio:.2f})"
        )
