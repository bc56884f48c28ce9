"""The load generator: a separate process that sends requests with N concurrent workers.

``python -m bench.load SPEC.json`` reads a spec (written by the benchmark that starts it), runs
it, and prints one JSON result on stdout. Three targets:

- ``ours``: ``POST /events`` on the dev host over aiohttp, one keep-alive connection per worker,
  cycling through the spec's request ``cases`` (token pool, body template, Content-Type,
  expected status, and how many events one request carries: 1, or a batch's size; or a replay
  of an event published before, due to be answered ``Idempotent-Replayed: true``);
- ``raw``: the baseline, ``send_message`` straight to the same queue service with
  ``azure.storage.queue.aio.QueueClient`` and ``TextBase64EncodePolicy``: what the function does
  for an accepted event, without the function;
- ``raw-floor``: the storage floor of a de-duplicated publish, without the function: per
  request a conditional insert of a small record (``azure.data.tables.aio.TableClient``
  ``create_entity``, which fails if the key is taken), the same ``send_message``, and an update
  of the record with ``If-Match`` its etag after the send's answer (``update_entity``, replace
  mode): the storage work the function does for a new event, with the same SDKs configured the
  same way (``client_options``).

A run is a warm-up (not measured) and then either a fixed number of requests or a fixed duration.
With ``rate`` set, request n is not started before ``start + n / rate`` (an open-loop schedule
with at most ``concurrency`` requests in flight; the soak uses it). With ``window_seconds`` set,
per-window statistics are reported as well (latency percentiles, errors, and the RSS of
``watch_pid`` and of the processes in ``also_watch`` if given, and, with ``probe_url``, the
longest a liveness probe of that URL waited for an answer).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import math
import sys
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ID_PLACEHOLDER = "__EVENT_ID__"
#: The status recorded for a replay's 200 that was not answered as a replay (it was published
#: again); -1 is no HTTP answer at all.
NOT_REPLAYED = -2


@dataclass(frozen=True)
class Case:
    """One kind of request: a body with ``ID_PLACEHOLDER`` once per event, tokens to rotate, the
    status due, and how many events the request carries (each placeholder gets a distinct id; a
    200 stands for that many messages on the queue, a batch's 207 for those it accepted)."""

    name: str
    body: str
    tokens: Sequence[str]
    expect: int
    weight: int = 1
    content_type: str = "application/cloudevents+json"
    events: int = 1
    #: The request repeats an event published before: due is a 200 with
    #: ``Idempotent-Replayed: true`` (a 200 without it counts as status NOT_REPLAYED), and no
    #: new message on the queue.
    replay: bool = False

    def __post_init__(self) -> None:
        if self.events > 1 and self.body.count(ID_PLACEHOLDER) != self.events:
            raise ValueError(f"case {self.name}: {self.events} events need as many id placeholders")

    @functools.cached_property
    def _parts(self) -> list[str]:
        return self.body.split(ID_PLACEHOLDER)

    def render(self, number: int, run_id: str) -> str:
        """The body of request ``number``: event ids ``{run_id}-{number}``, or in a batch
        ``{run_id}-{number}-{k}`` for its k-th event."""
        if self.events == 1:
            return self.body.replace(ID_PLACEHOLDER, f"{run_id}-{number}")
        parts = self._parts
        pieces = [parts[0]]
        for k, part in enumerate(parts[1:]):
            pieces.append(f"{run_id}-{number}-{k}")
            pieces.append(part)
        return "".join(pieces)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of unsorted samples (NaN for none)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, from /proc (None when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class _Window:
    started: float
    latencies: array[float] = field(default_factory=lambda: array("d"))
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    probe_max_ms: float = 0.0


class _Recorder:
    """Latencies (ms) and outcomes of the measured phase, overall and per window."""

    def __init__(
        self,
        window_seconds: float | None,
        watch_pid: int | None,
        also_watch: dict[str, int] | None = None,
    ) -> None:
        self.latencies: array[float] = array("d")
        self.statuses: Counter[int] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.ok = 0
        self.errors = 0
        self.window_seconds = window_seconds
        self.watch_pid = watch_pid
        self.also_watch = also_watch or {}
        self.windows: list[dict[str, Any]] = []
        self.exceptions: Counter[str] = Counter()
        self.probe_max_ms = 0.0
        #: When the outstanding probe was sent (None: none outstanding).
        self.probe_sent: float | None = None
        self._window: _Window | None = None
        self.started = 0.0

    def start(self, now: float) -> None:
        self.started = now
        if self.window_seconds:
            self._window = _Window(now)
            if self.watch_pid:
                self.windows.append(
                    {
                        "t": 0.0,
                        "requests": 0,
                        "rss_kib": rss_kib(self.watch_pid),
                        "other_rss_kib": self._other_rss(),
                    }
                )

    def _other_rss(self) -> dict[str, int | None]:
        return {name: rss_kib(pid) for name, pid in self.also_watch.items()}

    def record(self, now: float, latency_ms: float, status: int, case: Case) -> None:
        self.latencies.append(latency_ms)
        self.statuses[status] += 1
        if status == case.expect:
            if status == 200:
                self.ok += 1
        else:
            self.errors += 1
            self.unexpected[f"{case.name}:{status}"] += 1
        window = self._window
        if window is not None:
            window.latencies.append(latency_ms)
            window.statuses[status] += 1
            if status != case.expect:
                window.errors += 1
            self.tick(now)

    def probed(self, latency_ms: float) -> None:
        """One liveness probe of ``probe_url`` answered (or gave up) after ``latency_ms``."""
        self.probe_max_ms = max(self.probe_max_ms, latency_ms)
        if self._window is not None:
            self._window.probe_max_ms = max(self._window.probe_max_ms, latency_ms)

    def tick(self, now: float) -> None:
        window = self._window
        if window is None or self.window_seconds is None:
            return
        if now - window.started >= self.window_seconds:
            self.windows.append(self._summary(window, now))
            self._window = _Window(now)

    def finish(self, now: float) -> None:
        window = self._window
        if window is not None and window.latencies:
            self.windows.append(self._summary(window, now))
        self._window = None

    def _summary(self, window: _Window, now: float) -> dict[str, Any]:
        elapsed = now - window.started
        if self.probe_sent is not None:  # a probe still waiting counts in this window too
            window.probe_max_ms = max(window.probe_max_ms, (now - self.probe_sent) * 1000)
        return {
            "t": round(now - self.started, 3),
            "requests": len(window.latencies),
            "rate": len(window.latencies) / elapsed if elapsed > 0 else math.nan,
            "p50_ms": percentile(window.latencies, 0.50),
            "p99_ms": percentile(window.latencies, 0.99),
            "max_ms": max(window.latencies, default=math.nan),
            "errors": window.errors,
            "statuses": {str(k): v for k, v in sorted(window.statuses.items())},
            "probe_max_ms": window.probe_max_ms,
            "rss_kib": rss_kib(self.watch_pid) if self.watch_pid else None,
            "other_rss_kib": self._other_rss(),
        }


#: Sends request ``number`` of a case; its status, and how many of its events were published
#: (every event of a 200; of a batch's 207, the ones its body counts as accepted).
Send = Callable[[int, Case], Awaitable[tuple[int, int]]]


def _cycle(cases: Sequence[Case]) -> list[Case]:
    """The cases in a fixed interleaved order, each as often as its weight."""
    order: list[Case] = []
    remaining = {case.name: case.weight for case in cases}
    while any(remaining.values()):
        for case in cases:
            if remaining[case.name]:
                order.append(case)
                remaining[case.name] -= 1
    return order


async def _drive(
    send: Send,
    cases: Sequence[Case],
    *,
    concurrency: int,
    count: int | None,
    duration: float | None,
    rate: float | None,
    recorder: _Recorder | None,
    first_number: int,
    probe_url: str | None = None,
) -> tuple[int, float, int]:
    """Run one phase; return (requests completed, seconds, events published)."""
    order = _cycle(cases)
    numbers = itertools.count()
    completed = 0
    published = 0
    started = time.perf_counter()
    deadline = started + duration if duration is not None else math.inf
    if recorder is not None:
        recorder.start(started)
    last = started

    async def worker() -> None:
        nonlocal completed, published, last
        while True:
            n = next(numbers)
            if count is not None and n >= count:
                return
            if rate is not None:
                due = started + n / rate
                now = time.perf_counter()
                if due > now:
                    await asyncio.sleep(due - now)
            if time.perf_counter() >= deadline:
                return
            case = order[n % len(order)]
            sent = time.perf_counter()
            try:
                status, events = await send(first_number + n, case)
            except Exception as error:  # any failure to get an answer is an error, never a crash
                status, events = -1, 0  # no HTTP answer: always an error
                if recorder is not None:
                    recorder.exceptions[type(error).__name__] += 1
            done = time.perf_counter()
            last = max(last, done)
            completed += 1
            published += events
            if recorder is not None:
                recorder.record(done, (done - sent) * 1000, status, case)

    probing = (
        asyncio.create_task(_probe(probe_url, recorder))
        if probe_url is not None and recorder is not None
        else None
    )
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if probing is not None:
        probing.cancel()
    if recorder is not None:
        recorder.finish(last)
    return completed, last - started, published


async def _probe(url: str, recorder: _Recorder, interval: float = 0.5) -> None:
    """Ask ``url`` twice a second (any HTTP answer will do) and record how long it took: a
    stalled dependency shows up as a long probe, independently of the load."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            started = recorder.probe_sent = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError):
                pass  # the time it took still says how long the dependency did not answer
            recorder.probe_sent = None
            recorder.probed((time.perf_counter() - started) * 1000)
            await asyncio.sleep(interval)


def _accepted(status: int, answer: bytes) -> int:
    """How many events of a batch were published: its answer's ``accepted`` (200 or 207)."""
    if status not in (200, 207):
        return 0
    try:
        return int(json.loads(answer)["accepted"])
    except (ValueError, KeyError, TypeError):
        return 0


async def _run_ours(spec: dict[str, Any], cases: list[Case], run: Callable[..., Any]) -> Any:
    url = spec["url"]
    run_id = spec["run_id"]
    connector = aiohttp.TCPConnector(limit=spec["concurrency"], limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=spec.get("timeout_seconds", 30))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(number: int, case: Case) -> tuple[int, int]:
            token = case.tokens[number % len(case.tokens)] if case.tokens else None
            headers = {"Content-Type": case.content_type}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            async with session.post(
                url, data=case.render(number, run_id).encode(), headers=headers
            ) as r:
                answer = await r.read()
                if case.replay and r.status == 200:
                    if r.headers.get("Idempotent-Replayed") == "true":
                        return 200, 0
                    return NOT_REPLAYED, 1
                if case.events == 1:
                    return r.status, int(r.status == 200)
                return r.status, _accepted(r.status, answer)

        return await run(send)


async def _run_raw(spec: dict[str, Any], cases: list[Case], run: Callable[..., Any]) -> Any:
    from azure.storage.queue import TextBase64EncodePolicy
    from azure.storage.queue.aio import QueueClient

    run_id = spec["run_id"]
    client = QueueClient.from_connection_string(
        spec["connection_string"],
        spec["queue_name"],
        message_encode_policy=TextBase64EncodePolicy(),
        **spec.get("client_options", {}),
    )
    async with client:

        async def send(number: int, case: Case) -> tuple[int, int]:
            await client.send_message(case.render(number, run_id))
            return 200, 1

        return await run(send)


#: The table of ``raw-floor``'s records.
FLOOR_TABLE = "benchfloor"


async def _run_floor(spec: dict[str, Any], cases: list[Case], run: Callable[..., Any]) -> Any:
    import hashlib

    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode
    from azure.data.tables.aio import TableServiceClient
    from azure.storage.queue import TextBase64EncodePolicy
    from azure.storage.queue.aio import QueueClient

    run_id = spec["run_id"]
    options = spec.get("client_options", {})
    queue = QueueClient.from_connection_string(
        spec["connection_string"],
        spec["queue_name"],
        message_encode_policy=TextBase64EncodePolicy(),
        **options,
    )
    service = TableServiceClient.from_connection_string(spec["connection_string"], **options)
    async with queue, service:
        table = await service.create_table_if_not_exists(FLOOR_TABLE)

        async def send(number: int, case: Case) -> tuple[int, int]:
            row = f"{run_id}-{number}"
            entity = {
                "PartitionKey": hashlib.sha256(row.encode()).hexdigest()[:2],
                "RowKey": row,
                "fingerprint": "0" * 64,
                "state": "reserved",
            }
            created = await table.create_entity(entity)
            await queue.send_message(case.render(number, run_id))
            await table.update_entity(
                {**entity, "state": "committed"},
                mode=UpdateMode.REPLACE,
                etag=created["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return 200, 1

        return await run(send)


async def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    cases = [Case(**case) for case in spec["cases"]]
    concurrency = int(spec["concurrency"])
    recorder = _Recorder(spec.get("window_seconds"), spec.get("watch_pid"), spec.get("also_watch"))

    async def run(send: Send) -> dict[str, Any]:
        warm_count = spec.get("warmup_requests")
        warm_duration = spec.get("warmup_seconds")
        warm_published = 0
        warm_done = 0
        if warm_count or warm_duration:
            warm_done, _, warm_published = await _drive(
                send,
                cases,
                concurrency=concurrency,
                count=warm_count,
                duration=warm_duration,
                rate=spec.get("rate"),
                recorder=None,
                first_number=10**9,
            )
        cpu_before = time.process_time()
        completed, seconds, published = await _drive(
            send,
            cases,
            concurrency=concurrency,
            count=spec.get("requests"),
            duration=spec.get("duration_seconds"),
            rate=spec.get("rate"),
            recorder=recorder,
            first_number=0,
            probe_url=spec.get("probe_url"),
        )
        cpu_seconds = time.process_time() - cpu_before
        return {
            "target": spec["target"],
            # this process's CPU in the measured phase (for raw: the enqueue's cost)
            "cpu_seconds": cpu_seconds,
            "concurrency": concurrency,
            "requests": completed,
            "seconds": seconds,
            "throughput": completed / seconds if seconds > 0 else math.nan,
            # events published (a batch's 200 all of its events, a 207 those it accepted)
            "events": published,
            "event_throughput": published / seconds if seconds > 0 else math.nan,
            "p50_ms": percentile(recorder.latencies, 0.50),
            "p95_ms": percentile(recorder.latencies, 0.95),
            "p99_ms": percentile(recorder.latencies, 0.99),
            "max_ms": max(recorder.latencies, default=math.nan),
            "ok": recorder.ok,
            "errors": recorder.errors,
            "statuses": {str(k): v for k, v in sorted(recorder.statuses.items())},
            "unexpected": dict(recorder.unexpected),
            "exceptions": dict(recorder.exceptions),
            "probe_max_ms": recorder.probe_max_ms,
            "warmup_requests": warm_done,
            # every event published (warm-up included) must be a message on the queue
            "enqueued_expected": warm_published + published,
            "windows": recorder.windows,
        }

    if spec["target"] == "ours":
        result: dict[str, Any] = await _run_ours(spec, cases, run)
    elif spec["target"] == "raw":
        result = await _run_raw(spec, cases, run)
    elif spec["target"] == "raw-floor":
        result = await _run_floor(spec, cases, run)
    else:
        raise SystemExit(f"unknown target {spec['target']!r}")
    return result


def _event_loop_runner() -> Callable[[Any], Any]:
    """uvloop when installed (as uvicorn picks it for the dev host), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="JSON spec written by the benchmark")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    runner = _event_loop_runner()
    result = runner(run_spec(spec))
    result["event_loop"] = "uvloop" if runner is not asyncio.run else "asyncio"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
