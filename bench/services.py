"""What the HTTP benchmarks run against, all on 127.0.0.1 and all stopped afterwards.

The local stack (devtools/stack.py: Azurite's queue service in memory, the dev token issuer and
the dev Resource Registry, idle once the function's caches are warm) and the dev host as its own
process, started exactly as ``make serve`` starts it: ``python -m devtools.devhost`` configured
only by ``PORT`` and ``EVENTS_*``. The load generator (bench/load.py) is yet another process;
``run_load`` starts it with a spec and reads its result.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from bench.events import RESOURCE
from bench.load import ID_PLACEHOLDER
from devtools.azurite import ROOT
from devtools.registry import DevRegistry, publish_rule
from devtools.stack import FunctionProcess, LocalStack
from shared.cloudevents import parse_structured, serialize
from shared.core.altinn import ALTINN_PROFILE

PUBLISHER_ORG = "ttd"
OTHER_ORG = "skd"
RESOURCE_IDENTIFIER = RESOURCE.rsplit(":", 1)[1]
QUEUE = "bench-events"
RAW_QUEUE = "bench-raw"
#: Where the dev host puts large events' data (EVENTS_BLOB_CONTAINER's default).
BLOB_CONTAINER = "events-data"


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, all its threads (``utime + stime`` of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def registry() -> DevRegistry:
    """The benchmarks' registry: only PUBLISHER_ORG may publish, only on RESOURCE."""
    rule = publish_rule(RESOURCE_IDENTIFIER, ("urn:altinn:org", PUBLISHER_ORG))
    return DevRegistry({RESOURCE_IDENTIFIER: [rule]})


def queue_message(body: bytes) -> str:
    """The exact queue message the function enqueues for this request body."""
    return serialize(parse_structured(body, ALTINN_PROFILE)).decode()


class Stack:
    """The local stack with the bench's two queues, plus the dev host subprocess."""

    def __init__(self, *, log_level: str = "WARNING") -> None:
        self.log_level = log_level
        self.local = LocalStack(registry=registry())
        self.azurite = self.local.azurite
        #: Specs for the load generator and the dev host's log; removed after a clean stop.
        (ROOT / ".local" / "bench").mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="work-", dir=ROOT / ".local" / "bench"))
        self.devhost: FunctionProcess | None = None
        self._devhost = contextlib.ExitStack()

    def __enter__(self) -> Stack:
        self.local.start()
        try:
            self._create_queues()
            self.start_devhost()
        except BaseException:
            self._devhost.close()
            self.local.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._devhost.close()
        self.local.stop()
        if kind is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print(f"bench: the dev host's log is in {self.workdir}", file=sys.stderr)

    def _create_queues(self) -> None:
        for name in (QUEUE, RAW_QUEUE):
            with contextlib.suppress(ResourceExistsError):
                self.queue(name).create_queue()

    def restart_azurite(self) -> None:
        """A fresh, empty Azurite (in memory, on the same port) with both queues created."""
        self.azurite.stop()
        self.azurite.start()
        self._create_queues()

    def start_devhost(
        self, *, command: list[str] | None = None, environment: dict[str, str] | None = None
    ) -> None:
        """``make serve`` in a new process (a running one is stopped first).

        ``command`` and ``environment`` replace ``python -m devtools.devhost`` and add variables,
        for the serving-configuration comparison only.
        """
        self._devhost.close()
        log = self._devhost.enter_context((self.workdir / "devhost.log").open("ab"))
        self.devhost = self._devhost.enter_context(
            self.local.serve(
                queue_name=QUEUE,
                variables={"LOG_LEVEL": self.log_level, **(environment or {})},
                command=command,
                output=log,
            )
        )

    @contextlib.contextmanager
    def another_devhost(self, environment: dict[str, str]) -> Iterator[FunctionProcess]:
        """A second dev host beside the first, on the same queue, with ``environment`` added to
        ``make serve``'s, until the block ends (to compare two configurations side by side)."""
        with (
            (self.workdir / "devhost-other.log").open("ab") as log,
            self.local.serve(
                queue_name=QUEUE,
                variables={"LOG_LEVEL": self.log_level, **environment},
                output=log,
            ) as other,
        ):
            yield other

    @property
    def pid(self) -> int:
        """The dev host's process id."""
        assert self.devhost is not None
        return self.devhost.process.pid

    @property
    def url(self) -> str:
        assert self.devhost is not None
        return f"{self.devhost.url}/events"

    # -- queues ------------------------------------------------------------------------------
    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.azurite.connection_string, name)

    def count(self, name: str) -> int:
        """How many messages the queue holds (Azurite's count is exact)."""
        properties = self.queue(name).get_queue_properties()
        return int(properties.approximate_message_count or 0)

    def count_blobs(self) -> int:
        """How many blobs of large events' data Azurite holds."""
        container = ContainerClient.from_connection_string(
            self.azurite.connection_string, BLOB_CONTAINER
        )
        with container:
            try:
                return sum(1 for _ in container.list_blobs())
            except ResourceNotFoundError:  # no large event yet: no container
                return 0

    def azurite_cpu_seconds(self) -> float:
        """CPU time Azurite's service processes (queue, table, blob) have used since they started
        (``count_and_reset`` starts them afresh)."""
        return sum(cpu_seconds(process.pid) for process in self.azurite.processes.values())

    def count_and_reset(self, name: str) -> int:
        """Count the queue's messages, then start Azurite afresh (on the same port).

        Not ``clear_messages``: Azurite 3.35's in-memory store collects the extents of deleted
        messages in a garbage collection, once a minute, that is quadratic in their number
        (every removal re-sorts an index). After a few tens of thousands of messages it holds
        Azurite's single thread for minutes and every request times out. A restart costs a
        second or two and leaves no debt behind; the clients reconnect (the dev host's queue
        client retries a connection that the restart reset).
        """
        count = self.count(name)
        self.restart_azurite()
        return count

    # -- tokens and load ---------------------------------------------------------------------
    def tokens(self, count: int, **claims: Any) -> list[str]:
        assert self.local.issuer is not None
        return [self.local.issuer.mint(lifetime_seconds=4 * 3600, **claims) for _ in range(count)]

    def load_spec(self, target: str, cases: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"target": target, "cases": cases, "run_id": uuid.uuid4().hex[:8]}
        if target == "ours":
            spec["url"] = self.url
        else:
            spec["connection_string"] = self.azurite.connection_string
            spec["queue_name"] = RAW_QUEUE
        return {**spec, **options}

    def run_load(self, spec: dict[str, Any], *, timeout: float = 3600) -> dict[str, Any]:
        """Run bench/load.py in its own process with ``spec``; its JSON result."""
        with tempfile.NamedTemporaryFile(
            "w", suffix=".json", dir=self.workdir, delete=False, encoding="utf-8"
        ) as file:
            json.dump(spec, file)
        try:
            completed = subprocess.run(  # noqa: S603 - fixed command, no shell
                [sys.executable, "-m", "bench.load", file.name],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            Path(file.name).unlink(missing_ok=True)
        if completed.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{completed.stderr}")
        result: dict[str, Any] = json.loads(completed.stdout)
        return result


def ours_case(
    name: str, event: dict[str, Any], tokens: list[str], expect: int, weight: int = 1
) -> dict[str, Any]:
    """A request case for the load generator; it fills in the event's ``id`` per request."""
    body = json.dumps({**event, "id": ID_PLACEHOLDER}, ensure_ascii=False)
    return {"name": name, "body": body, "tokens": tokens, "expect": expect, "weight": weight}


def batch_case(
    name: str, event: dict[str, Any], tokens: list[str], events: int, expect: int = 200
) -> dict[str, Any]:
    """A batch of ``events`` copies of ``event`` (``application/cloudevents-batch+json``); the
    load generator gives each element a distinct ``id`` per request."""
    element = json.dumps({**event, "id": ID_PLACEHOLDER}, ensure_ascii=False)
    return {
        "name": name,
        "body": "[" + ",".join([element] * events) + "]",
        "tokens": tokens,
        "expect": expect,
        "content_type": "application/cloudevents-batch+json",
        "events": events,
    }
