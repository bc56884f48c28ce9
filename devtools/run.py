"""``make run``: the function with every local service it needs, until Ctrl-C.

``make services`` (``--services-only``) starts the same services without the function, for the
Functions host: ``func start`` then serves the function on its default port 7071 with
local.settings.example.json's settings.

Starts the local stack (devtools/stack.py: Azurite's queue service with its data in
.local/azurite, the dev token issuer, the dev Resource Registry with the rules of
devtools/registry.json) and the function through the dev host, all on 127.0.0.1; prints one
request to paste per content mode; stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from devtools.azurite import DEFAULT_PORTS, ROOT
from devtools.issuer import DEV_ISSUER_PORT
from devtools.registry import DEV_REGISTRY_PORT, DevRegistry
from devtools.stack import DEFAULT_QUEUE_NAME, LocalStack

DEMO_RESOURCE = "urn:altinn:resource:demo-events"


def _curl(port: int, token: str, headers: list[str], body: str) -> str:
    lines = [f"curl -i http://127.0.0.1:{port}/events", f"-H 'Authorization: Bearer {token}'"]
    lines += [f"-H '{header}'" for header in headers]
    lines.append(f"-d '{body}'")
    return " \\\n  ".join(lines)


def demo_requests(port: int, token: str) -> dict[str, str]:
    """One ready-to-paste request per content mode, each with fresh ids."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def event(data: str = '{"hello":"world"}') -> str:
        return (
            '{"specversion":"1.0",'
            f'"id":"{uuid.uuid4()}",'
            '"source":"https://example.org/demo/orders/42",'
            '"type":"no.altinn.demo.order.created",'
            f'"time":"{now}",'
            f'"resource":"{DEMO_RESOURCE}",'
            '"resourceinstance":"42",'
            f'"data":{data}}}'
        )

    binary_headers = [
        "Content-Type: application/json",
        "ce-specversion: 1.0",
        f"ce-id: {uuid.uuid4()}",
        "ce-source: https://example.org/demo/orders/42",
        "ce-type: no.altinn.demo.order.created",
        f"ce-time: {now}",
        f"ce-resource: {DEMO_RESOURCE}",
        "ce-subject: /orders/42%20(rush)",
    ]
    return {
        "structured": _curl(port, token, ["Content-Type: application/cloudevents+json"], event()),
        "binary": _curl(port, token, binary_headers, '{"hello":"world"}'),
        "batch": _curl(
            port,
            token,
            ["Content-Type: application/cloudevents-batch+json"],
            f"[{event(data='1')},{event(data='2')}]",
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--services-only",
        action="store_true",
        help="make services: Azurite (blob, queue, table), issuer and registry; no function",
    )
    options = parser.parse_args(argv)
    # Ports and the state folder can be moved (the end-to-end test runs this on free ports).
    port = int(os.environ.get("PORT", "7071"))
    stack = LocalStack(
        registry=DevRegistry.from_file(),
        state=Path(os.environ.get("DEV_STATE_DIR", ROOT / ".local")),
        issuer_port=int(os.environ.get("DEV_ISSUER_PORT", DEV_ISSUER_PORT)),
        registry_port=int(os.environ.get("DEV_REGISTRY_PORT", DEV_REGISTRY_PORT)),
        azurite_ports={
            service: int(os.environ.get(f"AZURITE_{service.upper()}_PORT", port))
            for service, port in DEFAULT_PORTS.items()
        },
    )
    name = "make services" if options.services_only else "make run"
    for stop_signal in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored
        signal.signal(stop_signal, _interrupt)
    try:
        with stack:
            assert stack.issuer is not None
            token = stack.issuer.mint(org="ttd", lifetime_seconds=3600)
            if options.services_only:
                print(services_banner(stack, port, token), flush=True)
                signal.pause()
            with stack.serve(port=port) as function:
                print(banner(stack, port, token), flush=True)
                function.process.wait()
                print(
                    f"{name}: the function exited with {function.process.returncode}",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, TimeoutError) as error:
        sys.exit(f"{name}: {error}")
    finally:
        print(f"{name}: stopped", file=sys.stderr, flush=True)


def services_banner(stack: LocalStack, port: int, token: str) -> str:
    """What `make services` started, and how to point `func start` at it."""
    assert stack.issuer is not None
    settings = {
        "EVENTS_TRUSTED_ISSUERS": stack.issuer.base_url,
        "EVENTS_REGISTRY_URL": stack.registry_url,
    }
    example = json.loads((ROOT / "local.settings.example.json").read_text(encoding="utf-8"))
    differs = {k: v for k, v in settings.items() if example["Values"].get(k) != v}
    note = (
        "local.settings.example.json has these services' addresses, so a copy of it works as is."
        if not differs and stack.azurite.ports == DEFAULT_PORTS
        else "These services are not on the default ports: in local.settings.json set "
        + ", ".join(f"{k}={v}" for k, v in differs.items())
        + " and the Azurite endpoints above."
    )
    requests = demo_requests(port, token)
    return f"""
Ready: the local services, without the function. Everything listens on 127.0.0.1 only.
  token issuer          {stack.issuer.base_url}/.well-known/openid-configuration
  resource registry     {stack.registry_url}/resource/demo-events/policy/rules
  Azurite blob          {stack.azurite.endpoint("blob")} (AzureWebJobsStorage)
  Azurite queue         {stack.azurite.queue_endpoint}/{DEFAULT_QUEUE_NAME}
  Azurite table         {stack.azurite.endpoint("table")}

Now start the function with Azure Functions Core Tools, in another terminal:
  cp local.settings.example.json local.settings.json   # once
  func start                                           # serves http://127.0.0.1:{port}/events
{note}

Then publish as org 'ttd' (token valid 1 hour; `make token` prints another):

{requests["structured"]}

Ctrl-C stops the services.
"""


def banner(stack: LocalStack, port: int, token: str) -> str:
    assert stack.issuer is not None
    requests = demo_requests(port, token)
    return f"""
Ready. Everything listens on 127.0.0.1 only.
  function (dev host)   http://127.0.0.1:{port}/events
  token issuer          {stack.issuer.base_url}/.well-known/openid-configuration
  resource registry     {stack.registry_url}/resource/demo-events/policy/rules
  queue (Azurite)       {stack.azurite.queue_endpoint}/{DEFAULT_QUEUE_NAME}
  table (Azurite)       {stack.azurite.endpoint("table")} (published events' identities)
  blob (Azurite)        {stack.azurite.endpoint("blob")}/events-data (large events' data)

Publish as org 'ttd' (token valid 1 hour; `make token` prints another). One event, structured:

{requests["structured"]}

The same kind of event in binary mode (attributes as ce- headers, the data as the body):

{requests["binary"]}

Two events in one batch (the answer lists each one's outcome):

{requests["batch"]}

Expect 'HTTP/1.1 200 OK': an empty body for one event, the batch's results for a batch.
`make peek` shows what is on the queue.
Ctrl-C stops everything.
"""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
