"""The Bicep templates set exactly the settings the service reads, plus what the platform needs.

The list of settings comes from the code (`partnercenter._config.SETTINGS`); the templates are read
with pycep-parser 0.7.1, which lives in its own venv (`make lint-infra` creates `.venv-pycep`), so
it runs as a subprocess that prints the parsed templates as JSON.

The app settings are found wherever the templates define them: `siteConfig.appSettings` of a
`Microsoft.Web/sites` resource (a list of `{name, value}`, or a `for` loop over `items(object)`)
or a `Microsoft.Web/sites/config` resource named `appsettings`. Variables, `union()` and `?:` are
followed; anything else fails the test rather than being silently skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from partnercenter._config import CREDENTIAL_SETTINGS, KEY_VAULT_REFERENCE, SETTING_NAMES, SETTINGS
from tests.infra.templates import INFRA, parse_bicep

#: Settings the templates may set that the service does not read: each is for the platform.
PLATFORM_SETTINGS = frozenset(
    {
        # Identity-based host storage: the account, and the user-assigned identity that reaches it.
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        # Application Insights: where telemetry goes, and the Entra ID auth it needs (local auth
        # is disabled on the component).
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        # The Python worker's OpenTelemetry switch (azure-functions-python-worker constants.py).
        "PYTHON_ENABLE_OPENTELEMETRY",
    }
)

#: The service requires exactly one of these (Settings.from_environ); the templates must never
#: set two at once, so each has to sit in its own branch of the same condition.


@dataclass(frozen=True)
class AppSetting:
    """One app setting as a template sets it."""

    name: str
    value: Any
    file: str
    #: The conditions it sits under: (id of the `?:` node, branch taken) from outermost inwards.
    branches: tuple[tuple[int, bool], ...] = ()

    def excludes(self, other: AppSetting) -> bool:
        """Whether the two can never be set together (opposite branches of one condition)."""
        mine = dict(self.branches)
        return any(mine.get(node, taken) != taken for node, taken in other.branches)


class UnreadableSettingsError(AssertionError):
    """The templates build app settings in a way this test cannot follow."""


class _SettingsReader:
    """Follows one template's expressions down to the app settings' names and values."""

    def __init__(self, file: str, tree: dict[str, Any]) -> None:
        self.file = file
        self.variables: dict[str, Any] = tree.get("variables") or {}
        self.parameters: dict[str, Any] = tree.get("parameters") or {}

    def from_object(
        self, node: Any, branches: tuple[tuple[int, bool], ...] = ()
    ) -> Iterator[AppSetting]:
        """Settings of an expression that evaluates to an object {NAME: value}."""
        if isinstance(node, str):
            if node in self.variables:
                yield from self.from_object(self.variables[node]["value"], branches)
                return
            if node in self.parameters:
                raise self._unreadable(
                    f"they come from the parameter {node!r}, whose keys it can't see"
                )
            raise self._unreadable(f"{node!r} is not a variable of this file")
        if not isinstance(node, dict):
            raise self._unreadable(f"unexpected {type(node).__name__} {node!r}")
        if set(node) == {"function"}:
            function = node["function"]
            if function["type"] != "union":
                raise self._unreadable(f"function {function['type']}() is not followed")
            for argument in function["parameters"].values():
                yield from self.from_object(argument, branches)
            return
        if set(node) == {"operator"}:
            operator = node["operator"]
            if operator["type"] != "conditional":
                raise self._unreadable(f"operator {operator['type']} is not followed")
            key = id(operator)
            operands = operator["operands"]
            yield from self.from_object(operands["true_value"], (*branches, (key, True)))
            yield from self.from_object(operands["false_value"], (*branches, (key, False)))
            return
        for name, value in node.items():
            yield AppSetting(name, value, self.file, branches)

    def from_array(self, node: Any) -> Iterator[AppSetting]:
        """Settings of `siteConfig.appSettings`: [{name, value}] or a loop over items(object)."""
        if isinstance(node, list):
            for item in node:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise self._unreadable(f"app setting without a literal name: {item!r}")
                yield AppSetting(item["name"], item.get("value"), self.file)
            return
        if isinstance(node, dict) and "loop_type" in node:
            source = node["loop_type"]["detail"]["array_name"]
            function = source.get("function", {}) if isinstance(source, dict) else {}
            if function.get("type") != "items" or node.get("condition") is not None:
                raise self._unreadable("only `[for s in items(object): {name, value}]` is followed")
            yield from self.from_object(function["parameters"]["arg_1"])
            return
        raise self._unreadable(f"appSettings is neither a list nor a loop: {node!r}")

    def _unreadable(self, detail: str) -> UnreadableSettingsError:
        return UnreadableSettingsError(f"{self.file}: cannot read the app settings: {detail}")


def app_settings(trees: dict[str, Any]) -> list[AppSetting]:
    """Every app setting any of the parsed templates sets."""
    found: list[AppSetting] = []
    for file, tree in trees.items():
        reader = _SettingsReader(file, tree)
        for resource in (tree.get("resources") or {}).values():
            config = resource["config"]
            if "condition" in config and "config" in config:  # `resource x '...' = if (...) {}`
                config = config["config"]
            if resource["type"].lower() == "microsoft.web/sites":
                site_config = (config.get("properties") or {}).get("siteConfig") or {}
                if "appSettings" in site_config:
                    found.extend(reader.from_array(site_config["appSettings"]))
            elif resource["type"].lower() == "microsoft.web/sites/config" and str(
                config.get("name", "")
            ).lower().endswith("appsettings"):
                found.extend(reader.from_object(config["properties"]))
    return found


def contract_violations(settings: list[AppSetting]) -> list[str]:
    """What is wrong between the templates' app settings and the service's SETTINGS."""
    problems: list[str] = []
    names = {setting.name for setting in settings}
    if not settings:
        return ["the templates set no app settings at all"]
    for spec in SETTINGS:
        if spec.deployed and spec.name not in names:
            problems.append(f"{spec.name} (deployed=True in SETTINGS) is not set by the templates")
        if not spec.deployed and spec.name in names:
            problems.append(f"{spec.name} has deployed=False in SETTINGS but the templates set it")
    allowed = SETTING_NAMES | PLATFORM_SETTINGS
    problems.extend(
        f"{name} is set by the templates but is neither in SETTINGS nor a known platform setting"
        for name in sorted(names - allowed)
    )
    secrets = {spec.name for spec in SETTINGS if spec.secret and spec.deployed}
    for setting in settings:
        if setting.name in secrets and not (
            isinstance(setting.value, str) and setting.value.startswith(KEY_VAULT_REFERENCE)
        ):
            problems.append(f"{setting.name} is secret but its value is not a Key Vault reference")
    credentials = [setting for setting in settings if setting.name in CREDENTIAL_SETTINGS]
    for first, second in itertools.combinations(credentials, 2):
        if not first.excludes(second):
            problems.append(
                f"{first.name} and {second.name} can be set together; the service requires "
                "exactly one client credential (set each in its own branch of one condition)"
            )
    return problems


@pytest.fixture(scope="module")
def templates() -> dict[str, Any]:
    """All templates under infra/, parsed once."""
    return parse_bicep(INFRA)


def test_templates_set_exactly_the_deployed_settings(templates: dict[str, Any]) -> None:
    assert contract_violations(app_settings(templates)) == []


def test_each_setting_is_set_once_per_branch(templates: dict[str, Any]) -> None:
    settings = app_settings(templates)
    for first, second in itertools.combinations(settings, 2):
        assert first.name != second.name or first.excludes(second), (
            f"{first.name} is set twice ({first.file}, {second.file}); the later one wins silently"
        )


def test_the_credential_is_chosen_by_a_condition(templates: dict[str, Any]) -> None:
    settings = app_settings(templates)
    credentials = {s.name for s in settings if s.name in CREDENTIAL_SETTINGS}
    assert {"AZURE_CLIENT_SECRET", "AZURE_FEDERATED_IDENTITY_CLIENT_ID"} <= credentials


def _template_without_line(source: Path, setting: str, tmp_path: Path) -> Path:
    """A copy of `source` with the (only) line that sets `setting` removed."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith(f"{setting}:")]
    assert len(kept) == len(lines) - 1, f"expected one line setting {setting} in {source}"
    copy = tmp_path / source.name
    copy.write_text("".join(kept), encoding="utf-8")
    return copy


def test_a_setting_missing_from_the_templates_is_reported(
    templates: dict[str, Any], tmp_path: Path
) -> None:
    """The check itself works: delete one deployed setting's line and it must be named."""
    setting = next(spec.name for spec in SETTINGS if spec.deployed and not spec.secret)
    source = next(
        Path(file) for file in templates if f"{setting}:" in Path(file).read_text(encoding="utf-8")
    )
    damaged = parse_bicep(_template_without_line(source, setting, tmp_path))
    others = {file: tree for file, tree in templates.items() if Path(file) != source}
    problems = contract_violations(app_settings({**others, **damaged}))
    assert any(problem.startswith(f"{setting} ") for problem in problems), problems
