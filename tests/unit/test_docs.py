"""The README stays true: every setting the service reads is documented."""

from __future__ import annotations

import json

from partnercenter import SETTINGS

from ..conftest import repo_root


def test_every_setting_is_in_the_readme() -> None:
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    missing = [spec.name for spec in SETTINGS if f"`{spec.name}`" not in readme]
    assert missing == []


def test_local_settings_template_names_only_real_settings() -> None:
    template = json.loads((repo_root() / "local.settings.json.example").read_text())
    platform = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
    names = {spec.name for spec in SETTINGS}
    assert set(template["Values"]) - platform <= names
