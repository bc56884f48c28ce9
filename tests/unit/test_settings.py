"""Configuration from EVENTS_* variables: defaults, parsing and the refusals that name the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.app.settings import Settings, describe_settings_error, unchecked_audience_warning

REQUIRED = {
    "EVENTS_TRUSTED_ISSUERS": "https://platform.altinn.no/authentication/api/v1/openid/",
    "EVENTS_REGISTRY_URL": "https://platform.altinn.no/resourceregistry/api/v1/",
    "EVENTS_QUEUE_ACCOUNT_URL": "https://account.queue.core.windows.net",
    "EVENTS_TABLE_ACCOUNT_URL": "https://account.table.core.windows.net",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("EVENTS_"):
            monkeypatch.delenv(name)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def load() -> Settings:
    return Settings()  # type: ignore[call-arg]


def refusal(env: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load()
    return describe_settings_error(caught.value)


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load()
    assert settings.trusted_issuers == (REQUIRED["EVENTS_TRUSTED_ISSUERS"],)
    assert settings.registry_url == "https://platform.altinn.no/resourceregistry/api/v1"
    assert settings.audience is None
    assert settings.publish_scope == "altinn:events.publish"
    assert settings.admin_scope == "altinn:events.publish.admin"
    assert settings.clock_skew_seconds == 10
    assert settings.queue_name == "events-registration"
    assert settings.queue_timeout_seconds == 3
    assert settings.registry_timeout_seconds == 2
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.max_event_bytes == 1024 * 1024
    assert settings.blob_container == "events-data"
    assert settings.blob_account_url is None


def test_issuers_are_comma_separated(env: pytest.MonkeyPatch) -> None:
    env.setenv("EVENTS_TRUSTED_ISSUERS", " https://a.example/ , http://127.0.0.1:7171,, ")
    assert load().trusted_issuers == ("https://a.example/", "http://127.0.0.1:7171")


@pytest.mark.parametrize("url", ["http://localhost:1", "http://127.0.0.1:1", "http://[::1]:1"])
def test_plain_http_is_allowed_on_loopback(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("EVENTS_REGISTRY_URL", url)
    assert load().registry_url == url


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("EVENTS_TRUSTED_ISSUERS", "http://issuer.example", "must use https://"),
        ("EVENTS_TRUSTED_ISSUERS", " , ", "at least one issuer"),
        ("EVENTS_REGISTRY_URL", "http://registry.example/api", "must use https://"),
        ("EVENTS_REGISTRY_URL", "registry.example", "absolute https:// URL"),
        ("EVENTS_REGISTRY_URL", "https://r.example/api?x=1", "query"),
        ("EVENTS_QUEUE_ACCOUNT_URL", "http://acct.queue.core.windows.net", "must use https://"),
        ("EVENTS_QUEUE_NAME", "Events", "lower-case"),
        ("EVENTS_QUEUE_NAME", "ab", "3-63"),
        ("EVENTS_QUEUE_NAME", "a--b", "single hyphens"),
        ("EVENTS_QUEUE_NAME", "-ab", "starting and ending"),
        ("EVENTS_CLOCK_SKEW_SECONDS", "-1", "EVENTS_CLOCK_SKEW_SECONDS"),
        ("EVENTS_QUEUE_TIMEOUT_SECONDS", "0", "EVENTS_QUEUE_TIMEOUT_SECONDS"),
        ("EVENTS_ADMIN_SCOPE", "altinn:events.publish", "must differ"),
    ],
)
def test_refusals_name_the_variable(
    env: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    assert fragment in refusal(env, **{variable: value})


def test_a_queue_is_required(env: pytest.MonkeyPatch) -> None:
    env.delenv("EVENTS_QUEUE_ACCOUNT_URL")
    message = refusal(env)
    assert "EVENTS_QUEUE_CONNECTION" in message
    assert "EVENTS_QUEUE_ACCOUNT_URL" in message


def test_required_variables_are_named(env: pytest.MonkeyPatch) -> None:
    env.delenv("EVENTS_TRUSTED_ISSUERS")
    assert "EVENTS_TRUSTED_ISSUERS" in refusal(env)


def test_connection_string_never_appears_in_errors(env: pytest.MonkeyPatch) -> None:
    secret = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0"
    env.setenv("EVENTS_QUEUE_CONNECTION", secret)
    assert "c2VjcmV0" not in repr(load())
    assert "c2VjcmV0" not in refusal(env, EVENTS_QUEUE_NAME="X")


@pytest.mark.parametrize(
    ("issuers", "audience", "warned"),
    [
        ("https://platform.altinn.no/authentication/api/v1/openid/", "", None),
        ("https://platform.tt02.altinn.no/authentication/api/v1/openid/", "", None),
        ("https://maskinporten.no/", "", "https://maskinporten.no/"),
        ("https://platform.altinn.no/x/,https://login.example/", "", "https://login.example/"),
        ("https://evilaltinn.no/", "", "https://evilaltinn.no/"),
        ("https://maskinporten.no/", "api://events", None),
    ],
)
def test_an_unchecked_audience_is_warned_about_unless_the_issuer_sets_none(
    env: pytest.MonkeyPatch, issuers: str, audience: str, warned: str | None
) -> None:
    env.setenv("EVENTS_TRUSTED_ISSUERS", issuers)
    env.setenv("EVENTS_AUDIENCE", audience)
    warning = unchecked_audience_warning(load())
    if warned is None:
        assert warning is None
    else:
        assert warning is not None
        assert warned in warning
        assert "EVENTS_AUDIENCE" in warning
        assert "altinn.no/authentication" not in warning


@pytest.mark.parametrize(
    "name", ["EVENTS_REGISTRY_SUBSCRIPTION_KEY", "EVENTS_REGISTRY_CLIENT_SECRET", "EVENTS_AUDIENCE"]
)
def test_an_unresolved_key_vault_reference_stops_start_up(
    env: pytest.MonkeyPatch, name: str
) -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://kv-abc.vault.azure.net/secrets/registry-key)"
    env.setenv(name, reference)
    with pytest.raises(ValidationError) as raised:
        load()
    described = describe_settings_error(raised.value)
    assert f"{name}: Value error, is a Key Vault reference that the platform did not resolve" in (
        described
    )
    assert "kv-abc" not in described


def test_the_garbage_collection_threshold_defaults_to_ten_thousand(
    env: pytest.MonkeyPatch,
) -> None:
    assert load().gc_threshold == 50_000
    env.setenv("EVENTS_GC_THRESHOLD", "0")
    assert load().gc_threshold == 0
    assert "EVENTS_GC_THRESHOLD" in refusal(env, EVENTS_GC_THRESHOLD="-1")
