"""The offline template check passes on infra/ and catches each kind of mistake Azure would refuse.

Each test copies infra/ to a temporary directory, breaks one thing on purpose, and runs the same
check `make lint` runs (tests/infra/check_templates.py) on the copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra import check_templates
from tests.infra.templates import INFRA, ROOT

INFRA_PYTHON = ROOT / ".venv-infra" / "bin" / "python"


def break_template(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of infra/ where the first `old` in `file` is replaced by `new`."""
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    target = copy / file
    text = target.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}: the test no longer matches the template"
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return copy


def problems(directory: Path) -> list[str]:
    """What the check reports on a directory of templates."""
    return [str(problem) for problem in check_templates.check([directory]).problems]


def test_infra_passes() -> None:
    checker = check_templates.check([INFRA])
    assert [str(p) for p in checker.problems] == []
    assert len(checker.templates) == len(list(INFRA.rglob("*.bicep")))
    assert checker.resource_count >= 30


def test_every_resource_type_in_use_is_vendored() -> None:
    """No resource of infra/ is skipped for want of a definition (lookup fails loudly)."""
    azure = check_templates.AzureTypes()
    for path in INFRA.rglob("*.bicep"):
        template = check_templates.Template(path)
        for resource in template.resources.values():
            type_string = check_templates.literal(resource.children()[1])
            assert isinstance(azure.lookup(*type_string.split("@")), tuple), type_string


# Each case: (file, text to replace, replacement, what the report must say).
BROKEN = {
    "misspelled property": (
        "app/storage.bicep",
        "allowBlobPublicAccess: false",
        "allowBlobPublicAcess: false",
        "properties.allowBlobPublicAcess: no such property (did you mean allowBlobPublicAccess?)",
    ),
    "misspelled nested property": (
        "app/network.bicep",
        "serviceName: 'Microsoft.App/environments'",
        "serviceNam: 'Microsoft.App/environments'",
        "delegations[0].properties.serviceNam: no such property",
    ),
    "wrong enum value": (
        "app/storage.bicep",
        "minimumTlsVersion: 'TLS1_2'",
        "minimumTlsVersion: 'TLS1.2'",
        "properties.minimumTlsVersion: 'TLS1.2' is not one of 'TLS1_0', 'TLS1_1', 'TLS1_2', 'TLS1_3'",
    ),
    "wrong enum value in a conditional branch": (
        "app/keyvault.bicep",
        "defaultAction: vnetEnabled ? 'Deny' : 'Allow'",
        "defaultAction: vnetEnabled ? 'Deny' : 'Open'",
        "properties.networkAcls.defaultAction: 'Open' is not one of 'Allow', 'Deny'",
    ),
    "wrong type": (
        "app/api.bicep",
        "instanceMemoryMB: instanceMemoryMB",
        "instanceMemoryMB: '2048'",
        "scaleAndConcurrency.instanceMemoryMB: expects an integer, not '2048'",
    ),
    "read-only property": (
        "app/storage.bicep",
        "accessTier: 'Hot'",
        "accessTier: 'Hot'\n    provisioningState: 'Succeeded'",
        "properties.provisioningState: read-only property",
    ),
    "non-existent API version": (
        "app/storage.bicep",
        "'Microsoft.Storage/storageAccounts@2023-05-01' = {",
        "'Microsoft.Storage/storageAccounts@2023-05-02' = {",
        "API version 2023-05-02 does not exist for Microsoft.Storage",
    ),
    "misspelled resource type": (
        "app/api.bicep",
        "'Microsoft.Web/serverfarms@2024-04-01'",
        "'Microsoft.Web/serverfarm@2024-04-01'",
        "Microsoft.Web/serverfarm@2024-04-01 is not among the vendored definitions "
        "(did you mean microsoft.web/serverfarms?)",
    ),
    "ftpsState on the Flex site": (
        "app/api.bicep",
        "      minTlsVersion: '1.2'",
        "      ftpsState: 'Disabled'\n      minTlsVersion: '1.2'",
        "properties.siteConfig.ftpsState on a Flex Consumption site: rejected at deployment",
    ),
    "vnetRouteAllEnabled on the Flex site": (
        "app/api.bicep",
        "    httpsOnly: true",
        "    httpsOnly: true\n    vnetRouteAllEnabled: true",
        "properties.vnetRouteAllEnabled on a Flex Consumption site: not used for networking",
    ),
    "app setting Flex replaced": (
        "app/api.bicep",
        "  AzureWebJobsStorage__credential: 'managedidentity'",
        "  AzureWebJobsStorage__credential: 'managedidentity'\n  FUNCTIONS_WORKER_RUNTIME: 'python'",
        "app setting FUNCTIONS_WORKER_RUNTIME on a Flex Consumption site: replaced by "
        "functionAppConfig.runtime.name",
    ),
    "missing module parameter": (
        "main.bicep",
        "    tableNames: eventTableNames\n    queueNames: eventQueueNames\n    vnetEnabled",
        "    queueNames: eventQueueNames\n    vnetEnabled",
        "module storage: required parameter tableNames of app/storage.bicep is not passed",
    ),
    "unknown module parameter": (
        "main.bicep",
        "    logAnalyticsName: 'log-${resourceToken}'",
        "    logAnalyticsName: 'log-${resourceToken}'\n    retentionDays: 90",
        "module monitoring: app/monitoring.bicep has no parameter retentionDays",
    ),
    "value an @allowed module parameter refuses": (
        "main.bicep",
        "    publicNetworkAccessForQuery: monitoringPublicQueryAccess",
        "    publicNetworkAccessForQuery: 'Off'",
        "publicNetworkAccessForQuery = 'Off' is not allowed by app/monitoring.bicep",
    ),
    "wrong type passed to a module parameter": (
        "main.bicep",
        "    tableNames: eventTableNames",
        "    tableNames: 'events'",
        "module storage: tableNames of app/storage.bicep is array, not string",
    ),
    "unknown output": (
        "main.bicep",
        "storageBlobEndpoint: storage.outputs.blobEndpoint",
        "storageBlobEndpoint: storage.outputs.blobUrl",
        "storage.outputs.blobUrl: app/storage.bicep has no such output",
    ),
    "unknown property read from a resource": (
        "app/storage.bicep",
        "storage.properties.primaryEndpoints.blob",
        "storage.properties.primaryEndpoint.blob",
        "storage.properties.primaryEndpoint: StorageAccountPropertiesCreateParametersOrStorageAccountProperties has no property primaryEndpoint",
    ),
    "CORS origin *": (
        "app/api.bicep",
        "allowedOrigins: allowedOrigins",
        "allowedOrigins: ['*']",
        "CORS allowedOrigins must not contain '*'",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_a_deliberate_mistake_is_caught(case: str, tmp_path: Path) -> None:
    file, old, new, expected = BROKEN[case]
    found = problems(break_template(tmp_path, file, old, new))
    assert any(expected in problem for problem in found), found
    assert all(f"/{file}:" in problem for problem in found), found


def test_the_flex_rule_names_its_source(tmp_path: Path) -> None:
    file, old, new, _ = BROKEN["ftpsState on the Flex site"]
    (found,) = problems(break_template(tmp_path, file, old, new))
    assert "Site.SiteConfig.FtpsState" in found
    assert "functions-app-settings#flex-consumption-plan-deprecations" in found


def test_the_command_fails_on_a_mistake_and_passes_on_infra(tmp_path: Path) -> None:
    """What `make lint` runs: exit 1 and the problem printed, exit 0 on infra/."""
    file, old, new, expected = BROKEN["ftpsState on the Flex site"]
    broken = break_template(tmp_path, file, old, new)
    command = [sys.executable, "-m", "tests.infra.check_templates"]
    failed = subprocess.run(
        [*command, str(broken)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1 and expected in failed.stdout, failed.stdout + failed.stderr
    passed = subprocess.run(
        [*command, str(INFRA)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "0 problems" in passed.stdout


def test_makefile_runs_the_check_in_lint() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlint-infra:", 1)[1].split("\n\n", 1)[0]
    assert "-m tests.infra.check_templates infra" in recipe


def test_vendored_definitions_name_their_source() -> None:
    readme = (check_templates.TYPES_DIR / "README.md").read_text(encoding="utf-8")
    assert "Azure/bicep-types-az" in readme
    source = json.loads((check_templates.TYPES_DIR / "source.json").read_text(encoding="utf-8"))
    assert source["repository"] == "Azure/bicep-types-az"
    assert len(source["commit"]) == 40
    assert source["commit"] in readme
    for path in source["files"]:
        assert (check_templates.TYPES_DIR / path.removeprefix("generated/")).is_file(), path


def test_cors_wildcard_is_refused_at_deployment() -> None:
    """main.bicep turns a '*' origin into a failing int() before it reaches the site."""
    template = check_templates.Template(INFRA / "main.bicep")
    guard = template.variables["corsOrigins"].children()[-1]
    assert guard.type == "ternary_expression"
    condition = check_templates.node_text(guard.child_by_field_name("condition") or guard)
    assert condition == "contains(allowedOrigins, '*')"
    assert check_templates.node_text(guard.child_by_field_name("consequence") or guard).count(
        "int("
    )
    api = template.modules["api"]
    params = check_templates.member(check_templates.body(api) or guard, "params")
    assert params is not None
    origins = check_templates.member(params, "allowedOrigins")
    assert origins is not None and check_templates.node_text(origins) == "corsOrigins"


@pytest.mark.skipif(not INFRA_PYTHON.exists(), reason="run `make lint-infra` once for .venv-infra")
def test_checkov_wrapper_fails_when_a_file_drops_out_of_the_scan(tmp_path: Path) -> None:
    """Five comment lines in a row make checkov's parser drop api.bicep: the wrapper says so."""
    broken = break_template(
        tmp_path,
        "app/api.bicep",
        "  //checkov:skip=CKV_AZURE_17:",
        "  // one comment line too many for checkov's parser\n  //checkov:skip=CKV_AZURE_17:",
    )
    result = subprocess.run(
        [str(INFRA_PYTHON), str(ROOT / "tests" / "infra" / "run_checkov.py"), str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "api.bicep" in result.stdout and "not scanned" in result.stdout, result.stdout
