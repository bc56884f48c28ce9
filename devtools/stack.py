"""The local stack: every service the function needs, on 127.0.0.1, started and stopped as one.

``make run``, the tests and the benchmarks all start their services here, so adding a service is
one edit. A ``LocalStack`` is a context manager built on ``contextlib.ExitStack``: whatever it
started is stopped in reverse order, also when a later start fails. It owns the ``EVENTS_*``
environment of local runs: ``environment()`` is what points the function at these services, and
``serve()`` starts the function through the dev host (as ``make serve`` does) with exactly that.

- Azurite's blob, queue and table services (the npm package pinned in package.json), in memory
  or in a folder;
- the dev token issuer (devtools/issuer.py), an aiohttp server on a background thread;
- the dev Resource Registry (devtools/registry.py), the same;
- optionally the function, ``python -m devtools.devhost`` in its own process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from devtools.azurite import ROOT, Azurite, free_port, wait_for_port
from devtools.issuer import DEFAULT_KEY_FILE, DevIssuer, SigningKey
from devtools.registry import BASE_PATH, DevRegistry
from devtools.servers import BackgroundServer, bind_loopback

DEFAULT_QUEUE_NAME = "events-registration"
DEFAULT_RECORDS_TABLE = "eventids"
#: What the function uses of Azurite: the queue, the table of published events' identities and
#: the blobs of large events' data (the claim check). The Functions host (func start) needs the
#: blob service too, for AzureWebJobsStorage.
AZURITE_SERVICES = ("blob", "queue", "table")


class LocalStack:
    """Azurite, the dev issuer and the dev registry; see the module's docstring.

    Ports are free ones unless given (``make run`` uses fixed ones); ``state=None`` keeps
    Azurite's data in memory and makes a new signing key, a folder keeps both across runs.
    """

    def __init__(
        self,
        *,
        registry: DevRegistry | None = None,
        state: Path | None = None,
        issuer_port: int = 0,
        registry_port: int = 0,
        azurite_ports: dict[str, int] | None = None,
        issuer_path: str = "",
        azurite_services: tuple[str, ...] = AZURITE_SERVICES,
    ) -> None:
        self.registry = registry if registry is not None else DevRegistry()
        self._state = state
        self._issuer_port = issuer_port
        self._registry_port = registry_port
        self._issuer_path = issuer_path
        self.azurite = Azurite(
            services=azurite_services,
            ports=azurite_ports,
            location=state / "azurite" if state is not None else None,
        )
        self.issuer: DevIssuer | None = None
        self.registry_url = ""
        self._exit = contextlib.ExitStack()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalStack:
        with contextlib.ExitStack() as starting:
            issuer_sock = bind_loopback(self._issuer_port)
            starting.callback(issuer_sock.close)
            registry_sock = bind_loopback(self._registry_port)
            starting.callback(registry_sock.close)
            issuer_url = f"http://127.0.0.1:{issuer_sock.getsockname()[1]}{self._issuer_path}"
            key = (
                SigningKey.load_or_create(self._state / DEFAULT_KEY_FILE.relative_to(".local"))
                if self._state is not None
                else None
            )
            self.issuer = DevIssuer(issuer_url, key)
            starting.callback(BackgroundServer(self.issuer.app, issuer_sock).start().stop)
            registry_server = BackgroundServer(self.registry.app, registry_sock).start()
            starting.callback(registry_server.stop)
            self.registry_url = f"http://127.0.0.1:{registry_server.port}{BASE_PATH}"
            starting.callback(self.azurite.stop)
            self.azurite.start()
            self._exit = starting.pop_all()
        return self

    def stop(self) -> None:
        self._exit.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the function's configuration ----------------------------------------------------------
    def environment(
        self, *, queue_name: str = DEFAULT_QUEUE_NAME, records_table: str = DEFAULT_RECORDS_TABLE
    ) -> dict[str, str]:
        """The ``EVENTS_*`` variables that point the function at these services (a test gives
        each function its own queue and its own records tables)."""
        assert self.issuer is not None, "start() the stack first"
        return {
            "EVENTS_TRUSTED_ISSUERS": self.issuer.base_url,
            "EVENTS_REGISTRY_URL": self.registry_url,
            "EVENTS_QUEUE_CONNECTION": self.azurite.connection_string,
            "EVENTS_QUEUE_NAME": queue_name,
            "EVENTS_IDEMPOTENCY_TABLE": records_table,
        }

    @contextlib.contextmanager
    def applied(self, **variables: str) -> Iterator[dict[str, str]]:
        """This process's ``EVENTS_*`` replaced by ``environment()`` (plus ``variables``) inside
        the block, and restored after it (for code that reads Settings from os.environ)."""
        values = {**self.environment(), **variables}
        saved = {name: os.environ.pop(name) for name in list(os.environ) if _is_events(name)}
        os.environ.update(values)
        try:
            yield values
        finally:
            for name in [name for name in os.environ if _is_events(name)]:
                del os.environ[name]
            os.environ.update(saved)

    @contextlib.contextmanager
    def serve(
        self,
        *,
        port: int | None = None,
        queue_name: str = DEFAULT_QUEUE_NAME,
        variables: Mapping[str, str] | None = None,
        command: list[str] | None = None,
        output: IO[bytes] | None = None,
    ) -> Iterator[FunctionProcess]:
        """The function through the dev host (``make serve``) in its own process, configured by
        ``PORT`` and ``environment()`` only, until the block ends. ``command`` replaces
        ``python -m devtools.devhost`` (the benchmarks compare serving configurations)."""
        port = port or free_port()
        process_environment = {
            **{name: value for name, value in os.environ.items() if not _is_events(name)},
            **self.environment(queue_name=queue_name, records_table=_table_for(queue_name)),
            "PORT": str(port),
            **(variables or {}),
        }
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, no shell
            command or [sys.executable, "-m", "devtools.devhost"],
            cwd=ROOT,
            env=process_environment,
            stdout=output,
            stderr=output,
        )
        function = FunctionProcess(process, port, queue_name)
        try:
            wait_for_port(port, timeout=30, process=process)
            yield function
        finally:
            function.stop()


class FunctionProcess:
    """The dev host serving the function in a child process."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, queue_name: str) -> None:
        self.process = process
        self.port = port
        self.queue_name = queue_name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful stop), then SIGKILL if it has not ended within 15 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _table_for(queue_name: str) -> str:
    """A records-table prefix of a function's own, from its queue's name (letters and digits)."""
    if queue_name == DEFAULT_QUEUE_NAME:
        return DEFAULT_RECORDS_TABLE
    return "t" + "".join(ch for ch in queue_name if ch.isalnum())[:39]


def _is_events(name: str) -> bool:
    return name.startswith("EVENTS_")
