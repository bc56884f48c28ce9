"""Soak: a steady load at half the measured peak rate for ten minutes (``make soak``).

The peak is the highest throughput of our endpoint in the latest ``make bench`` results
(docs/performance.md); without one it is measured briefly first (concurrency 32). The load
generator then sends valid publishes (typical event, a pool of tokens) on an open-loop schedule of
``peak / 2`` requests a second, with up to 64 in flight, and reports every 30 s: requests, p50,
p99, max latency, errors, and the dev host's RSS. At the end every 200 must be on the queue. The
result replaces the soak section of docs/performance.md (and docs/performance-soak.png).

``python -m bench.soak --minutes 2`` for a shorter run; ``--rate`` to choose the rate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.events import typical
from bench.services import Stack, ours_case, placeholder_body, run_load

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
PEAK_MARKER = re.compile(r"<!-- bench:peak-rps=([0-9.]+) -->")
CONCURRENCY = 64
WINDOW_SECONDS = 30.0


@dataclass
class SoakResult:
    date: str
    minutes: float
    peak_rps: float
    peak_source: str
    rate: float
    requests: int
    throughput: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    statuses: dict[str, int]
    exceptions: dict[str, int]
    on_queue: int
    enqueued_expected: int
    windows: list[dict[str, Any]]

    @property
    def rss_first_kib(self) -> int:
        return int(self.windows[0]["rss_kib"])

    @property
    def rss_last_kib(self) -> int:
        return int(self.windows[-1]["rss_kib"])


def published_peak(doc: Path = DOC) -> float | None:
    if not doc.exists():
        return None
    match = PEAK_MARKER.search(doc.read_text(encoding="utf-8"))
    return float(match.group(1)) if match else None


def run(minutes: float, rate: float | None = None) -> SoakResult:
    with Stack() as stack:
        tokens = stack.tokens(64)
        cases = [ours_case("valid", placeholder_body(typical()), tokens, 200)]
        peak = published_peak()
        source = "docs/performance.md (latest make bench)"
        if rate is None and peak is None:
            print("soak: no published peak; measuring it (concurrency 32, 15 s)", flush=True)
            probe = run_load(
                stack.load_spec(
                    "ours", cases, concurrency=32, duration_seconds=15, warmup_seconds=2
                ),
                stack.workdir,
            )
            peak = float(probe["throughput"])
            source = "measured before the soak (concurrency 32, 15 s)"
            stack.count_and_reset(stack.queue_name)
        if rate is not None:
            source = "--rate given"
            peak = peak or rate * 2
        assert peak is not None
        rate = rate or peak / 2
        print(f"soak: {minutes:g} min at {rate:.0f} req/s (peak {peak:.0f} req/s)", flush=True)
        stack.start_devhost()  # fresh process: its RSS over time is the soak's alone
        assert stack.devhost is not None
        assert stack.azurite.process is not None
        result = run_load(
            stack.load_spec(
                "ours",
                cases,
                concurrency=CONCURRENCY,
                rate=rate,
                duration_seconds=minutes * 60,
                warmup_seconds=5,
                window_seconds=WINDOW_SECONDS,
                watch_pid=stack.devhost.pid,
                also_watch={"azurite": stack.azurite.process.pid},
                probe_url=f"{stack.azurite.queue_endpoint}?comp=list",
            ),
            stack.workdir,
            timeout=minutes * 60 + 600,
        )
        on_queue = stack.count(stack.queue_name)
    return SoakResult(
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
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
    from bench import report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--rate", type=float, help="requests per second (default: peak / 2)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc alone")
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="JSON",
        help="no new run: rewrite the section from a saved result (.local/bench/soak.json)",
    )
    args = parser.parse_args(argv)
    if args.from_results:
        result = SoakResult(**json.loads(args.from_results.read_text(encoding="utf-8")))
    else:
        result = run(args.minutes, args.rate)
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
        report.write_soak(result, asdict(result))
        print(f"soak: wrote the soak section of {report.DOC.relative_to(report.ROOT)}")
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
