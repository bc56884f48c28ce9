"""The tables and plots of docs/performance.md, from saved results; never its prose.

Each table goes between a pair of markers in the document, ``<!-- bench:NAME:begin -->`` and
``<!-- bench:NAME:end -->``, and every other line is left as it is: ``make bench`` writes the
sections run, summary, cpu, telemetry, http, dedup, claimcheck, serving, coldstart and memory,
and docs/performance-http.png; ``make soak`` writes the section soak and
docs/performance-soak.png.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import targets
from bench.results import ROOT, WINDOW_SECONDS, SoakResult

if TYPE_CHECKING:  # the runs' result types; the runs are not needed to write their tables
    from bench.claimcheck import ClaimCheckCpu
    from bench.coldstart import ColdStartResult
    from bench.cpu import CpuFigure
    from bench.endtoend import LevelResult
    from bench.memory import MemoryResult
    from bench.serving import ServingResult
    from bench.telemetry import TelemetryResult

DOC = ROOT / "docs" / "performance.md"
HTTP_PLOT = ROOT / "docs" / "performance-http.png"
SOAK_PLOT = ROOT / "docs" / "performance-soak.png"


# -- formatting --------------------------------------------------------------------------------
def table(header: str, rows: Iterable[str], align: str) -> list[str]:
    """A Markdown table of ``" | "``-separated cells; ``align``: ``l`` or ``r`` per column."""
    rule = "|".join("---:" if a == "r" else "---" for a in align)
    return [f"| {header} |", f"|{rule}|", *(f"| {row} |" for row in rows)]


def pairs(title: str, rows: Mapping[str, object]) -> list[str]:
    """A table of labelled values, one a row."""
    return table(f"{title} | ", (f"{label} | {value}" for label, value in rows.items()), "ll")


def _judged(target: targets.Target, ratio: float, failed: int = 0) -> str:
    """The ratio, the target and whether it was met; never met with ``failed`` answers that
    were not the status due."""
    if failed:
        return f"{ratio:.2f}x | {target} | **NOT met**: {failed:,} answers not 200"
    return f"{ratio:.2f}x | {target} | {'met' if target.met(ratio) else '**NOT met**'}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def _rss(window: dict[str, Any], process: str) -> Any:
    """A soak window's RSS in KiB of the dev host or of a process it also watched (or None)."""
    if process == "dev host":
        return window.get("rss_kib")
    return (window.get("other_rss_kib") or {}).get(process)


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{status}: {count:,}" for status, count in statuses.items())


# -- the document ------------------------------------------------------------------------------
def update(sections: dict[str, list[str]], doc: Path = DOC) -> None:
    """Replace what is between each section's markers; leave every other line alone."""
    text = doc.read_text(encoding="utf-8")
    for name, lines in sections.items():
        begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise SystemExit(f"{doc}: no {begin} ... {end}; put the pair where the table goes")
        text = text[: start + len(begin)] + "\n\n" + "\n".join(lines) + "\n\n" + text[stop:]
    doc.write_text(text, encoding="utf-8")


def write_bench(
    meta: dict[str, Any],
    *,
    cpu: list[CpuFigure],
    telemetry: TelemetryResult,
    telemetry_http: LevelResult,
    claimcheck_cpu: ClaimCheckCpu,
    levels: list[LevelResult],
    dedup: LevelResult,
    claimcheck_http: LevelResult,
    serving: ServingResult,
    coldstart: ColdStartResult,
    memory: MemoryResult,
    calls: dict[str, dict[str, int]] | None = None,
    doc: Path = DOC,
) -> None:
    """The ``make bench`` tables and the HTTP plot."""
    plot_http(levels)
    sections = {
        "run": run_table(
            meta, levels, telemetry_http, dedup, claimcheck_http, serving, coldstart, memory
        ),
        "summary": summary_table(
            cpu,
            levels,
            coldstart,
            memory,
            feature_rows(telemetry, telemetry_http, claimcheck_cpu, dedup, claimcheck_http),
        ),
        "cpu": cpu_table(cpu),
        "telemetry": telemetry_table(telemetry, telemetry_http),
        "http": http_table(levels),
        "dedup": dedup_table(dedup),
        "claimcheck": claimcheck_tables(claimcheck_cpu, claimcheck_http),
        "serving": serving_table(serving),
        "coldstart": coldstart_tables(coldstart),
        "memory": memory_table(memory),
    }
    if calls is not None:
        sections["calls"] = calls_table(calls)
    update(sections, doc)


def write_soak(result: SoakResult, doc: Path = DOC) -> None:
    plot_soak(result)
    update({"soak": soak_tables(result)}, doc)


# -- make bench --------------------------------------------------------------------------------
def run_table(
    meta: dict[str, Any],
    levels: list[LevelResult],
    telemetry: LevelResult,
    dedup: LevelResult,
    claimcheck: LevelResult,
    serving: ServingResult,
    coldstart: ColdStartResult,
    memory: MemoryResult,
) -> list[str]:
    quick = meta["quick"]
    large = next(iter(claimcheck.runs.values()))[0]
    return pairs(
        "run",
        {
            "command": f"`python -m bench{' --quick' if quick else ''}`",
            "kind": "**quick: fewer rounds and requests, indicative only**" if quick else "full",
            "date": meta["date"],
            "duration": f"{meta['elapsed_seconds'] / 60:.1f} minutes",
            **meta["machine"],
            "CPU: rounds x calls per event size": f"{meta['cpu_rounds']} x {meta['cpu_calls']}",
            "HTTP: concurrency levels": ", ".join(str(level.concurrency) for level in levels),
            "HTTP: rounds x seconds per level, after 1 s of warm-up": (
                f"{meta['http_rounds']} x {meta['http_seconds']:g} s"
            ),
            "HTTP: events per batch request": (
                _batch_events(levels[0]) if levels[0].has("ours-batch") else "-"
            ),
            "HTTP: the dev host's `LOG_LEVEL`": meta["log_level"],
            f"telemetry end to end: rounds x seconds at concurrency {telemetry.concurrency}, "
            "after 1 s of warm-up": f"{len(telemetry.runs['ours'])} x {meta['http_seconds']:g} s",
            f"de-duplication: rounds x seconds at concurrency {dedup.concurrency}, after 1 s of "
            "warm-up": f"{len(dedup.runs['ours'])} x {meta['http_seconds']:g} s",
            f"claim check: rounds x requests per event at concurrency {claimcheck.concurrency}, "
            f"after {large['warmup_requests']:,} of warm-up": (
                f"{len(next(iter(claimcheck.runs.values())))} x {large['requests']:,}"
            ),
            "serving: rounds x requests per configuration, after 300 of warm-up": (
                f"{len(next(iter(serving.cpu_us.values())))} x {serving.requests:,}"
            ),
            "cold start: fresh interpreters each": coldstart.runs,
            "memory: requests of warm-up + measured": (
                f"{memory.warmup_requests:,} + {memory.requests:,}"
            ),
            "memory: distinct valid tokens": f"{memory.token_pool:,}",
        },
    )


def summary_table(
    cpu: list[CpuFigure],
    levels: list[LevelResult],
    coldstart: ColdStartResult,
    memory: MemoryResult,
    features: list[str],
) -> list[str]:
    """Every target's row; ``features``: de-duplication's, telemetry's and the claim check's."""
    typical = _cpu_figure(cpu, "typical", "structured")
    binary = _cpu_figure(cpu, "typical", "binary")
    assert typical is not None
    c = targets.HTTP_LEVEL
    level = next(level for level in levels if level.concurrency == c)
    ours, raw = level.median("ours", "throughput"), level.median("raw", "throughput")
    ours_p99, raw_p99 = level.median("ours", "p99_ms"), level.median("raw", "p99_ms")
    rows = [
        f"CPU per typical event, structured | {typical.ours_us:.1f} µs | {typical.sdk_us:.1f} µs "
        f"(CloudEvents SDK parse) | {_judged(targets.CPU, typical.ratio)}",
    ]
    if binary is not None:
        rows.append(
            f"CPU per typical event, binary mode | {binary.ours_us:.1f} µs | "
            f"{binary.sdk_us:.1f} µs (CloudEvents SDK parse) | "
            + _judged(targets.CPU_BINARY, binary.ratio)
        )
    rows += [
        f"HTTP throughput, concurrency {c} (`make serve`: de-duplication on) | {ours:.0f} req/s | "
        f"{raw:.0f} req/s (raw enqueue) | " + _judged(targets.HTTP, level.ratio()),
        f"the same, against the SDK-defaults client | {ours:.0f} req/s | "
        f"{level.median('raw-sdk-defaults', 'throughput'):.0f} req/s | "
        f"{level.ratio('ours', 'raw-sdk-defaults'):.2f}x | context | ",
        f"HTTP p99, concurrency {c} | {ours_p99:.1f} ms | {raw_p99:.1f} ms | "
        f"{ours_p99 / raw_p99:.2f}x | reported | ",
    ]
    if level.has("ours-batch"):
        batch = level.rate("ours-batch")
        rows += [
            f"Batches of {_batch_events(level)}, concurrency {c} | {batch:.0f} events/s | "
            f"{ours:.0f} req/s (single-event publishes) | "
            + _judged(
                targets.BATCH,
                level.ratio("ours-batch", "ours"),
                level.total("ours-batch", "errors"),
            ),
            f"the same, against the raw enqueue | {batch:.0f} events/s | {raw:.0f} req/s | "
            f"{level.ratio('ours-batch', 'raw'):.2f}x | context | ",
            f"the same, dev host CPU per event | {level.cpu_us_per_event('ours-batch'):.0f} µs | "
            f"{level.cpu_us_per_event('ours'):.0f} µs (a single-event publish) | "
            + _judged(
                targets.BATCH_CPU,
                level.cpu_us_per_event("ours-batch") / level.cpu_us_per_event("ours"),
            ),
        ]
    rows += [
        *features,
        f"Cold start (import) | {coldstart.ours * 1000:.0f} ms | {coldstart.deps * 1000:.0f} ms "
        f"(third-party imports) | {_judged(targets.COLDSTART, coldstart.ratio)}",
        f"Memory after {memory.requests:,} requests | {_mib(memory.rss_after_kib)} | "
        f"{_mib(memory.rss_before_kib)} (after warm-up) | "
        + _judged(targets.MEMORY, 1 + memory.growth),
    ]
    return table("figure | ours | baseline | ratio | target | ", rows, "lrrrrl")


def _devhost_cpu_us(run: dict[str, Any]) -> float:
    return float(run["devhost_cpu_seconds"]) / int(run["requests"] + run["warmup_requests"]) * 1e6


def telemetry_cpu(
    level: LevelResult, target: str = "ours-telemetry"
) -> tuple[float, float, list[float]]:
    """The dev host's CPU per request (µs, medians) with telemetry off and on (``target``), and
    per round the ratio on over off (bench/telemetry.py ``measure_http``)."""
    off, on = ([_devhost_cpu_us(run) for run in level.runs[t]] for t in ("ours", target))
    return (
        statistics.median(off),
        statistics.median(on),
        [b / a for a, b in zip(off, on, strict=True)],
    )


def feature_rows(
    telemetry: TelemetryResult,
    telemetry_http: LevelResult,
    claimcheck: ClaimCheckCpu,
    dedup: LevelResult,
    large: LevelResult,
) -> list[str]:
    """The summary's rows of de-duplication, telemetry and the claim check."""
    c, small_size, large_size = dedup.concurrency, *large.runs
    on, off, raw = (dedup.median(t, "throughput") for t in ("ours", "ours-no-dedup", "raw"))
    on_cpu, off_cpu, replay_cpu = (
        dedup.cpu_us_per_event(t) for t in ("ours", "ours-no-dedup", "replay")
    )
    replays = dedup.total("replay", "requests") + dedup.total("replay", "warmup_requests")
    added = sum(run["on_queue"] for run in dedup.runs["replay"])
    small_us, large_us = (statistics.median(claimcheck.large_us[n]) for n in claimcheck.large_us)
    small_cpu, large_cpu = (large.cpu_us_per_event(n) for n in (small_size, large_size))
    small_p99, large_p99 = (large.median(n, "p99_ms") for n in (small_size, large_size))
    typical, with_blobs = (
        statistics.median(t) for t in (claimcheck.typical_us, claimcheck.typical_blobs_us)
    )
    http_off, http_on, http_ratios = telemetry_cpu(telemetry_http)
    sampled = []
    if telemetry_http.has("ours-sampled"):
        _, sampled_on, sampled_ratios = telemetry_cpu(telemetry_http, "ours-sampled")
        sampled.append(
            f"the same, traces sampled as Azure's default does (1% here) | {sampled_on:.0f} µs | "
            f"{http_off:.0f} µs (off) | {statistics.median(sampled_ratios):.2f}x | reported | "
        )
    return [
        f"HTTP throughput, concurrency {c}, de-duplication on | {on:.0f} req/s | {raw:.0f} req/s "
        "(raw enqueue, same rounds) | "
        + _judged(targets.DEDUP, dedup.ratio("ours"), dedup.total("ours", "errors")),
        f"the same, de-duplication off: no regression from {targets.HTTP_BEFORE:.2f}x | "
        f"{off:.0f} req/s | {raw:.0f} req/s (raw enqueue, same rounds) | "
        + _judged(
            targets.HTTP_NO_REGRESSION,
            dedup.ratio("ours-no-dedup"),
            dedup.total("ours-no-dedup", "errors"),
        ),
        f"dev host CPU per request, de-duplication on | {on_cpu:.0f} µs | {off_cpu:.0f} µs (off) "
        f"| " + _judged(targets.DEDUP_CPU, on_cpu / off_cpu),
        *floor_rows(dedup),
        f"a replay (answered `Idempotent-Replayed`), dev host CPU | {replay_cpu:.0f} µs | "
        f"{on_cpu:.0f} µs (a new event) | {replay_cpu / on_cpu:.2f}x | reported | ",
        f"messages queued by {replays:,} replays | {added:,} | 0 | - | none | "
        + ("met" if added == 0 and not dedup.total("replay", "errors") else "**NOT met**"),
        f"CPU per typical request, telemetry on (OpenTelemetry SDK, export discarded): dev host, "
        f"concurrency {telemetry_http.concurrency} | {http_on:.0f} µs | {http_off:.0f} µs (off) | "
        + _judged(
            targets.TELEMETRY,
            statistics.median(http_ratios),
            sum(telemetry_http.total(t, "errors") for t in telemetry_http.runs),
        ),
        *sampled,
        f"the same, the pipeline alone in process (no HTTP, no I/O) | {telemetry.on:.1f} µs | "
        f"{telemetry.off:.1f} µs (off: NoTelemetry) | {telemetry.ratio:.2f}x | reported | ",
        f"telemetry off: NoTelemetry's own calls per typical event, less the trace context's ids | "
        f"{telemetry.notelemetry - telemetry.ids:.1f} µs | {telemetry.off:.1f} µs (the pipeline) | "
        + _judged(targets.TELEMETRY_OFF, telemetry.off_ratio),
        f"CPU per typical event, blob store configured | {with_blobs:.1f} µs | {typical:.1f} µs "
        "(none) | " + _judged(targets.CLAIM_CHECK_SMALL, claimcheck.blobs_ratio),
        f"CPU per {large_size} event (claim check) in process | {large_us:.0f} µs | "
        f"{small_us:.0f} µs ({small_size}: one message) | {claimcheck.large_ratio:.2f}x | "
        "reported | ",
        f"the same, dev host CPU, concurrency {large.concurrency} | {large_cpu:.0f} µs | "
        f"{small_cpu:.0f} µs | {large_cpu / small_cpu:.2f}x | reported | ",
        f"the same, p99 | {large_p99:.1f} ms | {small_p99:.1f} ms | {large_p99 / small_p99:.2f}x | "
        "reported | ",
    ]


def _cpu_figure(figures: list[CpuFigure], size: str, mode: str) -> CpuFigure | None:
    return next((f for f in figures if f.size == size and f.mode == mode), None)


def _batch_events(level: LevelResult) -> int:
    return int(level.runs["ours-batch"][0]["events_per_request"])


def cpu_table(figures: list[CpuFigure]) -> list[str]:
    rows = (
        f"{f.size} | {f.mode} | {f.body_bytes:,} B | {f.ours_us:.1f} | {f.sdk_us:.1f} | "
        f"**{f.ratio:.2f}x** | {f.ours_fresh_token_us:.1f} ({f.fresh_token_ratio:.2f}x)"
        for f in figures
    )
    header = "event | mode | body | ours (µs) | SDK parse (µs) | ratio | "
    return table(header + "ours, new token every request (µs, ratio)", rows, "llrrrrr")


def http_table(levels: list[LevelResult]) -> list[str]:
    def cells(level: LevelResult) -> str:
        paired = level.paired_ratios()
        latencies = {
            target: " / ".join(
                f"{level.median(target, f'{p}_ms'):.1f}" for p in ("p50", "p95", "p99")
            )
            for target in ("ours", "raw")
        }
        cpu = [
            f"{level.cpu_us_per_event(target):.0f}" if level.has(target) else "-"
            for target in ("ours", "ours-batch", "raw")
        ]
        if level.has("ours-batch"):
            per_round = level.paired_ratios("ours-batch", "ours")
            batch = (
                f"{level.rate('ours-batch'):.0f} | **{level.ratio('ours-batch', 'ours'):.2f}x** "
                f"({min(per_round):.2f}-{max(per_round):.2f}) | "
                f"{level.ratio('ours-batch', 'raw'):.2f}x"
            )
            batch_latency = " / ".join(
                f"{level.median('ours-batch', f'{p}_ms'):.0f}" for p in ("p50", "p99")
            )
        else:
            batch, batch_latency = "- | - | -", "-"
        runs = [run for runs in level.runs.values() for run in runs]
        on_queue = sum(run["on_queue"] for run in runs)
        extra = on_queue - sum(run["enqueued_expected"] for run in runs)
        complete = "all" if level.queue_mismatches() == 0 else f"**MISMATCH** ({extra:+,})"
        return (
            f"{level.concurrency} | {level.median('ours', 'throughput'):.0f} | "
            f"{level.median('raw', 'throughput'):.0f} | **{level.ratio():.2f}x** "
            f"({min(paired):.2f}-{max(paired):.2f}) | "
            f"{level.median('raw-sdk-defaults', 'throughput'):.0f} | {batch} | "
            f"{latencies['ours']} | {latencies['raw']} | {batch_latency} | {' / '.join(cpu)} | "
            f"{sum(level.total(target, 'errors') for target in level.runs)} | "
            f"{on_queue:,} {complete}"
        )

    header = (
        "concurrency | ours (req/s) | raw (req/s) | **ratio** (rounds) | raw, SDK defaults (req/s) "
        "| batches (events/s) | **batches / ours** (rounds) | batches / raw "
        "| ours p50 / p95 / p99 (ms) | raw p50 / p95 / p99 (ms) | batches p50 / p99 (ms) "
        "| CPU per event, ours / batches / raw (µs) | errors | on queue"
    )
    return table(header, map(cells, levels), "r" * 14)


def telemetry_table(result: TelemetryResult, http: LevelResult) -> list[str]:
    per_round = [on / off for on, off in zip(result.on_us, result.off_us, strict=True)]
    errors = sum(http.total(target, "errors") for target in http.runs)
    labels = {
        "ours": "off: `make serve` (no SDK)",
        "ours-telemetry": "on: `OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none` (the SDK "
        "records every span, exports nothing)",
        "ours-sampled": "on, and `OTEL_TRACES_SAMPLER=parentbased_traceidratio "
        "OTEL_TRACES_SAMPLER_ARG=0.01` (Azure's default of 5 traces/s, at these rates)",
    }

    def end_to_end_row(target: str) -> str:
        _, on, ratios = telemetry_cpu(http, target)
        ratio = (
            "1.00x"
            if target == "ours"
            else f"**{statistics.median(ratios):.3f}x** ({min(ratios):.3f}-{max(ratios):.3f})"
        )
        return (
            f"{labels[target]} | {on:.0f} | {ratio} | {http.median(target, 'throughput'):.0f} | "
            f"{http.median(target, 'p99_ms'):.1f}"
        )

    end_to_end = [end_to_end_row(target) for target in labels if http.has(target)]
    rows = [
        f"off: `NoTelemetry` (no SDK configured, the default) | {result.off:.1f} | 1.00x",
        f"on: OpenTelemetry SDK, {result.spans} spans and 3 metrics, export discarded | "
        f"{result.on:.1f} | **{result.ratio:.2f}x** ({min(per_round):.2f}-{max(per_round):.2f})",
        f"the SDK's floor: {result.spans} spans made and ended, no attribute, no metric | "
        f"{result.floor:.1f} | {result.floor / (result.on - result.off):.0%} of what on adds",
        f"`NoTelemetry`'s own {result.notelemetry_calls} calls alone | {result.notelemetry:.1f} | "
        f"{result.notelemetry / result.off:.1%} of off",
        f"of which a publish's W3C ids (the trace context's, telemetry or not) | {result.ids:.1f} "
        f"| {result.ids / result.off:.1%} of off",
        f"the rest: what telemetry off costs | {result.notelemetry - result.ids:.1f} | "
        f"**{result.off_ratio:.3f}x**",
    ]
    return [
        *table("CPU per typical event, no I/O | µs | ratio", rows, "lrr"),
        "",
        *table(
            f"end to end, concurrency {http.concurrency}, de-duplication on ({errors} errors) | "
            "dev host CPU per request (µs) | ratio (rounds) | req/s | p99 (ms)",
            end_to_end,
            "lrrrr",
        ),
    ]


def floor_rows(dedup: LevelResult) -> list[str]:
    """The summary's rows against the storage floor and of dry runs (none in results saved
    before them)."""
    rows = []
    if dedup.has("dry-run"):
        dry, new = (dedup.cpu_us_per_event(t) for t in ("dry-run", "ours"))
        rows.append(
            f"a dry run (`?validateOnly=true`), dev host CPU | {dry:.0f} µs | {new:.0f} µs "
            "(the publish of a new event) | "
            + _judged(targets.DRY_RUN, dry / new, dedup.total("dry-run", "errors"))
        )
    if not dedup.has("raw-floor"):
        return rows
    on, floor = (dedup.median(t, "throughput") for t in ("ours", "raw-floor"))
    on_cpu, floor_cpu = (dedup.cpu_us_per_event(t) for t in ("ours", "raw-floor"))
    return [
        *rows,
        f"dev host CPU per new event, de-duplication on, against the storage floor | "
        f"{on_cpu:.0f} µs | {floor_cpu:.0f} µs (insert, send, update; load generator) | "
        + _judged(targets.FLOOR_CPU, on_cpu / floor_cpu, dedup.total("raw-floor", "errors")),
        f"the same, HTTP throughput | {on:.0f} req/s | {floor:.0f} req/s (storage floor) | "
        f"{dedup.ratio('ours', 'raw-floor'):.2f}x | context | ",
    ]


def dedup_table(level: LevelResult) -> list[str]:
    names = {
        "raw": "raw `send_message` (as our sink)",
        "raw-floor": "storage floor: insert, `send_message`, update (load generator)",
        "ours": "de-duplication on (`make serve`)",
        "ours-no-dedup": "de-duplication off (`EVENTS_IDEMPOTENCY_WINDOW_HOURS=0`)",
        "replay": "replays of the events of *on*",
        "dry-run": "dry runs of new events (`?validateOnly=true`)",
    }

    def row(target: str) -> str:
        paired = level.paired_ratios(target)
        runs = level.runs[target]
        expected = sum(run["enqueued_expected"] for run in runs)
        on_queue = sum(run["on_queue"] for run in runs)
        queue = f"{on_queue:,} of {expected:,}" if target != "replay" else f"{on_queue:,} added"
        if level.queue_mismatches() and on_queue != expected:
            queue = f"**MISMATCH** {queue}"
        ratio = (
            "1.00x"
            if target == "raw"
            else f"**{level.ratio(target):.2f}x** ({min(paired):.2f}-{max(paired):.2f})"
        )
        return (
            f"{names[target]} | {level.median(target, 'throughput'):.0f} | {ratio} | "
            f"{level.median(target, 'p50_ms'):.1f} / {level.median(target, 'p99_ms'):.1f} | "
            f"{level.cpu_us_per_event(target):.0f} | {level.azurite_cpu_us_per_event(target):.0f} "
            f"| {level.total_cpu_us_per_event(target):.0f} | {level.total(target, 'errors')} | "
            f"{queue}"
        )

    header = (
        f"concurrency {level.concurrency} | req/s | ratio to raw (rounds) | p50 / p99 (ms) | "
        "CPU per request (µs): dev host (raw: load generator) | Azurite | all processes | "
        "errors | on the queue"
    )
    return table(header, map(row, (n for n in names if level.has(n))), "lrrrrrrrr")


def calls_table(calls: dict[str, dict[str, int]]) -> list[str]:
    """Storage requests per publish (tests/support/storagecalls.py counts them)."""

    def row(name: str, counted: dict[str, int]) -> str:
        total = counted["table"] + counted["queue"]
        return (
            f"{name} | {counted['events']} | {counted['table']} | {counted['queue']} | "
            f"{total / counted['events']:.2f}"
        )

    header = "publish | events | table requests | queue requests | storage requests per event"
    return table(header, (row(name, counted) for name, counted in calls.items()), "lrrrr")


def claimcheck_tables(cpu: ClaimCheckCpu, level: LevelResult) -> list[str]:
    small, large = cpu.large_us
    typical, with_blobs = (statistics.median(t) for t in (cpu.typical_us, cpu.typical_blobs_us))
    small_us, large_us = (statistics.median(cpu.large_us[n]) for n in (small, large))
    in_process = [
        f"typical, no blob store | {typical:.1f} | 1.00x",
        f"typical, blob store configured | {with_blobs:.1f} | **{cpu.blobs_ratio:.3f}x**",
        f"{small} ({cpu.sizes[small]:,} B: one message) | {small_us:.0f} | 1.00x",
        f"{large} ({cpu.sizes[large]:,} B: data to a blob) | {large_us:.0f} | "
        f"**{cpu.large_ratio:.2f}x**",
    ]

    def row(name: str) -> str:
        runs = level.runs[name]
        expected = sum(run["enqueued_expected"] for run in runs)
        on_queue, blobs = (sum(run[key] for run in runs) for key in ("on_queue", "blobs"))
        cpu_us, azurite_us = level.cpu_us_per_event(name), level.azurite_cpu_us_per_event(name)
        return (
            f"{name} | {level.median(name, 'throughput'):.0f} | "
            f"{level.median(name, 'p50_ms'):.1f} / {level.median(name, 'p99_ms'):.1f} | "
            f"{cpu_us:.0f} ({cpu_us / level.cpu_us_per_event(small):.2f}x) | {azurite_us:.0f} | "
            f"{level.total(name, 'errors')} | {on_queue:,} of {expected:,} | {blobs:,}"
        )

    header = (
        f"concurrency {level.concurrency} | req/s | p50 / p99 (ms) | dev host CPU per request (µs, "
        "ratio) | Azurite CPU per request (µs) | errors | on the queue | blobs"
    )
    return [
        *table("event, in process (no I/O) | CPU per event (µs) | ratio", in_process, "lrr"),
        "",
        *table(header, map(row, level.runs), "lrrrrrrr"),
    ]


def serving_table(result: ServingResult) -> list[str]:
    current = result.median_us(list(result.cpu_us)[-1])
    rows = (
        f"{name} | {result.median_us(name):.0f} | {result.median_us(name) / current:.2f}x"
        for name in result.cpu_us
    )
    header = "configuration | dev host CPU per request (µs) | relative to make serve's"
    return table(header, rows, "lrr")


def coldstart_tables(result: ColdStartResult) -> list[str]:
    ours_process = statistics.median(result.ours_process_s)
    deps_process = statistics.median(result.deps_process_s)
    imports = [
        f"`import function_app` | {result.ours * 1000:.0f} | {ours_process * 1000:.0f}",
        f"its {len(result.modules)} third-party imports alone | {result.deps * 1000:.0f} | "
        f"{deps_process * 1000:.0f}",
        f"**ratio** | **{result.ratio:.2f}x** | {ours_process / deps_process:.2f}x",
    ]
    only_ours = [f"`{module}` | {micros / 1000:.1f}" for module, micros in result.only_ours]
    total = sum(micros for _, micros in result.only_ours) / 1000
    return [
        *table(" | import (ms) | whole process (ms, context)", imports, "lrr"),
        "",
        *table(
            "what only `import function_app` loads (`-X importtime`, self time) | ms",
            [*only_ours[:8], f"all {len(only_ours)} modules | {total:.1f}"],
            "lr",
        ),
    ]


def memory_table(result: MemoryResult) -> list[str]:
    rss = [w["rss_kib"] for w in result.windows if w.get("rss_kib")]
    return pairs(
        "memory",
        {
            "RSS after warm-up": _mib(result.rss_before_kib),
            "RSS after the requests": _mib(result.rss_after_kib),
            "**growth**": f"**{result.growth:+.1%}**",
            "statuses": _statuses(result.statuses),
            "answers other than the status due": f"{result.errors:,}",
            "on the queue": f"{result.on_queue:,} of {result.enqueued_expected:,} 200s",
            "RSS every 10 s": " → ".join(_mib(kib) for kib in rss[:: max(1, len(rss) // 8)]),
        },
    )


# -- make soak ---------------------------------------------------------------------------------
def soak_tables(result: SoakResult) -> list[str]:
    windows = [w for w in result.windows if w.get("requests")]
    if not windows:
        return ["No soak windows recorded."]
    worst = max(windows, key=lambda w: w["p99_ms"])
    minute = next((w for w in windows if w["t"] >= 60), windows[0])
    azurite = [kib for w in windows if (kib := _rss(w, "azurite"))]
    stalled = [w for w in windows if (w.get("probe_max_ms") or 0) >= 1000]
    first, last = result.rss_first_kib, result.rss_last_kib
    summary = {
        "run": f"{result.date}, {result.minutes:g} min",
        "rate": f"{result.rate:.0f} req/s, half the peak of {result.peak_rps:.0f} req/s "
        f"({result.peak_source})",
        "requests": f"{result.requests:,} at {result.throughput:.0f} req/s",
        "latency p50 / p99 / max": (
            f"{result.p50_ms:.1f} / **{result.p99_ms:.1f}** / {result.max_ms:.1f} ms"
        ),
        "per-window p99, median / worst": (
            f"{statistics.median(w['p99_ms'] for w in windows):.1f} / {worst['p99_ms']:.1f} ms "
            f"(the window ending at {worst['t']:.0f} s, max {worst['max_ms']:.1f} ms)"
        ),
        "statuses": _statuses(result.statuses),
        "**errors**": f"**{result.errors:,}** ({result.errors / max(1, result.requests):.2%}); "
        f"{sum(w['errors'] for w in stalled):,} of them in the {len(stalled)} windows in which "
        "the Azurite probe waited 1 s or more",
        "on the queue": f"{result.on_queue:,} messages for {result.enqueued_expected:,} 200s "
        f"({result.on_queue - result.enqueued_expected:+,})",
        "dev host RSS": f"{_mib(first)} after warm-up, {_mib(minute['rss_kib'])} at "
        f"{minute['t']:.0f} s, {_mib(last)} at the end ({last / first - 1:+.1%}; "
        f"{last / minute['rss_kib'] - 1:+.1%} since {minute['t']:.0f} s)",
        "Azurite RSS": f"{_mib(azurite[0])} → {_mib(azurite[-1])}" if azurite else "-",
    }

    def window_row(w: dict[str, Any]) -> str:
        azurite, probe = _rss(w, "azurite"), w.get("probe_max_ms")
        return (
            f"{w['t']:.0f} | {w['requests']:,} | {w['rate']:.0f} | {w['p50_ms']:.1f} | "
            f"{w['p99_ms']:.1f} | {w['max_ms']:.1f} | {w['errors']} | {_mib(w['rss_kib'])} | "
            f"{_mib(azurite) if azurite else '-'} | {f'{probe:.1f}' if probe else '-'}"
        )

    header = (
        "t (s) | requests | req/s | p50 (ms) | p99 (ms) | max (ms) | errors | dev host RSS | "
        "Azurite RSS | Azurite probe, longest (ms)"
    )
    return [*pairs("soak", summary), "", *table(header, map(window_row, windows), "r" * 10)]


# -- plots -------------------------------------------------------------------------------------
def plot_http(levels: list[LevelResult], path: Path = HTTP_PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = {
        "ours": ("POST /events (dev host)", "o-"),
        "raw": ("raw send_message (as our sink)", "s--"),
        "raw-sdk-defaults": ("raw send_message (SDK defaults)", "^:"),
    }
    concurrency = [level.concurrency for level in levels]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, key, title, unit in (
        (axes[0], "throughput", "Throughput", "requests (batches: events) per second"),
        (axes[1], "p99_ms", "p99 latency", "milliseconds"),
    ):
        for target, (label, style) in lines.items():
            axis.plot(concurrency, [lv.median(target, key) for lv in levels], style, label=label)
        if key == "throughput" and all(level.has("ours-batch") for level in levels):
            axis.plot(
                concurrency,
                [level.rate("ours-batch") for level in levels],
                "D-.",
                label=f"POST /events, batches of {_batch_events(levels[0])} (events per second)",
            )
        axis.set_xscale("log", base=2)
        axis.set_xticks(concurrency, [str(c) for c in concurrency])
        axis.set_xlabel("concurrent requests")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.suptitle("HTTP end to end against Azurite (medians of alternating rounds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_soak(result: SoakResult, path: Path = SOAK_PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = [w for w in result.windows if w.get("requests")]
    minutes = [w["t"] / 60 for w in windows]
    figure, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(9, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 2]}
    )
    top.plot(minutes, [w["p99_ms"] for w in windows], "o-", label="p99")
    top.plot(minutes, [w["p50_ms"] for w in windows], "s--", label="p50")
    if any(w.get("probe_max_ms") for w in windows):
        probes = [w.get("probe_max_ms") or float("nan") for w in windows]
        top.plot(minutes, probes, "^:", color="tab:red", label="Azurite liveness probe, longest")
    top.set_yscale("log")
    top.set_ylabel("ms (log scale)")
    middle.bar(minutes, [w["errors"] for w in windows], width=0.3, color="tab:red")
    middle.set_ylabel("errors (503)")
    for name, style, color, label in (
        ("dev host", "o-", "tab:green", "dev host"),
        ("azurite", "s--", "tab:gray", "Azurite (keeps every message)"),
    ):
        rss = [(w["t"] / 60, kib / 1024) for w in result.windows if (kib := _rss(w, name))]
        if rss:
            bottom.plot([t for t, _ in rss], [m for _, m in rss], style, color=color, label=label)
    bottom.set_ylabel("RSS (MiB)")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    for axis in (top, middle, bottom):
        axis.grid(True, alpha=0.3)
    top.legend(fontsize="small")
    bottom.legend(fontsize="small")
    figure.suptitle(
        f"Soak: {result.rate:.0f} req/s (half the peak) for {result.minutes:g} min, "
        f"per {WINDOW_SECONDS:g} s window"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
