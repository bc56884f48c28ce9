"""The post-deploy smoke test (deploy/smoke.py) against running instances of the function.

It must pass against a working instance (here and in tests/e2e/test_make_run.py, against
`make run`), and fail with a line that names the misconfiguration against broken ones: broken
settings, an untrusted issuer, a registry it cannot reach, a resource the publisher does not
own, the wrong URL, nothing listening.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.smoke import DEFAULT_RESOURCE, REFRESH_API
from devtools.azurite import ROOT, free_port
from devtools.issuer import DevIssuer
from devtools.stack import LocalStack
from tests.support import Served, reset_registry, serve_function

SMOKE = str(ROOT / "deploy" / "smoke.py")
DEMO_RESOURCE = "urn:altinn:resource:demo-events"


@pytest.fixture(scope="module")
def served(stack: LocalStack) -> Iterator[Served]:
    with serve_function(stack, queue_prefix="smoke") as served:
        yield served


@pytest.fixture(autouse=True)
def demo_rules(stack: LocalStack) -> None:
    reset_registry(stack.registry)


def python_39() -> str:
    """A Python 3.9 (pyenv's, or one on PATH): the oldest python3 the hook must run with."""
    found = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))
    if found:
        return str(found[-1])
    on_path = shutil.which("python3.9")
    assert on_path, "tests/e2e/test_smoke.py needs a Python 3.9 (pyenv install 3.9)"
    return on_path


def smoke(
    *arguments: str,
    token: str | None = None,
    resource: str | None = None,
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    """The smoke script as the azd hook runs it: its own interpreter, nothing but the stdlib."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SMOKE_TEST_") and name not in ("PUBLISH_ENDPOINT_URL",)
    }
    if token is not None:
        environment["SMOKE_TEST_TOKEN"] = token
    if resource is not None:
        environment["SMOKE_TEST_RESOURCE"] = resource
    return subprocess.run(  # noqa: S603
        [python, "-I", SMOKE, *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_passes_against_a_working_instance_without_a_token(served: Served) -> None:
    result = smoke(f"{served.url}/events", "--wait", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  ok  ") == 2
    assert "skip  a publish" in result.stdout
    assert served.queue.drain() == []


def test_publishes_on_the_test_resource_with_a_token(served: Served, issuer: DevIssuer) -> None:
    result = smoke(
        f"{served.url}/events", "--wait", "0", token=issuer.mint(), resource=DEMO_RESOURCE
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  ok  ") == 3
    [event] = served.queue.drain()
    assert event["type"] == "no.altinn.events.smoke-test"
    assert event["resource"] == DEMO_RESOURCE
    assert issuer.mint() not in result.stdout + result.stderr


@pytest.mark.parametrize("python", ["3.9", "this"])
def test_runs_under_python_3_9_and_this_one(served: Served, issuer: DevIssuer, python: str) -> None:
    """azd runs the hook with the machine's python3: 3.10 on Ubuntu 22.04, 3.9 for macOS."""
    interpreter = python_39() if python == "3.9" else sys.executable
    version = subprocess.run(  # noqa: S603
        [interpreter, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == ("(3, 9)" if python == "3.9" else str(sys.version_info[:2]))
    result = smoke(
        f"{served.url}/events",
        "--wait",
        "0",
        token=issuer.mint(),
        resource=DEMO_RESOURCE,
        python=interpreter,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  ok  ") == 3
    [event] = served.queue.drain()
    assert event["type"] == "no.altinn.events.smoke-test"
    assert event["time"].endswith("Z")


def test_url_from_the_azd_environment(served: Served) -> None:
    environment = {**os.environ, "PUBLISH_ENDPOINT_URL": f"{served.url}/events"}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-I", SMOKE, "--wait", "0"],
        env={k: v for k, v in environment.items() if not k.startswith("SMOKE_TEST_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"smoke test of {served.url}/events" in result.stdout


def test_no_url_is_a_usage_error() -> None:
    result = smoke()
    assert result.returncode == 2
    assert "PUBLISH_ENDPOINT_URL" in result.stderr


def test_a_resource_the_publisher_does_not_own(served: Served, issuer: DevIssuer) -> None:
    result = smoke(f"{served.url}/events", "--wait", "0", token=issuer.mint())
    assert result.returncode == 1
    assert f"FAIL  a publish on {DEFAULT_RESOURCE} gets 200" in result.stdout
    assert "not-authorized-for-resource" in result.stdout
    assert "SMOKE_TEST_RESOURCE" in result.stdout
    assert served.queue.drain() == []


def test_a_token_from_an_issuer_the_app_does_not_trust(
    served: Served, own_issuer: DevIssuer
) -> None:
    result = smoke(
        f"{served.url}/events", "--wait", "0", token=own_issuer.mint(), resource=DEMO_RESOURCE
    )
    assert result.returncode == 1
    assert "401 invalid-token" in result.stdout
    assert "EVENTS_TRUSTED_ISSUERS" in result.stdout


def test_the_url_without_events(served: Served) -> None:
    result = smoke(f"{served.url}/api/events", "--wait", "0")
    assert result.returncode == 1
    assert "the URL lacks /events" in result.stdout


def test_nothing_listening() -> None:
    result = smoke(f"http://127.0.0.1:{free_port()}/events", "--wait", "0")
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:" in result.stdout


def test_broken_settings(stack: LocalStack) -> None:
    """As the Functions host does, the function serves with a broken EVENTS_* value, and every
    request gets 500: the smoke test names the settings."""
    with stack.serve(
        variables={"EVENTS_MAX_BODY_BYTES": "a lot", "LOG_LEVEL": "CRITICAL"},
        command=[sys.executable, "-m", "devtools.devhost", "--serve-broken-settings"],
    ) as function:
        result = smoke(f"{function.url}/events", "--wait", "0")
    assert result.returncode == 1
    assert result.stdout.count("FAIL") == 2
    assert "500 internal-error: the app cannot load its configuration" in result.stdout
    assert "EVENTS_* app setting" in result.stdout


def test_a_registry_the_app_cannot_reach(stack: LocalStack, issuer: DevIssuer) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/resourceregistry/api/v1"
    with stack.serve(
        variables={"EVENTS_REGISTRY_URL": unreachable, "LOG_LEVEL": "CRITICAL"}
    ) as function:
        result = smoke(
            f"{function.url}/events", "--wait", "0", token=issuer.mint(), resource=DEMO_RESOURCE
        )
    assert result.returncode == 1
    assert result.stdout.count("  ok  ") == 2, "the app itself answers"
    assert "503 registry-unavailable" in result.stdout
    assert "EVENTS_REGISTRY_URL" in result.stdout


def test_refreshes_unresolved_references_and_waits_for_the_settings(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Right after the first deploy a Key Vault reference may not resolve yet (the app's role on
    the vault not applied), and every request gets 500 internal-error until the platform fetches
    the references again. The smoke test asks for that refresh once (through the Azure CLI, here a
    stand-in that records its arguments) and waits for the app to load its settings."""
    calls = tmp_path / "az-calls"
    fake_az = tmp_path / "az"
    fake_az.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake_az.chmod(0o755)
    site = "/subscriptions/s1/resourceGroups/rg-events/providers/Microsoft.Web/sites/func-api-x"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_TEST_")}
    environment["PATH"] = f"{tmp_path}{os.pathsep}{environment.get('PATH', '')}"
    environment["AZURE_FUNCTION_ID"] = site
    port = free_port()
    with stack.serve(
        port=port,
        variables={
            "EVENTS_REGISTRY_SUBSCRIPTION_KEY": "@Microsoft.KeyVault(SecretUri=https://kv/s)",
            "LOG_LEVEL": "CRITICAL",
        },
        command=[sys.executable, "-m", "devtools.devhost", "--serve-broken-settings"],
    ):
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-I", SMOKE, f"http://127.0.0.1:{port}/events", "--wait", "90"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("smoke test of"), first
        waiting = process.stdout.readline()
        assert "500 internal-error, the app cannot load its settings yet" in waiting, waiting
        assert "asked the platform to resolve the Key Vault references again" in waiting
    assert calls.read_text().split() == [
        "rest",
        "--method",
        "post",
        "--url",
        f"{site}/{REFRESH_API}",
    ]
    with stack.serve(port=port, variables={"LOG_LEVEL": "WARNING"}):
        rest, _ = process.communicate(timeout=120)
    assert process.returncode == 0, first + waiting + rest
    assert "smoke test passed" in rest
    assert len(calls.read_text().splitlines()) == 1, "the references are refreshed once"


def test_waits_for_an_app_that_is_still_starting(stack: LocalStack) -> None:
    """Run right after a deploy, the smoke test finds nothing listening yet and keeps asking."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-I", SMOKE, f"http://127.0.0.1:{port}/events", "--wait", "90"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SMOKE_TEST_")},
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the smoke test has started asking
    assert first.startswith(f"smoke test of http://127.0.0.1:{port}/events"), first
    waiting = process.stdout.readline()
    assert "the app may still be starting" in waiting, waiting
    with stack.serve(port=port, variables={"LOG_LEVEL": "WARNING"}):
        rest, _ = process.communicate(timeout=120)
    assert process.returncode == 0, first + waiting + rest
    assert "smoke test passed" in rest
