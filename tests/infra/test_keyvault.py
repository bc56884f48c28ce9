"""The registry secrets in Key Vault, checked on the parsed templates (pycep-parser, as in
test_templates.py) and with checkov on the vault's own modules.

What the templates must do (docs/deploy.md, "Secrets"): EVENTS_REGISTRY_SUBSCRIPTION_KEY and
EVENTS_REGISTRY_CLIENT_SECRET go from their @secure() parameters into vault secrets only; their app
settings are versionless Key Vault references when set and empty when not; the vault exists only
when a secret does, uses RBAC, soft delete and purge protection, and is private (private endpoint,
privatelink.vaultcore zone) with VNET_ENABLED=true; the app's user-assigned identity reads it
(Key Vault Secrets User on the vault, keyVaultReferenceIdentity on the site).

Where a test needs to know what a template computes, a small evaluator below works out the few
expressions involved (conditions, empty(), string interpolation) and fails on any other form, so
that a rewrite of those expressions is looked at rather than silently passed.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import (
    INFRA,
    MAIN,
    REPO,
    Resource,
    all_resources,
    bicep_files,
    load_json,
    modules,
    parameters,
    parse,
    property_path,
    resource,
    unwrap,
    variable,
)

APP = INFRA / "app"
API = APP / "api.bicep"
RBAC = APP / "rbac.bicep"
KEYVAULT = APP / "keyvault.bicep"
PRIVATE_VAULT = APP / "keyvault-private.bicep"
PUBLIC_VAULT = APP / "keyvault-public.bicep"
SECRET = APP / "keyvault-secret.bicep"
VNET = APP / "vnet.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"
DEPLOY_MD = REPO / "docs" / "deploy.md"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"

KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
# Azure's public cloud; environment().suffixes.keyvaultDns.
KEYVAULT_DNS = ".vault.azure.net"

# setting -> (@secure() parameter in main.bicep, variable with its reference, key in
# keyVaultSecretNames, keyvault.bicep parameter for the value, secret module in keyvault.bicep)
SECRETS = {
    "EVENTS_REGISTRY_SUBSCRIPTION_KEY": (
        "eventsRegistrySubscriptionKey",
        "registrySubscriptionKeyReference",
        "subscriptionKey",
        "subscriptionKey",
        "subscriptionKeySecret",
    ),
    "EVENTS_REGISTRY_CLIENT_SECRET": (
        "eventsRegistryClientSecret",
        "registryClientSecretReference",
        "clientSecret",
        "clientSecret",
        "clientSecretSecret",
    ),
}
# Values that appear nowhere in the templates, to follow through the evaluator.
SAMPLE_VALUES = {
    "eventsRegistrySubscriptionKey": "SAMPLE-SUBSCRIPTION-KEY-0f3a",
    "eventsRegistryClientSecret": "SAMPLE-CLIENT-SECRET-9b1c",
}
SAMPLE_VAULT = "kv-sampletoken01"

# A versionless secret URI: https://<vault>.vault.azure.net/secrets/<name>, nothing after the name.
REFERENCE = re.compile(
    r"@Microsoft\.KeyVault\(SecretUri=https://(?P<vault>[a-z0-9-]+)\.vault\.azure\.net"
    r"/secrets/(?P<name>[0-9A-Za-z-]{1,127})\)"
)


# ---- a small evaluator for the expressions involved ----------------------------------------------


class Evaluator:
    """Evaluates pycep expressions of one template: identifiers from ``env`` or the template's
    variables, not/and/or, the ternary, empty(), property access and ``${...}`` interpolation.
    A bare string that is neither in ``env`` nor a variable is taken as a string literal."""

    def __init__(self, path: Path, env: dict[str, Any]) -> None:
        self.path = path
        self.env = env
        self.variables = parse(path).get("variables", {})

    def name(self, identifier: str) -> Any:
        if identifier in self.env:
            return self.env[identifier]
        if identifier in self.variables:
            return self(self.variables[identifier]["value"])
        raise AssertionError(f"{self.path.name}: no value for {identifier!r} in this test")

    def dotted(self, text: str) -> Any:
        head, *rest = text.strip().split(".")
        if head == "environment()":
            head, rest = f"environment().{'.'.join(rest)}", []
        value = self.name(head)
        for part in rest:
            value = value[part]
        return value

    def __call__(self, node: Any) -> Any:
        if isinstance(node, bool | int):
            return node
        if isinstance(node, str):
            if "${" in node:
                return re.sub(r"\$\{([^}]*)\}", lambda m: str(self.dotted(m[1])), node)
            if node in self.env or node in self.variables:
                return self.name(node)
            return node
        assert isinstance(node, dict), f"{self.path.name}: cannot evaluate {node!r}"
        if set(node) not in ({"function"}, {"operator"}):  # an object literal
            return {key: self(value) for key, value in node.items()}
        if "function" in node:
            function = node["function"]
            assert function["type"] == "empty", f"{self.path.name}: unexpected {function}"
            return len(self(function["parameters"]["item_to_test"])) == 0
        operator = node["operator"]
        operands = operator["operands"]
        kind = operator["type"]
        if kind == "not":
            return not self(operands["bool_value"])
        if kind == "and":
            return bool(self(operands["operand_1"]) and self(operands["operand_2"]))
        if kind == "or":
            return bool(self(operands["operand_1"]) or self(operands["operand_2"]))
        if kind == "conditional":
            branch = "true_value" if self(operands["condition"]) else "false_value"
            return self(operands[branch])
        if kind == "property_accessor":
            path = property_path(node)
            value = self.name(path[0])
            for part in path[1:]:
                value = value[part]
            return value
        raise AssertionError(f"{self.path.name}: cannot evaluate operator {kind!r}")


def main_env(subscription_key: str, client_secret: str, *, vnet: bool = False) -> dict[str, Any]:
    return {
        "eventsRegistrySubscriptionKey": subscription_key,
        "eventsRegistryClientSecret": client_secret,
        "vaultName": SAMPLE_VAULT,
        "vnetEnabled": vnet,
        "environment().suffixes.keyvaultDns": KEYVAULT_DNS,
    }


def module_config(path: Path, symbol: str) -> tuple[dict[str, Any], Any]:
    """(body, condition) of a module declaration."""
    body, condition, _ = unwrap(parse(path)["modules"][symbol]["config"])
    return body, condition


def keyvault_env(main: Evaluator) -> dict[str, Any]:
    """keyvault.bicep's parameters that decide which secrets are written, and what, as main.bicep
    passes them."""
    params = modules()["keyVault"][1]
    names = {"name", "vnetEnabled"}
    for _, _, name_key, kv_parameter, _ in SECRETS.values():
        names |= {kv_parameter, f"{name_key}SecretName"}
    return {name: main(params[name]) for name in names}


def role_id(assignment: Resource) -> str:
    """The role definition id of an assignment, through its file's ``roles`` map."""
    function = assignment.properties["roleDefinitionId"]["function"]
    assert function["type"] == "subscription_resource_id", assignment.symbol
    path = property_path(function["parameters"]["resource_name_1"])
    assert path[0] == "roles", assignment.symbol
    return variable(assignment.file, "roles")[path[1]]


def vault_variants() -> dict[str, Resource]:
    return {
        "private": resource(PRIVATE_VAULT, "vault"),
        "public": resource(PUBLIC_VAULT, "vault"),
    }


# ---- when the vault exists, and what it is called ------------------------------------------------


def test_vault_exists_only_when_a_registry_secret_is_set() -> None:
    """No secret, no vault: a purge-protected vault would outlive every `azd down` of the default
    (Altinn) deployment, which needs neither secret. Either secret alone creates it."""
    _, condition = module_config(MAIN, "keyVault")
    assert condition == "keyVaultEnabled"
    rbac = modules()["rbac"][1]
    assert rbac["grantKeyVaultSecretsUser"] == "keyVaultEnabled"
    for subscription_key in ("", "key"):
        for client_secret in ("", "secret"):
            main = Evaluator(MAIN, main_env(subscription_key, client_secret))
            expected = bool(subscription_key or client_secret)
            assert main(condition) is expected, (subscription_key, client_secret)
            assert main(rbac["grantKeyVaultSecretsUser"]) is expected


def test_vault_name_is_unique_per_environment_and_can_be_overridden() -> None:
    abbreviations = load_json(INFRA / "abbreviations.json")
    assert abbreviations["keyVaultVaults"] == "kv-"
    name = variable(MAIN, "vaultName")
    derive = {"abbrs": abbreviations, "resourceToken": "0123456789abc"}
    assert Evaluator(MAIN, {**derive, "keyVaultName": ""})(name) == "kv-0123456789abc"
    assert Evaluator(MAIN, {**derive, "keyVaultName": "kv-other"})(name) == "kv-other"
    assert variable(MAIN, "resourceToken")["function"]["type"] == "to_lower"
    # uniqueString() is 13 characters: kv-<13> fits Key Vault's 3-24 letters, digits and hyphens.
    assert 3 <= len(abbreviations["keyVaultVaults"]) + 13 <= 24
    assert parameters(MAIN)["keyVaultName"]["default"] == ""
    value = load_json(PARAMETERS_FILE)["parameters"]["keyVaultName"]["value"]
    assert value == "${AZURE_KEY_VAULT_NAME=}", "the name override is an azd variable"
    assert modules()["keyVault"][1]["name"] == "vaultName"
    assert modules()["rbac"][1]["keyVaultName"] == "vaultName"


# ---- the vault ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["private", "public"])
def test_vault_uses_rbac_soft_delete_and_purge_protection(variant: str) -> None:
    vault = vault_variants()[variant]
    assert vault.condition is None, "unconditional in its module, so checkov sees its properties"
    props = vault.properties
    assert props["enableRbacAuthorization"] is True
    assert "accessPolicies" not in props, "RBAC only"
    assert props["enableSoftDelete"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["enablePurgeProtection"] is True
    for feature in (
        "enabledForDeployment",
        "enabledForDiskEncryption",
        "enabledForTemplateDeployment",
    ):
        assert props[feature] is False, feature
    assert property_path(props["tenantId"]) == [{"function": {"type": "tenant"}}, "tenantId"]
    assert vault.body["name"] == "name"


NETWORK_PROPERTIES = {"publicNetworkAccess", "networkAcls"}


def without_network(body: dict[str, Any]) -> dict[str, Any]:
    properties = body["properties"]
    return {
        **body,
        "properties": {k: v for k, v in properties.items() if k not in NETWORK_PROPERTIES},
    }


def test_both_vault_variants_differ_only_in_their_network_rules() -> None:
    private, public = (v.body for v in vault_variants().values())
    assert without_network(private) == without_network(public)
    assert set(private["properties"]) == set(public["properties"]) >= NETWORK_PROPERTIES


def test_vault_network_follows_the_vnet_option() -> None:
    """VNET_ENABLED=true: no public access at all, the app comes through the VNet. Without VNet
    integration the app has no fixed outbound address, so the vault's public endpoint stays open
    and RBAC alone guards the secrets."""
    assert modules()["keyVault"][1]["vnetEnabled"] == "vnetEnabled"
    vaults = modules(KEYVAULT)
    assert vaults["privateVault"][0] == PRIVATE_VAULT
    assert vaults["publicVault"][0] == PUBLIC_VAULT
    for vnet in (True, False):
        chosen = {
            symbol
            for symbol in ("privateVault", "publicVault")
            if Evaluator(KEYVAULT, {"vnetEnabled": vnet})(vaults[symbol][2])
        }
        assert chosen == {"privateVault" if vnet else "publicVault"}, vnet
    private = vault_variants()["private"].properties
    assert private["publicNetworkAccess"] == "Disabled"
    assert private["networkAcls"] == {"defaultAction": "Deny", "bypass": "None"}
    public = vault_variants()["public"].properties
    assert public["publicNetworkAccess"] == "Enabled"
    assert public["networkAcls"] == {"defaultAction": "Allow", "bypass": "None"}


def test_private_vault_has_a_private_endpoint_and_dns_zone_in_the_vnet() -> None:
    endpoint = resource(PRIVATE_VAULT, "privateEndpoint")
    assert endpoint.type == "Microsoft.Network/privateEndpoints"
    assert endpoint.condition is None
    assert endpoint.body["name"] == "privateEndpointName"
    connection = endpoint.properties["privateLinkServiceConnections"][0]["properties"]
    assert connection["groupIds"] == ["vault"]
    assert property_path(connection["privateLinkServiceId"]) == ["vault", "id"]
    assert endpoint.properties["subnet"] == {"id": "${vnet.id}/subnets/${subnetName}"}
    vnet = resource(PRIVATE_VAULT, "vnet")
    assert vnet.existing
    assert vnet.body == {"name": "virtualNetworkName"}
    # The zone: privatelink.vaultcore.<this cloud's suffix>.
    zone = resource(PRIVATE_VAULT, "dnsZone")
    expression = (
        "privatelink${replace(environment().suffixes.keyvaultDns, '.vault.', '.vaultcore.')}"
    )
    assert zone.body["name"] == expression
    assert "privatelink" + KEYVAULT_DNS.replace(".vault.", ".vaultcore.") == (
        "privatelink.vaultcore.azure.net"
    )
    link = resource(PRIVATE_VAULT, "dnsZoneLink")
    assert link.body["parent"] == "dnsZone"
    assert link.properties["registrationEnabled"] is False
    assert property_path(link.properties["virtualNetwork"]["id"]) == ["vnet", "id"]
    group = resource(PRIVATE_VAULT, "dnsZoneGroup")
    assert group.body["parent"] == "privateEndpoint"
    config = group.properties["privateDnsZoneConfigs"][0]["properties"]
    assert property_path(config["privateDnsZoneId"]) == ["dnsZone", "id"]
    # ... in the VNet's private endpoint subnet, like the storage endpoints.
    params = modules()["keyVault"][1]
    assert params["virtualNetworkName"] == "virtualNetworkName"
    assert modules()["vnet"][1]["name"] == "virtualNetworkName"
    subnet = params["subnetName"]["operator"]["operands"]
    assert subnet["condition"] == "vnetEnabled"
    assert property_path(subnet["true_value"]) == ["vnet", "outputs", "privateEndpointSubnetName"]
    assert params["privateEndpointName"] == "${abbrs.networkPrivateEndpoints}${resourceToken}-vault"
    passed = modules(KEYVAULT)["privateVault"][1]
    for name in ("virtualNetworkName", "subnetName", "privateEndpointName"):
        assert passed[name] == name


# ---- the app's access ---------------------------------------------------------------------------


def test_app_identity_gets_key_vault_secrets_user_on_the_vault_only() -> None:
    assignment = resource(RBAC, "appKeyVaultSecretsUser")
    assert assignment.condition == "grantKeyVaultSecretsUser"
    assert role_id(assignment) == KEY_VAULT_SECRETS_USER
    # Scoped to the vault (not the resource group), the vault main.bicep creates.
    assert assignment.body["scope"] == "keyVault"
    vault = resource(RBAC, "keyVault")
    assert vault.existing
    assert vault.type == "Microsoft.KeyVault/vaults"
    assert vault.body == {"name": "keyVaultName"}
    assert modules()["rbac"][1]["keyVaultName"] == modules()["keyVault"][1]["name"]
    assert assignment.properties["principalId"] == "appPrincipalId"
    assert assignment.properties["principalType"] == "ServicePrincipal"
    guid = assignment.body["name"]["function"]["parameters"]
    assert property_path(guid["base_string"]) == ["keyVault", "id"]
    assert guid["extra_string_1"] == "appPrincipalId"
    # Granted once, to the app; nothing else in infra/ grants a role on the vault.
    assignments = [
        r for r in all_resources() if r.type == "Microsoft.Authorization/roleAssignments"
    ]
    holders = [a.symbol for a in assignments if role_id(a) == KEY_VAULT_SECRETS_USER]
    assert holders == ["appKeyVaultSecretsUser"]
    on_the_vault = [
        a.symbol for a in assignments if a.file == RBAC and a.body["scope"] == "keyVault"
    ]
    assert on_the_vault == ["appKeyVaultSecretsUser"]


def test_key_vault_reference_identity_is_the_user_assigned_identity() -> None:
    """The platform resolves references with keyVaultReferenceIdentity, a site property (under
    siteConfig it has no effect); unset, it would look for a system-assigned identity."""
    site = resource(API, "functionApp")
    assert site.properties["keyVaultReferenceIdentity"] == "identityId"
    assert "keyVaultReferenceIdentity" not in site.properties["siteConfig"]
    assert site.body["identity"]["userAssignedIdentities"] == {"'${identityId}'": {}}
    assert property_path(modules()["api"][1]["identityId"]) == ["identity", "outputs", "id"]
    # ... the identity rbac.bicep grants the role to.
    assert property_path(modules()["rbac"][1]["appPrincipalId"]) == [
        "identity",
        "outputs",
        "principalId",
    ]


def test_the_app_waits_for_the_vault_its_secrets_and_its_role() -> None:
    for symbol in ("rbac", "api"):
        body, _ = module_config(MAIN, symbol)
        assert "keyVault" in body.get("dependsOn", []), f"{symbol} must depend on keyVault"
    for symbol in ("subscriptionKeySecret", "clientSecretSecret"):
        body, _ = module_config(KEYVAULT, symbol)
        assert set(body["dependsOn"]) == {"privateVault", "publicVault"}, symbol


# ---- secrets: into the vault, references into the app settings ----------------------------------


@pytest.mark.parametrize("subscription_key", ["", SAMPLE_VALUES["eventsRegistrySubscriptionKey"]])
@pytest.mark.parametrize("client_secret", ["", SAMPLE_VALUES["eventsRegistryClientSecret"]])
def test_a_set_secret_becomes_a_vault_secret_and_a_reference_and_an_empty_one_neither(
    subscription_key: str, client_secret: str
) -> None:
    main = Evaluator(MAIN, main_env(subscription_key, client_secret))
    settings = variable(MAIN, "eventsAppSettings")
    keyvault = Evaluator(KEYVAULT, keyvault_env(main))
    secret_modules = modules(KEYVAULT)
    for setting, (parameter, reference, name_key, kv_parameter, module) in SECRETS.items():
        value = main.env[parameter]
        assert settings[setting] == reference
        app_setting = main(settings[setting])
        secret_file, secret_params, condition = secret_modules[module]
        assert secret_file == SECRET
        written = keyvault(condition)
        if not value:
            assert app_setting == "", f"{setting}: empty secret, empty setting"
            assert written is False, f"{setting}: empty secret, no vault secret"
            continue
        match = REFERENCE.fullmatch(app_setting)
        assert match, f"{setting} must be a versionless Key Vault reference, not {app_setting!r}"
        assert value not in app_setting
        assert match["vault"] == SAMPLE_VAULT == keyvault.env["name"]
        assert written is True, f"{setting}: the secret must be written"
        # The vault secret has the name the reference points at and holds the parameter's value.
        secret_name = keyvault(secret_params["name"])
        assert secret_name == match["name"] == main(f"${{keyVaultSecretNames.{name_key}}}")
        assert keyvault(secret_params["secretValue"]) == value
        assert keyvault.env[kv_parameter] == value
        assert keyvault(secret_params["vaultName"]) == SAMPLE_VAULT
    names = variable(MAIN, "keyVaultSecretNames")
    assert len(set(names.values())) == len(names) == len(SECRETS)


def test_vault_secret_is_plain_text_without_expiry() -> None:
    secret = resource(SECRET, "secret")
    assert secret.type == "Microsoft.KeyVault/vaults/secrets"
    assert secret.condition is None, "unconditional in its module: checkov sees its properties"
    assert secret.body["parent"] == "vault"
    assert resource(SECRET, "vault").existing
    assert resource(SECRET, "vault").body == {"name": "vaultName"}
    assert secret.body["name"] == "name"
    props = secret.properties
    assert props["value"] == "secretValue"
    assert {"type": "secure"} in parameters(SECRET)["secretValue"]["decorators"]
    assert props["contentType"] == "text/plain"
    # No expiry: the credential's lifetime is its issuer's; an expiry would break the reference.
    assert "exp" not in props.get("attributes", {})
    assert "nbf" not in props.get("attributes", {})


def secure_parameters(path: Path) -> set[str]:
    return {n for n, p in parameters(path).items() if {"type": "secure"} in p["decorators"]}


Usage = tuple[list[Any], list[Any], set[str]]


def usages(path: Path, names: set[str]) -> Iterator[Usage]:
    """(key path, parent nodes, names used) of every value in ``path`` (declarations of
    parameters aside) that is, or interpolates, one of ``names``."""
    pattern = re.compile(r"\$\{[^}]*\b(" + "|".join(map(re.escape, names)) + r")\b")

    def visit(node: Any, keys: list[Any], parents: list[Any]) -> Iterator[Usage]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from visit(value, [*keys, key], [*parents, node])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from visit(value, [*keys, index], [*parents, node])
        elif isinstance(node, str):
            found = {node} & names | {m[1] for m in pattern.finditer(node)}
            if found:
                yield keys, parents, found

    tree = {key: value for key, value in parse(path).items() if key != "parameters"}
    yield from visit(tree, [], [])


def is_empty_test(keys: list[Any], parents: list[Any]) -> bool:
    """The value is the argument of empty(): its length is used, never its content."""
    return keys[-2:] == ["parameters", "item_to_test"] and parents[-2].get("type") == "empty"


def is_secure_module_parameter(path: Path, keys: list[Any]) -> bool:
    """The value is passed to a module's @secure() parameter."""
    if keys[0] != "modules" or keys[-2] != "params":
        return False
    return keys[-1] in secure_parameters(modules(path)[keys[1]][0])


@pytest.mark.parametrize("path", sorted(bicep_files()), ids=lambda p: p.name)
def test_no_secret_value_reaches_an_output_a_plain_parameter_or_an_app_setting(path: Path) -> None:
    """A @secure() parameter's value may be tested with empty(), passed on to a @secure() module
    parameter, or written as a vault secret's value, and nothing else: not into an app setting,
    a variable, a name, a tag, an output or a plain module parameter (those are recorded in the
    deployment history, or readable in the site's configuration)."""
    secure = secure_parameters(path)
    if not secure:
        return
    used: set[str] = set()
    for keys, parents, names in usages(path, secure):
        where = "/".join(map(str, keys))
        written = path == SECRET and keys == [
            "resources",
            "secret",
            "config",
            "properties",
            "value",
        ]
        if is_empty_test(keys, parents):
            continue
        assert is_secure_module_parameter(path, keys) or written, (
            f"{path.name}: a @secure() value reaches {where}"
        )
        used |= names
    # And each secret does go somewhere: on to the vault.
    assert used == secure, f"{path.name}: {sorted(secure - used)} never reach the vault"


def test_the_api_module_gets_no_secret() -> None:
    assert not secure_parameters(API)
    api = json.dumps(modules()["api"][1])
    app_settings = json.dumps(variable(MAIN, "eventsAppSettings"))
    for parameter in secure_parameters(MAIN):
        assert parameter not in api
        assert parameter not in app_settings, "the settings name the reference variables only"


# ---- checkov on the vault's modules -------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV.relative_to(REPO)} is missing: `make test` creates it")
    files = [KEYVAULT, PRIVATE_VAULT, PUBLIC_VAULT, SECRET]
    command = [str(CHECKOV), "--framework", "bicep", "--skip-download", "--output", "json"]
    for path in files:
        command += ["--file", str(path)]
    completed = subprocess.run(  # noqa: S603 - a fixed command line
        command, capture_output=True, text=True, timeout=600, check=False, cwd=REPO
    )
    assert completed.returncode in (0, 1), completed.stderr[-4000:]
    output = json.loads(completed.stdout)
    reports = output if isinstance(output, list) else [output]
    (report,) = [r for r in reports if r.get("check_type") == "bicep"]
    return report


def outcomes(report: dict[str, Any], kind: str) -> set[tuple[str, str, str]]:
    return {
        (c["check_id"], c["resource"], Path(c["file_path"]).name)
        for c in report["results"][f"{kind}_checks"]
    }


def test_checkov_passes_the_private_vault_and_the_secret(checkov_report: dict[str, Any]) -> None:
    """The VNet variant passes every Key Vault check without a skip (so its literals are what
    checkov reads), and the secret passes the content type check."""
    assert checkov_report["summary"]["failed"] == 0
    assert checkov_report["summary"]["parsing_errors"] == 0
    passed = outcomes(checkov_report, "passed")
    vault = "Microsoft.KeyVault/vaults.vault"
    for check in (
        "CKV_AZURE_42",
        "CKV_AZURE_109",
        "CKV_AZURE_110",
        "CKV_AZURE_111",
        "CKV_AZURE_189",
    ):
        assert (check, vault, PRIVATE_VAULT.name) in passed, check
    for check in ("CKV_AZURE_42", "CKV_AZURE_110", "CKV_AZURE_111"):
        assert (check, vault, PUBLIC_VAULT.name) in passed, check
    secret = "Microsoft.KeyVault/vaults/secrets.secret"
    assert ("CKV_AZURE_114", secret, SECRET.name) in passed


def test_checkov_skips_only_the_public_network_and_the_expiry(
    checkov_report: dict[str, Any],
) -> None:
    assert outcomes(checkov_report, "skipped") == {
        ("CKV_AZURE_189", "Microsoft.KeyVault/vaults.vault", PUBLIC_VAULT.name),
        ("CKV_AZURE_109", "Microsoft.KeyVault/vaults.vault", PUBLIC_VAULT.name),
        ("CKV_AZURE_41", "Microsoft.KeyVault/vaults/secrets.secret", SECRET.name),
    }


# ---- documentation ------------------------------------------------------------------------------


def test_deploy_md_explains_the_secrets() -> None:
    text = DEPLOY_MD.read_text(encoding="utf-8")
    assert "\n## Secrets\n" in text, "docs/deploy.md needs its Secrets section"
    section = text.split("\n## Secrets\n", 1)[1].split("\n## ", 1)[0]
    for name in variable(MAIN, "keyVaultSecretNames").values():
        assert name in section, f"the Secrets section must name the vault secret {name}"
    for phrase in (
        "az keyvault secret set",
        "azd provision",
        "24 hours",
        "configreferences/appsettings/refresh",
        "AZURE_KEY_VAULT_NAME",
        "purge",
        "@Microsoft.KeyVault(",
    ):
        assert phrase in section, f"the Secrets section must cover {phrase!r}"
