"""What the HTTP benchmarks run against, all on 127.0.0.1 and all stopped afterwards.

Azurite's queue service (in memory), the dev token issuer and the dev Resource Registry (aiohttp
servers on background threads of the benchmark process; idle once the function's caches are
warm), and the dev host as its own process, started exactly as ``make serve`` starts it:
``python -m devtools.devhost`` configured only by ``PORT`` and ``EVENTS_*``. The load generator
(bench/load.py) is yet another process; ``run_load`` starts it with a spec and reads its result.
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
from pathlib import Path
from types import TracebackType
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from bench.events import RESOURCE
from bench.load import ID_PLACEHOLDER
from devtools.azurite import ROOT, Azurite, free_port, wait_for_port
from devtools.issuer import DevIssuer
from devtools.registry import BASE_PATH, DevRegistry, publish_rule
from devtools.servers import BackgroundServer, bind_loopback
from shared.altinn import ALTINN_PROFILE
from shared.cloudevents import parse_structured, serialize

PUBLISHER_ORG = "ttd"
OTHER_ORG = "skd"
RESOURCE_IDENTIFIER = RESOURCE.rsplit(":", 1)[1]


def queue_message(body: bytes) -> str:
    """The exact queue message the function enqueues for this request body."""
    return serialize(parse_structured(body, ALTINN_PROFILE)).decode()


def _local_dir() -> Path:
    path = ROOT / ".local" / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Stack:
    """Azurite + dev issuer + dev registry + the dev host subprocess, started and stopped as one."""

    def __init__(self, *, log_level: str = "WARNING", workdir: Path | None = None) -> None:
        self.log_level = log_level
        #: Specs for the load generator and the dev host's log; removed after a clean stop.
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="work-", dir=_local_dir()))
        self.azurite = Azurite()
        self.issuer: DevIssuer | None = None
        self.registry = DevRegistry(
            {
                RESOURCE_IDENTIFIER: [
                    publish_rule(RESOURCE_IDENTIFIER, ("urn:altinn:org", PUBLISHER_ORG))
                ]
            }
        )
        self._servers: list[BackgroundServer] = []
        self.devhost: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.queue_name = "bench-events"
        self.raw_queue_name = "bench-raw"
        self._devhost_log: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Stack:
        try:
            self.start_azurite()
            issuer_sock, registry_sock = bind_loopback(), bind_loopback()
            self.issuer = DevIssuer(f"http://127.0.0.1:{issuer_sock.getsockname()[1]}")
            self._servers = [
                BackgroundServer(self.issuer.app, issuer_sock).start(),
                BackgroundServer(self.registry.app, registry_sock).start(),
            ]
            self.start_devhost()
        except BaseException:
            self.stop()
            raise
        return self

    def start_azurite(self) -> None:
        """A fresh Azurite (in memory, on the same port as before) with both queues created."""
        self.azurite.stop()
        self.azurite.start()
        for name in (self.queue_name, self.raw_queue_name):
            with contextlib.suppress(ResourceExistsError):
                self.queue(name).create_queue()

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].port}{BASE_PATH}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start_devhost(
        self, *, command: list[str] | None = None, environment: dict[str, str] | None = None
    ) -> None:
        """``make serve`` in a new process (a running one is stopped first).

        ``command`` and ``environment`` replace ``python -m devtools.devhost`` and add variables,
        for the serving-configuration comparison only.
        """
        self.stop_devhost()
        assert self.issuer is not None
        self.port = free_port()
        variables = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EVENTS_")},
            "PORT": str(self.port),
            "EVENTS_TRUSTED_ISSUERS": self.issuer.base_url,
            "EVENTS_REGISTRY_URL": self.registry_url,
            "EVENTS_QUEUE_CONNECTION": self.azurite.connection_string,
            "EVENTS_QUEUE_NAME": self.queue_name,
            "LOG_LEVEL": self.log_level,
            **(environment or {}),
        }
        self._devhost_log = (self.workdir / "devhost.log").open("ab")
        self.devhost = subprocess.Popen(  # noqa: S603 - our own interpreter, no shell
            command or [sys.executable, "-m", "devtools.devhost"],
            cwd=ROOT,
            env=variables,
            stdout=self._devhost_log,
            stderr=self._devhost_log,
        )
        wait_for_port(self.port, timeout=30, process=self.devhost)

    def stop_devhost(self) -> None:
        if self.devhost is not None:
            if self.devhost.poll() is None:
                self.devhost.terminate()
                try:
                    self.devhost.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.devhost.kill()
                    self.devhost.wait(timeout=15)
            self.devhost = None
        if self._devhost_log is not None:
            self._devhost_log.close()
            self._devhost_log = None

    def stop(self) -> None:
        self.stop_devhost()
        for server in self._servers:
            server.stop()
        self._servers = []
        self.azurite.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        if kind is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print(f"bench: the dev host's log is in {self.workdir}", file=sys.stderr)

    # -- queues ------------------------------------------------------------------------------
    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.azurite.connection_string, name)

    def count(self, name: str) -> int:
        """How many messages the queue holds (Azurite's count is exact)."""
        properties = self.queue(name).get_queue_properties()
        return int(properties.approximate_message_count or 0)

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
        self.start_azurite()
        return count

    # -- tokens and load ---------------------------------------------------------------------
    def tokens(self, count: int, **claims: Any) -> list[str]:
        assert self.issuer is not None
        return [self.issuer.mint(lifetime_seconds=4 * 3600, **claims) for _ in range(count)]

    def load_spec(self, target: str, cases: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"target": target, "cases": cases, "run_id": uuid.uuid4().hex[:8]}
        if target == "ours":
            spec["url"] = self.url
        else:
            spec["connection_string"] = self.azurite.connection_string
            spec["queue_name"] = self.raw_queue_name
        spec.update(options)
        return spec


def run_load(spec: dict[str, Any], workdir: Path, *, timeout: float = 3600) -> dict[str, Any]:
    """Run bench/load.py in its own process with ``spec``; its JSON result."""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", dir=workdir, delete=False, encoding="utf-8"
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


def ours_case(name: str, body: bytes, tokens: list[str], expect: int, weight: int = 1) -> Any:
    return {
        "name": name,
        "body": body.decode(),
        "tokens": tokens,
        "expect": expect,
        "weight": weight,
    }


def placeholder_body(event: dict[str, Any]) -> bytes:
    """A request body whose ``id`` the load generator fills in per request."""
    return json.dumps({**event, "id": ID_PLACEHOLDER}, ensure_ascii=False).encode()
