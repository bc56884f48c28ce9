"""Where the dev host's CPU goes: the same publish load under three serving configurations.

The figure is CPU time of the dev host process per request (``utime + stime`` from
``/proc/<pid>/stat`` across a fixed number of requests at concurrency 32), which is less
sensitive to other work on a shared machine than throughput. Configurations, each a fresh
process, alternating round by round:

- ``h11 + asyncio, env lookups``: uvicorn without httptools and uvloop, and the queue client
  looking up proxy variables and ``~/.netrc`` in a thread on every request (the SDK's default;
  forced here with ``NO_PROXY=*``, which changes nothing else on loopback);
- ``httptools + uvloop, env lookups``: what uvicorn picks when both are installed
  (requirements-dev.txt);
- ``httptools + uvloop``: as ``make serve`` runs now (shared/adapters/common.py skips the
  lookups when the environment has no proxy or netrc configuration).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.events import typical
from bench.services import QUEUE, Stack, cpu_seconds, ours_case

_RUNNER = """
import logging, os, uvicorn
from devtools.devhost import build
logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
uvicorn.run(build(), host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning",
            server_header=False, lifespan="on", http="h11", loop="asyncio")
"""

CONFIGURATIONS: dict[str, tuple[list[str] | None, dict[str, str]]] = {
    "h11 + asyncio, env lookups": ([sys.executable, "-c", _RUNNER], {"NO_PROXY": "*"}),
    "httptools + uvloop, env lookups": (None, {"NO_PROXY": "*"}),
    "httptools + uvloop (make serve)": (None, {}),
}


@dataclass
class ServingResult:
    requests: int
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    throughput: dict[str, list[float]] = field(default_factory=dict)

    def median_us(self, name: str) -> float:
        return statistics.median(self.cpu_us[name])


def measure(
    stack: Stack, *, rounds: int = 2, requests: int = 3000, progress: Callable[[str], None] = print
) -> ServingResult:
    cases = [ours_case("valid", typical(), stack.tokens(8), 200)]
    result = ServingResult(requests)
    try:
        for round_number in range(rounds):
            for name, (command, environment) in CONFIGURATIONS.items():
                stack.start_devhost(command=command, environment=environment)
                warm = stack.run_load(stack.load_spec("ours", cases, concurrency=32, requests=300))
                before = cpu_seconds(stack.pid)
                run = stack.run_load(
                    stack.load_spec("ours", cases, concurrency=32, requests=requests)
                )
                used = cpu_seconds(stack.pid) - before
                on_queue = stack.count_and_reset(QUEUE)
                if (
                    run["errors"]
                    or on_queue != warm["enqueued_expected"] + run["enqueued_expected"]
                ):
                    raise RuntimeError(f"{name}: {run['statuses']}, {on_queue} on the queue")
                result.cpu_us.setdefault(name, []).append(used / run["requests"] * 1e6)
                result.throughput.setdefault(name, []).append(run["throughput"])
                progress(
                    f"serving round {round_number + 1}/{rounds} {name:32} "
                    f"{result.cpu_us[name][-1]:6.0f} us CPU per request"
                )
    finally:
        stack.start_devhost()  # back to make serve's configuration
    return result
