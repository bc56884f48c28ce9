"""De-duplication (idempotent publish) on and off, end to end at concurrency ``HTTP_LEVEL``.

Two dev hosts side by side, each its own process on the same Azurite (queue, table and blob
services): ``make serve``'s (``EVENTS_IDEMPOTENCY_WINDOW_HOURS`` at its default, 24: every new
event is claimed in Azurite's table service before it is sent, and committed after) and one with
``EVENTS_IDEMPOTENCY_WINDOW_HOURS=0`` (no records). In each round, in a rotating order, the same
load generator runs

- ``raw``: ``send_message`` of the same queue message, as bench/endtoend.py's baseline;
- ``raw-floor``: the storage floor (bench/load.py): a conditional insert, the same send and an
  update after its answer, from the load generator with the same SDKs, no function;
- ``ours``: de-duplication on, a typical event with a new ``id`` per request; right after it,
  ``replay``: the same requests again (same ids, same content), every answer due to be a 200
  with ``Idempotent-Replayed: true`` and nothing added to the queue (it is counted before and
  after);
- ``ours-no-dedup``: de-duplication off;
- ``dry-run``: the same new events as ``ours`` would send, as dry runs (``?validateOnly=true``,
  de-duplication on: every check and a read of each identity's record), none due on the queue.

Besides throughput and latency, the CPU that the dev host and Azurite (its three services
together; in Azure, the storage service's) spent per request, warm-up included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import targets
from bench.endtoend import LevelResult, measure_run, rotated, specs
from bench.events import typical
from bench.services import QUEUE, RAW_QUEUE, Stack, ours_case

TARGETS = ("raw", "raw-floor", "ours", "ours-no-dedup", "dry-run")
#: The dev host without de-duplication.
NO_DEDUP = {"EVENTS_IDEMPOTENCY_WINDOW_HOURS": "0"}


def measure(
    stack: Stack,
    *,
    rounds: int = 3,
    seconds: float = 5.0,
    warmup_seconds: float = 1.0,
    progress: Callable[[str], None] = print,
) -> LevelResult:
    concurrency = targets.HTTP_LEVEL
    tokens = stack.tokens(8)
    made = specs(stack, tokens)
    replay = [{**ours_case("replay", typical(), tokens, 200), "replay": True}]
    level = LevelResult(concurrency, {target: [] for target in (*TARGETS, "replay")})
    stack.restart_azurite()
    stack.start_devhost()  # fresh, as the other one
    with stack.another_devhost(NO_DEDUP) as other:
        for round_number in range(rounds):
            for target in rotated(TARGETS, round_number):
                options = {
                    "concurrency": concurrency,
                    "duration_seconds": seconds,
                    "warmup_seconds": warmup_seconds,
                }
                if target.startswith("raw"):
                    run = measure_run(stack, made[target](**options), queue=RAW_QUEUE)
                elif target == "dry-run":
                    spec = made["ours"](url=f"{stack.url}?validateOnly=true", **options)
                    run = measure_run(stack, spec, queue=None)
                    run["enqueued_expected"] = 0  # a dry run publishes nothing
                    run["on_queue"] = stack.count_and_reset(QUEUE)
                elif target == "ours-no-dedup":
                    spec = made["ours"](url=f"{other.url}/events", **options)
                    run = measure_run(stack, spec, pid=other.process.pid)
                else:
                    spec = made["ours"](**options)
                    run = measure_run(stack, spec, queue=None)
                    run["on_queue"] = stack.count(QUEUE)
                    again = stack.load_spec(
                        "ours",
                        replay,
                        run_id=spec["run_id"],  # the same ids, so the same events
                        concurrency=concurrency,
                        requests=run["requests"],
                        warmup_requests=run["warmup_requests"],
                    )
                    replayed = measure_run(stack, again, queue=None)
                    # what the replays added to the queue: nothing is due
                    replayed["on_queue"] = stack.count_and_reset(QUEUE) - run["on_queue"]
                    level.runs["replay"].append(replayed)
                level.runs[target].append(run)
                _progress(progress, round_number, rounds, target, run)
                if target == "ours":
                    _progress(progress, round_number, rounds, "replay", level.runs["replay"][-1])
    return level


def _progress(
    progress: Callable[[str], None], number: int, rounds: int, target: str, run: dict[str, Any]
) -> None:
    progress(
        f"dedup round {number + 1}/{rounds} {target:13} {run['throughput']:7.0f} req/s  "
        f"p99 {run['p99_ms']:6.1f} ms  errors {run['errors']}  "
        f"queue {run['on_queue']}/{run['enqueued_expected']}"
    )
