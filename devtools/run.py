"""``make run``: the function with every local service it needs, until Ctrl-C.

Starts Azurite's queue service (data in .local/azurite), the dev token issuer, the dev Resource
Registry (rules from devtools/registry.json) and the function through the dev host, all on
127.0.0.1; prints a request to paste; stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from devtools.azurite import ROOT, Azurite, wait_for_port
from devtools.issuer import DEFAULT_KEY_FILE, DEV_ISSUER_PORT, DevIssuer, SigningKey
from devtools.registry import BASE_PATH, DEV_REGISTRY_PORT, DevRegistry
from devtools.servers import BackgroundServer, bind_loopback

DEMO_RESOURCE = "urn:altinn:resource:demo-events"


def demo_request(port: int, token: str) -> str:
    event = (
        '{"specversion":"1.0",'
        f'"id":"{uuid.uuid4()}",'
        '"source":"https://example.org/demo/orders/42",'
        '"type":"no.altinn.demo.order.created",'
        f'"time":"{datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}",'
        f'"resource":"{DEMO_RESOURCE}",'
        '"resourceinstance":"42",'
        '"data":{"hello":"world"}}'
    )
    return (
        f"curl -i http://127.0.0.1:{port}/events \\\n"
        f"  -H 'Authorization: Bearer {token}' \\\n"
        "  -H 'Content-Type: application/cloudevents+json' \\\n"
        f"  -d '{event}'"
    )


def main() -> None:
    # Ports and state folders can be moved (the end-to-end test runs this on free ports).
    port = int(os.environ.get("PORT", "7071"))
    issuer_port = int(os.environ.get("DEV_ISSUER_PORT", DEV_ISSUER_PORT))
    registry_port = int(os.environ.get("DEV_REGISTRY_PORT", DEV_REGISTRY_PORT))
    azurite_port = int(os.environ.get("AZURITE_QUEUE_PORT", "10001"))
    state = Path(os.environ.get("DEV_STATE_DIR", ROOT / ".local"))
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    registry_url = f"http://127.0.0.1:{registry_port}{BASE_PATH}"
    started: list[object] = []
    host: subprocess.Popen[bytes] | None = None
    try:
        sockets = [bind_loopback(issuer_port), bind_loopback(registry_port)]
        key_file = state / DEFAULT_KEY_FILE.relative_to(".local")
        issuer = DevIssuer(issuer_url, SigningKey.load_or_create(key_file))
        registry = DevRegistry.from_file()
        for app_factory, sock in ((issuer.app, sockets[0]), (registry.app, sockets[1])):
            started.append(BackgroundServer(app_factory, sock).start())
        azurite = Azurite(port=azurite_port, location=state / "azurite").start()
        started.append(azurite)

        environment = {
            **os.environ,
            "PORT": str(port),
            "EVENTS_TRUSTED_ISSUERS": issuer_url,
            "EVENTS_REGISTRY_URL": registry_url,
            "EVENTS_QUEUE_CONNECTION": azurite.connection_string,
        }
        host = subprocess.Popen(
            [sys.executable, "-m", "devtools.devhost"], cwd=ROOT, env=environment
        )
        wait_for_port(port, timeout=30, process=host)
    except (OSError, RuntimeError, TimeoutError) as error:
        _stop(host, started)
        sys.exit(f"make run: {error}")

    token = issuer.mint(org="ttd", lifetime_seconds=3600)
    print(
        f"""
Ready. Everything listens on 127.0.0.1 only.
  function (dev host)   http://127.0.0.1:{port}/events
  token issuer          {issuer_url}/.well-known/openid-configuration
  resource registry     {registry_url}/resource/demo-events/policy/rules
  queue (Azurite)       {azurite.queue_endpoint}/events-registration

Publish an event as org 'ttd' (token valid 1 hour; `make token` prints another):

{demo_request(port, token)}

Expect 'HTTP/1.1 200 OK' with an empty body. `make peek` shows what is on the queue.
Ctrl-C stops everything.
""",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        host.wait()
        print(f"make run: the function exited with {host.returncode}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(host, started)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(host: subprocess.Popen[bytes] | None, started: list[object]) -> None:
    if host is not None and host.poll() is None:
        host.send_signal(signal.SIGINT)
        try:
            host.wait(timeout=10)
        except subprocess.TimeoutExpired:
            host.kill()
    for service in reversed(started):
        service.stop()  # type: ignore[attr-defined]
    print("make run: stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
