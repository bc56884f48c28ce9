"""`make services`: the local services without the function, for `func start`.

Core Tools cannot run here, so the function is served by the dev host with exactly what
`func start` would give it: the Values of local.settings.example.json (with this test's free
ports in place of the default ones).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from devtools.azurite import ROOT, wait_for_port
from tests.e2e.test_make_run import _port_is_open, printed_commands, running, send
from tests.support import QueueReader


def example_values(issuer: int, registry: int, storage: str) -> dict[str, str]:
    """local.settings.example.json's Values with the test's ports for the default ones."""
    values: dict[str, str] = json.loads(
        (ROOT / "local.settings.example.json").read_text(encoding="utf-8")
    )["Values"]
    moved = {}
    for name, value in values.items():
        value = value.replace("127.0.0.1:7171", f"127.0.0.1:{issuer}")
        value = value.replace("127.0.0.1:7272", f"127.0.0.1:{registry}")
        moved[name] = storage if value == "UseDevelopmentStorage=true" else value
    return moved


def test_make_services_serves_func_start_and_stops_everything(tmp_path: Path) -> None:
    with running(
        tmp_path, "--services-only", ready="Ctrl-C stops the services", name="make services"
    ) as services:
        ports, banner = services.ports, services.banner
        assert "func start" in banner
        # not on the default ports, so the banner says which settings to change
        assert f"EVENTS_TRUSTED_ISSUERS=http://127.0.0.1:{ports['DEV_ISSUER_PORT']}" in banner
        for name, port in ports.items():
            assert _port_is_open(port) == (name != "PORT"), f"{name} {port}"

        azurite = services.azurite
        values = example_values(
            ports["DEV_ISSUER_PORT"], ports["DEV_REGISTRY_PORT"], azurite.connection_string
        )
        assert values["AzureWebJobsStorage"] == azurite.connection_string
        function_environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EVENTS_")},
            **values,
            "PORT": str(ports["PORT"]),
        }
        function = subprocess.Popen(
            [sys.executable, "-m", "devtools.devhost"],
            cwd=ROOT,
            env=function_environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(ports["PORT"], timeout=30, process=function)
            [structured] = printed_commands(banner)
            status, _ = send(structured)
            assert status == 200
        finally:
            function.send_signal(signal.SIGINT)
            function.wait(timeout=30)
        queue_name = values["EVENTS_QUEUE_NAME"]
        [stored] = QueueReader(azurite.connection_string, queue_name).drain()
        assert stored == json.loads(structured.body)


def test_the_example_settings_point_at_the_default_ports() -> None:
    """What `make services` listens on by default is what local.settings.example.json names."""
    from devtools.azurite import DEFAULT_PORTS
    from devtools.issuer import DEV_ISSUER_PORT
    from devtools.registry import BASE_PATH, DEV_REGISTRY_PORT

    values = json.loads((ROOT / "local.settings.example.json").read_text(encoding="utf-8"))[
        "Values"
    ]
    assert values["EVENTS_TRUSTED_ISSUERS"] == f"http://127.0.0.1:{DEV_ISSUER_PORT}"
    assert values["EVENTS_REGISTRY_URL"] == f"http://127.0.0.1:{DEV_REGISTRY_PORT}{BASE_PATH}"
    # UseDevelopmentStorage=true means Azurite on its default ports, which make services uses
    assert DEFAULT_PORTS == {"blob": 10000, "queue": 10001, "table": 10002}
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["EVENTS_QUEUE_CONNECTION"] == "UseDevelopmentStorage=true"
