"""What the Bicep templates must say, checked on their parsed form (pycep-parser).

checkov (test_checkov.py) has no checks for several of the controls that matter most here
(storage shared keys, App Insights local auth, role scopes), and the Bicep CLI is not available,
so these tests assert the literals directly. Reference: docs/deploy.md and the platform notes
(Flex Consumption, identity-based connections, role definition ids).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.queue import partition_queues
from shared.app.settings import TABLE_PREFIX_PATTERN, Settings
from tests.infra.bicep import (
    INFRA,
    MAIN,
    REPO,
    Resource,
    all_resources,
    bicep_files,
    dict_keys,
    load_json,
    modules,
    only_resource_of_type,
    parameters,
    parse,
    property_path,
    resource,
    resources,
    variable,
    walk,
)

API = INFRA / "app" / "api.bicep"
STORAGE = INFRA / "app" / "storage.bicep"
RBAC = INFRA / "app" / "rbac.bicep"
MONITORING = INFRA / "app" / "monitoring.bicep"
VNET = INFRA / "app" / "vnet.bicep"
PRIVATE_ENDPOINTS = INFRA / "app" / "storage-private-endpoints.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"

# Settings fields that are deliberately NOT app settings in Azure. Everything else Settings reads
# must be set by the templates, and the templates must set nothing Settings does not read.
LOCAL_ONLY_SETTINGS = {
    # A storage connection string, for Azurite and local runs. In Azure the queue is reached with
    # the managed identity (EVENTS_QUEUE_ACCOUNT_URL + AZURE_CLIENT_ID); shared keys are disabled,
    # so no connection string exists.
    "EVENTS_QUEUE_CONNECTION",
}

# EVENTS_* settings whose value the template derives instead of taking a parameter.
DERIVED_SETTINGS = {
    "EVENTS_QUEUE_ACCOUNT_URL": "queueAccountUrl",
    "EVENTS_TABLE_ACCOUNT_URL": "tableAccountUrl",
    "EVENTS_BLOB_ACCOUNT_URL": "blobAccountUrl",
}

# EVENTS_* secrets whose app setting is a Key Vault reference (or empty), held in a main.bicep
# variable, while the @secure() parameter's value goes to the vault only (tests/infra/
# test_keyvault.py): setting -> (variable, @secure() parameter).
KEY_VAULT_SETTINGS = {
    "EVENTS_REGISTRY_SUBSCRIPTION_KEY": (
        "registrySubscriptionKeyReference",
        "eventsRegistrySubscriptionKey",
    ),
    "EVENTS_REGISTRY_CLIENT_SECRET": (
        "registryClientSecretReference",
        "eventsRegistryClientSecret",
    ),
}

ROLE = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Queue Data Reader": "19e7f393-937e-4f77-808e-94535e297925",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
}
# Broader roles that must never appear: Owner, Contributor, User Access Administrator, Storage
# Account Contributor. (Storage Table Data Contributor is granted to the app for the records
# tables: test_records_tables_role_is_table_data_contributor_...; Storage Queue Data Contributor
# only to a developer who asks for it: test_developer_data_roles_only_on_request.)
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab",
}
# The developer's opt-in data roles (grantPrincipalDataRoles): assignment symbol -> role.
DEVELOPER_ROLES = {
    "userBlobDataOwner": "Storage Blob Data Owner",
    "userQueueDataContributor": "Storage Queue Data Contributor",
    "userTableDataContributor": "Storage Table Data Contributor",
}

# Flex Consumption rejects or ignores these (Azure Functions app settings reference, "Flex
# Consumption plan deprecations"); functionAppConfig replaces them.
DEPRECATED_FLEX_APP_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_RUN_FROM_PACKAGE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_TIME_ZONE",
    "TZ",
}
# The Functions host reads a request's whole body before the worker (and so the token check) sees
# it; FUNCTIONS_REQUEST_BODY_SIZE_LIMIT caps that read. The host's default when it is unset is
# 104857600 bytes (ScriptConstants.DefaultMaxRequestBodySize in Azure/azure-functions-host; the
# app settings reference). The limit must be EVENTS_MAX_BODY_BYTES plus a margin that is positive,
# so that every body the code accepts passes the host, and small, so that little more than the
# code's limit is ever read before the token is checked.
HOST_BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
HOST_DEFAULT_MAX_REQUEST_BODY_BYTES = 104_857_600
MAX_HOST_BODY_LIMIT_MARGIN = 64 * 1024

DEPRECATED_FLEX_SITE_PROPERTIES = {
    "ftpsState",
    "alwaysOn",
    "use32BitWorkerProcess",
    "isReserved",
    "linuxFxVersion",
    "functionAppScaleLimit",
    "containerSize",
}


def events_variable(name: str) -> str:
    return f"EVENTS_{name.upper()}"


def settings_variables() -> set[str]:
    return {events_variable(name) for name in Settings.model_fields}


def function_app() -> Resource:
    return only_resource_of_type("Microsoft.Web/sites")


def app_settings_of_api() -> dict[str, Any]:
    return variable(API, "platformAppSettings")


def events_app_settings() -> dict[str, Any]:
    return variable(MAIN, "eventsAppSettings")


def role_assignments() -> list[Resource]:
    return [r for r in all_resources() if r.type == "Microsoft.Authorization/roleAssignments"]


def role_of(assignment: Resource) -> str:
    """The role definition id of an assignment, resolved through rbac.bicep's ``roles`` map."""
    function = assignment.properties["roleDefinitionId"]["function"]
    assert function["type"] == "subscription_resource_id", assignment.symbol
    arguments = function["parameters"]
    assert arguments["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    path = property_path(arguments["resource_name_1"])
    assert path[0] == "roles", f"{assignment.symbol}: role ids come from the roles map"
    return variable(assignment.file, "roles")[path[1]]


def parameter_behind(setting: str) -> str:
    """The main.bicep parameter an EVENTS_* setting's value comes from: the parameter itself,
    string(<parameter>), or, for a secret, the @secure() parameter behind its Key Vault
    reference."""
    value = events_app_settings()[setting]
    if setting in KEY_VAULT_SETTINGS:
        reference, secure_parameter = KEY_VAULT_SETTINGS[setting]
        assert value == reference, f"{setting} must be the Key Vault reference {reference}"
        return secure_parameter
    if isinstance(value, dict):  # string(intParameter)
        assert value["function"]["type"] == "string", setting
        value = value["function"]["parameters"]["value_to_convert"]
    assert isinstance(value, str), setting
    return value


def parameter_default(name: str) -> Any:
    return parameters(MAIN)[name]["default"]


def azd_parameter(name: str) -> tuple[str, str | None]:
    """(environment variable, default) of a main.parameters.json entry like ``${VAR=default}``."""
    value = load_json(PARAMETERS_FILE)["parameters"][name]["value"]
    match = re.fullmatch(r"\$\{(?P<var>[A-Z0-9_]+)(?:=(?P<default>[^}]*))?\}", value)
    assert match, f"main.parameters.json: {name} must be a ${{VAR}} or ${{VAR=default}} reference"
    return match["var"], match["default"]


# ---- structure --------------------------------------------------------------------------------


def test_every_template_parses_and_main_creates_the_resource_group() -> None:
    files = {path.relative_to(INFRA).as_posix() for path in bicep_files()}
    assert {
        "main.bicep",
        "app/api.bicep",
        "app/identity.bicep",
        "app/monitoring.bicep",
        "app/rbac.bicep",
        "app/storage.bicep",
        "app/storage-private-endpoints.bicep",
        "app/vnet.bicep",
    } <= files
    for path in bicep_files():
        assert parse(path)["globals"]["scope"]["value"] == (
            "subscription" if path == MAIN else "resourceGroup"
        ), path
    group = resource(MAIN, "rg")
    assert group.type == "Microsoft.Resources/resourceGroups"
    assert group.body["tags"] == "tags"
    assert variable(MAIN, "tags") == {"'azd-env-name'": "environmentName"}
    # Names are unique per subscription, environment and region: resourceToken, as in the azd
    # templates.
    token = variable(MAIN, "resourceToken")["function"]
    assert token["type"] == "to_lower"
    unique = token["parameters"]["string_to_change"]["function"]
    assert unique["type"] == "unique_string"
    assert property_path(unique["parameters"]["base_string"])[1:] == ["id"]
    assert unique["parameters"]["extra_string_1"] == "environmentName"
    assert unique["parameters"]["extra_string_2"] == "location"
    assert variable(MAIN, "abbrs")["function"]["parameters"]["file_path"] == "./abbreviations.json"


def test_modules_are_local_and_called_with_parameters_they_declare() -> None:
    """A Bicep CLI build would catch a misspelt or missing module parameter; this stands in."""
    text = MAIN.read_text(encoding="utf-8")
    assert "'br/" not in text, "registry modules are opaque to checkov"
    assert "'br:" not in text, "registry modules are opaque to checkov"
    for symbol, (module_file, params, _) in modules().items():
        assert module_file.is_file(), f"module {symbol}: {module_file} is missing"
        declared = parameters(module_file)
        unknown = set(params) - set(declared)
        assert not unknown, f"module {symbol} passes undeclared parameters {sorted(unknown)}"
        required = {name for name, p in declared.items() if p["default"] is None}
        missing = required - set(params)
        assert not missing, f"module {symbol} does not pass required parameters {sorted(missing)}"


def test_main_parameters() -> None:
    main = parameters(MAIN)
    for required in ("environmentName", "location", "eventsTrustedIssuers", "eventsRegistryUrl"):
        assert main[required]["default"] is None, required
    assert main["principalId"]["default"] == ""
    assert main["vnetEnabled"] == {
        "decorators": main["vnetEnabled"]["decorators"],
        "type": "bool",
        "default": False,
    }
    assert main["grantPrincipalQueueReader"]["default"] is False
    assert {"type": "metadata", "argument": {"azd": {"type": "location"}}} in main["location"][
        "decorators"
    ]


def test_main_parameters_file_feeds_every_parameter_from_the_azd_environment() -> None:
    document = load_json(PARAMETERS_FILE)
    assert document["$schema"].endswith("deploymentParameters.json#")
    declared = parameters(MAIN)
    given = document["parameters"]
    assert set(given) <= set(declared), f"unknown parameters: {sorted(set(given) - set(declared))}"
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(given), f"not fed by azd: {sorted(required - set(given))}"
    assert azd_parameter("environmentName") == ("AZURE_ENV_NAME", None)
    assert azd_parameter("location") == ("AZURE_LOCATION", None)
    assert azd_parameter("principalId") == ("AZURE_PRINCIPAL_ID", None)
    assert azd_parameter("vnetEnabled") == ("VNET_ENABLED", "false")
    for name in given:
        _, default = azd_parameter(name)
        if default is None:
            continue
        bicep_default = declared[name]["default"]
        expected = (
            str(bicep_default).lower() if isinstance(bicep_default, bool) else str(bicep_default)
        )
        assert default == expected, (
            f"{name}: main.parameters.json default {default!r} differs from main.bicep's "
            f"{bicep_default!r}"
        )


# ---- storage ------------------------------------------------------------------------------------


def test_storage_account_is_entra_only_and_https_only() -> None:
    account = only_resource_of_type("Microsoft.Storage/storageAccounts")
    assert account.file == STORAGE
    props = account.properties
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["allowCrossTenantReplication"] is False
    assert props["defaultToOAuthAuthentication"] is True
    assert account.body["kind"] == "StorageV2"
    assert parameters(STORAGE)["skuName"]["default"] == "Standard_ZRS"
    assert modules()["storage"][1]["skuName"] == "storageSku"


def _allowed(path: Any, name: str) -> list[str]:
    return next(
        d["argument"] for d in parameters(path)[name]["decorators"] if d["type"] == "allowed"
    )


# The Flex Consumption regions without availability zones (Azure's region list; the template review
# named them): every listed region must provision with the default storage SKU.
NO_ZONE_REGIONS = {
    "australiasoutheast",
    "northcentralus",
    "southindia",
    "ukwest",
    "westcentralus",
    "westus",
}


def test_location_is_a_flex_region_and_the_storage_sku_fits_it() -> None:
    regions = _allowed(MAIN, "location")
    assert len(regions) >= 30
    assert len(set(regions)) == len(regions)
    assert "eastus2euap" not in regions, "the canary region is not for deployments"
    assert {"norwayeast", "swedencentral", "westeurope", "northeurope"} <= set(regions)
    assert set(variable(MAIN, "regionsWithoutZones")) == NO_ZONE_REGIONS
    assert set(regions) >= NO_ZONE_REGIONS
    # Empty (the default) chooses by region: ZRS where there are zones, LRS where there are none.
    assert parameter_default("storageSkuName") == ""
    assert azd_parameter("storageSkuName") == ("STORAGE_SKU_NAME", "")
    has_zones = variable(MAIN, "regionHasZones")
    assert has_zones["operator"]["type"] == "not"
    contains = has_zones["operator"]["operands"]["bool_value"]["function"]
    assert contains == {
        "type": "contains",
        "parameters": {"container": "regionsWithoutZones", "item_to_find": "location"},
    }
    choice = variable(MAIN, "storageSku")["operator"]["operands"]
    assert choice["condition"]["function"]["parameters"] == {"item_to_test": "storageSkuName"}
    assert choice["false_value"] == "storageSkuName"
    by_region = choice["true_value"]["operator"]["operands"]
    assert by_region["condition"] == "regionHasZones"
    assert (by_region["true_value"], by_region["false_value"]) == ("Standard_ZRS", "Standard_LRS")
    # An explicit SKU is one of the storage module's, and LRS only by choice.
    assert set(_allowed(MAIN, "storageSkuName")) - {""} == set(_allowed(STORAGE, "skuName"))


def test_storage_network_is_closed_in_vnet_mode() -> None:
    props = only_resource_of_type("Microsoft.Storage/storageAccounts").properties
    assert props["publicNetworkAccess"]["operator"] == {
        "type": "conditional",
        "operands": {
            "condition": "vnetEnabled",
            "true_value": "Disabled",
            "false_value": "Enabled",
        },
    }
    assert props["networkAcls"]["defaultAction"]["operator"]["operands"] == {
        "condition": "vnetEnabled",
        "true_value": "Deny",
        "false_value": "Allow",
    }
    main_modules = modules()
    for symbol in ("vnet", "storagePrivateEndpoints"):
        assert main_modules[symbol][2] == "vnetEnabled", f"{symbol} must be created only with VNet"
    assert main_modules["storage"][1]["vnetEnabled"] == "vnetEnabled"
    services = variable(PRIVATE_ENDPOINTS, "services")
    assert services == ["blob", "queue", "table"], (
        "host storage (blob), the events queue and the records tables"
    )
    endpoints = resource(PRIVATE_ENDPOINTS, "privateEndpoints")
    assert endpoints.type == "Microsoft.Network/privateEndpoints"
    assert endpoints.loop, "one private endpoint per service"
    zones = resource(PRIVATE_ENDPOINTS, "dnsZones")
    assert zones.body["name"] == "privatelink.${service}.${environment().suffixes.storage}"
    app_subnet = next(
        s for s in resource(VNET, "vnet").properties["subnets"] if s["name"] == "appSubnetName"
    )
    delegations = app_subnet["properties"]["delegations"]
    assert [d["properties"]["serviceName"] for d in delegations] == ["Microsoft.App/environments"]
    site = function_app()
    assert property_path(site.properties["virtualNetworkSubnetId"]["operator"]["operands"]
                         ["bool_value"]["operator"]["operands"]["true_value"]) == [
        "virtualNetworkSubnetId"
    ]  # fmt: skip


def test_records_tables_get_a_private_endpoint_and_dns_zone_with_vnet() -> None:
    """With vnetEnabled, storage public network access is off: the table service (the records of
    idempotent publish) needs its own private endpoint and privatelink.table.<suffix> zone, or
    every claim fails and publishing goes on without de-duplication (or answers 503)."""
    assert modules()["storagePrivateEndpoints"][2] == "vnetEnabled"
    assert "table" in variable(PRIVATE_ENDPOINTS, "services")
    # Every per-service resource loops over the same list, so 'table' gets all four.
    for symbol in ("dnsZones", "dnsZoneLinks", "privateEndpoints", "dnsZoneGroups"):
        looped = resource(PRIVATE_ENDPOINTS, symbol)
        assert looped.loop["detail"]["array_name"] == "services", symbol
        assert looped.loop["detail"]["item_name"] == "service", symbol
    zone = resource(PRIVATE_ENDPOINTS, "dnsZones").body["name"]
    assert zone.replace("${service}", "table") == (
        "privatelink.table.${environment().suffixes.storage}"
    )
    endpoint = resource(PRIVATE_ENDPOINTS, "privateEndpoints").properties
    connection = endpoint["privateLinkServiceConnections"][0]["properties"]
    assert connection["groupIds"] == ["service"], "the sub-resource (groupId) is the service name"
    assert property_path(connection["privateLinkServiceId"]) == ["storage", "id"]
    assert resource(PRIVATE_ENDPOINTS, "storage").existing
    # ... on the account that holds the queue, the one EVENTS_TABLE_ACCOUNT_URL names.
    assert property_path(modules()["storagePrivateEndpoints"][1]["storageAccountName"]) == [
        "storage",
        "outputs",
        "name",
    ]


def test_events_queue_and_deployment_container_are_created() -> None:
    queue = only_resource_of_type("Microsoft.Storage/storageAccounts/queueServices/queues")
    assert queue.file == STORAGE
    # one queue per partition: queueName itself for one, queueName-<i> for more
    assert queue.loop["detail"] == {"item_name": "name", "array_name": "queueNames"}
    assert queue.body["name"] == "name"
    assert_partition_names(STORAGE)
    assert modules()["storage"][1]["queueName"] == "eventsQueueName"
    assert modules()["storage"][1]["queuePartitions"] == "eventsQueuePartitions"
    assert parameter_default("eventsQueuePartitions") == 1
    assert parameter_default("eventsQueueName") == Settings.model_fields["queue_name"].default
    # Two containers: this one and the claim check's data (tests/infra/test_claim_check_infra.py).
    container = resource(STORAGE, "deploymentContainer")
    assert container.type == "Microsoft.Storage/storageAccounts/blobServices/containers"
    assert container.body["name"] == "deploymentContainerName"
    assert container.properties["publicAccess"] == "None"
    assert modules()["storage"][1]["deploymentContainerName"] == "deploymentStorageContainerName"
    assert modules()["api"][1]["deploymentContainerName"] == "deploymentStorageContainerName"


def test_queue_service_logs_reads_writes_and_deletes_to_log_analytics() -> None:
    diagnostics = only_resource_of_type("Microsoft.Insights/diagnosticSettings")
    assert diagnostics.body["scope"] == "queueService"
    assert (
        resource(STORAGE, "queueService").type == "Microsoft.Storage/storageAccounts/queueServices"
    )
    assert diagnostics.properties["workspaceId"] == "logAnalyticsWorkspaceId"
    enabled = {log["category"] for log in diagnostics.properties["logs"] if log["enabled"] is True}
    assert {"StorageRead", "StorageWrite", "StorageDelete"} <= enabled


# ---- function app -------------------------------------------------------------------------------


def test_plan_is_flex_consumption_linux() -> None:
    plan = only_resource_of_type("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.properties["reserved"] is True
    assert function_app().properties["serverFarmId"]["operator"]["operands"] == {
        "operand_1": plan.symbol,
        "operand_2": "id",
    }


def test_site_hardening() -> None:
    site = function_app()
    assert site.body["kind"] == "functionapp,linux"
    assert site.properties["httpsOnly"] is True
    site_config = site.properties["siteConfig"]
    assert site_config["minTlsVersion"] == "1.2"
    # Neither is a Flex Consumption setting (Microsoft's Flex samples set neither; remote
    # debugging is not offered on Flex, and its default is off).
    assert "remoteDebuggingEnabled" not in site_config
    assert "http20Enabled" not in site_config
    assert "cors" not in site_config, "no browser callers: CORS stays closed"
    policies = {
        r.body["name"]: r
        for r in resources(API)
        if r.type == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert set(policies) == {"ftp", "scm"}
    for policy in policies.values():
        assert policy.body["parent"] == site.symbol
        assert policy.properties == {"allow": False}


def test_site_uses_only_the_user_assigned_identity() -> None:
    site = function_app()
    assert site.body["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {"'${identityId}'": {}},
    }
    identity = only_resource_of_type("Microsoft.ManagedIdentity/userAssignedIdentities")
    identity_module = modules()["identity"]
    assert identity_module[0] == identity.file
    api = modules()["api"][1]
    assert property_path(api["identityId"]) == ["identity", "outputs", "id"]
    assert property_path(api["identityClientId"]) == ["identity", "outputs", "clientId"]
    assert property_path(modules()["rbac"][1]["appPrincipalId"]) == [
        "identity",
        "outputs",
        "principalId",
    ]


def test_function_app_config_runtime_deployment_and_scale() -> None:
    config = function_app().properties["functionAppConfig"]
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]["python_version"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["runtime"]["version"] == python, "Flex runtime and pyproject's Python differ"
    assert config["deployment"]["storage"] == {
        "type": "blobContainer",
        "value": "https://${storageAccountName}.blob.${storageSuffix}/${deploymentContainerName}",
        "authentication": {
            "type": "UserAssignedIdentity",
            "userAssignedIdentityResourceId": "identityId",
        },
    }
    scale = config["scaleAndConcurrency"]
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == "perInstanceConcurrency"
    api = modules()["api"][1]
    for name in ("instanceMemoryMB", "maximumInstanceCount", "perInstanceConcurrency"):
        assert api[name] == name, f"main.bicep must pass {name} to the api module"
    assert parameter_default("instanceMemoryMB") == 2048
    assert parameter_default("maximumInstanceCount") == 40
    # Python's default on Flex is 1 request per instance; the async handler is set higher.
    assert parameter_default("perInstanceConcurrency") == 16
    assert parameters(API)["perInstanceConcurrency"]["default"] == 16


def test_deploys_roll_and_always_ready_is_a_parameter() -> None:
    """RollingUpdate needs a sites API version of at least 2024-11-01; always-ready instances are
    none unless asked for, as the 'http' group's count."""
    site = function_app()
    assert site.api_version >= "2024-11-01", "siteUpdateStrategy needs sites@2024-11-01 or later"
    config = site.properties["functionAppConfig"]
    assert config["siteUpdateStrategy"] == {"type": "siteUpdateStrategy"}
    assert parameter_default("siteUpdateStrategy") == "RollingUpdate"
    assert set(_allowed(MAIN, "siteUpdateStrategy")) == {"RollingUpdate", "Recreate"}
    assert azd_parameter("siteUpdateStrategy") == ("SITE_UPDATE_STRATEGY", "RollingUpdate")
    api = modules()["api"][1]
    assert api["siteUpdateStrategy"] == "siteUpdateStrategy"
    assert api["alwaysReadyInstances"] == "alwaysReadyInstances"
    assert parameter_default("alwaysReadyInstances") == 0
    assert azd_parameter("alwaysReadyInstances") == ("ALWAYS_READY_INSTANCES", "0")
    always = config["scaleAndConcurrency"]["alwaysReady"]["operator"]["operands"]
    assert always["false_value"] == [], "no always-ready instances by default"
    assert always["true_value"] == [{"name": "http", "instanceCount": "alwaysReadyInstances"}]
    # Every Microsoft.Web resource is on the same API version as the site.
    web = [r for r in all_resources() if r.type.startswith("Microsoft.Web/")]
    assert {r.api_version for r in web} == {site.api_version}


def test_zone_redundancy_text_matches_what_the_platform_does() -> None:
    """Zone-redundant Flex keeps at least two always-ready instances whatever alwaysReady says;
    the parameter's text must not promise what the template does not set."""
    text = next(
        d["argument"]
        for d in parameters(MAIN)["zoneRedundant"]["decorators"]
        if d["type"] == "description"
    )
    assert "at least two" in text
    assert "alwaysReadyInstances" in text
    assert "(billed)" not in text


def test_no_deprecated_flex_settings_properties_or_keys() -> None:
    for path in bicep_files():
        keys = set(dict_keys(parse(path)))
        assert not keys & DEPRECATED_FLEX_APP_SETTINGS, path
        assert not keys & DEPRECATED_FLEX_SITE_PROPERTIES, path
        assert "AzureWebJobsStorage" not in keys, "the host's storage is identity-based"
        text = path.read_text(encoding="utf-8")
        for marker in ("AccountKey=", "listKeys(", "SharedAccessSignature", "InstrumentationKey"):
            assert marker not in text, f"{path.name}: {marker}"


def test_platform_app_settings_are_identity_based() -> None:
    settings = app_settings_of_api()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AzureWebJobsStorage__blobServiceUri"] == (
        "https://${storageAccountName}.blob.${storageSuffix}"
    )
    assert property_path(variable(API, "storageSuffix")) == [
        {"function": {"type": "environment"}},
        "suffixes",
        "storage",
    ]
    assert settings["AZURE_CLIENT_ID"] == "identityClientId", (
        "DefaultAzureCredential picks the UAMI"
    )
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD"
    )
    assert property_path(settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == [
        "applicationInsights",
        "properties",
        "ConnectionString",
    ]
    assert not [key for key in settings if key.startswith("EVENTS_")], "EVENTS_* live in main.bicep"
    # The site's appSettings array is built from the platform settings plus main.bicep's EVENTS_*.
    assert variable(API, "allAppSettings") == {
        "function": {
            "type": "union",
            "parameters": {"arg_1": "appSettings", "arg_2": "platformAppSettings"},
        }
    }
    app_settings = function_app().properties["siteConfig"]["appSettings"]
    assert app_settings["loop_type"]["detail"]["array_name"] == {
        "function": {"type": "items", "parameters": {"arg_1": "allAppSettings"}}
    }
    assert modules()["api"][1]["appSettings"] == "eventsAppSettings"


def test_application_insights_accepts_only_entra_authenticated_telemetry() -> None:
    insights = only_resource_of_type("Microsoft.Insights/components")
    assert insights.file == MONITORING
    props = {key.lower(): value for key, value in insights.properties.items()}
    assert props["disablelocalauth"] is True
    assert props["workspaceresourceid"]["operator"]["operands"] == {
        "operand_1": "logAnalytics",
        "operand_2": "id",
    }
    workspace = only_resource_of_type("Microsoft.OperationalInsights/workspaces")
    assert workspace.properties["features"]["disableLocalAuth"] is True


# ---- role assignments ---------------------------------------------------------------------------


def test_role_definition_ids_are_the_documented_ones() -> None:
    assert variable(RBAC, "roles") == {
        "storageBlobDataOwner": ROLE["Storage Blob Data Owner"],
        "storageBlobDataReader": ROLE["Storage Blob Data Reader"],
        "storageQueueDataMessageSender": ROLE["Storage Queue Data Message Sender"],
        "storageQueueDataReader": ROLE["Storage Queue Data Reader"],
        "storageQueueDataContributor": ROLE["Storage Queue Data Contributor"],
        "monitoringMetricsPublisher": ROLE["Monitoring Metrics Publisher"],
        "storageTableDataContributor": ROLE["Storage Table Data Contributor"],
        "keyVaultSecretsUser": ROLE["Key Vault Secrets User"],
    }
    for path in bicep_files():
        text = path.read_text(encoding="utf-8").lower()
        for role in FORBIDDEN_ROLES:
            assert role not in text, f"{path.name} grants a broader role {role}"


def assert_partition_names(path: Path) -> None:
    """``queueNames`` is the queue itself for one partition, ``<queueName>-<i>`` for more: the
    names shared/adapters/queue.py ``partition_queues`` gives."""
    names = parse(path)["variables"]["queueNames"]["value"]
    assert names["loop_type"]["detail"]["array_name"] == {
        "function": {"type": "range", "parameters": {"start_index": 0, "count": "queuePartitions"}}
    }
    text = path.read_text(encoding="utf-8")
    assert (
        "var queueNames = [for i in range(0, queuePartitions): (queuePartitions == 1) ? "
        "queueName : '${queueName}-${i}']"
    ) in text
    assert partition_queues("q", 1) == ["q"]
    assert partition_queues("q", 3) == ["q-0", "q-1", "q-2"]


def _scope_symbol(assignment: Resource) -> str:
    """The resource symbol an assignment is scoped to (``eventsQueues[i]`` in a loop: the
    symbol of the loop's resources)."""
    scope = assignment.body["scope"]
    if isinstance(scope, dict):
        operands = scope["operator"]["operands"]
        assert scope["operator"]["type"] == "index_accessor"
        assert operands["operand_2"] == "i"
        scope = operands["operand_1"]
    assert isinstance(scope, str), f"{assignment.symbol}: scope must be a resource symbol"
    return scope


def _scope_type(assignment: Resource) -> str:
    return resource(assignment.file, _scope_symbol(assignment)).type


@pytest.mark.parametrize(
    ("symbol", "role", "scope_type"),
    [
        ("appBlobDataOwner", "Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
        (
            "appQueueMessageSender",
            "Storage Queue Data Message Sender",
            "Microsoft.Storage/storageAccounts/queueServices/queues",
        ),
        (
            "appTableDataContributor",
            "Storage Table Data Contributor",
            "Microsoft.Storage/storageAccounts",
        ),
        ("appMetricsPublisher", "Monitoring Metrics Publisher", "Microsoft.Insights/components"),
    ],
)
def test_app_identity_roles_are_narrowly_scoped(symbol: str, role: str, scope_type: str) -> None:
    assignment = resource(RBAC, symbol)
    assert assignment.api_version == "2022-04-01"
    assert assignment.condition is None
    assert role_of(assignment) == ROLE[role]
    assert _scope_type(assignment) == scope_type
    assert assignment.properties["principalId"] == "appPrincipalId"
    assert assignment.properties["principalType"] == "ServicePrincipal"
    # Deterministic name: guid(scope id, principal, role), so a re-deployment is idempotent.
    guid = assignment.body["name"]["function"]
    assert guid["type"] == "guid"
    base = guid["parameters"]["base_string"]
    if assignment.loop is not None:  # one per queue: guid(eventsQueues[i].id, ...)
        assert base["operator"]["operands"]["operand_2"] == "id"
        assert _scope_symbol(assignment) == "eventsQueues"
    else:
        assert property_path(base) == [assignment.body["scope"], "id"]
    assert guid["parameters"]["extra_string_1"] == "appPrincipalId"
    assert property_path(guid["parameters"]["extra_string_2"])[0] == "roles"


def test_the_events_queue_role_targets_the_configured_queue() -> None:
    queue = resource(RBAC, "eventsQueues")
    assert queue.existing
    assert queue.body == {"parent": "queueService", "name": "name"}
    assert queue.loop["detail"] == {"item_name": "name", "array_name": "queueNames"}
    assert_partition_names(RBAC)
    sender = resource(RBAC, "appQueueMessageSender")  # on every partition's queue
    assert sender.loop["detail"]["array_name"] == "queueNames"
    assert modules()["rbac"][1]["queuePartitions"] == "eventsQueuePartitions"
    assert modules()["rbac"][1]["queueName"]["operator"]["operands"]["operand_2"]["operator"][
        "operands"
    ] == {"operand_1": "outputs", "operand_2": "queueName"}


def test_records_tables_role_is_table_data_contributor_on_the_events_storage_account() -> None:
    """The code creates a table per generation and the timer drops old ones, so the role must be
    on the account (a table scope cannot cover tables that do not exist yet), and the account must
    be the one that holds the events queue and that EVENTS_TABLE_ACCOUNT_URL names."""
    assignment = resource(RBAC, "appTableDataContributor")
    assert role_of(assignment) == ROLE["Storage Table Data Contributor"]
    assert assignment.condition is None, "idempotent publish is on by default: always granted"
    assert assignment.body["scope"] == "storage"
    account = resource(RBAC, "storage")
    assert account.existing
    assert account.type == "Microsoft.Storage/storageAccounts"
    assert account.body == {"name": "storageAccountName"}
    assert property_path(modules()["rbac"][1]["storageAccountName"]) == [
        "storage",
        "outputs",
        "name",
    ]
    assert modules()["storage"][1]["name"] == "storageName"
    assert variable(MAIN, "tableAccountUrl").startswith("https://${storageName}.table.")
    # The app's identity, as a service principal, and nobody else.
    assert assignment.properties["principalId"] == "appPrincipalId"
    assert assignment.properties["principalType"] == "ServicePrincipal"
    assert property_path(modules()["rbac"][1]["appPrincipalId"]) == [
        "identity",
        "outputs",
        "principalId",
    ]
    holders = [
        a
        for a in role_assignments()
        if role_of(a) == ROLE["Storage Table Data Contributor"] and a.symbol not in DEVELOPER_ROLES
    ]
    assert holders == [assignment], "Storage Table Data Contributor is granted once, to the app"


def test_only_the_expected_role_assignments_exist() -> None:
    by_symbol = {a.symbol: role_of(a) for a in role_assignments()}
    assert by_symbol == {
        "appBlobDataOwner": ROLE["Storage Blob Data Owner"],
        "appQueueMessageSender": ROLE["Storage Queue Data Message Sender"],
        "appMetricsPublisher": ROLE["Monitoring Metrics Publisher"],
        "appTableDataContributor": ROLE["Storage Table Data Contributor"],
        "appKeyVaultSecretsUser": ROLE["Key Vault Secrets User"],
        "userQueueReader": ROLE["Storage Queue Data Reader"],
        "subscriberBlobDataReader": ROLE["Storage Blob Data Reader"],
        **{symbol: ROLE[role] for symbol, role in DEVELOPER_ROLES.items()},
    }


def test_developer_data_roles_only_on_request() -> None:
    """The quickstart's allowUserIdentityPrincipal, opt-in: off by default, to principalId only,
    on the account, and nobody but the developer ever gets Queue Data Contributor."""
    assert parameter_default("grantPrincipalDataRoles") is False
    assert azd_parameter("grantPrincipalDataRoles") == ("GRANT_PRINCIPAL_DATA_ROLES", "false")
    rbac = modules()["rbac"][1]
    assert rbac["grantUserDataRoles"] == "grantPrincipalDataRoles"
    assert parameters(RBAC)["grantUserDataRoles"]["default"] is False
    condition = variable(RBAC, "grantDeveloper")["operator"]["operands"]
    assert condition["operand_1"] == "grantUserDataRoles"
    for symbol, role in DEVELOPER_ROLES.items():
        assignment = resource(RBAC, symbol)
        assert assignment.condition == "grantDeveloper", symbol
        assert role_of(assignment) == ROLE[role]
        assert assignment.body["scope"] == "storage"
        assert assignment.properties["principalId"] == "userPrincipalId"
        assert assignment.properties["principalType"] == "userPrincipalType"
    contributors = {
        a.symbol for a in role_assignments() if role_of(a) == ROLE["Storage Queue Data Contributor"]
    }
    assert contributors == {"userQueueDataContributor"}


def test_deploying_user_gets_queue_reader_only_on_request() -> None:
    assignment = resource(RBAC, "userQueueReader")
    # on every partition's queue, and only on request: the loop runs over no queue otherwise
    chosen = assignment.loop["detail"]["array_name"]["operator"]["operands"]
    assert chosen == {"condition": "readQueues", "true_value": "queueNames", "false_value": []}
    text = RBAC.read_text(encoding="utf-8")
    assert "var readQueues = grantUserQueueReader && !empty(userPrincipalId)" in text
    assert _scope_symbol(assignment) == "eventsQueues"
    assert assignment.properties["principalId"] == "userPrincipalId"
    assert assignment.properties["principalType"] == "userPrincipalType"
    rbac = modules()["rbac"][1]
    assert rbac["grantUserQueueReader"] == "grantPrincipalQueueReader"
    assert rbac["userPrincipalId"] == "principalId"
    assert parameter_default("grantPrincipalQueueReader") is False


# ---- EVENTS_* settings: the code and the templates agree ----------------------------------------


def test_every_events_setting_the_code_reads_is_set_and_nothing_else() -> None:
    in_code = settings_variables()
    assert in_code >= LOCAL_ONLY_SETTINGS, "a local-only setting no longer exists in Settings"
    in_templates = {
        key for path in bicep_files() for key in dict_keys(parse(path)) if key.startswith("EVENTS_")
    }
    assert set(events_app_settings()) == in_templates, "EVENTS_* are set in one place only"
    missing = in_code - LOCAL_ONLY_SETTINGS - in_templates
    assert not missing, (
        f"Settings reads {sorted(missing)} but infra/main.bicep does not set them: add a parameter "
        "and a line in eventsAppSettings (and main.parameters.json, docs/deploy.md)"
    )
    unknown = in_templates - in_code
    assert not unknown, f"infra/main.bicep sets {sorted(unknown)}, which Settings does not read"
    leaked = in_templates & LOCAL_ONLY_SETTINGS
    assert not leaked, f"{sorted(leaked)} must not be set in Azure"


def test_events_settings_come_from_parameters_fed_by_azd_variables_of_the_same_name() -> None:
    declared = parameters(MAIN)
    for setting, value in events_app_settings().items():
        if setting in DERIVED_SETTINGS:
            assert value == DERIVED_SETTINGS[setting]
            continue
        value = parameter_behind(setting)
        assert value in declared, f"{setting} must come from a main.bicep parameter"
        assert azd_parameter(value)[0] == setting, (
            f"main.parameters.json must feed {value} from ${{{setting}}}"
        )
        description = next(
            d["argument"] for d in declared[value]["decorators"] if d["type"] == "description"
        )
        assert description.startswith(f"{setting}:"), f"{value}: describe it as {setting}"


def test_events_defaults_equal_the_code_defaults() -> None:
    declared = parameters(MAIN)
    for name, field in Settings.model_fields.items():
        setting = events_variable(name)
        if setting in LOCAL_ONLY_SETTINGS or setting in DERIVED_SETTINGS:
            continue
        value = parameter_behind(setting)
        bicep_default = declared[value]["default"]
        azd_default = azd_parameter(value)[1]
        if field.is_required():
            assert bicep_default is None, f"{setting} is required: no default in main.bicep"
            assert azd_default is None, f"{setting} is required: no default for azd"
            continue
        code_default = field.default
        if code_default is None:
            assert bicep_default == "", setting
        elif isinstance(code_default, float):
            assert float(bicep_default) == code_default, setting
        else:
            assert bicep_default == code_default, setting
        # azd writes a bool as Bicep's literal: false, not Python's False.
        expected = (
            str(bicep_default).lower() if isinstance(bicep_default, bool) else str(bicep_default)
        )
        assert azd_default == expected, setting


def test_idempotency_parameters_accept_what_the_code_accepts() -> None:
    """The three idempotent-publish settings: a parameter each, of a type whose app-setting text
    Settings parses, with the code's default and bounds."""
    declared = parameters(MAIN)
    settings = events_app_settings()
    # EVENTS_IDEMPOTENCY_WINDOW_HOURS: a decimal, so a string parameter like the other seconds.
    assert settings["EVENTS_IDEMPOTENCY_WINDOW_HOURS"] == "eventsIdempotencyWindowHours"
    window = declared["eventsIdempotencyWindowHours"]
    assert window["type"] == "string"
    field = Settings.model_fields["idempotency_window_hours"]
    assert float(window["default"]) == field.default == 24.0
    assert azd_parameter("eventsIdempotencyWindowHours") == (
        "EVENTS_IDEMPOTENCY_WINDOW_HOURS",
        "24",
    )
    # EVENTS_IDEMPOTENCY_REQUIRED: a bool parameter, written as 'true'/'false' (string()).
    to_text = settings["EVENTS_IDEMPOTENCY_REQUIRED"]["function"]
    assert to_text == {
        "type": "string",
        "parameters": {"value_to_convert": "eventsIdempotencyRequired"},
    }
    required = declared["eventsIdempotencyRequired"]
    assert required["type"] == "bool"
    assert required["default"] is False is Settings.model_fields["idempotency_required"].default
    assert azd_parameter("eventsIdempotencyRequired") == ("EVENTS_IDEMPOTENCY_REQUIRED", "false")
    # EVENTS_IDEMPOTENCY_TABLE: the table name prefix, bounded as the code bounds it.
    assert settings["EVENTS_IDEMPOTENCY_TABLE"] == "eventsIdempotencyTable"
    table = declared["eventsIdempotencyTable"]
    assert table["type"] == "string"
    assert table["default"] == Settings.model_fields["idempotency_table"].default == "eventids"
    assert TABLE_PREFIX_PATTERN.fullmatch(table["default"])
    bounds = {d["type"]: d["argument"] for d in table["decorators"] if d["type"] != "description"}
    assert bounds == {"min_length": 3, "max_length": 40}
    assert TABLE_PREFIX_PATTERN.pattern.endswith("{2,39}"), "3-40 characters in the code too"
    assert azd_parameter("eventsIdempotencyTable") == ("EVENTS_IDEMPOTENCY_TABLE", "eventids")


def test_table_account_url_is_the_table_endpoint_of_the_queues_storage_account() -> None:
    """EVENTS_TABLE_ACCOUNT_URL is built, not a parameter: the records live in the account of the
    events queue, reached with the managed identity like the queue (EVENTS_QUEUE_ACCOUNT_URL)."""
    settings = events_app_settings()
    assert settings["EVENTS_TABLE_ACCOUNT_URL"] == "tableAccountUrl"
    assert variable(MAIN, "tableAccountUrl") == (
        "https://${storageName}.table.${environment().suffixes.storage}"
    )
    assert variable(MAIN, "queueAccountUrl") == (
        "https://${storageName}.queue.${environment().suffixes.storage}"
    )
    assert settings["EVENTS_QUEUE_ACCOUNT_URL"] == "queueAccountUrl"
    assert modules()["storage"][1]["name"] == "storageName"
    assert "tableAccountUrl" not in parameters(MAIN), "derived, not a parameter"
    # No connection string for the tables either: the identity's client id is AZURE_CLIENT_ID.
    assert app_settings_of_api()["AZURE_CLIENT_ID"] == "identityClientId"


def test_deploy_md_lists_every_events_setting_and_its_parameter() -> None:
    """docs/deploy.md's parameter table has a row per EVENTS_* app setting, naming the Bicep
    parameter behind it (or saying the template derives it)."""
    rows = {}
    for line in (REPO / "docs" / "deploy.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|[^|`]*`(EVENTS_[A-Z_]+)`[^|]*\|([^|]*)\|", line)
        if match:
            rows.setdefault(match[1], match[2])
    for setting, value in events_app_settings().items():
        assert setting in rows, f"docs/deploy.md's parameter table has no row for {setting}"
        if setting in DERIVED_SETTINGS:
            assert rows[setting].strip() == "—", f"{setting} is derived: no parameter"
            continue
        value = parameter_behind(setting)
        assert f"`{value}`" in rows[setting], f"docs/deploy.md: {setting} comes from {value}"


def test_deploy_md_names_every_role_the_template_grants() -> None:
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    names = {role_id: name for name, role_id in ROLE.items()}
    for assignment in role_assignments():
        name = names[role_of(assignment)]
        assert f"*{name}*" in text, f"docs/deploy.md does not describe the role {name}"


def test_secret_settings_come_from_secure_parameters() -> None:
    """A SecretStr setting (client secret, subscription key) must not be a plain parameter: a
    plain one is logged in the deployment history. Nor may its value be the app setting: the
    setting is a Key Vault reference (tests/infra/test_keyvault.py checks the reference)."""
    secret_fields = {
        events_variable(name)
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert "EVENTS_QUEUE_CONNECTION" in secret_fields, "the SecretStr detection works"
    declared = parameters(MAIN)
    for setting in sorted(secret_fields - LOCAL_ONLY_SETTINGS):
        assert setting in KEY_VAULT_SETTINGS, f"{setting}: store it in Key Vault, set a reference"
        parameter = parameter_behind(setting)
        assert {"type": "secure"} in declared[parameter]["decorators"], (
            f"{setting}: declare {parameter} with @secure()"
        )
    assert set(KEY_VAULT_SETTINGS) == secret_fields - LOCAL_ONLY_SETTINGS


def test_secure_parameters_are_never_output_and_outputs_hold_no_secrets() -> None:
    for path in bicep_files():
        secure = {
            name for name, p in parameters(path).items() if {"type": "secure"} in p["decorators"]
        }
        for name, output in parse(path).get("outputs", {}).items():
            assert not secure & {item for item in walk(output) if isinstance(item, str)}, name
            assert "ConnectionString" not in str(output), name
            assert "key" not in name.lower(), name


# ---- the host's request body limit follows EVENTS_MAX_BODY_BYTES -------------------------------


def host_body_limit() -> tuple[str, int]:
    """(api.bicep parameter, margin in bytes) of the host's body limit, which must be
    ``string(<parameter> + <margin>)``, the margin an int literal or a variable holding one."""
    settings = app_settings_of_api()
    assert HOST_BODY_LIMIT_SETTING in settings, (
        f"api.bicep's platformAppSettings must set {HOST_BODY_LIMIT_SETTING}: without it the host "
        "reads bodies of up to 100 MB before the code checks the token"
    )
    value = settings[HOST_BODY_LIMIT_SETTING]
    function = value.get("function", {}) if isinstance(value, dict) else {}
    assert function.get("type") == "string", (
        f"{HOST_BODY_LIMIT_SETTING} must be string(<max body parameter> + <margin>), not {value!r}"
    )
    expression = function["parameters"]["value_to_convert"]
    operator = expression.get("operator", {}) if isinstance(expression, dict) else {}
    assert operator.get("type") == "add", (
        f"{HOST_BODY_LIMIT_SETTING} must be computed as <max body parameter> + <margin>, not "
        f"{expression!r}"
    )
    declared = parameters(API)
    operands = list(operator["operands"].values())
    names = [o for o in operands if isinstance(o, str) and o in declared]
    assert len(names) == 1, (
        f"{HOST_BODY_LIMIT_SETTING}: exactly one operand is an api.bicep parameter"
    )
    margin = operands[1 - operands.index(names[0])]
    if isinstance(margin, str):  # a variable such as hostBodyLimitMarginBytes
        margin = variable(API, margin)
    assert type(margin) is int, (  # not a bool, not an expression
        f"{HOST_BODY_LIMIT_SETTING}: the margin must be a number of bytes, not {margin!r}"
    )
    return names[0], margin


def test_host_body_limit_is_derived_from_events_max_body_bytes() -> None:
    parameter, _ = host_body_limit()
    # main.bicep feeds the api module's parameter from the same parameter as EVENTS_MAX_BODY_BYTES.
    assert modules()["api"][1].get(parameter) == "eventsMaxBodyBytes", (
        f"main.bicep must pass eventsMaxBodyBytes to api.bicep's {parameter}"
    )
    assert events_app_settings()["EVENTS_MAX_BODY_BYTES"] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "eventsMaxBodyBytes"}}
    }
    # The module accepts exactly the values main.bicep does, and requires one (no default of its own
    # that could disagree with main.bicep's).
    bounds = {"min_value", "max_value"}
    main_bounds = [
        d for d in parameters(MAIN)["eventsMaxBodyBytes"]["decorators"] if d["type"] in bounds
    ]
    api_parameter = parameters(API)[parameter]
    assert [d for d in api_parameter["decorators"] if d["type"] in bounds] == main_bounds
    assert api_parameter["type"] == "int"
    assert api_parameter["default"] is None
    # Set in one place only: a second assignment (in eventsAppSettings, as a name/value pair, or in
    # a sites/config resource) could override the derived value.
    mentions = [
        item
        for path in bicep_files()
        for item in walk(parse(path))
        if isinstance(item, str) and item.strip("'") == HOST_BODY_LIMIT_SETTING
    ]
    assert len(mentions) == 1, f"{HOST_BODY_LIMIT_SETTING} is set more than once"


def test_host_body_limit_margin_is_small_and_positive() -> None:
    _, margin = host_body_limit()
    assert 0 < margin < MAX_HOST_BODY_LIMIT_MARGIN, (
        f"the margin over EVENTS_MAX_BODY_BYTES is {margin} bytes: it must be positive (a body the "
        f"code accepts must pass the host) and below {MAX_HOST_BODY_LIMIT_MARGIN} (the host reads "
        "the whole body before the token is checked)"
    )
    # Even the largest allowed EVENTS_MAX_BODY_BYTES gives a limit well below the host's default.
    largest = next(
        d["argument"]
        for d in parameters(MAIN)["eventsMaxBodyBytes"]["decorators"]
        if d["type"] == "max_value"
    )
    assert largest + margin < HOST_DEFAULT_MAX_REQUEST_BODY_BYTES


# ---- outputs and azd ----------------------------------------------------------------------------


def test_outputs_endpoint_queue_and_identity() -> None:
    outputs = parse(MAIN)["outputs"]
    assert outputs["PUBLISH_ENDPOINT_URL"]["value"] == "${api.outputs.uri}/events"
    assert parse(API)["outputs"]["uri"]["value"] == (
        "https://${functionApp.properties.defaultHostName}"
    )
    assert property_path(outputs["AZURE_QUEUE_NAME"]["value"]) == [
        "storage",
        "outputs",
        "queueName",
    ]
    assert property_path(outputs["AZURE_FUNCTION_IDENTITY_CLIENT_ID"]["value"]) == [
        "identity",
        "outputs",
        "clientId",
    ]
    assert outputs["AZURE_QUEUE_ACCOUNT_URL"]["value"] == "queueAccountUrl"
    assert variable(MAIN, "queueAccountUrl") == (
        "https://${storageName}.queue.${environment().suffixes.storage}"
    )
    assert property_path(outputs["AZURE_FUNCTION_NAME"]["value"]) == ["api", "outputs", "name"]


def read_azure_yaml() -> dict[str, Any]:
    """azure.yaml as nested mappings. No YAML library in the app's environment, so this strict
    reader accepts only `key: value` lines and indentation, and fails on anything else."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for number, line in enumerate((REPO / "azure.yaml").read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"( *)([A-Za-z0-9_.-]+):(?: +(\S.*))?", line)
        assert match, f"azure.yaml:{number}: unsupported syntax {line!r}"
        indent, key, value = len(match[1]), match[2], match[3]
        while indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        if value is None:
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = value.strip()
    return root


def test_azure_yaml_names_the_service_the_site_is_tagged_with() -> None:
    project = read_azure_yaml()
    assert set(project["services"]) == {"api"}
    assert project["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    tags = function_app().body["tags"]["function"]
    assert tags["type"] == "union"
    assert tags["parameters"]["arg_2"] == {"'azd-service-name'": "api"}
    assert set(project["services"]) == set(tags["parameters"]["arg_2"].values())


def test_abbreviations_cover_every_prefix_main_uses() -> None:
    abbreviations = load_json(INFRA / "abbreviations.json")
    used = set(re.findall(r"abbrs\.(\w+)", MAIN.read_text(encoding="utf-8")))
    assert used, "main.bicep names resources with abbreviations.json"
    assert used <= set(abbreviations), sorted(used - set(abbreviations))
    assert abbreviations["storageStorageAccounts"].isalnum(), "storage names allow [a-z0-9] only"
