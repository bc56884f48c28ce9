"""The claim check's infrastructure (README, "Large events"): the container of large events' data,
the lifecycle rule that deletes it, the app settings that point the code at it, and who may read
it. Checked on the parsed templates (pycep), like tests/infra/test_templates.py.
"""

from __future__ import annotations

import re
from typing import Any

from shared.app.settings import QUEUE_NAME_PATTERN, Settings
from tests.infra.bicep import (
    INFRA,
    MAIN,
    REPO,
    Resource,
    all_resources,
    load_json,
    modules,
    only_resource_of_type,
    parameters,
    parse,
    property_path,
    resource,
    variable,
)
from tests.infra.test_templates import (
    ROLE,
    app_settings_of_api,
    azd_parameter,
    events_app_settings,
    host_body_limit,
    parameter_default,
    role_assignments,
    role_of,
)

STORAGE = INFRA / "app" / "storage.bicep"
RBAC = INFRA / "app" / "rbac.bicep"
API = INFRA / "app" / "api.bicep"
PRIVATE_ENDPOINTS = INFRA / "app" / "storage-private-endpoints.bicep"

CONTAINER_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers"
POLICY_TYPE = "Microsoft.Storage/storageAccounts/managementPolicies"

# The containers the Functions host keeps in the same account (AzureWebJobsStorage: locks and
# keys; the Flex deployment package is main.bicep's deploymentStorageContainerName). The lifecycle
# rule must not reach any of them.
HOST_CONTAINERS = ("azure-webjobs-hosts", "azure-webjobs-secrets")
DEPLOYMENT_CONTAINER_PREFIX = "app-package-"

# A queue message lives 7 days unless the sender sets a time-to-live; shared/adapters/queue.py
# sets none.
QUEUE_MESSAGE_TTL_DAYS = 7


def bounds(declared: dict[str, Any]) -> dict[str, Any]:
    """A parameter's @minValue/@maxValue/@minLength/@maxLength, by decorator type."""
    return {
        d["type"]: d["argument"]
        for d in declared["decorators"]
        if d["type"] in ("min_value", "max_value", "min_length", "max_length")
    }


def code_bounds(field_name: str) -> dict[str, Any]:
    """The ge/le bounds of a Settings field, as Bicep's min_value/max_value."""
    found = {}
    for item in Settings.model_fields[field_name].metadata:
        if hasattr(item, "ge"):
            found["min_value"] = item.ge
        if hasattr(item, "le"):
            found["max_value"] = item.le
    return found


def lifecycle_policy() -> Resource:
    return only_resource_of_type(POLICY_TYPE)


def only_rule() -> dict[str, Any]:
    rules = lifecycle_policy().properties["policy"]["rules"]
    assert len(rules) == 1, "one lifecycle rule: the data container's"
    return rules[0]


def default_prefixes() -> list[str]:
    """The rule's prefixMatch values with main.bicep's default container name filled in."""
    container = parameter_default("eventsBlobContainer")
    return [
        prefix.replace("${dataContainer.name}", container)
        for prefix in only_rule()["definition"]["filters"]["prefixMatch"]
    ]


# ---- the container ------------------------------------------------------------------------------


def test_data_container_is_created_private_with_the_codes_default_name() -> None:
    container = resource(STORAGE, "dataContainer")
    assert container.type == CONTAINER_TYPE
    assert not container.existing
    assert container.condition is None, "always created: every deployment accepts large events"
    assert container.properties == {"publicAccess": "None"}
    assert container.body["name"] == "dataContainerName"
    # ... in the blob service of the account that holds the events queue.
    assert container.body["parent"] == "blobService"
    service = resource(STORAGE, "blobService")
    assert service.body["parent"] == "storage"
    assert service.body["name"] == "default"
    assert resource(STORAGE, "storage").type == "Microsoft.Storage/storageAccounts"
    assert resource(STORAGE, "storage").properties["allowBlobPublicAccess"] is False
    # Named by the same parameter as EVENTS_BLOB_CONTAINER, with the code's default and rules.
    assert modules()["storage"][1]["dataContainerName"] == "eventsBlobContainer"
    assert events_app_settings()["EVENTS_BLOB_CONTAINER"] == "eventsBlobContainer"
    default = parameter_default("eventsBlobContainer")
    assert default == Settings.model_fields["blob_container"].default == "events-data"
    assert QUEUE_NAME_PATTERN.fullmatch(default), "a valid container name"
    assert bounds(parameters(MAIN)["eventsBlobContainer"]) == {"min_length": 3, "max_length": 63}
    assert bounds(parameters(STORAGE)["dataContainerName"]) == {"min_length": 3, "max_length": 63}
    assert parameters(STORAGE)["dataContainerName"]["default"] is None, "main.bicep names it"
    assert parse(STORAGE)["outputs"]["dataContainerName"]["value"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": "dataContainer", "operand_2": "name"},
        }
    }


def test_only_the_deployment_and_data_containers_are_declared() -> None:
    declared = sorted(
        r.symbol for r in all_resources() if r.type == CONTAINER_TYPE and not r.existing
    )
    assert declared == ["dataContainer", "deploymentContainer"]
    for symbol in declared:
        assert resource(STORAGE, symbol).properties["publicAccess"] == "None", symbol


# ---- the lifecycle rule -------------------------------------------------------------------------


def test_lifecycle_policy_deletes_the_data_containers_block_blobs_after_the_retention() -> None:
    policy = lifecycle_policy()
    assert policy.file == STORAGE
    assert policy.condition is None
    assert policy.body["name"] == "default", "an account's lifecycle policy must be named default"
    assert policy.body["parent"] == "storage"
    rule = only_rule()
    assert rule["enabled"] is True
    assert rule["type"] == "Lifecycle"
    assert re.fullmatch(r"[A-Za-z0-9]{1,256}", rule["name"]), "rule names are alphanumeric"
    assert rule["definition"]["filters"] == {
        "blobTypes": ["blockBlob"],
        "prefixMatch": ["${dataContainer.name}/"],
    }
    assert rule["definition"]["actions"] == {
        "baseBlob": {"delete": {"daysAfterModificationGreaterThan": "blobRetentionDays"}}
    }


def test_blob_retention_days_is_a_parameter_fed_by_azd() -> None:
    storage_parameter = parameters(STORAGE)["blobRetentionDays"]
    assert storage_parameter["type"] == "int"
    assert bounds(storage_parameter) == {"min_value": 1}
    main_parameter = parameters(MAIN)["blobRetentionDays"]
    assert main_parameter["type"] == "int"
    assert bounds(main_parameter) == {"min_value": 1}
    assert main_parameter["default"] == storage_parameter["default"] == 7
    assert modules()["storage"][1]["blobRetentionDays"] == "blobRetentionDays"
    assert azd_parameter("blobRetentionDays") == ("BLOB_RETENTION_DAYS", "7")


def test_retention_covers_the_queue_message_time_to_live() -> None:
    """A subscriber must be able to read the data of every message it can still receive: the
    blob is written just before its message is queued, so it must live at least as long."""
    queue_code = (REPO / "shared" / "adapters" / "queue.py").read_text(encoding="utf-8")
    assert "time_to_live" not in queue_code, "messages keep the queue's default time-to-live"
    assert parameter_default("blobRetentionDays") >= QUEUE_MESSAGE_TTL_DAYS


def test_lifecycle_rule_spares_the_hosts_blobs_and_the_app_package() -> None:
    """The rule applies account-wide unless its prefixes confine it; each prefix must be the data
    container's name and a slash, so no blob of another container matches."""
    filters = only_rule()["definition"]["filters"]
    assert filters.get("prefixMatch"), "without prefixMatch the rule deletes every block blob"
    assert set(filters) == {"blobTypes", "prefixMatch"}, "no other filter widens or narrows it"
    for prefix in filters["prefixMatch"]:
        assert prefix == "${dataContainer.name}/", f"{prefix!r}: the data container only"
    # The host's storage is this very account, so its containers are what the rule must miss.
    assert app_settings_of_api()["AzureWebJobsStorage__blobServiceUri"] == (
        "https://${storageAccountName}.blob.${storageSuffix}"
    )
    assert property_path(modules()["api"][1]["storageAccountName"]) == [
        "storage",
        "outputs",
        "name",
    ]
    deployment = variable(MAIN, "deploymentStorageContainerName")
    assert deployment.startswith(DEPLOYMENT_CONTAINER_PREFIX)
    for container in (*HOST_CONTAINERS, deployment):
        for prefix in default_prefixes():
            assert not f"{container}/any/blob".startswith(prefix), container
    code_blob = f"{parameter_default('eventsBlobContainer')}/2025/01/01/{'0' * 32}"
    assert code_blob.startswith(default_prefixes()[0]), "the code's blobs (yyyy/mm/dd/<uuid>)"


# ---- app settings -------------------------------------------------------------------------------


def test_app_settings_point_the_code_at_the_data_container() -> None:
    settings = events_app_settings()
    assert settings["EVENTS_BLOB_ACCOUNT_URL"] == "blobAccountUrl"
    # The blob endpoint of the account storage.bicep creates the container in (and the host's).
    assert variable(MAIN, "blobAccountUrl") == (
        "https://${storageName}.blob.${environment().suffixes.storage}"
    )
    assert modules()["storage"][1]["name"] == "storageName"
    assert "blobAccountUrl" not in parameters(MAIN), "derived, not a parameter"
    assert settings["EVENTS_BLOB_CONTAINER"] == "eventsBlobContainer"
    assert settings["EVENTS_MAX_EVENT_BYTES"] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "eventsMaxEventBytes"}}
    }
    # Reached with the managed identity: no connection string, AZURE_CLIENT_ID picks the UAMI.
    assert "EVENTS_QUEUE_CONNECTION" not in settings
    assert app_settings_of_api()["AZURE_CLIENT_ID"] == "identityClientId"
    # Subscribers find the container from azd's outputs.
    assert parse(MAIN)["outputs"]["AZURE_BLOB_CONTAINER_URL"]["value"] == (
        "${blobAccountUrl}/${storage.outputs.dataContainerName}"
    )


def test_size_limits_have_the_codes_defaults_and_bounds() -> None:
    declared = parameters(MAIN)
    for field, parameter, setting in (
        ("max_event_bytes", "eventsMaxEventBytes", "EVENTS_MAX_EVENT_BYTES"),
        ("max_body_bytes", "eventsMaxBodyBytes", "EVENTS_MAX_BODY_BYTES"),
    ):
        assert declared[parameter]["type"] == "int"
        assert declared[parameter]["default"] == Settings.model_fields[field].default == 1048576
        assert bounds(declared[parameter]) == code_bounds(field), parameter
        assert azd_parameter(parameter) == (setting, "1048576")


def test_host_body_limit_follows_the_new_default() -> None:
    parameter, margin = host_body_limit()
    assert modules()["api"][1][parameter] == "eventsMaxBodyBytes"
    assert parameter_default("eventsMaxBodyBytes") + margin == 1048576 + 4096 == 1052672
    deploy = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "1,052,672" in deploy, "docs/deploy.md states the host's limit with the default"
    for old_limit in ("266,240", "266240"):
        assert old_limit not in deploy, "the old default's limit"


# ---- roles --------------------------------------------------------------------------------------


def test_app_identity_reaches_the_data_through_blob_data_owner_on_the_account_only() -> None:
    """The code writes and deletes blobs in the data container: Storage Blob Data Owner on the
    account (granted for the host already) covers it, so the app gets no second blob role."""
    owner = resource(RBAC, "appBlobDataOwner")
    assert role_of(owner) == ROLE["Storage Blob Data Owner"]
    assert owner.condition is None
    assert owner.body["scope"] == "storage"
    assert owner.properties["principalId"] == "appPrincipalId"
    # ... on the account that holds the data container.
    assert resource(RBAC, "storage").body == {"name": "storageAccountName"}
    assert property_path(modules()["rbac"][1]["storageAccountName"]) == [
        "storage",
        "outputs",
        "name",
    ]
    blob_roles = {ROLE["Storage Blob Data Owner"], ROLE["Storage Blob Data Reader"]}
    app_blob_roles = [
        a.symbol
        for a in role_assignments()
        if a.properties["principalId"] == "appPrincipalId" and role_of(a) in blob_roles
    ]
    assert app_blob_roles == ["appBlobDataOwner"]


def test_subscriber_gets_blob_data_reader_on_the_data_container_only_when_named() -> None:
    assignment = resource(RBAC, "subscriberBlobDataReader")
    assert role_of(assignment) == ROLE["Storage Blob Data Reader"]
    assert ROLE["Storage Blob Data Reader"] == "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
    assert assignment.condition == {
        "operator": {
            "type": "not",
            "operands": {
                "bool_value": {
                    "function": {
                        "type": "empty",
                        "parameters": {"item_to_test": "subscriberPrincipalId"},
                    }
                }
            },
        }
    }, "no assignment while SUBSCRIBER_PRINCIPAL_ID is empty"
    assert assignment.properties["principalId"] == "subscriberPrincipalId"
    assert assignment.properties["principalType"] == "subscriberPrincipalType"
    # Scope: the container, never the account.
    assert assignment.body["scope"] == "dataContainer"
    container = resource(RBAC, "dataContainer")
    assert container.existing
    assert container.type == CONTAINER_TYPE
    assert container.body == {"parent": "blobService", "name": "dataContainerName"}
    service = resource(RBAC, "blobService")
    assert service.existing
    assert service.body == {"parent": "storage", "name": "default"}
    guid = assignment.body["name"]["function"]
    assert guid["type"] == "guid"
    assert property_path(guid["parameters"]["base_string"]) == ["dataContainer", "id"]
    assert guid["parameters"]["extra_string_1"] == "subscriberPrincipalId"
    assert property_path(guid["parameters"]["extra_string_2"]) == [
        "roles",
        "storageBlobDataReader",
    ]
    # The container rbac.bicep names is the one storage.bicep created.
    rbac = modules()["rbac"][1]
    assert property_path(rbac["dataContainerName"]) == ["storage", "outputs", "dataContainerName"]
    assert rbac["subscriberPrincipalId"] == "subscriberPrincipalId"
    assert rbac["subscriberPrincipalType"] == "subscriberPrincipalType"
    # The subscriber holds nothing else the templates grant.
    held = [
        a.symbol
        for a in role_assignments()
        if a.properties["principalId"] == "subscriberPrincipalId"
    ]
    assert held == ["subscriberBlobDataReader"]


def test_subscriber_parameters_are_optional_and_fed_by_azd() -> None:
    declared = parameters(MAIN)
    assert declared["subscriberPrincipalId"]["default"] == ""
    assert parameters(RBAC)["subscriberPrincipalId"]["default"] == ""
    for path in (MAIN, RBAC):
        kind = parameters(path)["subscriberPrincipalType"]
        assert kind["default"] == "ServicePrincipal", path.name
        allowed = next(d["argument"] for d in kind["decorators"] if d["type"] == "allowed")
        assert allowed == ["User", "ServicePrincipal", "Group"], path.name
    assert azd_parameter("subscriberPrincipalId") == ("SUBSCRIBER_PRINCIPAL_ID", "")
    assert azd_parameter("subscriberPrincipalType") == (
        "SUBSCRIBER_PRINCIPAL_TYPE",
        "ServicePrincipal",
    )


# ---- network ------------------------------------------------------------------------------------


def test_blob_service_has_a_private_endpoint_and_dns_zone_with_vnet() -> None:
    """With vnetEnabled, storage public network access is off: without a blob endpoint in the
    VNet every large event would answer 503 blobs-unavailable (and the host would not start)."""
    main_modules = modules()
    assert main_modules["storagePrivateEndpoints"][2] == "vnetEnabled"
    assert property_path(main_modules["storagePrivateEndpoints"][1]["storageAccountName"]) == [
        "storage",
        "outputs",
        "name",
    ]
    assert "blob" in variable(PRIVATE_ENDPOINTS, "services")
    for symbol in ("dnsZones", "dnsZoneLinks", "privateEndpoints", "dnsZoneGroups"):
        looped = resource(PRIVATE_ENDPOINTS, symbol)
        assert looped.loop["detail"]["array_name"] == "services", symbol
    zone = resource(PRIVATE_ENDPOINTS, "dnsZones").body["name"]
    assert zone.replace("${service}", "blob") == (
        "privatelink.blob.${environment().suffixes.storage}"
    )
    # The zone is the private twin of EVENTS_BLOB_ACCOUNT_URL's host name.
    assert variable(MAIN, "blobAccountUrl").endswith(".blob.${environment().suffixes.storage}")
    connection = resource(PRIVATE_ENDPOINTS, "privateEndpoints").properties[
        "privateLinkServiceConnections"
    ][0]["properties"]
    assert connection["groupIds"] == ["service"]
    # The app starts only once the endpoints exist.
    assert "storagePrivateEndpoints" in parse(MAIN)["modules"]["api"]["config"]["dependsOn"]


# ---- documentation ------------------------------------------------------------------------------


def test_deploy_md_names_every_azd_variable_of_the_templates() -> None:
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in load_json(INFRA / "main.parameters.json")["parameters"]:
        variable_name = azd_parameter(name)[0]
        assert f"`{variable_name}`" in text, f"docs/deploy.md does not mention {variable_name}"
