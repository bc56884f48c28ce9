"""HTTP end to end: the dev host with a real Azurite queue, loaded from a separate process.

At each concurrency level, rounds alternate (in a rotating order) between three runs of the same
load generator against the same Azurite:

- ``ours``: ``POST /events`` with a typical (~2 KB) valid event and a valid token, every answer
  a 200;
- ``raw``: ``send_message`` of the same queue message, with a ``QueueClient`` built as our sink
  builds it (``TextBase64EncodePolicy``; environment proxy/netrc lookups as
  ``shared.adapters.common.environment_configures_http``
  decides): the enqueue the function does, alone;
- ``raw-sdk-defaults``: the same with the SDK's defaults (it looks up proxy variables and
  ``~/.netrc`` in a thread on every request), for context;
- ``ours-batch``: ``POST /events`` with a batch (``application/cloudevents-batch+json``) of
  ``BATCH_EVENTS`` typical events, each with its own ``id``, and a valid token, every answer a
  200 (every element published); its rate is counted in events.

After every run the queue is counted and emptied: each event published (every event of a 200,
and of a batch's 207 the ones it accepted) must be a message on the queue.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.events import typical
from bench.services import (
    QUEUE,
    RAW_QUEUE,
    Stack,
    batch_case,
    cpu_seconds,
    ours_case,
    queue_message,
)
from shared.adapters.common import environment_configures_http

LEVELS = (1, 8, 32, 64)
TARGETS = ("ours", "raw", "raw-sdk-defaults", "ours-batch")
#: Events in one batch request of ``ours-batch`` (the endpoint's most).
BATCH_EVENTS = 100


def on_devhost(target: str) -> bool:
    """Whether ``target`` POSTs to a dev host (the ``raw`` ones enqueue from the load generator)."""
    return not target.startswith("raw")


def rate(target: str, run: dict[str, Any]) -> float:
    """A run's rate: events per second for a batch target, requests per second otherwise."""
    return float(run["event_throughput"] if target == "ours-batch" else run["throughput"])


@dataclass
class LevelResult:
    concurrency: int
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def has(self, target: str) -> bool:
        """Whether the level ran ``target`` (results saved before ``ours-batch`` have none)."""
        return bool(self.runs.get(target))

    def median(self, target: str, key: str) -> float:
        return float(statistics.median(run[key] for run in self.runs[target]))

    def rate(self, target: str) -> float:
        """Median requests per second, or events per second for a batch target."""
        return float(statistics.median(rate(target, run) for run in self.runs[target]))

    def total(self, target: str, key: str) -> int:
        return sum(int(run[key]) for run in self.runs[target])

    def paired_ratios(self, target: str = "ours", baseline: str = "raw") -> list[float]:
        """The rate of ``target`` over ``baseline`` in each round (the two ran in the same round;
        a batch target's rate in events per second)."""
        return [
            rate(target, ours) / rate(baseline, base)
            for ours, base in zip(self.runs[target], self.runs[baseline], strict=True)
        ]

    def ratio(self, target: str = "ours", baseline: str = "raw") -> float:
        return statistics.median(self.paired_ratios(target, baseline))

    def cpu_us_per_event(self, target: str) -> float:
        """CPU per event of the process doing the work: the dev host for the targets that POST
        to it (warm-up included), the load generator itself for the raw enqueue (the SDK's cost,
        plus the generator's own small share)."""
        per_run = [
            run["devhost_cpu_seconds"] / _events(run)
            if on_devhost(target)
            else run["cpu_seconds"] / run["requests"]
            for run in self.runs[target]
        ]
        return float(statistics.median(per_run)) * 1e6

    def azurite_cpu_us_per_event(self, target: str) -> float:
        """Azurite's CPU (its queue, table and blob services together) per event, warm-up
        included: in Azure, the storage service's share."""
        per_run = [run["azurite_cpu_seconds"] / _events(run) for run in self.runs[target]]
        return float(statistics.median(per_run)) * 1e6

    def total_cpu_us_per_event(self, target: str) -> float:
        """CPU per event of every process on the machine's cores: the dev host, Azurite and
        the load generator (the dev host idles in a raw run)."""
        per_run = [
            (run["devhost_cpu_seconds"] + run["azurite_cpu_seconds"]) / _events(run)
            + run["cpu_seconds"] / (run["requests"] * run.get("events_per_request", 1))
            for run in self.runs[target]
        ]
        return float(statistics.median(per_run)) * 1e6

    def queue_mismatches(self) -> int:
        return sum(
            1
            for runs in self.runs.values()
            for run in runs
            if run["on_queue"] != run["enqueued_expected"]
        )


def _events(run: dict[str, Any]) -> int:
    """Events a run sent, warm-up included."""
    return int((run["requests"] + run["warmup_requests"]) * run.get("events_per_request", 1))


def rotated(names: Sequence[str], round_number: int) -> list[str]:
    """``names`` in the order of round ``round_number``: each round starts one further along,
    so that no target always runs first (or after the same one)."""
    shift = round_number % len(names)
    return [*names[shift:], *names[:shift]]


def measure_run(
    stack: Stack,
    spec: dict[str, Any],
    *,
    pid: int | None = None,
    queue: str | None = QUEUE,
    blobs: bool = False,
) -> dict[str, Any]:
    """One run of the load generator, with the CPU the dev host (``pid``, by default the
    stack's) and Azurite used meanwhile; then the messages on ``queue`` (and with ``blobs``, the
    blobs of large events' data) are counted and Azurite starts afresh (``queue=None``: the
    caller counts, and Azurite keeps its data)."""
    devhost = pid or stack.pid
    before = cpu_seconds(devhost), stack.azurite_cpu_seconds()
    run = stack.run_load(spec)
    run["devhost_cpu_seconds"] = cpu_seconds(devhost) - before[0]
    run["azurite_cpu_seconds"] = stack.azurite_cpu_seconds() - before[1]
    if blobs:
        run["blobs"] = stack.count_blobs()
    if queue is not None:
        run["on_queue"] = stack.count_and_reset(queue)
    return run


def specs(stack: Stack, tokens: list[str]) -> dict[str, Callable[..., dict[str, Any]]]:
    ours = [ours_case("valid", typical(), tokens, 200)]
    batch = [batch_case("valid-batch", typical(), tokens, BATCH_EVENTS)]
    message = queue_message(ours[0]["body"].encode())
    raw = [{"name": "raw", "body": message, "tokens": [], "expect": 200}]
    sink_options = {"use_env_settings": environment_configures_http()}
    return {
        "ours": lambda **o: stack.load_spec("ours", ours, **o),
        "raw": lambda **o: stack.load_spec("raw", raw, client_options=sink_options, **o),
        "raw-sdk-defaults": lambda **o: stack.load_spec("raw", raw, **o),
        "raw-floor": lambda **o: stack.load_spec(
            "raw-floor", raw, client_options=sink_options, **o
        ),
        "ours-batch": lambda **o: stack.load_spec("ours", batch, **o),
    }


def measure(
    stack: Stack,
    *,
    levels: tuple[int, ...] = LEVELS,
    rounds: int = 3,
    seconds: float = 6.0,
    warmup_seconds: float = 1.0,
    progress: Callable[[str], None] = print,
) -> list[LevelResult]:
    tokens = stack.tokens(8)
    made = specs(stack, tokens)
    results = []
    for concurrency in levels:
        level = LevelResult(concurrency, {target: [] for target in TARGETS})
        for round_number in range(rounds):
            for target in rotated(TARGETS, round_number):
                spec = made[target](
                    concurrency=concurrency,
                    duration_seconds=seconds,
                    warmup_seconds=warmup_seconds,
                )
                run = measure_run(stack, spec, queue=QUEUE if on_devhost(target) else RAW_QUEUE)
                run["events_per_request"] = BATCH_EVENTS if target == "ours-batch" else 1
                level.runs[target].append(run)
                events = f" ({run['event_throughput']:5.0f} ev/s)" if target == "ours-batch" else ""
                progress(
                    f"http c={concurrency:<3} round {round_number + 1}/{rounds} {target:17} "
                    f"{run['throughput']:7.0f} req/s{events}  p99 {run['p99_ms']:6.1f} ms  "
                    f"errors {run['errors']}  queue {run['on_queue']}/{run['enqueued_expected']}"
                )
        results.append(level)
    return results
