"""Soak: a steady load at half the measured peak rate for ten minutes (``make soak``).

The peak is the highest throughput of our endpoint in the latest saved ``make bench`` results
(docs/performance.json); without one it is measured briefly first (concurrency 32). The load
generator then sends valid publishes (typical event, a pool of tokens) on an open-loop schedule of
``peak / 2`` requests a second, with up to 64 in flight, and reports every 30 s: requests, p50,
p99, max latency, errors, and the dev host's RSS. At the end every 200 must be on the queue. The
result replaces the soak tables of docs/performance.md (and docs/performance-soak.png).

``python -m bench.soak --minutes 2`` for a shorter run; ``--rate`` to choose the rate.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from bench import report, results
from bench.events import typical
from bench.results import WINDOW_SECONDS, SoakResult
from bench.services import QUEUE, Stack, ours_case

CONCURRENCY = 64


def run(minutes: float, rate: float | None = None) -> SoakResult:
    with Stack() as stack:
        cases = [ours_case("valid", typical(), stack.tokens(64), 200)]
        peak = results.peak_rps()
        source = f"{results.RESULTS.relative_to(results.ROOT)}, the latest make bench"
        if rate is None and peak is None:
            print("soak: no saved peak; measuring it (concurrency 32, 15 s)", flush=True)
            probe = stack.run_load(
                stack.load_spec(
                    "ours", cases, concurrency=32, duration_seconds=15, warmup_seconds=2
                )
            )
            peak = float(probe["throughput"])
            source = "measured before the soak (concurrency 32, 15 s)"
            stack.count_and_reset(QUEUE)
        if rate is not None:
            source = "--rate given"
            peak = peak or rate * 2
        assert peak is not None
        rate = rate or peak / 2
        print(f"soak: {minutes:g} min at {rate:.0f} req/s (peak {peak:.0f} req/s)", flush=True)
        stack.start_devhost()  # fresh process: its RSS over time is the soak's alone
        assert stack.azurite.process is not None
        result = stack.run_load(
            stack.load_spec(
                "ours",
                cases,
                concurrency=CONCURRENCY,
                rate=rate,
                duration_seconds=minutes * 60,
                warmup_seconds=5,
                window_seconds=WINDOW_SECONDS,
                watch_pid=stack.pid,
                also_watch={"azurite": stack.azurite.process.pid},
                probe_url=f"{stack.azurite.queue_endpoint}?comp=list",
            ),
            timeout=minutes * 60 + 600,
        )
        on_queue = stack.count(QUEUE)
    return SoakResult(
        date=results.now(),
        minutes=minutes,
        peak_rps=peak,
        peak_source=source,
        rate=rate,
        requests=result["requests"],
        throughput=result["throughput"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        max_ms=result["max_ms"],
        errors=result["errors"],
        statuses=result["statuses"],
        exceptions=result["exceptions"],
        on_queue=on_queue,
        enqueued_expected=result["enqueued_expected"],
        windows=result["windows"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--rate", type=float, help="requests per second (default: peak / 2)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc alone")
    parser.add_argument(
        "--from-results",
        type=Path,
        nargs="?",
        const=results.SOAK_RESULTS,
        metavar="JSON",
        help="no new run: rewrite the soak tables from a saved result (.local/bench/soak.json)",
    )
    args = parser.parse_args(argv)
    if args.from_results:
        result = SoakResult(**results.load(args.from_results))
    else:
        result = run(args.minutes, args.rate)
        results.save(asdict(result), results.SOAK_RESULTS)
    for window in result.windows[1:]:
        print(
            f"  t={window['t']:6.0f} s  {window['requests']:6d} req  {window['rate']:6.0f} req/s  "
            f"p99 {window['p99_ms']:6.1f} ms  errors {window['errors']}  "
            f"RSS {window['rss_kib'] / 1024:.1f} MiB  Azurite probe {window['probe_max_ms']:.0f} ms"
        )
    print(
        f"soak: {result.requests} requests, p99 {result.p99_ms:.1f} ms, errors {result.errors}, "
        f"queue {result.on_queue}/{result.enqueued_expected}"
    )
    if not args.no_doc:
        report.write_soak(result)
        print(f"soak: wrote the soak tables of {report.DOC.relative_to(results.ROOT)}")
    # A 503 is the documented answer when the queue does not confirm in time; what must never
    # happen is a lost acknowledged event, another error, or a request with no answer.
    if (
        result.on_queue < result.enqueued_expected
        or set(result.statuses) - {"200", "503"}
        or result.exceptions
    ):
        sys.exit(1)


if __name__ == "__main__":
    main()
