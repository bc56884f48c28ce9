"""Large events (the claim check): a 200 KiB event, whose data goes to a blob and whose message
carries ``dataref``, against a 40 KiB one, which fits in one queue message; and small events
with a blob store configured against without one.

In one process, no I/O (bench/cpu.py's set-up; a blob store that stores nothing, with the real
one's names and URLs), interleaved round after round, medians of the per-round ratios:

- the typical (~2 KB) event through a pipeline with a blob store and through one without (the
  claim check must cost nothing for events that fit);
- the 40 KiB and the 200 KiB event (compact JSON, what the limits measure) through the pipeline
  with the blob store.

End to end at concurrency ``LEVEL``: the two events through ``make serve``'s dev host against
Azurite (de-duplication on, as by default), alternating run by run, a fixed number of requests
each; the dev host's and Azurite's CPU per request, latency, and after each run the messages on
the queue and the blobs (one per 200 KiB event published, none for the 40 KiB one).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from azure.storage.blob.aio import ContainerClient

from bench.cpu import time_per_handle, warm_setup, with_token
from bench.endtoend import LevelResult, measure_run
from bench.events import body, compact_size, of_size, typical
from bench.services import BLOB_CONTAINER, Stack, ours_case
from devtools.azurite import ACCOUNT, DEFAULT_PORTS
from shared.adapters.blobs import StorageBlobStore
from shared.core.model import StoredData

#: The two large events, by their compact JSON's size.
SIZES = {"40 KiB": 40 * 1024, "200 KiB": 200 * 1024}
SMALL, LARGE = SIZES
LEVEL = 8
#: The pipelines' body limit: the endpoint's default.
MAX_BODY_BYTES = 1024 * 1024


class DiscardingBlobStore(StorageBlobStore):
    """The real blob store's names and URLs; its writes store nothing."""

    async def put(self, name: str, data: StoredData) -> None:
        return None

    async def delete(self, name: str) -> None:
        return None


@dataclass
class ClaimCheckCpu:
    #: Calls per round: of the typical event, and of each large one.
    calls: int
    large_calls: int
    #: Compact JSON bytes of each large event.
    sizes: dict[str, int]
    #: µs per event, per round: the typical event without and with a blob store, and each large
    #: event (with the blob store).
    typical_us: list[float]
    typical_blobs_us: list[float]
    large_us: dict[str, list[float]]

    @property
    def blobs_ratio(self) -> float:
        """The typical event with a blob store over without, the median of the rounds' ratios."""
        return statistics.median(
            b / a for a, b in zip(self.typical_us, self.typical_blobs_us, strict=True)
        )

    @property
    def large_ratio(self) -> float:
        """The 200 KiB event over the 40 KiB one, the median of the rounds' ratios."""
        pairs = zip(self.large_us[SMALL], self.large_us[LARGE], strict=True)
        return statistics.median(large / small for small, large in pairs)


async def measure_cpu(rounds: int = 15, calls: int = 200) -> ClaimCheckCpu:
    large_calls = max(10, calls // 4)
    container = ContainerClient(
        f"http://127.0.0.1:{DEFAULT_PORTS['blob']}/{ACCOUNT}", BLOB_CONTAINER
    )
    async with container, warm_setup() as setup:
        token = setup.issuer.mint(lifetime_seconds=7200)
        headers = {"content-type": "application/cloudevents+json"}
        plain = setup.pipeline(max_body_bytes=MAX_BODY_BYTES)
        blobs = setup.pipeline(blobs=DiscardingBlobStore(container), max_body_bytes=MAX_BODY_BYTES)
        small = [with_token(headers, body(typical()), token)]
        events = {name: of_size(size) for name, size in SIZES.items()}
        large = {name: [with_token(headers, body(event), token)] for name, event in events.items()}
        for pipeline in (plain, blobs):
            await time_per_handle(pipeline, small, 50)  # warm
        for requests in large.values():
            await time_per_handle(blobs, requests, 5)
        times: dict[str, list[float]] = {"plain": [], "blobs": [], **{name: [] for name in large}}
        gc.collect()
        for round_number in range(rounds):
            pair = [("plain", plain), ("blobs", blobs)]
            for name, pipeline in pair if round_number % 2 == 0 else pair[::-1]:
                times[name].append(await time_per_handle(pipeline, small, calls))
            for name, requests in large.items():
                times[name].append(await time_per_handle(blobs, requests, large_calls))
    return ClaimCheckCpu(
        calls=calls,
        large_calls=large_calls,
        sizes={name: compact_size(event) for name, event in events.items()},
        typical_us=times["plain"],
        typical_blobs_us=times["blobs"],
        large_us={name: times[name] for name in large},
    )


def measure_http(
    stack: Stack,
    *,
    rounds: int = 3,
    requests: int = 1000,
    warmup_requests: int = 100,
    progress: Callable[[str], None] = print,
) -> LevelResult:
    tokens = stack.tokens(8)
    cases = {name: [ours_case(name, of_size(size), tokens, 200)] for name, size in SIZES.items()}
    level = LevelResult(LEVEL, {name: [] for name in SIZES})
    stack.restart_azurite()
    stack.start_devhost()
    for round_number in range(rounds):
        for name in list(SIZES)[:: 1 if round_number % 2 == 0 else -1]:
            spec = stack.load_spec(
                "ours",
                cases[name],
                concurrency=LEVEL,
                requests=requests,
                warmup_requests=warmup_requests,
            )
            run = measure_run(stack, spec, blobs=True)
            level.runs[name].append(run)
            progress(
                f"claim check round {round_number + 1}/{rounds} {name:7} "
                f"{run['throughput']:6.0f} req/s  p99 {run['p99_ms']:6.1f} ms  "
                f"errors {run['errors']}  queue {run['on_queue']}/{run['enqueued_expected']}  "
                f"blobs {run['blobs']}"
            )
    return level


if __name__ == "__main__":
    figures = asyncio.run(measure_cpu())
    print(
        f"typical: {statistics.median(figures.typical_us):.1f} us without a blob store, "
        f"{statistics.median(figures.typical_blobs_us):.1f} us with ({figures.blobs_ratio:.3f}x)"
    )
    for name, times in figures.large_us.items():
        print(f"{name} ({figures.sizes[name]:,} B): {statistics.median(times):.1f} us")
    print(f"{LARGE} over {SMALL}: {figures.large_ratio:.2f}x")
