"""Smoke test of a running POST /events: after every deploy (azd's postdeploy hook), and locally.

    python3 deploy/smoke.py [URL]           # URL defaults to $PUBLISH_ENDPOINT_URL

Three checks, each answer read the way a publisher would read it:

1. POST without a token gets 401 with a problem body (application/problem+json) and a Bearer
   challenge. This alone proves the app loaded its configuration and runs its own code.
2. GET gets 405 with ``Allow: POST``.
3. Only when SMOKE_TEST_TOKEN is set: one event published on SMOKE_TEST_RESOURCE gets 200, so
   the token's issuer is trusted, the registry answers, and the queue (and the records table)
   take the event. Subscribers of that resource receive it: use a resource meant for tests.

Any other answer fails the run (exit status 1) with a line that names the likely
misconfiguration. A freshly deployed app may take a while to answer; answers that mean "not
started yet" (no connection, 404, 502, 503 without a problem body) are retried for --wait
seconds before they count. So is 500 internal-error (the app cannot load its settings): right
after the first deploy that is usually a Key Vault reference the platform tried to resolve before
the app's role on the vault applied, and it stays unresolved until the references are fetched
again. On the first such answer the script asks the platform to fetch them (`az rest ... /config/
configreferences/appsettings/refresh`, when the Azure CLI is there and azd has put the app's id in
the environment), then keeps asking the app.

Only the standard library, and Python 3.9 or newer, so that the hook runs with the python3 of an
older Ubuntu or of macOS and nothing installed (tests/e2e/test_smoke.py runs it under 3.9). The
problem type URNs are the ones of shared/core/problems.py (a unit test keeps them equal).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from typing import Any

PROBLEM = "urn:altinn:events:problem:"
MISSING_TOKEN = PROBLEM + "missing-token"
INVALID_TOKEN = PROBLEM + "invalid-token"
INSUFFICIENT_SCOPE = PROBLEM + "insufficient-scope"
INVALID_EVENT = PROBLEM + "invalid-event"
NOT_AUTHORIZED = PROBLEM + "not-authorized-for-resource"
REGISTRY_UNAVAILABLE = PROBLEM + "registry-unavailable"
ISSUER_UNAVAILABLE = PROBLEM + "issuer-unavailable"
QUEUE_UNAVAILABLE = PROBLEM + "queue-unavailable"
RECORDS_UNAVAILABLE = PROBLEM + "records-unavailable"
TOO_MANY_LOOKUPS = PROBLEM + "too-many-resource-lookups"
INTERNAL_ERROR = PROBLEM + "internal-error"
METHOD_NOT_ALLOWED = PROBLEM + "method-not-allowed"

TOKEN_VARIABLE = "SMOKE_TEST_TOKEN"  # noqa: S105 - the name of a variable
RESOURCE_VARIABLE = "SMOKE_TEST_RESOURCE"
DEFAULT_RESOURCE = "urn:altinn:resource:events-smoke-test"
TIMEOUT_SECONDS = 60.0  # a Flex instance's cold start is seconds; the first request waits for it


@dataclass
class Answer:
    """One HTTP answer, or why there was none (``status`` 0)."""

    status: int
    headers: Message = field(default_factory=Message)
    body: bytes = b""
    error: str = ""

    @property
    def problem(self) -> dict[str, Any] | None:
        """The RFC 9457 body, when the answer is one of the function's problems."""
        if not self.headers.get("Content-Type", "").startswith("application/problem+json"):
            return None
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) and "type" in parsed else None

    @property
    def problem_type(self) -> str:
        return str((self.problem or {}).get("type", ""))

    @property
    def detail(self) -> str:
        return str((self.problem or {}).get("detail", ""))[:300]

    def starting(self) -> bool:
        """Whether this looks like an app that has not started yet (worth waiting for)."""
        return self.status in (0, 404, 502, 503) and self.problem is None

    def unconfigured(self) -> bool:
        """Whether the app runs but cannot load its settings (worth a refresh and a wait)."""
        return self.status == 500 and self.problem_type == INTERNAL_ERROR

    def describe(self) -> str:
        if self.status == 0:
            return f"no answer ({self.error})"
        kind = f" {self.problem_type.removeprefix(PROBLEM)}" if self.problem else ""
        return f"{self.status}{kind}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer to report (a login page), not to follow


_OPENER = urllib.request.build_opener(_NoRedirects)


def call(url: str, method: str, headers: dict[str, str], body: bytes | None = None) -> Answer:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Answer(0, error=str(reason))


REFRESH_API = "config/configreferences/appsettings/refresh?api-version=2022-03-01"


def site_id() -> str | None:
    """The function app's resource id, from the azd environment (the AZURE_FUNCTION_ID output, or
    the subscription, resource group and name azd also puts there)."""
    if os.environ.get("AZURE_FUNCTION_ID"):
        return os.environ["AZURE_FUNCTION_ID"].rstrip("/")
    parts = [os.environ.get(n, "") for n in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP")]
    name = os.environ.get("AZURE_FUNCTION_NAME", "")
    if all(parts) and name:
        return (
            f"/subscriptions/{parts[0]}/resourceGroups/{parts[1]}"
            f"/providers/Microsoft.Web/sites/{name}"
        )
    return None


def refresh_key_vault_references() -> str:
    """Ask the platform to resolve the app settings' Key Vault references again; what happened."""
    site = site_id()
    if site is None:
        return "no AZURE_FUNCTION_ID in the environment: references not refreshed"
    command = ["az", "rest", "--method", "post", "--url", f"{site}/{REFRESH_API}"]
    if shutil.which("az") is None:
        return "no Azure CLI: to refresh the references run " + " ".join(command)
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command; the URL is azd's output
            command, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"could not refresh the references ({error})"
    if done.returncode != 0:
        return f"could not refresh the references: {done.stderr.strip()[:200]}"
    return "asked the platform to resolve the Key Vault references again"


def call_when_started(
    url: str,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    wait: float,
    refresh: Callable[[], str] = refresh_key_vault_references,
) -> Answer:
    """call(), repeated while the answer means the app is still starting or cannot load its
    settings yet, for up to wait s; the first of the latter also refreshes the references."""
    deadline = time.monotonic() + wait
    pause = 2.0
    refreshed = False
    while True:
        answer = call(url, method, headers, body)
        waiting = answer.starting() or answer.unconfigured()
        if not waiting or time.monotonic() + pause > deadline:
            return answer
        if answer.unconfigured():
            note = "the app cannot load its settings yet"
            if not refreshed:
                refreshed = True
                note += f" ({refresh()})"
        else:
            note = "the app may still be starting"
        print(f"  ... {method} {url}: {answer.describe()}, {note}", flush=True)
        time.sleep(pause)  # polling a deploy that is still starting, bounded by --wait
        pause = min(pause * 1.5, 15.0)


# -- what an unexpected answer most likely means ----------------------------------------------
def common_cause(answer: Answer, url: str) -> str | None:
    """Causes that any of the checks can run into: the app is not there, or not ours."""
    if answer.status == 0:
        return (
            f"cannot reach {url} ({answer.error}). Likely: the URL is wrong (PUBLISH_ENDPOINT_URL "
            "is a Bicep output of `azd provision`), the app is stopped or not deployed yet, or "
            "its network rules keep this machine out (with VNET_ENABLED and no public access, "
            "run the smoke test from inside the network)."
        )
    if answer.status == 404:
        return (
            f"nothing answers at {urllib.parse.urlsplit(url).path}: the function is not there. "
            "Likely: the URL lacks /events, the deployment package did not index (the remote "
            "build failed to install requirements.txt: see the deployment log; or the app's "
            'Python is not 3.11), or host.json\'s routePrefix is not "".'
        )
    if 300 <= answer.status < 400:
        return (
            f"{answer.status} redirect to {answer.headers.get('Location', '?')}: something in "
            "front of the function sends callers to a login page. Likely: App Service "
            "Authentication (Easy Auth) is on; the function checks tokens itself, so turn it "
            "off or set unauthenticated requests to pass through."
        )
    if answer.problem_type == INTERNAL_ERROR:
        return (
            "500 internal-error: the app cannot load its configuration, so it refuses every "
            "request. Likely: a missing or invalid EVENTS_* app setting (the function's log "
            "names it: traces | where message startswith 'cannot serve /events'; "
            "docs/operations.md), or a Key Vault reference that did not resolve (the app's "
            "identity lacks Key Vault Secrets User, or the role had not applied yet: refresh "
            "the references once it has; docs/deploy.md, Secrets)."
        )
    if answer.problem is None and answer.status >= 500:
        return (
            f"{answer.status} without a problem body: the function's code did not answer. "
            "Likely: the worker failed to start or to index the function (a package that "
            "failed to install or import; see 'Worker failed to index functions' in "
            "Application Insights and the deployment log), or the platform is still starting "
            "it (run again with a longer --wait)."
        )
    if answer.problem is None and answer.status in (401, 403):
        return (
            f"{answer.status} without a problem body: not the function's answer. Likely: "
            "access restrictions (ipSecurityRestrictions) keep this machine out, or App "
            "Service Authentication (Easy Auth) answers for the function; turn it off for "
            "/events, which checks tokens itself."
        )
    return None


def publish_cause(answer: Answer, resource: str) -> str:
    """What a publish with the operator's token most likely ran into."""
    kind = answer.problem_type
    detail = f" ({answer.detail})" if answer.detail else ""
    if kind == INVALID_TOKEN:
        return (
            f"401 invalid-token{detail}: the app refused {TOKEN_VARIABLE}. Likely: its issuer is "
            "not in EVENTS_TRUSTED_ISSUERS, its audience is not EVENTS_AUDIENCE, or it expired."
        )
    if kind == INSUFFICIENT_SCOPE:
        return (
            f"403 insufficient-scope: {TOKEN_VARIABLE} lacks the scope altinn:events.publish. "
            "Ask Maskinporten for a token with that scope."
        )
    if kind == NOT_AUTHORIZED:
        return (
            f"403 not-authorized-for-resource: the Resource Registry does not let the token's "
            f"organisation publish on {resource}. Likely: {RESOURCE_VARIABLE} names a resource "
            "the organisation does not own, or EVENTS_REGISTRY_URL points at another "
            "environment's registry."
        )
    if kind == INVALID_EVENT:
        return (
            f"400 invalid-event{detail}: the test event was refused. Likely: {RESOURCE_VARIABLE} "
            "is not a urn:altinn:resource:<id> URN."
        )
    if kind == ISSUER_UNAVAILABLE:
        return (
            "503 issuer-unavailable: the app cannot fetch the token issuer's keys. Likely: the "
            "app's outbound network (VNet, DNS, firewall) does not reach the issuers of "
            "EVENTS_TRUSTED_ISSUERS."
        )
    if kind == REGISTRY_UNAVAILABLE:
        return (
            "503 registry-unavailable: the Resource Registry did not answer the app. Likely: "
            "EVENTS_REGISTRY_URL is wrong or unreachable from the app's network, or the "
            "registry refuses its credentials (EVENTS_REGISTRY_SUBSCRIPTION_KEY, or the "
            "client credentials; a Key Vault reference that did not resolve)."
        )
    if kind == QUEUE_UNAVAILABLE:
        return (
            "503 queue-unavailable: the storage queue refused or did not answer. Likely: the "
            "app's identity lacks Storage Queue Data Message Sender on the account (a new role "
            "assignment takes minutes to apply), EVENTS_QUEUE_ACCOUNT_URL names another "
            "account, or the queue's private endpoint or DNS zone is missing."
        )
    if kind == RECORDS_UNAVAILABLE:
        return (
            "503 records-unavailable: the table of published events' identities refused or did "
            "not answer. Likely: the app's identity lacks Storage Table Data Contributor, "
            "EVENTS_TABLE_ACCOUNT_URL is wrong, or the table private endpoint is missing."
        )
    if kind == TOO_MANY_LOOKUPS:
        return "429 too-many-resource-lookups: run the smoke test again in a minute."
    return f"{answer.describe()}{detail}: unexpected answer to a valid publish."


# -- the checks ---------------------------------------------------------------------------------
def check_without_token(url: str, wait: float) -> str | None:
    """None when a POST without a token gets the function's 401 problem; else why not."""
    body = b'{"specversion":"1.0"}'
    headers = {"Content-Type": "application/cloudevents+json"}
    answer = call_when_started(url, "POST", headers, body, wait)
    challenge = answer.headers.get("WWW-Authenticate", "")
    if answer.status == 401 and answer.problem_type == MISSING_TOKEN:
        if not challenge.startswith("Bearer"):
            return "401 without a Bearer challenge: something in front rewrites the answer."
        return None
    if 200 <= answer.status < 300:
        return (
            f"{answer.status} to a POST without a token: the endpoint does not check tokens. "
            "This is not this app (or not this version of it): stop and check the URL."
        )
    return common_cause(answer, url) or f"{answer.describe()}: expected 401 missing-token."


def check_get(url: str, wait: float) -> str | None:
    answer = call_when_started(url, "GET", {}, None, wait)
    if answer.status == 405 and "POST" in answer.headers.get("Allow", ""):
        return None
    return common_cause(answer, url) or f"{answer.describe()}: expected 405 with Allow: POST."


def smoke_event(url: str, resource: str) -> dict[str, Any]:
    host = urllib.parse.urlsplit(url).hostname or "localhost"
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"https://{host}/smoke-test",
        "type": "no.altinn.events.smoke-test",
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resource": resource,
        "data": {"purpose": "post-deploy smoke test"},
    }


def check_publish(url: str, token: str, resource: str, wait: float) -> str | None:
    event = smoke_event(url, resource)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/cloudevents+json",
    }
    answer = call_when_started(url, "POST", headers, json.dumps(event).encode(), wait)
    if answer.status == 200:
        return None
    return common_cause(answer, url) or publish_cause(answer, resource)


def endpoint(given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("PUBLISH_ENDPOINT_URL"):
        return os.environ["PUBLISH_ENDPOINT_URL"]
    if os.environ.get("SERVICE_API_URI"):
        return os.environ["SERVICE_API_URI"].rstrip("/") + "/events"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smoke", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("url", nargs="?", help="the /events URL (default: $PUBLISH_ENDPOINT_URL)")
    parser.add_argument(
        "--wait",
        type=float,
        default=float(os.environ.get("SMOKE_TEST_WAIT_SECONDS", "180")),
        help="seconds to wait for a starting app (default 180, or $SMOKE_TEST_WAIT_SECONDS)",
    )
    options = parser.parse_args(argv)
    url = endpoint(options.url)
    if not url:
        print(
            "smoke test: no URL. Pass the /events URL, or set PUBLISH_ENDPOINT_URL (azd sets it "
            "from the Bicep outputs: `azd env get-value PUBLISH_ENDPOINT_URL`).",
            file=sys.stderr,
        )
        return 2
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    resource = os.environ.get(RESOURCE_VARIABLE, "").strip() or DEFAULT_RESOURCE
    wait = options.wait
    checks: list[tuple[str, Callable[[], str | None]]] = [
        ("POST without a token gets 401 with a problem", lambda: check_without_token(url, wait)),
        ("GET gets 405 with Allow: POST", lambda: check_get(url, wait)),
    ]
    if token:
        checks.append(
            (f"a publish on {resource} gets 200", lambda: check_publish(url, token, resource, wait))
        )
    print(f"smoke test of {url}", flush=True)
    failures = 0
    for name, run in checks:
        failure = run()
        if failure is None:
            print(f"  ok    {name}", flush=True)
        else:
            failures += 1
            print(f"  FAIL  {name}\n        {failure}", flush=True)
    if not token:
        print(
            f"  skip  a publish (set {TOKEN_VARIABLE} to a publisher's token, and "
            f"{RESOURCE_VARIABLE} to a resource meant for tests, to check it too)"
        )
    if failures:
        print(f"smoke test failed: {failures} of {len(checks)} checks", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
