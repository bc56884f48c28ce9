"""The capacity table of docs/capacity.md, made from the measured figures and Azure's documented
scalability targets: at how many events per second each limit is reached, for single-event
publishes and for batches of 100.

``python -m bench.capacity`` rewrites the table between the ``<!-- capacity:begin/end -->``
markers from docs/performance.json (what ``make bench`` saved: the dev host's CPU per event,
and the storage requests per publish that tests/support/storagecalls.py counts) and the
template defaults of infra/main.bicep; tests/unit/test_capacity.py fails when the table and
its figures disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import results
from bench.endtoend import LevelResult
from shared.core.idempotency import PUBLISHER_PARTITIONS

DOC = results.ROOT / "docs" / "capacity.md"
MAIN_BICEP = results.ROOT / "infra" / "main.bicep"
BEGIN, END = "<!-- capacity:begin -->", "<!-- capacity:end -->"

#: Azure's documented scalability targets (docs/capacity.md cites each).
QUEUE_MESSAGES_PER_SECOND = 2_000
PARTITION_ENTITIES_PER_SECOND = 2_000
ACCOUNT_REQUESTS_PER_SECOND = 20_000
#: vCPUs of a Flex Consumption instance per MB of its memory (2,048 MB: about one).
VCPU_PER_MB = 1 / 2048
#: Table entities a new event writes: its claim, and its commit.
ENTITIES_PER_NEW_EVENT = 2
#: The queue partitions shown besides the default.
MORE_PARTITIONS = 4


@dataclass(frozen=True)
class Usage:
    """What one new event uses, single or in a batch of 100."""

    table_requests: float
    queue_requests: float
    cpu_us: float

    @property
    def account_requests(self) -> float:
        return self.table_requests + self.queue_requests


def template_default(name: str, path: Path = MAIN_BICEP) -> int:
    found = re.search(rf"^param {name} int = (\d+)$", path.read_text(encoding="utf-8"), re.M)
    if found is None:
        raise ValueError(f"infra/main.bicep declares no int parameter {name}")
    return int(found.group(1))


def usages(saved: dict[str, Any]) -> tuple[Usage, Usage]:
    """A single publish's and a batch element's use, from saved ``make bench`` results."""
    calls = saved["calls"]
    single, batch = calls["new event"], calls["batch of 100 new events"]
    dedup = LevelResult(**saved["dedup"])
    level = next(
        LevelResult(**level) for level in saved["http"] if level["concurrency"] == dedup.concurrency
    )
    return (
        Usage(single["table"], single["queue"], dedup.cpu_us_per_event("ours")),
        Usage(batch["table"] / 100, batch["queue"] / 100, level.cpu_us_per_event("ours-batch")),
    )


def _rate(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:,.0f}"


def table(saved: dict[str, Any], bicep: Path = MAIN_BICEP) -> str:
    single, batch = usages(saved)
    instances = template_default("maximumInstanceCount", bicep)
    memory = template_default("instanceMemoryMB", bicep)
    vcpus = instances * memory * VCPU_PER_MB

    def rows(usage: Usage) -> list[tuple[str, str, str, float]]:
        return [
            ("one queue's messages (the default: 1 partition)", "2,000 messages/s", "1 message",
             QUEUE_MESSAGES_PER_SECOND / 1),
            (f"{MORE_PARTITIONS} queue partitions (`EVENTS_QUEUE_PARTITIONS={MORE_PARTITIONS}`)",
             f"{MORE_PARTITIONS} x 2,000 messages/s", "1 message",
             MORE_PARTITIONS * QUEUE_MESSAGES_PER_SECOND),
            (f"one publisher's records ({PUBLISHER_PARTITIONS} table partitions)",
             f"{PUBLISHER_PARTITIONS} x 2,000 entities/s", f"{ENTITIES_PER_NEW_EVENT} entities",
             PUBLISHER_PARTITIONS * PARTITION_ENTITIES_PER_SECOND / ENTITIES_PER_NEW_EVENT),
            ("the storage account's requests", "20,000 requests/s",
             f"{usage.account_requests:.2f} requests",
             ACCOUNT_REQUESTS_PER_SECOND / usage.account_requests),
            (f"CPU of {instances} instances of {memory} MB (about {vcpus:g} vCPU)",
             f"{vcpus:g} CPU-seconds/s", f"{usage.cpu_us:.0f} µs",
             vcpus / (usage.cpu_us * 1e-6)),
        ]  # fmt: skip

    lines = [
        "| limit | Azure's target | per new event, single | events/s, single "
        "| per new event, batch of 100 | events/s, batches |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (name, target, use, rate), (_, _, batch_use, batch_rate) in zip(
        rows(single), rows(batch), strict=True
    ):
        lines.append(
            f"| {name} | {target} | {use} | {_rate(rate)} | {batch_use} | {_rate(batch_rate)} |"
        )
    return "\n".join(lines)


def section(text: str) -> str:
    """The table between the markers of a docs/capacity.md text."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


def write(doc: Path = DOC, saved_at: Path = results.RESULTS) -> None:
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    made = table(results.load(saved_at))
    doc.write_text(text[:start] + "\n\n" + made + "\n\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    write()
    print(f"rewrote the table of {DOC.relative_to(results.ROOT)}")
