"""docs/performance.md and its plots, from the benchmarks' results.

``make bench`` rewrites the whole document except the soak section, which only ``make soak``
writes (between the ``soak:begin`` and ``soak:end`` markers), so that each keeps the other's latest
figures.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.coldstart import ColdStartResult
    from bench.cpu import CpuFigure
    from bench.endtoend import LevelResult
    from bench.memory import MemoryResult
    from bench.serving import ServingResult
    from bench.soak import SoakResult

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
HTTP_PLOT = ROOT / "docs" / "performance-http.png"
SOAK_PLOT = ROOT / "docs" / "performance-soak.png"
#: The Storage SDK's and its aiohttp session's share of the dev host's CPU per publish, from a
#: py-spy profile taken while writing the benchmark (not re-measured by it).
PROFILED_SDK_SHARE = 0.63
SOAK_BEGIN = "<!-- soak:begin -->"
SOAK_END = "<!-- soak:end -->"
LIBRARIES = (
    "aiohttp",
    "uvicorn",
    "httptools",
    "uvloop",
    "azure-storage-queue",
    "azure-core",
    "azure-functions",
    "PyJWT",
    "cryptography",
    "orjson",
    "pydantic",
    "cloudevents",
)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- the machine -------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def azurite_version() -> str:
    try:
        package = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())
        return str(package["version"])
    except (OSError, ValueError, KeyError):
        return "not installed"


def node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"],  # noqa: S607 - the node on PATH, as devtools.azurite uses
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not found"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_lines() -> list[str]:
    libraries = ", ".join(f"{name} {version}" for name, version in library_versions().items())
    return [
        f"- **Machine**: {os.cpu_count()} cores, {cpu_model()}, "
        f"{platform.system()} {platform.release()}; shared with other work, so every figure "
        "is a ratio against a baseline measured side by side in the same run, and absolute "
        "numbers are context only.",
        f"- **Python** {platform.python_version()} ({sys.implementation.name}); "
        f"**Azurite** {azurite_version()} on Node.js {node_version()}.",
        f"- **Libraries**: {libraries}.",
    ]


# -- formatting --------------------------------------------------------------------------------
def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


# -- plots -------------------------------------------------------------------------------------
def plot_http(levels: list[LevelResult], path: Path = HTTP_PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "ours": "POST /events (dev host)",
        "raw": "raw send_message (as our sink)",
        "raw-sdk-defaults": "raw send_message (SDK defaults)",
    }
    styles = {"ours": "o-", "raw": "s--", "raw-sdk-defaults": "^:"}
    concurrency = [level.concurrency for level in levels]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for target, label in labels.items():
        left.plot(
            concurrency,
            [level.median(target, "throughput") for level in levels],
            styles[target],
            label=label,
        )
        right.plot(
            concurrency,
            [level.median(target, "p99_ms") for level in levels],
            styles[target],
            label=label,
        )
    for axis, title, unit in (
        (left, "Throughput", "requests per second"),
        (right, "p99 latency", "milliseconds"),
    ):
        axis.set_xscale("log", base=2)
        axis.set_xticks(concurrency, [str(c) for c in concurrency])
        axis.set_xlabel("concurrent requests")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
    left.legend(fontsize="small")
    figure.suptitle("HTTP end to end against Azurite (medians of alternating rounds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_soak(result: SoakResult, path: Path = SOAK_PLOT) -> None:
    import matplotlib

    from bench.soak import WINDOW_SECONDS

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
        top.plot(
            minutes,
            [w.get("probe_max_ms") or float("nan") for w in windows],
            "^:",
            color="tab:red",
            label="Azurite liveness probe, longest wait",
        )
    top.set_yscale("log")
    top.set_ylabel("ms (log scale)")
    top.legend(fontsize="small")
    top.grid(True, alpha=0.3)
    middle.bar(minutes, [w["errors"] for w in windows], width=0.3, color="tab:red")
    middle.set_ylabel("errors (503)")
    middle.grid(True, alpha=0.3)
    rss = [(w["t"] / 60, w["rss_kib"] / 1024) for w in result.windows if w.get("rss_kib")]
    bottom.plot([t for t, _ in rss], [m for _, m in rss], "o-", color="tab:green", label="dev host")
    azurite = [
        (w["t"] / 60, kib / 1024)
        for w in result.windows
        if (kib := (w.get("other_rss_kib") or {}).get("azurite"))
    ]
    if azurite:
        bottom.plot(
            [t for t, _ in azurite],
            [m for _, m in azurite],
            "s--",
            color="tab:gray",
            label="Azurite (keeps every message)",
        )
    bottom.set_ylabel("RSS (MiB)")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    bottom.legend(fontsize="small")
    bottom.grid(True, alpha=0.3)
    figure.suptitle(
        f"Soak: {result.rate:.0f} req/s (half the peak) for {result.minutes:g} min, "
        f"per {WINDOW_SECONDS:g} s window"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- sections ----------------------------------------------------------------------------------
def cpu_section(figures: list[CpuFigure], rounds: int, calls: int) -> list[str]:
    from bench.cpu import CpuFigure  # noqa: F401 - for the reader: the figures' type

    typical = next(f for f in figures if f.size == "typical")
    lines = [
        "## CPU per event, no I/O",
        "",
        "`bench/cpu.py`: the whole pipeline in one process (token check with a warm key cache, "
        "parse and validate, authorize with a warm decision cache, encode the queue message "
        "and Base64 it; the sink stores nothing) against the official CloudEvents SDK merely "
        "parsing the same request (`cloudevents.v1.http.from_http`). Interleaved, "
        f"{rounds} rounds of {calls} calls each; medians of the rounds.",
        "",
        "| event | body | ours (µs) | SDK parse (µs) | ratio | ours, new token every request "
        "(µs, ratio) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.size} | {f.body_bytes:,} B | {f.ours_us:.1f} | {f.sdk_us:.1f} | "
            f"**{f.ratio:.2f}x** | {f.ours_fresh_token_us:.1f} ({f.fresh_token_ratio:.2f}x) |"
        )
    lines += [
        "",
        f"**Target: ≤ 1.0x the SDK's parse time for the typical event: {typical.ratio:.2f}x, "
        f"{_met(typical.ratio <= 1.0)}.** The last column is the worst case of a publisher "
        "that never reuses a token: every request pays an RSA signature check (the verified-token "
        "memory is what makes the common case cheap).",
        "",
    ]
    return lines


def http_section(
    levels: list[LevelResult], rounds: int, seconds: float, log_level: str
) -> list[str]:
    from bench.endtoend import TARGET_LEVEL, TARGET_RATIO

    at_target = next(level for level in levels if level.concurrency == TARGET_LEVEL)
    ratio = at_target.ratio()
    lines = [
        "## HTTP end to end",
        "",
        "The dev host in its own process, started as `make serve` starts it (`python -m "
        f"devtools.devhost`, configured by `EVENTS_*`, `LOG_LEVEL={log_level}` as production's "
        "host.json keeps the default category at Warning), with Azurite's queue service "
        "(in memory), the dev issuer and the dev registry on loopback. The load generator "
        "(`bench/load.py`) is another process: aiohttp, N workers each with its keep-alive "
        "connection, a typical (~2 KB) event with a unique `id` per request and a valid "
        "token. The baselines are the same load generator calling `send_message` with the same "
        "queue message on the same Azurite at the same concurrency:",
        "",
        "- **raw**: a `QueueClient` built as our sink builds it (`TextBase64EncodePolicy`, "
        "and no per-request proxy/netrc lookup when the environment has none). "
        "**The target is judged against this one**: it is the enqueue our function does, alone.",
        "- **raw, SDK defaults**: `QueueClient` with only `TextBase64EncodePolicy` set; the SDK's "
        "aiohttp session then looks up proxy variables and `~/.netrc` in a thread on every "
        "request. Context: what a naive client costs.",
        "",
        f"Per level, {rounds} rounds of {seconds:g} s each (after 1 s of warm-up), the three "
        "runs of a round back to back in a rotating order; the table shows medians over rounds, "
        "and the ratio is the median of the per-round ratios (ours over raw in the same round). "
        "After every run the queue was counted: every 200 is a message on it.",
        "",
        f"![Throughput and p99 latency against concurrency]({HTTP_PLOT.name})",
        "",
        "| concurrency | ours (req/s) | raw (req/s) | **ratio** (rounds) | raw, SDK defaults "
        "(req/s) | ours p50 / p95 / p99 (ms) | raw p50 / p95 / p99 (ms) | CPU per request, "
        "ours / raw (us) | errors | on queue |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        paired = level.paired_ratios()
        queue_ok = level.queue_mismatches() == 0
        on_queue = sum(run["on_queue"] for runs in level.runs.values() for run in runs)
        errors = sum(level.total(target, "errors") for target in level.runs)
        lines.append(
            f"| {level.concurrency} | {level.median('ours', 'throughput'):.0f} | "
            f"{level.median('raw', 'throughput'):.0f} | **{level.ratio():.2f}x** "
            f"({min(paired):.2f}-{max(paired):.2f}) | "
            f"{level.median('raw-sdk-defaults', 'throughput'):.0f} | "
            + " / ".join(_ms(level.median("ours", k)) for k in ("p50_ms", "p95_ms", "p99_ms"))
            + " | "
            + " / ".join(_ms(level.median("raw", k)) for k in ("p50_ms", "p95_ms", "p99_ms"))
            + f" | {level.cpu_us_per_request('ours'):.0f} / "
            f"{level.cpu_us_per_request('raw'):.0f}"
            + f" | {errors} | {on_queue:,} {'all' if queue_ok else '**MISMATCH**'} |"
        )
    ours_p99 = at_target.median("ours", "p99_ms")
    raw_p99 = at_target.median("raw", "p99_ms")
    as_specified = at_target.ratio("ours", "raw-sdk-defaults")
    ours_cpu = at_target.cpu_us_per_request("ours")
    raw_cpu = at_target.cpu_us_per_request("raw")
    budget = raw_cpu / TARGET_RATIO
    sdk = PROFILED_SDK_SHARE * ours_cpu
    rest = ours_cpu - sdk
    lines += [
        "",
        f"**Target: >= {TARGET_RATIO}x the raw enqueue rate at concurrency {TARGET_LEVEL}: "
        f"{ratio:.2f}x against the raw enqueue configured as our sink configures it, "
        f"{_met(ratio >= TARGET_RATIO)}.** Against the baseline exactly as the issue words it "
        f"(a `QueueClient` with `TextBase64EncodePolicy`, everything else the SDK's default) "
        f"it is {as_specified:.2f}x ({_met(as_specified >= TARGET_RATIO)}), but only because "
        "our sink no longer pays the per-request proxy/netrc lookup that the default client "
        "does, so that comparison flatters us and is not the one judged. "
        f"p99 at concurrency {TARGET_LEVEL}: {ours_p99:.1f} ms, against the raw enqueue's "
        f"{raw_p99:.1f} ms.",
        "",
        "**What stands in the way.** Every process here is CPU-bound on two shared cores, so "
        "throughput follows CPU per request. At concurrency "
        f"{TARGET_LEVEL}, the dev host spent {ours_cpu:.0f} us of CPU per publish, and the "
        f"load generator {raw_cpu:.0f} us per raw `send_message` (the SDK's cost plus the "
        f"generator's own): {raw_cpu / ours_cpu:.2f}x, close to the throughput ratio. "
        "A py-spy profile of the dev host under this load (taken once while this benchmark "
        "was written, not re-measured by it) put about 63% of its CPU in the Storage SDK and "
        "its aiohttp session (the same work the raw baseline does), 17% in the pipeline "
        "(`shared/`, `function_app.py`: token lookup, JSON parse and validation, "
        "authorization, encoding), and 17% in HTTP serving, of which the largest single part is "
        "the kernel's socket write of the response. So the ratio is bounded by the SDK's share "
        f"of the process: at {TARGET_RATIO}x the dev host could spend at most "
        f"{budget:.0f} us per publish; with the SDK's part (about {sdk:.0f} us) fixed, the "
        f"pipeline and the HTTP serving (about {rest:.0f} us now) would have to fit in "
        f"{budget - sdk:.0f} us, {1 - (budget - sdk) / rest:.0%} less, "
        "or the enqueue would have to be cheaper than the SDK's (for example Put Message over "
        "our own aiohttp session, skipping the SDK's policy pipeline and XML response model), "
        "which "
        "would replace the queue client rather than tune it and was not done. What was done: "
        "the per-request proxy/netrc lookup is gone from our sink and uvicorn runs on "
        "httptools and uvloop; the next table measures both.",
        "",
        "Both the dev host and the load generator run on uvloop (the generator uses it when "
        "installed, as uvicorn does). Azurite is restarted (in memory, same port) after every "
        "run, once its queue has been counted: Azurite 3.35's in-memory store collects the "
        "extents of deleted messages in a once-a-minute pass that is quadratic in their number, "
        "and after a few tens of thousands of messages it stalls for minutes (every request "
        "times out), which `clear_messages` between runs triggered.",
        "",
    ]
    return lines


def serving_section(result: ServingResult) -> list[str]:
    names = list(result.cpu_us)
    current = result.median_us(names[-1])
    h11, with_lookups = result.median_us(names[0]), result.median_us(names[1])
    lines = [
        "### Where the dev host's CPU goes",
        "",
        "The HTTP figures are bound by CPU: the dev host's, the load generator's and Azurite's, "
        "on two cores. The dev host's CPU time per request (`utime + stime` from "
        f"`/proc/<pid>/stat` over {result.requests:,} publishes at concurrency 32, after "
        f"300 to warm up; median of {len(result.cpu_us[names[0]])} rounds, configurations "
        "alternating, a fresh process each) under three serving configurations:",
        "",
        "| configuration | dev host CPU per request (us) | relative to make serve's |",
        "|---|---:|---:|",
    ]
    for name in names:
        lines.append(
            f"| {name} | {result.median_us(name):.0f} | {result.median_us(name) / current:.2f}x |"
        )
    lines += [
        "",
        "A py-spy profile of the dev host showed where it went: the Storage SDK's aiohttp "
        "session is created with `trust_env=True` by default, so every `send_message` looks up "
        "proxy variables and parses `~/.netrc` in the default thread pool (two thread hand-offs "
        f"per request; {1 - current / with_lookups:.0%} of the dev host's CPU per request here). "
        "shared/queue.py now passes "
        "`use_env_settings=False` when the environment has no proxy variables and no netrc file "
        "(then the lookup can only find nothing; with either present the SDK's default stays). "
        "uvicorn's pure-Python h11 parser and asyncio's loop were the next largest cost "
        f"({1 - with_lookups / h11:.0%} here); with httptools and uvloop installed "
        "(requirements-dev.txt) uvicorn picks them by itself. "
        "What remains is mostly the Storage SDK's own pipeline per message (policies, XML, "
        "request signing), which the raw baseline pays in the same way.",
        "",
    ]
    return lines


def coldstart_section(result: ColdStartResult) -> list[str]:
    from bench.coldstart import TARGET_RATIO

    ours_process = sorted(result.ours_process_s)[len(result.ours_process_s) // 2]
    deps_process = sorted(result.deps_process_s)[len(result.deps_process_s) // 2]
    only_ours_ms = sum(micros for _, micros in result.only_ours) / 1000
    top = ", ".join(f"`{module}` {micros / 1000:.1f} ms" for module, micros in result.only_ours[:8])
    return [
        "## Cold start",
        "",
        "Wall time of the import alone, timed inside a fresh interpreter: `import function_app` "
        "against importing only the third-party modules that `function_app` and `shared/` "
        "import (found by recording their imports while `function_app` loads, not listed by "
        f"hand): {', '.join(f'`{m}`' for m in result.modules)}. {result.runs} fresh "
        "interpreters each, alternating; medians.",
        "",
        "| | import (ms) | whole process (ms, context) |",
        "|---|---:|---:|",
        f"| `import function_app` | {result.ours * 1000:.0f} | {ours_process * 1000:.0f} |",
        f"| third-party imports alone | {result.deps * 1000:.0f} | {deps_process * 1000:.0f} |",
        f"| **ratio** | **{result.ratio:.2f}x** | {ours_process / deps_process:.2f}x |",
        "",
        f"**Target: ≤ {TARGET_RATIO}x: {result.ratio:.2f}x, "
        f"{_met(result.ratio <= TARGET_RATIO)}.** What only ours loads (`-X importtime`, self "
        f"time, {only_ours_ms:.1f} ms in all): {top}. Nothing is fetched or connected at import "
        "(shared/runtime.py builds the clients on the first request), and `azure.identity` and "
        "msal are imported only when the settings need them.",
        "",
    ]


def memory_section(result: MemoryResult) -> list[str]:
    from bench.memory import TARGET_GROWTH

    named = [(n, st, w) for n, st, w in result.cases if not n.startswith("unregistered-")]
    unregistered = [case for case in result.cases if case[0].startswith("unregistered-")]
    mix = ", ".join(f"{name} → {status} (x{weight})" for name, status, weight in named)
    if unregistered:
        mix += (
            f", and {len(unregistered)} unregistered resources → {unregistered[0][1]} "
            f"(x{unregistered[0][2]} each)"
        )
    rss = [w["rss_kib"] for w in result.windows if w.get("rss_kib")]
    series = " → ".join(_mib(kib) for kib in rss[:: max(1, len(rss) // 8)])
    statuses = ", ".join(f"{status}: {count:,}" for status, count in result.statuses.items())
    return [
        "## Memory",
        "",
        "RSS (`VmRSS` in `/proc/<pid>/status`) of a fresh dev host process, after a warm-up of "
        f"{result.warmup_requests:,} requests and after {result.requests:,} more, sent at "
        "concurrency 32 with this mix, cycled in a fixed interleaved order (weights per cycle): "
        f"{mix}. The valid tokens are a pool of {result.token_pool:,} distinct ones, more than "
        "the verified-token memory holds, so it evicts throughout; the bad-signature and "
        "other-organisation tokens are distinct too.",
        "",
        "| after warm-up | after the requests | growth |",
        "|---:|---:|---:|",
        f"| {_mib(result.rss_before_kib)} | {_mib(result.rss_after_kib)} | "
        f"**{result.growth:+.1%}** |",
        "",
        f"**Target: growth ≤ {TARGET_GROWTH:.0%}: {result.growth:+.1%}, "
        f"{_met(result.growth <= TARGET_GROWTH)}.** Statuses: {statuses}; answers other than "
        f"the expected status: {result.errors}; on the queue: {result.on_queue:,} of "
        f"{result.enqueued_expected:,} 200s. RSS every 10 s: {series}.",
        "",
    ]


def soak_section(result: SoakResult) -> list[str]:
    windows = [w for w in result.windows if w.get("requests")]
    statuses = ", ".join(f"{status}: {count:,}" for status, count in result.statuses.items())
    lines = [
        SOAK_BEGIN,
        "## Soak",
        "",
        f"`make soak` on {result.date}: {result.minutes:g} minutes of valid publishes (typical "
        f"event, 64 tokens) at {result.rate:.0f} req/s, half the peak of "
        f"{result.peak_rps:.0f} req/s, from {result.peak_source}, on an open-loop schedule with up "
        "to 64 in flight, against a fresh dev host and Azurite as in the HTTP benchmark; "
        "nothing consumes the queue. Every 30 s: latency, errors, the RSS of the dev host and "
        "of Azurite, and the longest that a liveness probe of Azurite (a request twice a "
        "second from the load generator) waited for an answer.",
        "",
        f"![p99 latency and RSS over the soak]({SOAK_PLOT.name})",
        "",
        f"Overall: {result.requests:,} requests at {result.throughput:.0f} req/s; p50 "
        f"{result.p50_ms:.1f} ms, **p99 {result.p99_ms:.1f} ms**, max {result.max_ms:.1f} ms; "
        f"statuses {statuses}; **errors {result.errors}** "
        f"({result.errors / max(1, result.requests):.2%}); on the queue "
        f"{result.on_queue:,} messages for {result.enqueued_expected:,} 200s; dev host RSS "
        f"{_mib(result.rss_first_kib)} after warm-up, {_mib(result.rss_last_kib)} at the end "
        f"({result.rss_last_kib / result.rss_first_kib - 1:+.1%}).",
        "",
        *_soak_notes(result, windows),
        "| t (s) | requests | req/s | p50 (ms) | p99 (ms) | max (ms) | errors | dev host RSS "
        "| Azurite RSS | Azurite probe, longest (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in windows:
        azurite = (w.get("other_rss_kib") or {}).get("azurite")
        probe = w.get("probe_max_ms")
        lines.append(
            f"| {w['t']:.0f} | {w['requests']:,} | {w['rate']:.0f} | {_ms(w['p50_ms'])} | "
            f"{_ms(w['p99_ms'])} | {_ms(w['max_ms'])} | {w['errors']} | {_mib(w['rss_kib'])} | "
            f"{_mib(azurite) if azurite else '-'} | {_ms(probe) if probe else '-'} |"
        )
    lines += ["", SOAK_END]
    return lines


def _soak_notes(result: SoakResult, windows: list[dict[str, Any]]) -> list[str]:
    if not windows:
        return []
    worst = max(windows, key=lambda w: w["p99_ms"])
    steady = sorted(w["p99_ms"] for w in windows)[len(windows) // 2]
    azurite_kib = [kib for w in windows if (kib := (w.get("other_rss_kib") or {}).get("azurite"))]
    notes = [
        f"Per-window p99: median {steady:.1f} ms, worst {worst['p99_ms']:.1f} ms (the window "
        f"ending at {worst['t']:.0f} s, max {worst['max_ms']:.1f} ms)."
    ]
    minute = next((w for w in windows if w["t"] >= 60), None)
    if minute is not None and minute.get("rss_kib") and result.rss_last_kib:
        notes.append(
            f"The dev host's RSS settles within the first minute: {_mib(minute['rss_kib'])} at "
            f"{minute['t']:.0f} s, {_mib(result.rss_last_kib)} at the end "
            f"({result.rss_last_kib / minute['rss_kib'] - 1:+.1%})."
        )
    if azurite_kib:
        notes.append(
            f"Azurite, which keeps every message, grew from {_mib(azurite_kib[0])} to "
            f"{_mib(azurite_kib[-1])}."
        )
    stalled = [w for w in windows if (w.get("probe_max_ms") or 0) >= 1000]
    if result.errors:
        in_stalls = sum(w["errors"] for w in stalled)
        notes.append(
            f"{in_stalls:,} of the {result.errors:,} errors fell in the {len(stalled)} windows "
            "in which Azurite itself left the probe waiting a second or more: they are the "
            "function's 503 + `Retry-After` when the queue does not confirm within "
            "`EVENTS_QUEUE_TIMEOUT_SECONDS` (3 s). Azurite 3.35's in-memory store runs a "
            "garbage collection once a minute that pages through every stored message and "
            "extent with a full scan per page, so each pass stalls it longer than the last as "
            "messages accumulate, until the stall exceeds the budget."
        )
    extra = result.on_queue - result.enqueued_expected
    if extra > 0:
        notes.append(
            f"The queue holds {extra:,} messages more than there were 200s: events that "
            "were answered 503 because the confirmation came after the budget, but that "
            "Azurite did store. A timeout cannot tell which; the 503 asks the publisher to "
            "retry, so delivery is at least once and consumers deduplicate on `source` + `id` "
            "as CloudEvents intends. There is no shortfall against the 200s (a count; the "
            "HTTP benchmark and the test suite check stored events one by one)."
        )
    elif extra == 0:
        notes.append("Every 200 is on the queue, and nothing else is.")
    return [" ".join(notes), ""]


def _existing_soak(doc: Path) -> list[str]:
    if not doc.exists():
        return [SOAK_BEGIN, "## Soak", "", "Not run yet: `make soak`.", "", SOAK_END]
    text = doc.read_text(encoding="utf-8")
    if SOAK_BEGIN not in text or SOAK_END not in text:
        return [SOAK_BEGIN, "## Soak", "", "Not run yet: `make soak`.", "", SOAK_END]
    start = text.index(SOAK_BEGIN)
    end = text.index(SOAK_END) + len(SOAK_END)
    return text[start:end].splitlines()


def write_bench(
    *,
    cpu: tuple[list[CpuFigure], int, int],
    http: tuple[list[LevelResult], int, float, str],
    coldstart: ColdStartResult,
    memory: MemoryResult,
    serving: ServingResult | None,
    quick: bool,
    elapsed_seconds: float,
    raw: dict[str, Any],
    date: str,
    doc: Path = DOC,
) -> None:
    from bench.endtoend import TARGET_LEVEL, TARGET_RATIO

    plot_http(http[0])
    levels = http[0]
    peak = max(level.median("ours", "throughput") for level in levels)
    at_target = next(level for level in levels if level.concurrency == TARGET_LEVEL)
    typical = next(f for f in cpu[0] if f.size == "typical")
    lines = [
        "# Performance",
        "",
        f"Measured by `make bench` (`python -m bench{' --quick' if quick else ''}`) on "
        f"{date}, in {elapsed_seconds / 60:.1f} minutes; the soak section by `make soak`. "
        + ("**A quick run (fewer rounds and requests): indicative only.** " if quick else "")
        + "Reproduce with `make bench`; `python -m bench --help` lists the knobs.",
        "",
        *machine_lines(),
        "",
        f"<!-- bench:peak-rps={peak:.1f} -->",
        "",
        "## Summary",
        "",
        "| figure | ours | baseline | ratio | target | |",
        "|---|---:|---:|---:|---:|---|",
        f"| CPU per typical event | {typical.ours_us:.1f} µs | {typical.sdk_us:.1f} µs "
        f"(CloudEvents SDK parse) | {typical.ratio:.2f}x | ≤ 1.0x | {_met(typical.ratio <= 1)} |",
        f"| HTTP throughput, concurrency {TARGET_LEVEL} | "
        f"{at_target.median('ours', 'throughput'):.0f} req/s | "
        f"{at_target.median('raw', 'throughput'):.0f} req/s (raw enqueue) | "
        f"{at_target.ratio():.2f}x | ≥ {TARGET_RATIO}x | "
        f"{_met(at_target.ratio() >= TARGET_RATIO)} |",
        f"| the same, against the SDK-defaults client | "
        f"{at_target.median('ours', 'throughput'):.0f} req/s | "
        f"{at_target.median('raw-sdk-defaults', 'throughput'):.0f} req/s | "
        f"{at_target.ratio('ours', 'raw-sdk-defaults'):.2f}x | context | see HTTP section |",
        f"| HTTP p99, concurrency {TARGET_LEVEL} | {at_target.median('ours', 'p99_ms'):.1f} ms "
        f"| {at_target.median('raw', 'p99_ms'):.1f} ms | "
        f"{at_target.median('ours', 'p99_ms') / at_target.median('raw', 'p99_ms'):.2f}x | "
        "reported | |",
        f"| Cold start (import) | {coldstart.ours * 1000:.0f} ms | "
        f"{coldstart.deps * 1000:.0f} ms (third-party imports) | {coldstart.ratio:.2f}x | "
        f"≤ 1.15x | {_met(coldstart.ratio <= 1.15)} |",
        f"| Memory after {memory.requests:,} requests | {_mib(memory.rss_after_kib)} | "
        f"{_mib(memory.rss_before_kib)} (after warm-up) | {1 + memory.growth:.2f}x | "
        f"≤ 1.10x | {_met(memory.growth <= 0.10)} |",
        "",
        *cpu_section(*cpu),
        *http_section(*http),
        *(serving_section(serving) if serving is not None else []),
        *coldstart_section(coldstart),
        *memory_section(memory),
        *_existing_soak(doc),
        "",
        "## Raw results",
        "",
        "Every run's numbers as the benchmark saw them are in `.local/bench/results.json` after "
        "a run (not committed).",
        "",
    ]
    doc.write_text("\n".join(lines), encoding="utf-8")
    results = ROOT / ".local" / "bench" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")


def write_soak(result: SoakResult, raw: dict[str, Any], doc: Path = DOC) -> None:
    plot_soak(result)
    section = "\n".join(soak_section(result))
    if doc.exists():
        text = doc.read_text(encoding="utf-8")
    else:
        text = "# Performance\n\n" + "\n".join(_existing_soak(doc)) + "\n"
    if SOAK_BEGIN in text and SOAK_END in text:
        start = text.index(SOAK_BEGIN)
        end = text.index(SOAK_END) + len(SOAK_END)
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text, encoding="utf-8")
    results = ROOT / ".local" / "bench" / "soak.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
