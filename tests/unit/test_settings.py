"""Configuration: read once, a bad or missing setting named in the error."""

from __future__ import annotations

import pytest

from partnercenter import SETTINGS, ConfigurationError, CredentialKind, Settings

TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT = "22222222-2222-2222-2222-222222222222"
BASE = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": "s3cret"}


def test_defaults() -> None:
    settings = Settings.from_environ(BASE)
    assert settings.partner_center_api_url == "https://api.partnercenter.microsoft.com"
    assert settings.azure_authority_host == "https://login.microsoftonline.com"
    assert settings.partner_center_locale == "en-US"
    assert settings.credential_kind is CredentialKind.SECRET
    assert settings.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert settings.partner_center_deadline_seconds < 120
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"AZURE_TENANT_ID": ""}, "AZURE_TENANT_ID"),
        ({"AZURE_CLIENT_ID": "not-a-guid"}, "AZURE_CLIENT_ID"),
        ({"AZURE_AUTHORITY_HOST": "http://login.example"}, "AZURE_AUTHORITY_HOST"),
        ({"PARTNER_CENTER_API_URL": "ftp://x"}, "PARTNER_CENTER_API_URL"),
        ({"PARTNER_CENTER_DEADLINE_SECONDS": "500"}, "PARTNER_CENTER_DEADLINE_SECONDS"),
        ({"TOKEN_CACHE_MAX_USERS": "0"}, "TOKEN_CACHE_MAX_USERS"),
        ({"PARTNER_CENTER_LOCALE": "en US\r\nX: y"}, "PARTNER_CENTER_LOCALE"),
        ({"AZURE_CLIENT_SECRET": ""}, "AZURE_CLIENT_SECRET"),
        (
            {"AZURE_CLIENT_CERTIFICATE_PATH": "/nonexistent.pem", "AZURE_CLIENT_SECRET": ""},
            "AZURE_CLIENT_CERTIFICATE_PATH",
        ),
        ({"AZURE_FEDERATED_IDENTITY_CLIENT_ID": CLIENT}, "AZURE_CLIENT_SECRET"),
    ],
)
def test_bad_settings_are_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_environ({**BASE, **change})
    assert caught.value.setting == named
    assert named in str(caught.value)


def test_federated_credential() -> None:
    env = {**BASE, "AZURE_CLIENT_SECRET": "", "AZURE_FEDERATED_IDENTITY_CLIENT_ID": CLIENT}
    assert Settings.from_environ(env).credential_kind is CredentialKind.FEDERATED


def test_every_setting_has_a_field() -> None:
    fields = set(Settings.model_fields) - {"unresolved_references"}
    assert {spec.name.lower() for spec in SETTINGS} == fields


REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/azure-client-secret/)"


def test_unresolved_key_vault_reference_of_a_needed_secret_is_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_environ({**BASE, "AZURE_CLIENT_SECRET": REFERENCE})
    assert caught.value.setting == "AZURE_CLIENT_SECRET"
    assert "Key Vault" in str(caught.value)


def test_unresolved_refresh_token_reference_disables_only_the_service_user() -> None:
    settings = Settings.from_environ({**BASE, "PARTNER_CENTER_REFRESH_TOKEN": REFERENCE})
    assert settings.partner_center_refresh_token is None
    assert settings.unresolved_references == ("PARTNER_CENTER_REFRESH_TOKEN",)
