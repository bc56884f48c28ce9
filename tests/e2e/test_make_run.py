"""`make run`: starts every local service, prints a request that works, and stops it all."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devtools.azurite import ROOT, Azurite, free_port
from tests.support import QueueReader, sorted_events


@dataclass
class Command:
    url: str
    headers: dict[str, str]
    body: str


def printed_commands(banner: str) -> list[Command]:
    """Every `curl` command the banner prints, read the way a shell would read it."""
    commands = []
    for text in re.findall(r"curl -i .*?-d '[^']*'", banner, flags=re.S):
        url = re.search(r"curl -i (\S+)", text)
        assert url, text
        headers = dict(header.split(": ", 1) for header in re.findall(r"-H '([^']*)'", text))
        body = re.search(r"-d '([^']*)'", text)
        assert body, text
        commands.append(Command(url.group(1), headers, body.group(1)))
    return commands


def send(command: Command) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL printed by make run
        command.url, data=command.body.encode(), headers=command.headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.status, response.read()


def _port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Running:
    """``python -m devtools.run`` (make run, or make services) on free ports, after its banner."""

    ports: dict[str, int]
    banner: str

    @property
    def azurite(self) -> Azurite:
        return Azurite(
            services=("blob", "queue", "table"),
            ports={s: self.ports[f"AZURITE_{s.upper()}_PORT"] for s in ("blob", "queue", "table")},
        )


@contextlib.contextmanager
def running(tmp_path: Path, *arguments: str, ready: str, name: str) -> Iterator[Running]:
    """Start it, wait for the banner's last line ``ready``, and at the end stop it with Ctrl-C
    (SIGINT) and check that it stopped cleanly and left no port open."""
    ports = {
        name: free_port()
        for name in (
            "PORT",
            "DEV_ISSUER_PORT",
            "DEV_REGISTRY_PORT",
            "AZURITE_BLOB_PORT",
            "AZURITE_QUEUE_PORT",
            "AZURITE_TABLE_PORT",
        )
    }
    environment = {
        **os.environ,
        **{variable: str(port) for variable, port in ports.items()},
        "DEV_STATE_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "devtools.run", *arguments],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # blocks until the banner is complete (or the process ends)
            output.append(line)
            if ready in line:
                break
        banner = "".join(output)
        assert ready in banner, banner
        yield Running(ports, banner)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(output) + rest
    assert f"{name}: stopped" in rest
    for variable, port in ports.items():
        assert not _port_is_open(port), f"{variable} {port} still open after Ctrl-C"


def test_make_run_serves_the_printed_request_and_stops_everything(tmp_path: Path) -> None:
    with running(tmp_path, ready="Ctrl-C stops everything", name="make run") as run:
        banner = run.banner
        commands = printed_commands(banner)
        assert len(commands) == 3, banner  # structured, binary, batch
        answers = [send(command) for command in commands]
        assert [status for status, _ in answers] == [200, 200, 200]
        structured, binary, batch = commands
        batch_result = json.loads(answers[2][1])
        assert [entry["status"] for entry in batch_result["results"]] == [200, 200]

        azurite = run.azurite
        stored = QueueReader(azurite.connection_string, "events-registration").drain()
        assert stored[0] == json.loads(structured.body)
        assert stored[1]["id"] == binary.headers["ce-id"]
        assert stored[1]["subject"] == "/orders/42 (rush)"
        assert stored[1]["data"] == json.loads(binary.body)
        assert sorted_events(stored[2:]) == sorted_events(json.loads(batch.body))
        assert (tmp_path / "dev-issuer" / "signing-key.pem").exists()

        # azd's postdeploy hook, the smoke test, passes against it, publish included: run as
        # azd runs it, with the URL in PUBLISH_ENDPOINT_URL (docs/deploy.md)
        token = structured.headers["Authorization"].removeprefix("Bearer ")
        smoke = subprocess.run(  # noqa: S603
            ["sh", str(ROOT / "deploy" / "postdeploy.sh")],  # noqa: S607
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("SMOKE_TEST_")},
                "PUBLISH_ENDPOINT_URL": structured.url,
                "SMOKE_TEST_TOKEN": token,
                "SMOKE_TEST_RESOURCE": "urn:altinn:resource:demo-events",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "smoke test passed" in smoke.stdout
        [smoke_event] = QueueReader(azurite.connection_string, "events-registration").drain()
        assert smoke_event["type"] == "no.altinn.events.smoke-test"
