"""Start and stop Azurite's storage services (the npm package in package.json) on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once 127.0.0.1:port accepts connections; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")
        time.sleep(0.05)  # polling a condition with a deadline, not sleeping as synchronisation


SERVICES = ("queue", "table", "blob")
#: Azurite's own default port per service (make run uses these; tests pick free ones).
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
_ENDPOINT_NAMES = {"queue": "QueueEndpoint", "table": "TableEndpoint", "blob": "BlobEndpoint"}


class Azurite:
    """Azurite's storage services as child processes, one program per service (azurite-queue,
    azurite-table, azurite-blob), so that a test can stop or freeze one of them alone.
    ``location=None`` keeps data in memory."""

    def __init__(
        self,
        *,
        port: int | None = None,
        location: Path | None = None,
        oauth_tls: tuple[Path, Path] | None = None,
        services: tuple[str, ...] = ("queue",),
        ports: dict[str, int] | None = None,
    ) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown Azurite services: {sorted(unknown)}")
        self.services = services
        given = dict(ports or {})
        if port is not None:
            given["queue"] = port
        self.ports = {service: given.get(service) or free_port() for service in services}
        self.location = location
        #: (certificate, key): serve HTTPS and accept bearer tokens (Azurite's "--oauth basic",
        #: which checks a token's issuer, audience and lifetime, not its signature).
        self.oauth_tls = oauth_tls
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def port(self) -> int:
        return self.ports["queue"]

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The queue service's process."""
        return self.processes.get("queue")

    def endpoint(self, service: str) -> str:
        scheme = "https" if self.oauth_tls else "http"
        return f"{scheme}://127.0.0.1:{self.ports[service]}/{ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return self.endpoint("queue")

    @property
    def connection_string(self) -> str:
        endpoints = "".join(
            f"{_ENDPOINT_NAMES[service]}={self.endpoint(service)};" for service in self.services
        )
        return (
            f"DefaultEndpointsProtocol={'https' if self.oauth_tls else 'http'};"
            f"AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};{endpoints}"
        )

    def start(self, *, timeout: float = 30.0) -> Azurite:
        try:
            for service in self.services:
                self.start_service(service, timeout=timeout)
        except Exception:
            self.stop()
            raise
        return self

    def start_service(self, service: str, *, timeout: float = 30.0) -> None:
        program = ROOT / "node_modules" / ".bin" / f"azurite-{service}"
        if not program.exists():
            raise FileNotFoundError(f"{program} is missing: run 'npm ci' (make does it)")
        if shutil.which("node") is None:
            raise FileNotFoundError("Node.js is required for Azurite (node not on PATH)")
        command = [
            str(program),
            f"--{service}Host", "127.0.0.1",
            f"--{service}Port", str(self.ports[service]),
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]  # fmt: skip
        if self.oauth_tls is not None:
            certificate, key = self.oauth_tls
            command += ["--oauth", "basic", "--cert", str(certificate), "--key", str(key)]
        if self.location is None:
            command.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes[service] = process
        try:
            wait_for_port(self.ports[service], timeout=timeout, process=process)
        except Exception:
            self.stop_service(service)
            raise

    def pause(self, service: str = "queue") -> None:
        """Freeze one service (SIGSTOP): connections stay open but nothing answers."""
        os.killpg(self.processes[service].pid, signal.SIGSTOP)

    def resume(self, service: str = "queue") -> None:
        os.killpg(self.processes[service].pid, signal.SIGCONT)

    def stop(self) -> None:
        for service in list(self.processes):
            self.stop_service(service)

    def stop_service(self, service: str) -> None:
        process = self.processes.pop(service, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
