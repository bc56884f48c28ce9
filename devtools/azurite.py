"""Start and stop Azurite's queue service (the npm package pinned in package.json) on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_QUEUE = ROOT / "node_modules" / ".bin" / "azurite-queue"
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


class Azurite:
    """Azurite's queue service as a child process. ``location=None`` keeps data in memory."""

    def __init__(
        self,
        *,
        port: int | None = None,
        location: Path | None = None,
        oauth_tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.location = location
        #: (certificate, key): serve HTTPS and accept bearer tokens (Azurite's "--oauth basic",
        #: which checks a token's issuer, audience and lifetime, not its signature).
        self.oauth_tls = oauth_tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def queue_endpoint(self) -> str:
        scheme = "https" if self.oauth_tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={'https' if self.oauth_tls else 'http'};"
            f"AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_endpoint};"
        )

    def start(self, *, timeout: float = 30.0) -> Azurite:
        if not AZURITE_QUEUE.exists():
            raise FileNotFoundError(f"{AZURITE_QUEUE} is missing: run 'npm ci' (make does it)")
        if shutil.which("node") is None:
            raise FileNotFoundError("Node.js is required for Azurite (node not on PATH)")
        command = [
            str(AZURITE_QUEUE),
            "--queueHost", "127.0.0.1",
            "--queuePort", str(self.port),
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
        self.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
        except Exception:
            self.stop()
            raise
        return self

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections stay open but nothing answers."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGCONT)
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.process = None
