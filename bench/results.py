"""What a run saves, and the shapes that both the runs and the report use.

``make bench`` saves its results to docs/performance.json (committed with the tables, so a fresh
checkout can rewrite the tables and knows the peak rate that ``make soak`` runs at half of);
``make soak`` saves its own to .local/bench/soak.json.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "performance.json"
SOAK_RESULTS = ROOT / ".local" / "bench" / "soak.json"
#: The soak's reporting window.
WINDOW_SECONDS = 30.0
#: The libraries whose versions a run records.
LIBRARIES = (
    "aiohttp", "uvicorn", "httptools", "uvloop", "azure-storage-queue", "azure-data-tables",
    "azure-storage-blob", "azure-core", "azure-functions", "PyJWT", "cryptography", "orjson",
    "jiter", "pydantic", "opentelemetry-sdk", "cloudevents",
)  # fmt: skip


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def save(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def peak_rps(path: Path = RESULTS) -> float | None:
    """The highest throughput of POST /events in the latest saved ``make bench`` run."""
    if not path.exists():
        return None
    peak = load(path).get("peak_rps")
    return float(peak) if peak is not None else None


def _command(*command: str) -> str:
    try:
        return subprocess.run(  # noqa: S603 - fixed command, no shell
            command, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not found"


def machine() -> dict[str, str]:
    """Where the run ran: saved with its results, so a rewrite from them names the same."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    try:
        package = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())
        azurite = str(package["version"])
    except (OSError, ValueError, KeyError):
        azurite = "not installed"
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    return {
        "machine": f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}",
        "Python": f"{platform.python_version()} ({sys.implementation.name})",
        "Azurite": f"{azurite} on Node.js {_command('node', '--version')}",
        "libraries": ", ".join(versions),
    }


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
