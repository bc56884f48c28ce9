"""`make run`: starts every local service, prints a request that works, and stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from devtools.azurite import ROOT, Azurite, free_port
from tests.support import QueueReader


def _port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_serves_the_printed_request_and_stops_everything(tmp_path: Path) -> None:
    ports = {
        "PORT": free_port(),
        "DEV_ISSUER_PORT": free_port(),
        "DEV_REGISTRY_PORT": free_port(),
        "AZURITE_QUEUE_PORT": free_port(),
    }
    environment = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "DEV_STATE_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.run"],
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
            if "Ctrl-C stops everything" in line:
                break
        banner = "".join(output)
        assert "Ctrl-C stops everything" in banner, banner

        token = re.search(r"Authorization: Bearer ([\w.-]+)", banner)
        body = re.search(r"-d '(\{.*\})'", banner)
        url = re.search(r"curl -i (\S+)", banner)
        assert token, banner
        assert body, banner
        assert url, banner
        request = urllib.request.Request(  # noqa: S310 - loopback URL printed by make run
            url.group(1),
            data=body.group(1).encode(),
            headers={
                "Authorization": f"Bearer {token.group(1)}",
                "Content-Type": "application/cloudevents+json",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 200

        azurite = Azurite(port=ports["AZURITE_QUEUE_PORT"])
        stored = QueueReader(azurite.connection_string, "events-registration").drain()
        assert stored == [json.loads(body.group(1))]
        assert (tmp_path / "dev-issuer" / "signing-key.pem").exists()
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(output) + rest
    assert "make run: stopped" in rest
    for name, port in ports.items():
        assert not _port_is_open(port), f"{name} {port} still open after Ctrl-C"
