"""``make bench``: every benchmark, then the tables of docs/performance.md and its HTTP plot.

CPU per event (bench/cpu.py; structured, and binary for the typical event), cold start
(bench/coldstart.py), HTTP end to end (bench/endtoend.py; single events, the raw enqueue and
batches), where the dev host's CPU goes (bench/serving.py) and memory (bench/memory.py), in that
order: about eight minutes. ``--quick`` runs each briefly, for indicative figures in about two
minutes. Every service is started on
127.0.0.1 and stopped again. The results are saved to docs/performance.json (``make soak``,
bench/soak.py, runs at half the peak rate in them); only the tables between the
``<!-- bench:NAME:begin/end -->`` markers of docs/performance.md are rewritten, never its prose.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from bench import coldstart, cpu, endtoend, memory, report, results, serving, targets
from bench.services import Stack
from shared.tokens import VERIFIED_TOKEN_CACHE_SIZE

SECTIONS = ("cpu", "http", "serving", "coldstart", "memory")


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and requests: about two minutes"
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only this benchmark (repeatable); prints results, leaves the doc alone",
    )
    parser.add_argument("--cpu-rounds", type=int, help="CPU: rounds (default 15, quick 5)")
    parser.add_argument("--http-rounds", type=int, help="HTTP: rounds per level (3, quick 1)")
    parser.add_argument("--http-seconds", type=float, help="HTTP: seconds per run (5, quick 2)")
    parser.add_argument(
        "--levels", type=lambda text: tuple(int(n) for n in text.split(",")), help="1,8,32,64"
    )
    parser.add_argument("--coldstart-runs", type=int, help="cold start: runs each (30, quick 6)")
    parser.add_argument(
        "--memory-requests", type=int, help="memory: requests after warm-up (100000, quick 10000)"
    )
    parser.add_argument("--log-level", default="WARNING", help="the dev host's LOG_LEVEL")
    parser.add_argument(
        "--from-results",
        type=Path,
        nargs="?",
        const=results.RESULTS,
        metavar="JSON",
        help="no new run: rewrite the tables from saved results (docs/performance.json)",
    )
    return parser.parse_args(argv)


def write(saved: dict[str, Any]) -> None:
    """The tables and the plot from saved results (as ``make bench`` saves them)."""
    report.write_bench(
        saved["meta"],
        cpu=[cpu.CpuFigure(**figure) for figure in saved["cpu"]],
        levels=[endtoend.LevelResult(**level) for level in saved["http"]],
        serving=serving.ServingResult(**saved["serving"]),
        coldstart=coldstart.ColdStartResult(**saved["coldstart"]),
        memory=memory.MemoryResult(**saved["memory"]),
    )


def main(argv: list[str] | None = None) -> None:
    options = _options(argv)
    if options.from_results:
        write(results.load(options.from_results))
        print(f"rewrote the tables of {report.DOC.relative_to(results.ROOT)}")
        return
    quick = options.quick
    sections = options.only or list(SECTIONS)
    cpu_rounds = options.cpu_rounds or (5 if quick else 15)
    cpu_calls = 200
    http_rounds = options.http_rounds or (1 if quick else 3)
    http_seconds = options.http_seconds or (2.0 if quick else 5.0)
    levels = options.levels or endtoend.LEVELS
    if targets.HTTP_LEVEL not in levels and not options.only:
        raise SystemExit(f"--levels must include {targets.HTTP_LEVEL}, the target's level")
    coldstart_runs = options.coldstart_runs or (6 if quick else 30)
    memory_requests = options.memory_requests or (10_000 if quick else 100_000)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {message}", flush=True)

    found: dict[str, Any] = {}
    if "cpu" in sections:
        progress(f"cpu: {cpu_rounds} rounds of {cpu_calls} calls per size")
        found["cpu"] = asyncio.run(cpu.measure(rounds=cpu_rounds, calls=cpu_calls))
        for f in found["cpu"]:
            progress(
                f"cpu {f.size:8} {f.mode:10} ours {f.ours_us:7.1f} us  sdk {f.sdk_us:7.1f} us  "
                f"{f.ratio:.2f}"
            )
    if "coldstart" in sections:
        found["coldstart"] = coldstart.measure(runs=coldstart_runs, progress=progress)
    if {"http", "serving", "memory"} & set(sections):
        with Stack(log_level=options.log_level) as stack:
            if "http" in sections:
                found["http"] = endtoend.measure(
                    stack,
                    levels=levels,
                    rounds=http_rounds,
                    seconds=http_seconds,
                    progress=progress,
                )
                for level in found["http"]:
                    rounds = ", ".join(f"{r:.2f}" for r in level.paired_ratios())
                    progress(
                        f"http c={level.concurrency}: ours/raw {level.ratio():.2f} ({rounds}), "
                        f"batches/ours {level.ratio('ours-batch', 'ours'):.2f}, "
                        f"batches/raw {level.ratio('ours-batch', 'raw'):.2f}"
                    )
            if "serving" in sections:
                found["serving"] = serving.measure(
                    stack,
                    rounds=1 if quick else 2,
                    requests=1000 if quick else 3000,
                    progress=progress,
                )
            if "memory" in sections:
                found["memory"] = memory.measure(
                    stack,
                    requests=memory_requests,
                    warmup_requests=memory_requests // 10,
                    token_pool=VERIFIED_TOKEN_CACHE_SIZE + 1904 if not quick else 1000,
                    progress=progress,
                )
    if options.only:
        progress("done (--only: docs/performance.md left alone)")
        return
    saved: dict[str, Any] = {
        name: [dataclasses.asdict(item) for item in value]
        if isinstance(value, list)
        else dataclasses.asdict(value)
        for name, value in found.items()
    }
    saved["peak_rps"] = max(level.median("ours", "throughput") for level in found["http"])
    saved["meta"] = {
        "date": results.now(),
        "quick": quick,
        "elapsed_seconds": time.monotonic() - started,
        "cpu_rounds": cpu_rounds,
        "cpu_calls": cpu_calls,
        "http_rounds": http_rounds,
        "http_seconds": http_seconds,
        "log_level": options.log_level,
        "machine": results.machine(),
    }
    results.save(saved, results.RESULTS)
    write(results.load(results.RESULTS))
    progress(f"wrote {results.RESULTS.name}, the tables of {report.DOC.name} and the HTTP plot")


if __name__ == "__main__":
    main()
