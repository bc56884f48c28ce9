"""The smoke test's reading of answers (deploy/smoke.py), without HTTP.

The script uses only the standard library, so it repeats the problem type URNs: these tests keep
them equal to the catalog, and check that every answer a misconfigured deploy can give gets a
message naming the setting or the role to look at.
"""

from __future__ import annotations

import json
from email.message import Message

import pytest

from deploy import smoke
from shared.core.problems import ProblemType

URL = "https://func-events.azurewebsites.net/events"


def answer(status: int, body: object = None, **headers: str) -> smoke.Answer:
    message = Message()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    data = b"" if body is None else json.dumps(body).encode()
    return smoke.Answer(status, message, data)


def problem(kind: ProblemType, detail: str = "") -> smoke.Answer:
    body = {"type": kind.uri, "title": kind.title, "status": kind.status, "detail": detail}
    return answer(kind.status, body, Content_Type="application/problem+json")


def test_the_problem_types_are_the_catalogs() -> None:
    uris = {kind.uri for kind in ProblemType}
    named = {
        value
        for name, value in vars(smoke).items()
        if name.isupper()
        and isinstance(value, str)
        and value.startswith(smoke.PROBLEM)
        and value != smoke.PROBLEM
    }
    assert len(named) == 12
    assert named <= uris, sorted(named - uris)


def test_a_problem_is_read_only_from_a_problem_body() -> None:
    assert problem(ProblemType.MISSING_TOKEN).problem_type == ProblemType.MISSING_TOKEN.uri
    html = smoke.Answer(401, Message(), b"<html>login</html>")
    assert html.problem is None
    not_json = answer(503, None, Content_Type="application/problem+json")
    assert not_json.problem is None


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (problem(ProblemType.INVALID_TOKEN, "untrusted issuer"), "EVENTS_TRUSTED_ISSUERS"),
        (problem(ProblemType.INSUFFICIENT_SCOPE), "altinn:events.publish"),
        (problem(ProblemType.NOT_AUTHORIZED_FOR_RESOURCE), "SMOKE_TEST_RESOURCE"),
        (problem(ProblemType.INVALID_EVENT), "urn:altinn:resource:"),
        (problem(ProblemType.ISSUER_UNAVAILABLE), "EVENTS_TRUSTED_ISSUERS"),
        (problem(ProblemType.REGISTRY_UNAVAILABLE), "EVENTS_REGISTRY_URL"),
        (problem(ProblemType.QUEUE_UNAVAILABLE), "Storage Queue Data Message Sender"),
        (problem(ProblemType.RECORDS_UNAVAILABLE), "Storage Table Data Contributor"),
        (problem(ProblemType.TOO_MANY_RESOURCE_LOOKUPS), "again"),
    ],
)
def test_a_failed_publish_names_the_likely_misconfiguration(
    given: smoke.Answer, named: str
) -> None:
    assert smoke.common_cause(given, URL) is None
    assert named in smoke.publish_cause(given, smoke.DEFAULT_RESOURCE)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (smoke.Answer(0, error="Name or service not known"), "PUBLISH_ENDPOINT_URL"),
        (answer(404), "the URL lacks /events"),
        (answer(302, Location="https://login.microsoftonline.com/x"), "Easy Auth"),
        (problem(ProblemType.INTERNAL_ERROR), "EVENTS_* app setting"),
        (answer(500), "Worker failed to index functions"),
        (answer(502), "Worker failed to index functions"),
        (answer(403), "ipSecurityRestrictions"),
        (answer(401), "Easy Auth"),
    ],
)
def test_an_app_that_is_not_there_or_not_ours(given: smoke.Answer, named: str) -> None:
    cause = smoke.common_cause(given, URL)
    assert cause is not None
    assert named in cause


def test_only_answers_of_an_app_still_starting_are_waited_for() -> None:
    assert smoke.Answer(0, error="refused").starting()
    assert answer(404).starting()
    assert answer(503).starting()
    assert not problem(ProblemType.QUEUE_UNAVAILABLE).starting(), "the app runs: report it"
    assert not problem(ProblemType.INTERNAL_ERROR).starting()
    assert not answer(401).starting()
    # The app runs but cannot load its settings: waited for too (an unresolved Key Vault
    # reference right after the first deploy), with a refresh of the references.
    assert problem(ProblemType.INTERNAL_ERROR).unconfigured()
    assert not answer(500).unconfigured(), "a 500 without our problem is not the app's"
    assert not problem(ProblemType.QUEUE_UNAVAILABLE).unconfigured()


def test_the_site_id_comes_from_the_azd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_FUNCTION_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_FUNCTION_NAME", "func-api-x")
    assert smoke.site_id() is None
    assert "references not refreshed" in smoke.refresh_key_vault_references()
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-events")
    assert smoke.site_id() == (
        "/subscriptions/sub/resourceGroups/rg-events/providers/Microsoft.Web/sites/func-api-x"
    )
    monkeypatch.setenv(
        "AZURE_FUNCTION_ID", "/subscriptions/s/resourceGroups/r/providers/x/sites/y/"
    )
    assert smoke.site_id() == "/subscriptions/s/resourceGroups/r/providers/x/sites/y"
    monkeypatch.setenv("PATH", "")
    told = smoke.refresh_key_vault_references()
    assert told.startswith("no Azure CLI")
    assert "az rest --method post --url /subscriptions/s/" in told
    assert told.endswith("/sites/y/" + smoke.REFRESH_API)


def test_the_url_comes_from_the_argument_or_azd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISH_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("SERVICE_API_URI", raising=False)
    assert smoke.endpoint(None) is None
    monkeypatch.setenv("SERVICE_API_URI", "https://func.example/")
    assert smoke.endpoint(None) == "https://func.example/events"
    monkeypatch.setenv("PUBLISH_ENDPOINT_URL", URL)
    assert smoke.endpoint(None) == URL
    assert smoke.endpoint("http://127.0.0.1:7071/events") == "http://127.0.0.1:7071/events"
