"""``make run``: the function with every local service it needs, until Ctrl-C.

Starts the local stack (devtools/stack.py: Azurite's queue service with its data in
.local/azurite, the dev token issuer, the dev Resource Registry with the rules of
devtools/registry.json) and the function through the dev host, all on 127.0.0.1; prints a
request to paste; stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from devtools.azurite import ROOT
from devtools.issuer import DEV_ISSUER_PORT
from devtools.registry import DEV_REGISTRY_PORT, DevRegistry
from devtools.stack import DEFAULT_QUEUE_NAME, LocalStack

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
    # Ports and the state folder can be moved (the end-to-end test runs this on free ports).
    port = int(os.environ.get("PORT", "7071"))
    stack = LocalStack(
        registry=DevRegistry.from_file(),
        state=Path(os.environ.get("DEV_STATE_DIR", ROOT / ".local")),
        issuer_port=int(os.environ.get("DEV_ISSUER_PORT", DEV_ISSUER_PORT)),
        registry_port=int(os.environ.get("DEV_REGISTRY_PORT", DEV_REGISTRY_PORT)),
        azurite_port=int(os.environ.get("AZURITE_QUEUE_PORT", "10001")),
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with stack, stack.serve(port=port) as function:
            assert stack.issuer is not None
            print(banner(stack, port, stack.issuer.mint(org="ttd", lifetime_seconds=3600)))
            function.process.wait()
            print(
                f"make run: the function exited with {function.process.returncode}", file=sys.stderr
            )
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, TimeoutError) as error:
        sys.exit(f"make run: {error}")
    finally:
        print("make run: stopped", file=sys.stderr, flush=True)


def banner(stack: LocalStack, port: int, token: str) -> str:
    assert stack.issuer is not None
    return f"""
Ready. Everything listens on 127.0.0.1 only.
  function (dev host)   http://127.0.0.1:{port}/events
  token issuer          {stack.issuer.base_url}/.well-known/openid-configuration
  resource registry     {stack.registry_url}/resource/demo-events/policy/rules
  queue (Azurite)       {stack.azurite.queue_endpoint}/{DEFAULT_QUEUE_NAME}

Publish an event as org 'ttd' (token valid 1 hour; `make token` prints another):

{demo_request(port, token)}

Expect 'HTTP/1.1 200 OK' with an empty body. `make peek` shows what is on the queue.
Ctrl-C stops everything.
"""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
