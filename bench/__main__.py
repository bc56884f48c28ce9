"""``make bench``: every benchmark, then the tables of docs/performance.md and its HTTP plot.

CPU per event (bench/cpu.py; structured, and binary for the typical event), telemetry on and
off (bench/telemetry.py), the claim check in process (bench/claimcheck.py), cold start
(bench/coldstart.py), HTTP end to end (bench/endtoend.py; single events, the raw enqueue and
batches), telemetry on and off end to end, de-duplication on and off (bench/dedup.py), the claim
check end to end, where the dev host's CPU goes (bench/serving.py) and memory (bench/memory.py),
in that order: about fourteen minutes. ``--quick`` runs each briefly, for indicative figures in
about three minutes. Every service is started on 127.0.0.1 and stopped again. The results are
saved to docs/performance.json (``make soak``, bench/soak.py, runs at half the peak rate in
them); only the tables between the ``<!-- bench:NAME:begin/end -->`` markers of
docs/performance.md are rewritten, never its prose.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

from bench import (
    claimcheck,
    coldstart,
    cpu,
    dedup,
    endtoend,
    memory,
    report,
    results,
    serving,
    targets,
    telemetry,
)
from bench.events import RESOURCE
from bench.services import Stack
from shared.adapters.tokens import VERIFIED_TOKEN_CACHE_SIZE
from tests.support import storagecalls

SECTIONS = (
    "cpu",
    "telemetry",
    "claimcheck",
    "http",
    "dedup",
    "calls",
    "serving",
    "coldstart",
    "memory",
)


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and requests: about three minutes"
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only this benchmark (repeatable); prints results, leaves the doc alone",
    )
    parser.add_argument("--cpu-rounds", type=int, help="CPU: rounds (default 15, quick 5)")
    parser.add_argument(
        "--http-rounds", type=int, help="HTTP and de-duplication: rounds per level (3, quick 1)"
    )
    parser.add_argument("--http-seconds", type=float, help="HTTP: seconds per run (5, quick 2)")
    parser.add_argument(
        "--levels", type=lambda text: tuple(int(n) for n in text.split(",")), help="1,8,32,64"
    )
    parser.add_argument(
        "--telemetry-rounds",
        type=int,
        help="telemetry end to end: rounds of the three dev hosts (6, quick 1)",
    )
    parser.add_argument(
        "--claimcheck-requests",
        type=int,
        help="claim check end to end: requests per run (500, quick 200)",
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
        telemetry=telemetry.TelemetryResult(**saved["telemetry"]),
        telemetry_http=endtoend.LevelResult(**saved["telemetry_http"]),
        claimcheck_cpu=claimcheck.ClaimCheckCpu(**saved["claimcheck_cpu"]),
        levels=[endtoend.LevelResult(**level) for level in saved["http"]],
        dedup=endtoend.LevelResult(**saved["dedup"]),
        claimcheck_http=endtoend.LevelResult(**saved["claimcheck_http"]),
        serving=serving.ServingResult(**saved["serving"]),
        coldstart=coldstart.ColdStartResult(**saved["coldstart"]),
        memory=memory.MemoryResult(**saved["memory"]),
        calls=saved.get("calls"),
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
    claimcheck_requests = options.claimcheck_requests or (200 if quick else 500)
    telemetry_rounds = options.telemetry_rounds or (1 if quick else 6)
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
    if "telemetry" in sections:
        progress(f"telemetry: {cpu_rounds} rounds of {cpu_calls} calls, off and on")
        found["telemetry"] = t = asyncio.run(telemetry.measure(rounds=cpu_rounds, calls=cpu_calls))
        progress(
            f"telemetry off {t.off:.1f} us, on {t.on:.1f} us: {t.ratio:.2f}; NoTelemetry's "
            f"{t.notelemetry_calls} calls {t.notelemetry:.2f} us ({t.off_ratio:.3f}); the SDK's "
            f"floor, {t.spans} bare spans, {t.floor:.1f} us"
        )
    if "claimcheck" in sections:
        progress(f"claim check in process: {cpu_rounds} rounds")
        found["claimcheck_cpu"] = c = asyncio.run(
            claimcheck.measure_cpu(rounds=cpu_rounds, calls=cpu_calls)
        )
        progress(
            f"claim check: typical with a blob store {c.blobs_ratio:.3f}x without; "
            f"{claimcheck.LARGE} {c.large_ratio:.2f}x {claimcheck.SMALL}"
        )
    if "coldstart" in sections:
        found["coldstart"] = coldstart.measure(runs=coldstart_runs, progress=progress)
    if {"http", "telemetry", "dedup", "calls", "claimcheck", "serving", "memory"} & set(sections):
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
                    per_event = level.cpu_us_per_event("ours-batch") / level.cpu_us_per_event(
                        "ours"
                    )
                    progress(
                        f"http c={level.concurrency}: ours/raw {level.ratio():.2f} ({rounds}), "
                        f"batches/ours {level.ratio('ours-batch', 'ours'):.2f}, "
                        f"batches/raw {level.ratio('ours-batch', 'raw'):.2f}, CPU per event "
                        f"batch/single {per_event:.2f}"
                    )
            if "telemetry" in sections:
                found["telemetry_http"] = level = telemetry.measure_http(
                    stack, rounds=telemetry_rounds, seconds=http_seconds, progress=progress
                )
                ratios, sampled = (
                    telemetry.cpu_ratios(level, t) for t in ("ours-telemetry", "ours-sampled")
                )
                progress(
                    f"telemetry end to end: dev host CPU per request on/off "
                    f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}), "
                    f"sampled 1%/off {statistics.median(sampled):.3f}"
                )
            if "dedup" in sections:
                found["dedup"] = level = dedup.measure(
                    stack, rounds=http_rounds, seconds=http_seconds, progress=progress
                )
                progress(
                    f"dedup: on/raw {level.ratio('ours'):.2f}, off/raw "
                    f"{level.ratio('ours-no-dedup'):.2f}, replay/raw {level.ratio('replay'):.2f}, "
                    f"on/floor {level.ratio('ours', 'raw-floor'):.2f}"
                )
                on, off, floor = (
                    level.cpu_us_per_event(t) for t in ("ours", "ours-no-dedup", "raw-floor")
                )
                progress(
                    f"dedup CPU per new event: on {on:.0f} us, off {off:.0f} us ({on / off:.2f}), "
                    f"storage floor {floor:.0f} us (on/floor {on / floor:.2f})"
                )
            if "calls" in sections:
                progress("storage requests per publish, counted through proxies")
                counted = asyncio.run(storagecalls.count(stack.local, resource=RESOURCE))
                found["calls"] = {name: dataclasses.asdict(n) for name, n in counted.items()}
                for name, calls in counted.items():
                    progress(
                        f"calls {name}: table {calls.table}, queue {calls.queue}, "
                        f"{calls.per_event:.2f} per event"
                    )
            if "claimcheck" in sections:
                found["claimcheck_http"] = claimcheck.measure_http(
                    stack,
                    rounds=http_rounds,
                    requests=claimcheck_requests,
                    warmup_requests=claimcheck_requests // 10,
                    progress=progress,
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
        else value
        if isinstance(value, dict)
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
