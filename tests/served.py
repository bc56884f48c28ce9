"""The function under test, configured for the session's local services: its EVENTS_* variables,
and the dev host serving it in its own process (as `make serve` does)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from devtools.azurite import ROOT, Azurite, free_port, wait_for_port
from devtools.issuer import DevIssuer
from devtools.registry import DevRegistry
from tests.queues import QueueReader


def local_services_environment(
    azurite: Azurite, issuer: DevIssuer, registry_url: str, queue_name: str
) -> dict[str, str]:
    """The EVENTS_* variables that point the function at Azurite, the issuer and the registry."""
    return {
        "EVENTS_TRUSTED_ISSUERS": issuer.base_url,
        "EVENTS_REGISTRY_URL": registry_url,
        "EVENTS_QUEUE_CONNECTION": azurite.connection_string,
        "EVENTS_QUEUE_NAME": queue_name,
    }


@dataclass
class Served:
    url: str
    queue: QueueReader
    process: subprocess.Popen[bytes]


@contextmanager
def serve_function(
    azurite: Azurite,
    issuer: DevIssuer,
    registry_service: tuple[DevRegistry, str],
    *,
    queue_prefix: str,
) -> Iterator[Served]:
    """`python -m devtools.devhost` on a free port with a queue of its own, until the block ends."""
    from tests.conftest import reset_registry

    registry, registry_url = registry_service
    reset_registry(registry)
    issuer.available = True
    port = free_port()
    queue_name = f"{queue_prefix}-{uuid.uuid4().hex[:16]}"
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("EVENTS_")},
        **local_services_environment(azurite, issuer, registry_url, queue_name),
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.devhost"], cwd=ROOT, env=environment
    )
    try:
        wait_for_port(port, timeout=30, process=process)
        yield Served(
            f"http://127.0.0.1:{port}", QueueReader(azurite.connection_string, queue_name), process
        )
    finally:
        process.terminate()
        process.wait(timeout=15)
