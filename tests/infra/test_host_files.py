"""The Functions host files: host.json, local.settings.example.json and .funcignore.

The host itself cannot run here (no Core Tools), so these files are checked as data: what the
platform requires of them, and what this app relies on (the /events route, production logging,
a deployment package without tests, tools or virtual environments).
"""

from __future__ import annotations

import json
from typing import Any

import pathspec
import pytest

from devtools.lock import checkout_files
from shared.app.settings import Settings
from tests.infra.bicep import REPO


def load(name: str) -> Any:
    return json.loads((REPO / name).read_text(encoding="utf-8"))


def funcignore() -> pathspec.PathSpec:
    """.funcignore with gitignore semantics (what azd and Core Tools apply)."""
    lines = (REPO / ".funcignore").read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def is_funcignored(path: str) -> bool:
    return funcignore().match_file(path)


# Local environments a developer or a tool may leave in the checkout: the repo's own, azd's
# (`azd restore` and Python hooks make <folder>_env), the usual hand-made names, Core Tools'
# local build, and what `pip install .` leaves behind.
ENVIRONMENTS = [
    ".venv/bin/python",
    ".venv/pyvenv.cfg",
    ".venv-checkov/bin/checkov",
    ".venv311/lib/python3.11/site-packages/x.py",
    "venv/pyvenv.cfg",
    "env/lib/python3.11/site-packages/x.py",
    "main_env/pyvenv.cfg",
    "events-publish_env/lib/python3.11/site-packages/jwt/__init__.py",
    ".tox/py311/pyvenv.cfg",
    ".nox/tests/pyvenv.cfg",
    ".python_packages/lib/site-packages/aiohttp/__init__.py",
    "build/lib/shared/settings.py",
    "dist/events_publish-2.0.0-py3-none-any.whl",
    "events_publish.egg-info/PKG-INFO",
    "shared/__pycache__/settings.cpython-311.pyc",
    ".local/azurite/__queuestorage__/x",
    "node_modules/azurite/package.json",
    ".azure/dev/.env",
    "local.settings.json",
]


def test_the_package_is_exactly_the_app() -> None:
    """The files azd would zip from a checkout holding every kind of local environment."""
    spec = funcignore()
    candidates = [*checkout_files(), *ENVIRONMENTS]
    packaged = sorted(name for name in candidates if not spec.match_file(name))
    app = ["function_app.py", "host.json", "requirements.txt"]
    code = sorted(name for name in checkout_files() if name.startswith("shared/"))
    assert code, "shared/ holds the product's code"
    assert all(name.endswith(".py") for name in code)
    assert packaged == sorted([*app, *code])


def test_host_json() -> None:
    host = load("host.json")
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    # "" puts the function at /events instead of /api/events.
    assert host["extensions"]["http"]["routePrefix"] == ""


def test_host_json_telemetry_is_opentelemetry_and_lean() -> None:
    host = load("host.json")
    # the host exports through OpenTelemetry, and the Python worker's spans and logs join its
    # (docs/deploy.md, "Telemetry"); in this mode logging.applicationInsights does not apply
    assert host["telemetryMode"] == "OpenTelemetry"
    logging = host["logging"]
    assert "applicationInsights" not in logging
    levels = logging["logLevel"]
    assert levels["default"] in ("Warning", "Error"), "host chatter stays out of the bill"
    # the host's own per-invocation traces ("Executing", "Executed") cost as much as the
    # request at hundreds of requests a second; the function's one line per request comes from
    # the worker, which exports it itself, so it is not filtered here
    assert levels["Function"] in ("Warning", "Error")
    assert levels["Host.Results"] == "Information", "the requests table keeps filling"


def test_local_settings_example() -> None:
    example = load("local.settings.example.json")
    assert example["IsEncrypted"] is False
    values = example["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert all(isinstance(value, str) for value in values.values()), "app settings are strings"
    known = {f"EVENTS_{name.upper()}" for name in Settings.model_fields}
    events = {key for key in values if key.startswith("EVENTS_")}
    assert events <= known, f"not read by Settings: {sorted(events - known)}"
    required = {f"EVENTS_{n.upper()}" for n, f in Settings.model_fields.items() if f.is_required()}
    assert required <= events, f"func start would fail without {sorted(required - events)}"
    # the host's own body limit, as infra/ sets it: the code's default limit plus 4 KiB
    default_limit = Settings.model_fields["max_body_bytes"].default
    assert int(values["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"]) == default_limit + 4096


def test_real_local_settings_stay_out_of_git_and_the_package() -> None:
    gitignore = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "local.settings.json" in gitignore
    assert is_funcignored("local.settings.json")


@pytest.mark.parametrize(
    "path",
    [
        "tests/infra/test_host_files.py",
        "infra/main.bicep",
        "bench/__init__.py",
        ".venv/bin/python",
        ".venv-checkov/bin/checkov",
        "node_modules/azurite/package.json",
        "devtools/devhost.py",
        "docs/deploy.md",
        "tools/checkov-requirements.txt",
        "requirements-dev.txt",
        ".local/azurite",
        "__pycache__/x.pyc",
    ],
)
def test_funcignore_keeps_development_files_out_of_the_package(path: str) -> None:
    assert is_funcignored(path), f".funcignore must exclude {path}"


@pytest.mark.parametrize(
    "path", ["function_app.py", "host.json", "requirements.txt", "shared/app/settings.py"]
)
def test_funcignore_keeps_what_the_app_needs(path: str) -> None:
    assert not is_funcignored(path), f".funcignore must not exclude {path}"


def seconds(timespan: str) -> float:
    hours, minutes, secs = timespan.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def test_the_hosts_timeout_stays_above_a_batchs() -> None:
    """A batch is answered within EVENTS_BATCH_TIMEOUT_SECONDS: the host must not time out
    first, or the caller gets no per-element results while most of them are queued. The
    template's default and the code's both stay well below functionTimeout (with room for the
    token check and the answer)."""
    from tests.infra.bicep import MAIN, parameters

    host_timeout = seconds(load("host.json")["functionTimeout"])
    template = float(parameters(MAIN)["eventsBatchTimeoutSeconds"]["default"])
    code = Settings.model_fields["batch_timeout_seconds"].default
    assert template == code
    assert host_timeout >= template + 5, (host_timeout, template)
