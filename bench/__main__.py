"""``make bench``: every benchmark, then docs/performance.md and docs/performance-http.png.

CPU per event (bench/cpu.py), HTTP end to end (bench/endtoend.py), cold start
(bench/coldstart.py) and memory (bench/memory.py), in that order; ``--quick`` runs each briefly
(indicative figures in a few minutes). Every service is started on 127.0.0.1 and stopped again.
``make soak`` (bench/soak.py) is separate.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from bench import coldstart, cpu, endtoend, memory, report, serving
from bench.services import Stack
from shared.tokens import VERIFIED_TOKEN_CACHE_SIZE

SECTIONS = ("cpu", "http", "serving", "coldstart", "memory")


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
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
        metavar="JSON",
        help="no new run: rewrite the doc from a saved run (.local/bench/results.json)",
    )
    return parser.parse_args(argv)


def _rewrite(path: Path) -> None:
    """docs/performance.md and the plot again from a saved run, measuring nothing."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    meta = saved["meta"]
    report.write_bench(
        cpu=([cpu.CpuFigure(**f) for f in saved["cpu"]], meta["cpu_rounds"], meta["cpu_calls"]),
        http=(
            [endtoend.LevelResult(**level) for level in saved["http"]],
            meta["http_rounds"],
            meta["http_seconds"],
            meta["log_level"],
        ),
        coldstart=coldstart.ColdStartResult(**saved["coldstart"]),
        memory=memory.MemoryResult(**saved["memory"]),
        serving=serving.ServingResult(**saved["serving"]) if "serving" in saved else None,
        quick=meta["quick"],
        elapsed_seconds=meta["elapsed_seconds"],
        raw=saved,
        date=meta["date"],
    )
    print(f"rewrote {report.DOC.relative_to(report.ROOT)} from {path}")


def main(argv: list[str] | None = None) -> None:
    options = _options(argv)
    if options.from_results:
        _rewrite(options.from_results)
        return
    quick = options.quick
    sections = options.only or list(SECTIONS)
    cpu_rounds = options.cpu_rounds or (5 if quick else 15)
    cpu_calls = 200
    http_rounds = options.http_rounds or (1 if quick else 3)
    http_seconds = options.http_seconds or (2.0 if quick else 5.0)
    levels = options.levels or endtoend.LEVELS
    if endtoend.TARGET_LEVEL not in levels and not options.only:
        raise SystemExit(f"--levels must include {endtoend.TARGET_LEVEL}, the target's level")
    coldstart_runs = options.coldstart_runs or (6 if quick else 30)
    memory_requests = options.memory_requests or (10_000 if quick else 100_000)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {message}", flush=True)

    results: dict[str, Any] = {}
    if "cpu" in sections:
        progress(f"cpu: {cpu_rounds} rounds of {cpu_calls} calls per size")
        figures = asyncio.run(cpu.measure(rounds=cpu_rounds, calls=cpu_calls))
        for f in figures:
            progress(
                f"cpu {f.size:8} ours {f.ours_us:7.1f} us  sdk {f.sdk_us:7.1f} us  "
                f"ratio {f.ratio:.2f}"
            )
        results["cpu"] = figures
    if "coldstart" in sections:
        results["coldstart"] = coldstart.measure(runs=coldstart_runs, progress=progress)
    if {"http", "serving", "memory"} & set(sections):
        with Stack(log_level=options.log_level) as stack:
            if "http" in sections:
                results["http"] = endtoend.measure(
                    stack,
                    levels=levels,
                    rounds=http_rounds,
                    seconds=http_seconds,
                    progress=progress,
                )
                for level in results["http"]:
                    progress(
                        f"http c={level.concurrency}: ours/raw {level.ratio():.2f} "
                        f"(rounds {', '.join(f'{r:.2f}' for r in level.paired_ratios())})"
                    )
            if "serving" in sections:
                results["serving"] = serving.measure(
                    stack,
                    rounds=1 if quick else 2,
                    requests=1000 if quick else 3000,
                    progress=progress,
                )
            if "memory" in sections:
                results["memory"] = memory.measure(
                    stack,
                    requests=memory_requests,
                    warmup_requests=memory_requests // 10,
                    token_pool=VERIFIED_TOKEN_CACHE_SIZE + 1904 if not quick else 1000,
                    progress=progress,
                )
    elapsed = time.monotonic() - started
    if options.only:
        progress("done (--only: docs/performance.md left alone)")
        return
    raw: dict[str, Any] = {
        name: [dataclasses.asdict(item) for item in value]
        if isinstance(value, list)
        else dataclasses.asdict(value)
        for name, value in results.items()
    }
    date = report.now()
    raw["meta"] = {
        "date": date,
        "quick": quick,
        "elapsed_seconds": elapsed,
        "cpu_rounds": cpu_rounds,
        "cpu_calls": cpu_calls,
        "http_rounds": http_rounds,
        "http_seconds": http_seconds,
        "log_level": options.log_level,
    }
    report.write_bench(
        cpu=(results["cpu"], cpu_rounds, cpu_calls),
        http=(results["http"], http_rounds, http_seconds, options.log_level),
        coldstart=results["coldstart"],
        memory=results["memory"],
        serving=results.get("serving"),
        quick=quick,
        elapsed_seconds=elapsed,
        raw=raw,
        date=date,
    )
    progress(f"wrote {report.DOC.relative_to(report.ROOT)} and {report.HTTP_PLOT.name}")


if __name__ == "__main__":
    main()
