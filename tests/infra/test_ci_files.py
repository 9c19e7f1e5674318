"""The CI/CD files parse, and everything they point at in the repository exists.

Covers .github/workflows/*.yml, azure-pipelines.yml, azure.yaml and infra/main.parameters.json:
local paths (scripts, templates, requirement files, local actions and reusable workflows), make
targets, and the template parameters each deployment path passes to infra/main.bicep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.templates import ROOT, parse_bicep

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
DEPLOY_WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
VALIDATE_WORKFLOW = ROOT / ".github" / "workflows" / "validate-infra.yml"
AZURE_PIPELINES = ROOT / "azure-pipelines.yml"
PIPELINE_FILES = [*WORKFLOWS, AZURE_PIPELINES]
MAIN_BICEP = ROOT / "infra" / "main.bicep"

#: A relative path to a repository file, recognised by its extension. Output files the pipelines
#: create (package.zip) have other extensions; URLs and $(variables) are excluded by the lookbehind.
LOCAL_PATH = re.compile(
    r"(?<![\w/$:@.{-])(?:\./)?(?:[\w.-]+/)*[\w-]+\.(?:bicep|json|ya?ml|py|sh|ps1|txt|toml|cfg)\b"
)
MAKE_TARGET = re.compile(r"(?:^|[\s;&|(])make\s+(?:-\S+\s+)*([\w-]+)")
PARAMETER = re.compile(r"(?<![\w-])(\w+)=")


def load_yaml(path: Path) -> Any:
    """The parsed YAML document (one per file)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML/JSON document (keys excluded)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def steps(document: Any) -> Iterator[dict[str, Any]]:
    """Every mapping that looks like a step or task (has `uses`, `run`, `task` or `script`)."""
    if isinstance(document, dict):
        if {"uses", "run", "task", "script"} & set(document):
            yield document
        for value in document.values():
            yield from steps(value)
    elif isinstance(document, list):
        for item in document:
            yield from steps(item)


def make_targets() -> set[str]:
    """Targets the Makefile defines."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+)\s*:(?!=)", text, flags=re.MULTILINE))


@pytest.mark.parametrize("path", [*PIPELINE_FILES, ROOT / "azure.yaml"], ids=lambda p: p.name)
def test_file_parses_as_yaml(path: Path) -> None:
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    assert isinstance(load_yaml(path), dict)


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.name)
def test_local_files_referenced_exist(path: Path) -> None:
    document = load_yaml(path)
    referenced = {match for text in strings(document) for match in LOCAL_PATH.findall(text)}
    missing = sorted(ref for ref in referenced if not (ROOT / ref).exists())
    assert not missing, f"{path.name} refers to files that do not exist: {missing}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_local_actions_and_workflows_exist(path: Path) -> None:
    for step in steps(load_yaml(path)):
        uses = step.get("uses", "")
        if isinstance(uses, str) and uses.startswith("./"):
            assert (ROOT / uses).exists(), f"{path.name}: `uses: {uses}` does not exist"


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.name)
def test_make_targets_exist(path: Path) -> None:
    called = {target for text in strings(load_yaml(path)) for target in MAKE_TARGET.findall(text)}
    assert called <= make_targets(), f"{path.name} calls unknown make targets {called}"


def test_pipelines_reference_the_templates() -> None:
    """The path check above is not vacuous: both pipelines name infra/main.bicep."""
    for path in (ROOT / ".github" / "workflows" / "deploy.yml", AZURE_PIPELINES):
        found = {m for text in strings(load_yaml(path)) for m in LOCAL_PATH.findall(text)}
        assert "infra/main.bicep" in found, path.name


def test_ci_runs_make_test_on_push_and_pull_request() -> None:
    ci = load_yaml(ROOT / ".github" / "workflows" / "ci.yml")
    triggers = ci.get("on", ci.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert {"push", "pull_request"} <= set(triggers)
    runs = [step.get("run", "") for step in steps(ci)]
    assert any("make test" in run for run in runs)
    versions = [str(s.get("with", {}).get("python-version")) for s in steps(ci) if "with" in s]
    assert "3.11" in versions


def test_deploy_uses_oidc_without_stored_secrets() -> None:
    deploy = load_yaml(ROOT / ".github" / "workflows" / "deploy.yml")
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    triggers = deploy.get("on", deploy.get(True))
    assert triggers["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in triggers
    logins = [s for s in steps(deploy) if str(s.get("uses", "")).startswith("azure/login@")]
    assert logins, "no azure/login step"
    for login in logins:
        assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    assert "secrets." not in (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    jobs = deploy["jobs"]
    deploy_jobs = [job for job in jobs.values() if "environment" in job]
    assert deploy_jobs, "no job deploys through a GitHub environment"
    for job in deploy_jobs:
        assert job.get("needs"), "the deployment must wait for the tests"


def test_azure_pipelines_has_test_then_deploy_stage() -> None:
    pipeline = load_yaml(AZURE_PIPELINES)
    stages = {stage["stage"]: stage for stage in pipeline["stages"]}
    assert list(stages) == ["Test", "Validate", "Deploy"]
    assert stages["Validate"]["dependsOn"] == "Test"
    assert stages["Deploy"]["dependsOn"] == "Test"
    deployment = stages["Deploy"]["jobs"][0]
    assert "deployment" in deployment and deployment["environment"]
    tasks = [s["task"] for s in steps(deployment) if "task" in s]
    assert any(task.startswith("AzureCLI@2") for task in tasks)


def _commands(step: dict[str, Any]) -> str:
    """The shell a step runs: `run`, `script` or an AzureCLI@2 inline script."""
    inputs = step.get("inputs") or {}
    return "\n".join(
        str(text)
        for text in (step.get("run"), step.get("script"), inputs.get("inlineScript"))
        if text
    )


def _validation_before_deployment(job: Any) -> None:
    """`az bicep build`, then `what-if` of infra/main.bicep, before the templates are deployed."""
    scripts = [_commands(step) for step in steps(job)]
    deploying = [
        i
        for i, step in enumerate(steps(job))
        if "az deployment group create" in scripts[i]
        or str(step.get("uses", "")).startswith("azure/arm-deploy@")
    ]
    assert deploying, "no step deploys the templates"
    before = "\n".join(scripts[: deploying[0]])
    build = before.find("az bicep build --file infra/main.bicep")
    what_if = before.find("az deployment group what-if")
    assert build >= 0, "az bicep build of infra/main.bicep does not run before deploying"
    assert what_if > build, "az deployment group what-if does not run after the build"
    assert "--template-file infra/main.bicep" in before[what_if:]


def test_deploy_workflow_builds_and_previews_before_deploying() -> None:
    _validation_before_deployment(load_yaml(DEPLOY_WORKFLOW)["jobs"]["deploy"])


def test_azure_pipelines_builds_and_previews_before_deploying() -> None:
    stages = {stage["stage"]: stage for stage in load_yaml(AZURE_PIPELINES)["stages"]}
    _validation_before_deployment(stages["Deploy"])


def test_pull_requests_validate_with_azure_or_say_why_not() -> None:
    workflow = load_yaml(VALIDATE_WORKFLOW)
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    assert "secrets." not in VALIDATE_WORKFLOW.read_text(encoding="utf-8")
    (job,) = workflow["jobs"].values()
    gate, *rest = job["steps"]
    script = gate["run"]
    for name in ("CLIENT_ID", "TENANT_ID", "SUBSCRIPTION_ID", "RESOURCE_GROUP"):
        assert f'"${name}"' in script
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in script  # forks get no OIDC token
    assert "::notice" in script and "GITHUB_STEP_SUMMARY" in script and "Skipped" in script
    condition = f"steps.{gate['id']}.outputs.configured == 'true'"
    assert all(step.get("if") == condition for step in rest), "a step runs without Azure login"
    logins = [s for s in rest if str(s.get("uses", "")).startswith("azure/login@")]
    assert len(logins) == 1 and set(logins[0]["with"]) == {
        "client-id",
        "tenant-id",
        "subscription-id",
    }
    scripts = "\n".join(_commands(step) for step in rest)
    assert "az bicep build --file infra/main.bicep" in scripts
    assert "az deployment group what-if" in scripts
    assert "az deployment group create" not in scripts


def test_azure_pipelines_validates_pull_requests_or_says_why_not() -> None:
    stages = {stage["stage"]: stage for stage in load_yaml(AZURE_PIPELINES)["stages"]}
    validate = stages["Validate"]
    assert "eq(variables['Build.Reason'], 'PullRequest')" in validate["condition"]
    branches = {key: jobs for item in validate["jobs"] for key, jobs in item.items()}
    configured = branches["${{ if ne(variables.validationServiceConnection, '') }}"]
    skipped = branches["${{ else }}"]
    scripts = "\n".join(_commands(step) for step in steps(configured))
    assert "az bicep build --file infra/main.bicep" in scripts
    assert "az deployment group what-if" in scripts
    assert "az deployment group create" not in scripts
    assert "Skipped" in "\n".join(_commands(step) for step in steps(skipped))


def _main_bicep_parameters() -> dict[str, Any]:
    tree = parse_bicep(MAIN_BICEP)[MAIN_BICEP.as_posix()]
    parameters: dict[str, Any] = tree["parameters"]
    return parameters


def _passed_parameters(path: Path) -> set[str]:
    """Names of the template parameters a pipeline passes (key=value after `parameters`)."""
    names: set[str] = set()
    for step in steps(load_yaml(path)):
        inputs = {**step.get("with", {}), **step.get("inputs", {})}
        if isinstance(inputs.get("parameters"), str):
            names.update(PARAMETER.findall(inputs["parameters"]))
        script = str(inputs.get("inlineScript", "")) + str(step.get("run", ""))
        for block in re.findall(r"--parameters\s+(.*?)(?:\s--(?!parameters)\w|\Z)", script, re.S):
            names.update(PARAMETER.findall(block))
    return names


@pytest.fixture(scope="module")
def main_parameters() -> dict[str, Any]:
    return _main_bicep_parameters()


@pytest.mark.parametrize(
    "path",
    [DEPLOY_WORKFLOW, VALIDATE_WORKFLOW, AZURE_PIPELINES],
    ids=lambda p: p.name,
)
def test_pipelines_pass_known_and_required_parameters(
    path: Path, main_parameters: dict[str, Any]
) -> None:
    passed = _passed_parameters(path)
    assert passed, f"{path.name} passes no parameters to infra/main.bicep"
    unknown = passed - set(main_parameters)
    assert not unknown, f"{path.name} passes parameters main.bicep does not declare: {unknown}"
    required = {name for name, spec in main_parameters.items() if spec.get("default") is None}
    assert required <= passed, f"{path.name} does not pass {required - passed}"


def test_azd_files_match_the_templates(main_parameters: dict[str, Any]) -> None:
    azure_yaml = load_yaml(ROOT / "azure.yaml")
    infra = azure_yaml["infra"]
    assert (ROOT / infra["path"] / f"{infra.get('module', 'main')}.bicep").exists()
    api = azure_yaml["services"]["api"]
    assert (api["project"], api["language"], api["host"]) == (".", "python", "function")
    assert (ROOT / api["project"] / "host.json").exists()

    parameters_file = ROOT / infra["path"] / f"{infra.get('module', 'main')}.parameters.json"
    passed = set(json.loads(parameters_file.read_text(encoding="utf-8"))["parameters"])
    assert passed <= set(main_parameters), passed - set(main_parameters)
    required = {name for name, spec in main_parameters.items() if spec.get("default") is None}
    assert required <= passed, f"main.parameters.json does not set {required - passed}"
