"""Telemetry, the operations workbook, the alert rules and the availability test, checked on the
parsed templates (pycep-parser, as in test_templates.py).

What they must say, and why: docs/deploy.md ("Telemetry") and docs/operations.md. The worker's
settings follow the Functions OpenTelemetry how-to and the Python worker's code (it configures
Azure Monitor itself only with PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY); the alert and workbook
queries name the metrics shared/app/telemetry.py records.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import (
    INFRA,
    MAIN,
    REPO,
    Resource,
    bicep_files,
    load_json,
    modules,
    parameters,
    parse,
    property_path,
    resource,
    resources,
    variable,
    walk,
)

APP = INFRA / "app"
API = APP / "api.bicep"
RBAC = APP / "rbac.bicep"
ALERTS = APP / "alerts.bicep"
AVAILABILITY = APP / "availability.bicep"
WORKBOOK = APP / "workbook.bicep"
WORKBOOK_JSON = APP / "workbook.json"
KQL = APP / "kql"
PARAMETERS_FILE = INFRA / "main.parameters.json"
OPERATIONS_MD = REPO / "docs" / "operations.md"
DEPLOY_MD = REPO / "docs" / "deploy.md"

MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
COMPONENT_NAME = ["monitoring", "outputs", "applicationInsightsName"]
EVENTS_STORAGE_ACCOUNT = ["storage", "outputs", "name"]

# main.bicep parameter -> (azd variable, default): the alerts' knobs, fed like the others.
ALERT_PARAMETERS = {
    "alertEmail": ("ALERT_EMAIL", ""),
    "alertFiveXxPercent": ("ALERT_5XX_PERCENT", 5),
    "alertRegistryFailures": ("ALERT_REGISTRY_FAILURES", 10),
    "alertQueueBacklog": ("ALERT_QUEUE_BACKLOG", 1000),
}

# The log alerts: resource symbol -> (query file, what it must count).
LOG_ALERTS = {
    "publishFiveXx": ("publish-5xx.kql", "events.published"),
    "registryFailureAlert": ("registry-failures.kql", "events.registry.lookups"),
    "noAnswers": ("no-answers.kql", "events.published"),
}


def main_module(symbol: str) -> tuple[Path, dict[str, Any], Any]:
    found = modules()
    assert symbol in found, f"main.bicep has no module {symbol!r}"
    return found[symbol]


def description_of(path: Path, name: str) -> str:
    return next(
        d["argument"] for d in parameters(path)[name]["decorators"] if d["type"] == "description"
    )


def replace_chain(expression: Any) -> tuple[Any, dict[str, Any]]:
    """``replace(replace(base, 'a', x), 'b', y)`` as ``(base, {'a': x, 'b': y})``."""
    replaced: dict[str, Any] = {}
    while isinstance(expression, dict) and expression.get("function", {}).get("type") == "replace":
        arguments = expression["function"]["parameters"]
        replaced[arguments["old_string"]] = arguments["new_string"]
        expression = arguments["original_string"]
    return expression, replaced


def loaded_file(path: Path, expression: Any) -> Path:
    """The file a ``loadTextContent('...')`` expression (or a variable holding one) loads."""
    if isinstance(expression, str):
        expression = variable(path, expression)
    function = expression["function"]
    assert function["type"] == "load_text_content", expression
    return (path.parent / function["parameters"]["file_path"]).resolve()


def query_of(symbol: str) -> tuple[Path, str, dict[str, Any]]:
    """(query file, its text, placeholder -> Bicep value) of a log alert in alerts.bicep."""
    rule = resource(ALERTS, symbol)
    (criterion,) = rule.properties["criteria"]["allOf"]
    expression = criterion["query"]
    if isinstance(expression, str):
        expression = variable(ALERTS, expression)
    base, replaced = replace_chain(expression)
    file = loaded_file(ALERTS, base)
    return file, file.read_text(encoding="utf-8"), replaced


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{[A-Za-z]+\}", text))


def iso_hours(duration: str) -> float:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", duration)
    assert match, duration
    return int(match[1] or 0) + int(match[2] or 0) / 60


def azd_variable(name: str) -> tuple[str, str | None]:
    value = load_json(PARAMETERS_FILE)["parameters"][name]["value"]
    match = re.fullmatch(r"\$\{(?P<var>[A-Z0-9_]+)(?:=(?P<default>[^}]*))?\}", value)
    assert match, f"main.parameters.json: {name} must be ${{VAR}} or ${{VAR=default}}"
    return match["var"], match["default"]


def alert_rules() -> list[Resource]:
    kinds = ("Microsoft.Insights/scheduledQueryRules", "Microsoft.Insights/metricAlerts")
    return [r for r in resources(ALERTS) if r.type in kinds]


# ---- the worker's telemetry --------------------------------------------------------------------


def test_the_python_worker_exports_its_own_telemetry() -> None:
    """telemetryMode OpenTelemetry covers the host; the worker configures Azure Monitor itself only
    with PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true (Functions OpenTelemetry how-to, the
    Python worker's _handle__worker_init_request)."""
    settings = variable(API, "platformAppSettings")
    assert settings.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY") == "true", (
        "api.bicep must set PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true', or the code's "
        "spans, metrics and log lines never leave the worker"
    )
    assert property_path(settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == [
        "applicationInsights",
        "properties",
        "ConnectionString",
    ]
    # The component whose connection string the app gets is the one monitoring.bicep creates.
    component = resource(API, "applicationInsights")
    assert component.existing
    assert component.body == {"name": "applicationInsightsName"}
    assert property_path(main_module("api")[1]["applicationInsightsName"]) == COMPONENT_NAME
    assert json.loads((REPO / "host.json").read_text())["telemetryMode"] == "OpenTelemetry"


def test_the_otlp_only_worker_switch_is_not_set() -> None:
    """PYTHON_ENABLE_OPENTELEMETRY is the OTLP tab's setting: it exports nothing to Azure Monitor,
    and on its own the worker leaves its trace-context propagator unset (research notes, §2)."""
    for path in bicep_files():
        names = {item.strip("'") for item in walk(parse(path)) if isinstance(item, str)}
        assert "PYTHON_ENABLE_OPENTELEMETRY" not in names, path.name


def test_host_and_worker_authenticate_to_application_insights_with_the_app_identity() -> None:
    """Local authentication is disabled on the component, so telemetry without an Entra token is
    refused. The string is read by the host and, from the environment, by the Python exporter,
    which accepts `Authorization=AAD` (exactly) with an optional `ClientId` (azure-monitor-
    opentelemetry-exporter, export/_base.py, _get_authentication_credential)."""
    value = variable(API, "platformAppSettings")["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert isinstance(value, str)
    pairs = dict(pair.split("=", 1) for pair in value.split(";"))
    parsed = {key.lower(): item for key, item in pairs.items()}
    assert parsed == {"clientid": "${identityClientId}", "authorization": "AAD"}
    assert property_path(main_module("api")[1]["identityClientId"]) == [
        "identity",
        "outputs",
        "clientId",
    ]


def test_the_app_identity_may_publish_telemetry_to_the_component() -> None:
    assignment = resource(RBAC, "appMetricsPublisher")
    assert assignment.condition is None
    role = assignment.properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert variable(RBAC, "roles")[property_path(role)[1]] == MONITORING_METRICS_PUBLISHER
    assert assignment.body["scope"] == "applicationInsights"
    scope = resource(RBAC, "applicationInsights")
    assert scope.type == "Microsoft.Insights/components"
    assert scope.existing
    assert scope.body == {"name": "applicationInsightsName"}
    assert assignment.properties["principalId"] == "appPrincipalId"
    assert assignment.properties["principalType"] == "ServicePrincipal"
    rbac = main_module("rbac")[1]
    assert property_path(rbac["applicationInsightsName"]) == COMPONENT_NAME
    assert property_path(rbac["appPrincipalId"]) == ["identity", "outputs", "principalId"]
    # ... before the app starts sending.
    assert "rbac" in parse(MAIN)["modules"]["api"]["config"]["dependsOn"]


# ---- the operations workbook --------------------------------------------------------------------


def workbook_items() -> dict[str, dict[str, Any]]:
    document = json.loads(WORKBOOK_JSON.read_text(encoding="utf-8"))
    assert document["version"] == "Notebook/1.0"
    return {item["name"]: item for item in document["items"]}


def chart_query(name: str) -> str:
    item = workbook_items().get(name)
    assert item is not None, f"workbook.json has no item {name!r}"
    assert item["type"] == 3, f"{name} is a query item"
    content = item["content"]
    assert content["resourceType"] == "microsoft.insights/components"
    assert content["crossComponentResources"] == ["__APPLICATION_INSIGHTS_ID__"]
    assert content["timeContextFromParameter"] == "TimeRange"
    query: str = content["query"]
    return query


def test_the_workbook_is_deployed_for_the_component() -> None:
    module_file, params, condition = main_module("workbook")
    assert module_file == WORKBOOK
    assert condition is None
    assert property_path(params["applicationInsightsName"]) == COMPONENT_NAME
    assert property_path(params["storageAccountName"]) == EVENTS_STORAGE_ACCOUNT
    workbook = resource(WORKBOOK, "workbook")
    assert workbook.type == "Microsoft.Insights/workbooks"
    assert workbook.body["kind"] == "shared"
    # The name must be a GUID; a stable one, so provisioning again updates the same workbook.
    assert workbook.body["name"]["function"]["type"] == "guid"
    props = workbook.properties
    assert props["category"] == "workbook"
    assert property_path(props["sourceId"]) == ["applicationInsights", "id"]
    assert isinstance(props["displayName"], str)
    assert props["version"] == "Notebook/1.0"


def test_the_workbook_placeholders_are_filled_with_the_component_and_the_queue_service() -> None:
    data = resource(WORKBOOK, "workbook").properties["serializedData"]
    base, replaced = replace_chain(variable(WORKBOOK, data) if isinstance(data, str) else data)
    assert loaded_file(WORKBOOK, base) == WORKBOOK_JSON
    assert {key: property_path(value) for key, value in replaced.items()} == {
        "__APPLICATION_INSIGHTS_ID__": ["applicationInsights", "id"],
        "__QUEUE_SERVICE_ID__": ["queueService", "id"],
    }
    assert set(re.findall(r"__[A-Z_]+__", WORKBOOK_JSON.read_text(encoding="utf-8"))) == set(
        replaced
    ), "every placeholder in workbook.json is filled, and nothing else is replaced"
    queue_service = resource(WORKBOOK, "queueService")
    assert queue_service.existing
    assert queue_service.body == {"parent": "storage", "name": "default"}
    assert resource(WORKBOOK, "storage").body == {"name": "storageAccountName"}


def test_chart_answers_per_minute_by_status_and_problem() -> None:
    query = chart_query("publishes-by-outcome")
    assert 'name == "events.published"' in query
    for dimension in ("http.response.status_code", "events.problem", "events.replayed"):
        assert f'customDimensions["{dimension}"]' in query, dimension
    assert "sum(valueSum)" in query, "metric rows carry counts in valueSum"
    assert "/ 1m)" in query, "per minute, whatever the time grain"


def test_chart_latency_percentiles() -> None:
    query = chart_query("latency-percentiles")
    assert query.startswith("requests")
    assert "percentilesw(duration, itemCount, 50, 95, 99)" in query, "sampled rows weigh itemCount"
    assert "drop_expired_records_tables" in query, "the hourly timer is not a publish"
    steps = chart_query("step-latency")
    for span in ("publish", "look up resource rules", "claim event id", "enqueue"):
        assert f'"{span}"' in steps, span
    # steps answered from memory have no span (shared/core/telemetry.py): none to chart
    assert '"verify token"' not in steps


def test_chart_registry_cache_hit_ratio() -> None:
    query = chart_query("registry-cache-hit-ratio")
    assert 'name == "events.registry.lookups"' in query
    assert 'customDimensions["events.cache.outcome"]' in query
    assert 'outcome == "hit"' in query
    assert "100.0 * hits / lookups" in query


def test_chart_503_by_cause() -> None:
    query = chart_query("unavailable-by-cause")
    assert 'name == "events.published"' in query
    assert 'customDimensions["http.response.status_code"]) == "503"' in query
    assert 'cause = tostring(customDimensions["events.problem"])' in query


def test_chart_queue_message_count() -> None:
    item = workbook_items()["queue-message-count"]
    assert item["type"] == 10, "an Azure Monitor metrics chart"
    content = item["content"]
    assert content["resourceType"] == "microsoft.storage/storageaccounts/queueservices"
    assert content["resourceIds"] == ["__QUEUE_SERVICE_ID__"]
    (metric,) = content["metrics"]
    assert metric["namespace"] == "microsoft.storage/storageaccounts/queueservices"
    # The portal's id of a metric is <namespace>-<category>-<name>; QueueMessageCount is one of
    # the queue service's hourly Capacity metrics, like QueueCapacity in Storage insights.
    assert metric["metric"] == (
        "microsoft.storage/storageaccounts/queueservices-Capacity-QueueMessageCount"
    )
    assert metric["aggregation"] == 4, "Average, the metric's aggregation"


# ---- alerts --------------------------------------------------------------------------------------


def test_alert_parameters_come_from_the_azd_environment() -> None:
    declared = parameters(MAIN)
    for name, (azd, default) in ALERT_PARAMETERS.items():
        assert name in declared, f"main.bicep has no parameter {name}"
        assert declared[name]["default"] == default, name
        assert azd_variable(name) == (azd, str(default)), name
        assert description_of(MAIN, name).startswith(f"{azd}:"), f"describe {name} as {azd}"


def test_the_alerts_module_gets_the_component_the_queue_account_and_the_test() -> None:
    module_file, params, condition = main_module("alerts")
    assert module_file == ALERTS
    assert condition is None, "the alerts exist with or without an e-mail address"
    assert property_path(params["applicationInsightsName"]) == COMPONENT_NAME
    assert property_path(params["storageAccountName"]) == EVENTS_STORAGE_ACCOUNT
    assert property_path(params["webTestName"]) == ["availability", "outputs", "name"]
    assert params["alertEmail"] == "alertEmail"
    assert params["fiveXxPercent"] == "alertFiveXxPercent"
    assert params["registryFailures"] == "alertRegistryFailures"
    assert params["queueBacklog"] == "alertQueueBacklog"
    declared = parameters(ALERTS)
    assert declared["alertEmail"]["default"] == ""
    for module_name, main_name in (
        ("fiveXxPercent", "alertFiveXxPercent"),
        ("registryFailures", "alertRegistryFailures"),
        ("queueBacklog", "alertQueueBacklog"),
    ):
        assert declared[module_name]["default"] == parameters(MAIN)[main_name]["default"]


def test_the_action_group_exists_only_with_an_email_address() -> None:
    group = resource(ALERTS, "actionGroup")
    assert group.type == "Microsoft.Insights/actionGroups"
    assert group.condition == {
        "operator": {
            "type": "not",
            "operands": {
                "bool_value": {
                    "function": {"type": "empty", "parameters": {"item_to_test": "alertEmail"}}
                }
            },
        }
    }
    assert group.body["location"] == "global"
    props = group.properties
    assert props["enabled"] is True
    assert len(props["groupShortName"]) <= 12, "action groups allow 12 characters"
    (receiver,) = props["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail"
    assert receiver["useCommonAlertSchema"] is True
    # Without the address, every alert still exists and has no action.
    for name in ("actionGroupIds", "metricAlertActions"):
        operands = variable(ALERTS, name)["operator"]["operands"]
        assert operands["condition"] == {
            "function": {"type": "empty", "parameters": {"item_to_test": "alertEmail"}}
        }
        assert operands["true_value"] == []
        (only,) = operands["false_value"]
        group_id = only["actionGroupId"] if name == "metricAlertActions" else only
        assert property_path(group_id) == ["actionGroup", "id"], name


def test_every_alert_notifies_the_action_group() -> None:
    rules = alert_rules()
    assert {r.symbol for r in rules} == {
        "publishFiveXx",
        "registryFailureAlert",
        "noAnswers",
        "availability",
        "queueBacklogAlert",
    }
    for rule in rules:
        assert rule.condition is None, f"{rule.symbol} must exist without an action group"
        assert rule.properties["enabled"] is True, rule.symbol
        assert rule.properties["autoMitigate"] is True, rule.symbol
        actions = rule.properties["actions"]
        if rule.type == "Microsoft.Insights/scheduledQueryRules":
            assert actions == {"actionGroups": "actionGroupIds"}, rule.symbol
        else:
            assert actions == "metricAlertActions", rule.symbol


@pytest.mark.parametrize("symbol", sorted(LOG_ALERTS))
def test_log_alerts_query_the_components_metrics(symbol: str) -> None:
    rule = resource(ALERTS, symbol)
    assert rule.type == "Microsoft.Insights/scheduledQueryRules"
    assert rule.body["kind"] == "LogAlert"
    assert [property_path(scope) for scope in rule.properties["scopes"]] == [
        ["applicationInsights", "id"]
    ]
    assert resource(ALERTS, "applicationInsights").body == {"name": "applicationInsightsName"}
    assert rule.properties["windowSize"] == "PT15M"
    assert rule.properties["evaluationFrequency"] == "PT5M"
    file, text, replaced = query_of(symbol)
    expected_file, metric = LOG_ALERTS[symbol]
    assert file == KQL / expected_file
    assert text.lstrip().startswith("//"), f"{expected_file} says what it counts"
    query = "\n".join(line for line in text.splitlines() if not line.startswith("//"))
    assert query.startswith("customMetrics\n"), "metrics are never sampled away"
    assert f'| where name == "{metric}"' in query
    assert placeholders(text) == set(replaced), f"{expected_file}: every placeholder filled"
    (criterion,) = rule.properties["criteria"]["allOf"]
    assert criterion["timeAggregation"] == "Count", "the query returns one row per bad finding"


def test_publish_5xx_fires_on_a_sustained_share_of_5xx() -> None:
    _, text, replaced = query_of("publishFiveXx")
    assert "status >= 500" in text
    assert 'problem != "missing-token"' in text, "the availability probe's 401s do not dilute it"
    assert "bin_at(timestamp, 5m, now())" in text
    assert {key: value["function"]["parameters"]["value_to_convert"] for key, value in
            replaced.items()} == {"{minimumAnswers}": "minimumAnswersPerBin",
                                  "{percent}": "fiveXxPercent"}  # fmt: skip
    assert type(variable(ALERTS, "minimumAnswersPerBin")) is int
    (criterion,) = resource(ALERTS, "publishFiveXx").properties["criteria"]["allOf"]
    # two bad 5-minute bins of the three in the 15-minute window: ten minutes, not a blip
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThanOrEqual", 2)


def test_registry_failures_count_error_and_stale_lookups() -> None:
    _, text, replaced = query_of("registryFailureAlert")
    assert 'customDimensions["events.cache.outcome"]' in text
    assert 'outcome in ("error", "stale")' in text
    assert replaced["{failures}"]["function"]["parameters"]["value_to_convert"] == (
        "registryFailures"
    )
    (criterion,) = resource(ALERTS, "registryFailureAlert").properties["criteria"]["allOf"]
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", 0)


def test_no_answers_is_a_liveness_check_on_the_probe_traffic() -> None:
    _, text, replaced = query_of("noAnswers")
    assert replaced == {}
    assert "isnull(answers) or answers == 0" in text, "an empty table is silence too"
    (criterion,) = resource(ALERTS, "noAnswers").properties["criteria"]["allOf"]
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", 0)
    # It relies on the availability test's requests: at least one per location in the window.
    frequency = parameters(AVAILABILITY)["frequencySeconds"]
    allowed = next(d["argument"] for d in frequency["decorators"] if d["type"] == "allowed")
    window = iso_hours(resource(ALERTS, "noAnswers").properties["windowSize"]) * 3600
    assert max(allowed) <= window, "every allowed test frequency probes within the window"


def test_queue_backlog_watches_the_events_storage_account() -> None:
    alert = resource(ALERTS, "queueBacklogAlert")
    assert alert.type == "Microsoft.Insights/metricAlerts"
    assert alert.body["location"] == "global"
    assert [property_path(scope) for scope in alert.properties["scopes"]] == [
        ["queueService", "id"]
    ]
    queue_service = resource(ALERTS, "queueService")
    assert queue_service.existing
    assert queue_service.body == {"parent": "storage", "name": "default"}
    assert resource(ALERTS, "storage").body == {"name": "storageAccountName"}
    criteria = alert.properties["criteria"]
    assert criteria["'odata.type'"] == (
        "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria"
    )
    (criterion,) = criteria["allOf"]
    assert criterion["metricNamespace"] == "Microsoft.Storage/storageAccounts/queueServices"
    assert criterion["metricName"] == "QueueMessageCount"
    assert criterion["timeAggregation"] == "Average"
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", "queueBacklog")
    # An hourly capacity metric: evaluating more often, or over less than an hour, sees no data.
    assert iso_hours(alert.properties["evaluationFrequency"]) >= 1
    assert iso_hours(alert.properties["windowSize"]) >= 1


# ---- the availability test -----------------------------------------------------------------------


def test_the_availability_test_posts_without_a_token_and_expects_401() -> None:
    module_file, params, condition = main_module("availability")
    assert module_file == AVAILABILITY
    assert condition is None
    assert property_path(params["applicationInsightsName"]) == COMPONENT_NAME
    # the endpoint azd prints as PUBLISH_ENDPOINT_URL
    assert params["endpointUrl"] == parse(MAIN)["outputs"]["PUBLISH_ENDPOINT_URL"]["value"]
    test = resource(AVAILABILITY, "webTest")
    assert test.type == "Microsoft.Insights/webtests"
    assert test.api_version == "2022-06-15"
    assert test.body["kind"] == "standard"
    tags = test.body["tags"]["function"]["parameters"]
    assert tags["arg_1"] == "tags"
    assert tags["arg_2"] == {"'hidden-link:${applicationInsights.id}'": "Resource"}
    props = test.properties
    assert props["Kind"] == "standard"
    assert props["Enabled"] is True
    assert props["SyntheticMonitorId"] == "name"
    assert props["Frequency"] == "frequencySeconds"
    request = props["Request"]
    assert request["RequestUrl"] == "endpointUrl"
    assert request["HttpVerb"] == "POST"
    assert request["RequestBody"] == {
        "function": {"type": "base64", "parameters": {"input_string": "{}"}}
    }
    assert request["Headers"] == [{"key": "Content-Type", "value": "application/json"}]
    assert request["FollowRedirects"] is False
    assert props["ValidationRules"]["ExpectedHttpStatusCode"] == 401
    assert props["Locations"]["loop_type"]["detail"]["array_name"] == "locations"
    assert len(parameters(AVAILABILITY)["locations"]["default"]) >= 5


def test_the_availability_alert_watches_the_test() -> None:
    alert = resource(ALERTS, "availability")
    assert alert.type == "Microsoft.Insights/metricAlerts"
    criteria = alert.properties["criteria"]
    assert criteria["'odata.type'"] == "Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria"
    assert property_path(criteria["webTestId"]) == ["webTest", "id"]
    assert property_path(criteria["componentId"]) == ["applicationInsights", "id"]
    assert [property_path(scope) for scope in alert.properties["scopes"]] == [
        ["webTest", "id"],
        ["applicationInsights", "id"],
    ]
    web_test = resource(ALERTS, "webTest")
    assert web_test.existing
    assert web_test.type == "Microsoft.Insights/webtests"
    assert web_test.body == {"name": "webTestName"}
    # Azure Monitor's rule of thumb: fire at (test locations - 2) failing locations.
    locations = len(parameters(AVAILABILITY)["locations"]["default"])
    assert criteria["failedLocationCount"] == locations - 2
    assert parse(AVAILABILITY)["outputs"]["name"]["value"]["operator"]["operands"] == {
        "operand_1": "webTest",
        "operand_2": "name",
    }


# ---- documentation -------------------------------------------------------------------------------


def test_operations_md_has_a_section_for_every_alert_and_chart() -> None:
    text = OPERATIONS_MD.read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}
    for rule in alert_rules():
        description = rule.properties["description"]
        match = re.search(r'docs/operations\.md, "([^"]+)"', description)
        assert match, f"{rule.symbol}: the description points at its section in operations.md"
        assert match[1] in headings, f"docs/operations.md has no section {match[1]!r}"
    for item in workbook_items().values():
        title = item["content"].get("title")
        if title:
            assert title in text, f"docs/operations.md does not describe the chart {title!r}"
    for question in ("cloudevents.event_id", "publisher='", "operation_Id"):
        assert question in text, question
    assert "OTEL_TRACES_EXPORTER=console make run" in text
    assert "OTEL_METRICS_EXPORTER=console" in text


def test_deploy_md_documents_telemetry_and_the_alert_parameters() -> None:
    text = DEPLOY_MD.read_text(encoding="utf-8")
    assert "\n## Telemetry\n" in text
    section = text.split("\n## Telemetry\n", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "telemetryMode",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "PYTHON_ENABLE_OPENTELEMETRY",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "Monitoring Metrics Publisher",
        "OTEL_TRACES_SAMPLER_ARG",
        "operations.md",
    ):
        assert needed in section, f"docs/deploy.md's Telemetry section does not mention {needed}"
    for azd, _ in ALERT_PARAMETERS.values():
        assert f"`{azd}`" in text, f"docs/deploy.md does not list {azd}"
