"""The development container and the VS Code settings for `func start`, checked as data.

Neither a container runtime nor VS Code runs here, so these are checked against what they must
give a developer: the Python Azure runs, a Node that runs Azurite, the Azure CLI, azd and Core
Tools 4; and from VS Code, F5 starting the local services (`make services`) and the Functions host,
with the debugger attached to the worker.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from devtools.azurite import DEFAULT_PORTS
from devtools.issuer import DEV_ISSUER_PORT
from devtools.registry import DEV_REGISTRY_PORT
from tests.infra.bicep import REPO

FUNCTIONS_EXTENSION = "ms-azuretools.vscode-azurefunctions"


def jsonc(relative: str) -> Any:
    """A JSON-with-comments file (devcontainer.json, .vscode/*.json): whole-line // comments."""
    text = (REPO / relative).read_text(encoding="utf-8")
    return json.loads(
        "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))
    )


def python_version() -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return str(pyproject["tool"]["mypy"]["python_version"])


def test_the_devcontainer_has_every_tool_the_readme_and_func_start_need() -> None:
    container = jsonc(".devcontainer/devcontainer.json")
    image = container["image"]
    assert image.startswith("mcr.microsoft.com/devcontainers/python:")
    assert f"-{python_version()}-" in image, "the Python Azure runs (functionAppConfig.runtime)"
    features = container["features"]
    node = features["ghcr.io/devcontainers/features/node:1"]
    assert int(node["version"]) >= 20, "Azurite 3.35 through npm"
    assert "ghcr.io/devcontainers/features/azure-cli:1" in features
    assert any(name.startswith("ghcr.io/azure/azure-dev/azd") for name in features)
    [core_tools] = [v for k, v in features.items() if "azure-functions-core-tools" in k]
    assert core_tools["version"] == "4"
    assert container["postCreateCommand"].startswith("make deps")
    assert "local.settings.example.json local.settings.json" in container["postCreateCommand"]
    ports = set(container["forwardPorts"])
    assert {7071, DEV_ISSUER_PORT, DEV_REGISTRY_PORT, *DEFAULT_PORTS.values()} <= ports
    extensions = container["customizations"]["vscode"]["extensions"]
    assert extensions == jsonc(".vscode/extensions.json")["recommendations"]


def test_vscode_recommends_the_functions_and_python_extensions() -> None:
    recommended = jsonc(".vscode/extensions.json")["recommendations"]
    assert {FUNCTIONS_EXTENSION, "ms-python.python", "ms-python.debugpy"} <= set(recommended)
    assert "charliermarsh.ruff" in recommended, "the linter make lint runs"
    settings = jsonc(".vscode/settings.json")
    assert settings["azureFunctions.projectLanguage"] == "Python"
    assert settings["azureFunctions.projectLanguageModel"] == 2, "function_app.py's decorators"
    assert settings["azureFunctions.projectRuntime"] == "~4"
    assert settings["azureFunctions.pythonVenv"] == ".venv", "the environment make deps builds"


def test_f5_starts_the_local_services_and_the_host_and_attaches() -> None:
    tasks = {task["label"]: task for task in jsonc(".vscode/tasks.json")["tasks"]}
    host = tasks["func: host start"]
    assert host["type"] == "func"
    assert host["command"] == "host start"
    assert host["isBackground"] is True
    assert host["problemMatcher"] == "$func-python-watch"
    for needed in host["dependsOn"]:
        assert needed in tasks, needed
    assert host["dependsOn"][-1] == "local services", "the services before the host"
    services = tasks["local services"]
    assert services["command"] == "make services"
    assert services["isBackground"] is True
    # The background task counts as started once make services prints its banner: both
    # patterns must match what the Makefile and devtools/run.py print.
    background = services["problemMatcher"]["background"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    services_recipe = re.search(r"^services: .*\n\t(.+)$", makefile, flags=re.MULTILINE)
    assert services_recipe
    echoed = services_recipe[1].replace("$(PY)", ".venv/bin/python")
    assert re.search(background["activeBegin"], echoed), echoed
    run = (REPO / "devtools" / "run.py").read_text(encoding="utf-8")
    banner_line = next(line for line in run.splitlines() if line.startswith("Ready: the local"))
    assert re.search(background["activeEnd"], banner_line)
    assert (
        "local.settings.example.json local.settings.json" in tasks["local.settings.json"]["command"]
    )
    [attach] = jsonc(".vscode/launch.json")["configurations"]
    assert attach["type"] == "debugpy"
    assert attach["request"] == "attach"
    assert attach["connect"]["port"] == 9091, "where the Functions extension starts debugpy"
    assert attach["preLaunchTask"] == "func: host start"


def test_the_package_leaves_the_editor_and_container_files_out() -> None:
    ignored = (REPO / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert ".vscode" in ignored
    assert ".devcontainer" in ignored
