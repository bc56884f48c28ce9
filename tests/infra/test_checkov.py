"""checkov over infra/ (Bicep) reports no failed check, and every skip is a documented one.

checkov runs from its own virtual environment, .venv-checkov (made by `make test` from
tools/checkov-requirements.txt), because it pins about a hundred packages. It parses Bicep itself,
so no Bicep CLI is needed; --skip-download keeps it offline.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.infra.bicep import INFRA, REPO

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
REQUIREMENTS = REPO / "tools" / "checkov-requirements.txt"

# Every check that infra/ skips, where, and why. The reason itself is an inline
# `// checkov:skip=<id>: <reason>` inside the resource body; this list makes adding one a
# reviewed change. (check id, resource) -> the gist of the reason.
DOCUMENTED_SKIPS = {
    ("CKV_AZURE_225", "Microsoft.Web/serverfarms.plan"): (
        "zone redundancy is a parameter (zoneRedundant); on Flex it needs a zonal region and "
        "billed always-ready instances"
    ),
    ("CKV_AZURE_222", "Microsoft.Web/sites.functionApp"): (
        "POST /events is a public API; every request carries a bearer JWT validated in code"
    ),
    ("CKV_AZURE_17", "Microsoft.Web/sites.functionApp"): (
        "client certificates are not the authentication mechanism (bearer tokens are)"
    ),
    ("CKV_AZURE_78", "Microsoft.Web/sites.functionApp"): (
        "ftpsState is not supported on Flex; basic-auth publishing is off via "
        "basicPublishingCredentialsPolicies"
    ),
    ("CKV_AZURE_212", "Microsoft.Web/sites.functionApp"): (
        "numberOfWorkers does not apply to Flex; instances are platform-managed"
    ),
    ("CKV_AZURE_213", "Microsoft.Web/sites.functionApp"): (
        "platform health checks are not supported on Flex Consumption"
    ),
    ("CKV_AZURE_67", "Microsoft.Web/sites.functionApp"): (
        "http20Enabled is left to the platform on Flex, as Microsoft's Flex samples do"
    ),
    ("CKV_AZURE_18", "Microsoft.Web/sites.functionApp"): (
        "the same http20Enabled property as CKV_AZURE_67, under its web-app name"
    ),
    ("CKV_AZURE_35", "Microsoft.Storage/storageAccounts.storage"): (
        "firewall is Deny with vnetEnabled; without VNet integration Flex reaches storage "
        "publicly, Entra-only (shared keys disabled)"
    ),
    ("CKV_AZURE_206", "Microsoft.Storage/storageAccounts.storage"): (
        "zone-redundant (ZRS) replication where the region has zones, LRS where it has none; "
        "the check accepts geo-redundant SKUs only"
    ),
    # The registry secrets' vault without VNet integration (infra/app/keyvault-public.bicep); with
    # vnetEnabled the vault is private and passes both (keyvault-private.bicep).
    ("CKV_AZURE_189", "Microsoft.KeyVault/vaults.vault"): (
        "without VNet integration the Flex app resolves its Key Vault references from outbound "
        "addresses that are not fixed; RBAC guards the secrets"
    ),
    ("CKV_AZURE_109", "Microsoft.KeyVault/vaults.vault"): (
        "a Deny firewall would block the app's own reference resolution without VNet integration"
    ),
    ("CKV_AZURE_41", "Microsoft.KeyVault/vaults/secrets.secret"): (
        "no expiry: the credential's lifetime is its issuer's; an expiry would only break the "
        "app's Key Vault reference"
    ),
}

# Checks that must run and pass: if one of them stops appearing, checkov no longer sees the
# resource (for example because it moved into a registry module).
MUST_PASS = {
    ("CKV_AZURE_70", "Microsoft.Web/sites.functionApp"),  # HTTPS only
    ("CKV_AZURE_145", "Microsoft.Web/sites.functionApp"),  # minimum TLS 1.2
    ("CKV_AZURE_72", "Microsoft.Web/sites.functionApp"),  # remote debugging off
    ("CKV_AZURE_71", "Microsoft.Web/sites.functionApp"),  # managed identity
    ("CKV_AZURE_3", "Microsoft.Storage/storageAccounts.storage"),  # secure transfer
    ("CKV_AZURE_44", "Microsoft.Storage/storageAccounts.storage"),  # TLS 1.2
    (
        "CKV_AZURE_34",
        "Microsoft.Storage/storageAccounts/blobServices/containers.deploymentContainer",
    ),
    (  # large events' data (the claim check): no public access either
        "CKV_AZURE_34",
        "Microsoft.Storage/storageAccounts/blobServices/containers.dataContainer",
    ),
    ("CKV_AZURE_42", "Microsoft.KeyVault/vaults.vault"),  # soft delete + purge protection
    ("CKV_AZURE_110", "Microsoft.KeyVault/vaults.vault"),  # purge protection
    ("CKV_AZURE_189", "Microsoft.KeyVault/vaults.vault"),  # no public access (VNet variant)
    ("CKV_AZURE_114", "Microsoft.KeyVault/vaults/secrets.secret"),  # content type
}


def pinned_version() -> str:
    match = re.search(r"^checkov==([\w.]+)$", REQUIREMENTS.read_text(), flags=re.MULTILINE)
    assert match, f"{REQUIREMENTS.relative_to(REPO)} must pin checkov==<version>"
    return match[1]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.fail(
            f"{CHECKOV.relative_to(REPO)} is missing: `make test` creates the checkov environment "
            f"from {REQUIREMENTS.relative_to(REPO)}"
        )
    completed = subprocess.run(  # noqa: S603 - a fixed command line
        [
            str(CHECKOV),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO,
    )
    # Exit code 1 means failed checks; anything else non-zero means checkov itself broke.
    assert completed.returncode in (0, 1), completed.stderr[-4000:]
    output = json.loads(completed.stdout)
    reports = output if isinstance(output, list) else [output]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    assert len(bicep) == 1, (
        f"expected one bicep report, got {[r.get('check_type') for r in reports]}"
    )
    return bicep[0]


def test_checkov_reports_no_failed_checks(report: dict[str, Any]) -> None:
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["checkov_version"] == pinned_version()


def test_checkov_sees_the_resources(report: dict[str, Any]) -> None:
    passed = {(c["check_id"], c["resource"]) for c in report["results"]["passed_checks"]}
    missing = MUST_PASS - passed
    assert not missing, f"checks that did not run or pass: {sorted(missing)}"
    scanned = {c["file_path"] for c in report["results"]["passed_checks"]}
    assert {"/app/api.bicep", "/app/storage.bicep"} <= scanned


def test_every_skip_is_documented_and_justified(report: dict[str, Any]) -> None:
    skipped = report["results"]["skipped_checks"]
    found = {(c["check_id"], c["resource"]) for c in skipped}
    undocumented = found - set(DOCUMENTED_SKIPS)
    assert not undocumented, f"skips missing from DOCUMENTED_SKIPS: {sorted(undocumented)}"
    unused = set(DOCUMENTED_SKIPS) - found
    assert not unused, f"documented skips no longer in infra/: {sorted(unused)}"
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{check['check_id']}: the skip needs a real reason"
    assert report["summary"]["skipped"] == len(DOCUMENTED_SKIPS)


def test_skips_are_inline_inside_resource_bodies() -> None:
    """`// checkov:skip=` above a resource is ignored by checkov; inside its body it applies."""
    for path in INFRA.rglob("*.bicep"):
        depth = 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "checkov:skip=" in line:
                assert re.fullmatch(r"\s*// checkov:skip=CKV2?_AZURE_\d+: \S.*", line), (
                    f"{path.name}:{number}: use `// checkov:skip=CKV_AZURE_n: reason`"
                )
                assert depth == 1, f"{path.name}:{number}: the skip must be inside a resource body"
            code = line.split("//", 1)[0]
            depth += code.count("{") - code.count("}")
