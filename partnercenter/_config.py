"""Configuration: every setting the service reads, read and validated once into one typed object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ._errors import ConfigurationError
from ._ids import is_guid
from ._webhooks import DEFAULT_CERTIFICATE_HOSTS, normalise_host

DEFAULT_API_URL = "https://api.partnercenter.microsoft.com"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_SCOPE = "https://api.partnercenter.microsoft.com/user_impersonation"
DEFAULT_REFRESH_TOKEN_SECRET = "partner-center-refresh-token"  # noqa: S105 - a secret's name
#: NCRONTAB (seconds first): every day at 03:00 UTC.
DEFAULT_ROTATION_SCHEDULE = "0 0 3 * * *"
#: Where Power Automate and Logic Apps put trigger callback URLs:
#: ``prod-NN.<region>.logic.azure.com`` and ``<environment>.NN.environment.api.powerplatform.com``.
DEFAULT_EVENT_CALLBACK_HOSTS = ".logic.azure.com,.environment.api.powerplatform.com"
#: A host name, or ``.suffix`` / ``*.suffix``; international names pass (the gateway checks fully).
_CALLBACK_HOST = r"^(\*?\.)?[^\W_]([\w.-]*[^\W_])?\.?$"


@dataclass(frozen=True)
class SettingSpec:
    """One environment setting: its name, whether it is secret, and whether the templates set it."""

    name: str
    description: str
    default: str | None = None
    secret: bool = False
    #: False for alternatives the Azure templates do not use (e.g. a certificate file path).
    deployed: bool = True


#: Every setting the service reads, in one place. The infrastructure templates, the README and the
#: health endpoint are checked against this list.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("PARTNER_CENTER_API_URL", "Partner Center REST base URL.", DEFAULT_API_URL),
    SettingSpec(
        "PARTNER_CENTER_SCOPE",
        "Delegated scope requested for Partner Center tokens (change for other clouds).",
        DEFAULT_SCOPE,
    ),
    SettingSpec(
        "AZURE_AUTHORITY_HOST", "Entra ID authority host (any https host).", DEFAULT_AUTHORITY_HOST
    ),
    SettingSpec("AZURE_TENANT_ID", "The partner's Entra tenant id (GUID)."),
    SettingSpec("AZURE_CLIENT_ID", "The gateway's app registration (client) id (GUID)."),
    SettingSpec("AZURE_CLIENT_SECRET", "Client secret of the app registration.", secret=True),
    SettingSpec(
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "PEM file holding the app's certificate and private key (instead of a secret).",
        deployed=False,
    ),
    SettingSpec(
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "Password of the certificate's private key, if it has one.",
        secret=True,
        deployed=False,
    ),
    SettingSpec(
        "AZURE_FEDERATED_IDENTITY_CLIENT_ID",
        "Client id of a user-assigned managed identity whose token is the app's federated "
        "credential (no secret at all).",
    ),
    SettingSpec(
        "PARTNER_CENTER_REFRESH_TOKEN",
        "Refresh token of the consented service user (Secure Application Model), for callers "
        "that have no user.",
        secret=True,
        # Deployed apps read the token from Key Vault (KEY_VAULT_URL); this is for local use.
        deployed=False,
    ),
    SettingSpec(
        "KEY_VAULT_URL",
        "Key Vault holding the service user's refresh token (read, and rotated, there); takes "
        "precedence over PARTNER_CENTER_REFRESH_TOKEN.",
    ),
    SettingSpec(
        "PARTNER_CENTER_REFRESH_TOKEN_SECRET",
        "Name of the Key Vault secret holding the service user's refresh token.",
        DEFAULT_REFRESH_TOKEN_SECRET,
    ),
    SettingSpec(
        "CONSENT_ROTATION_SCHEDULE",
        "NCRONTAB schedule (six fields, seconds first, UTC) of the refresh-token rotation.",
        DEFAULT_ROTATION_SCHEDULE,
    ),
    SettingSpec("PARTNER_CENTER_LOCALE", "X-Locale sent to Partner Center.", "en-US"),
    SettingSpec(
        "PARTNER_CENTER_APPLICATION_NAME",
        "MS-PartnerCenter-Application header value.",
        "PartnerCenterGateway",
    ),
    SettingSpec(
        "PARTNER_CENTER_DEADLINE_SECONDS",
        "Time budget of one call, retries and token exchange included (Power Automate gives up "
        "at 120 s).",
        "60",
    ),
    SettingSpec("PARTNER_CENTER_MAX_ATTEMPTS", "Attempts per call, the first one included.", "5"),
    SettingSpec(
        "TOKEN_CACHE_MAX_USERS",
        "Partner Center tokens cached (one per caller token, plus the service user's).",
        "10000",
    ),
    SettingSpec(
        "RELATIONSHIP_REQUEST_CACHE_SECONDS",
        "How long a partner's relationship request URL is cached (0 turns the cache off).",
        "3600",
    ),
    SettingSpec(
        "ALLOWED_CLIENT_APP_IDS",
        "Comma-separated client (application) ids allowed to call the gateway, checked against "
        "the token's azp (v2) or appid (v1); empty means any app of the tenant.",
        "",
    ),
    SettingSpec(
        "EVENT_CALLBACK_HOSTS",
        "Hosts event subscription callbacks may be on, comma-separated; `.suffix` allows any host "
        "under it (default: the Power Automate and Logic Apps callback hosts).",
        DEFAULT_EVENT_CALLBACK_HOSTS,
    ),
    SettingSpec(
        "WEBHOOK_CERTIFICATE_HOSTS",
        "Hosts (comma-separated, host or host:port) that may serve the certificate a Partner "
        "Center webhook delivery is signed with.",
        ",".join(DEFAULT_CERTIFICATE_HOSTS),
    ),
    SettingSpec(
        "PYTHON_THREADPOOL_THREAD_COUNT",
        "Functions worker threads (platform setting); sizes the connection pool.",
        "",
    ),
)

SETTING_NAMES: frozenset[str] = frozenset(spec.name for spec in SETTINGS)

#: The client credential settings, of which exactly one must be set.
CREDENTIAL_SETTINGS: tuple[str, ...] = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_IDENTITY_CLIENT_ID",
)

#: What an app setting holds when the platform could not resolve its Key Vault reference.
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("
#: Secrets the service can run without: an unresolved reference disables only what needs them.
OPTIONAL_SECRETS = frozenset({"PARTNER_CENTER_REFRESH_TOKEN"})


class CredentialKind(StrEnum):
    """How the app registration proves its identity to Entra ID."""

    SECRET = "secret"  # noqa: S105 - a kind of credential, not one
    CERTIFICATE = "certificate"
    FEDERATED = "federated"


Guid = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")]


class Settings(BaseModel):
    """The validated configuration of the Partner Center client."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partner_center_api_url: str = DEFAULT_API_URL
    partner_center_scope: str = DEFAULT_SCOPE
    azure_authority_host: str = DEFAULT_AUTHORITY_HOST
    azure_tenant_id: Guid
    azure_client_id: Guid
    azure_client_secret: SecretStr | None = None
    azure_client_certificate_path: Path | None = None
    azure_client_certificate_password: SecretStr | None = None
    azure_federated_identity_client_id: Guid | None = None
    partner_center_refresh_token: SecretStr | None = None
    key_vault_url: str | None = None
    partner_center_refresh_token_secret: str = Field(
        default=DEFAULT_REFRESH_TOKEN_SECRET, pattern=r"^[0-9A-Za-z-]{1,127}$"
    )
    consent_rotation_schedule: str = Field(
        default=DEFAULT_ROTATION_SCHEDULE, pattern=r"^\s*\S+(\s+\S+){5}\s*$"
    )
    partner_center_locale: str = Field(
        default="en-US", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
    )
    partner_center_application_name: str = Field(
        default="PartnerCenterGateway", min_length=1, max_length=100, pattern=r"^[\x21-\x7e ]+$"
    )
    partner_center_deadline_seconds: float = Field(default=60.0, gt=0, le=115)
    partner_center_max_attempts: int = Field(default=5, ge=1, le=10)
    token_cache_max_users: int = Field(default=10000, ge=1, le=10_000_000)
    relationship_request_cache_seconds: float = Field(default=3600.0, ge=0)
    event_callback_hosts: tuple[str, ...] = tuple(DEFAULT_EVENT_CALLBACK_HOSTS.split(","))
    webhook_certificate_hosts: tuple[str, ...] = Field(
        default=DEFAULT_CERTIFICATE_HOSTS, min_length=1
    )
    python_threadpool_thread_count: int | None = Field(default=None, ge=1, le=1000)
    #: Client apps whose tokens are accepted (lower-case GUIDs); empty: any app of the tenant.
    allowed_client_app_ids: frozenset[str] = frozenset()
    #: Optional secret settings whose Key Vault reference the platform could not resolve; they
    #: are treated as unset, and said so where they are needed.
    unresolved_references: tuple[str, ...] = ()

    @field_validator("partner_center_api_url", "azure_authority_host", "key_vault_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("event_callback_hosts", mode="before")
    @classmethod
    def _callback_hosts(cls, value: object) -> object:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return value
        hosts = tuple(str(item).strip().lower() for item in items if str(item).strip())
        if not hosts:
            raise ValueError("name at least one host")
        for host in hosts:
            if not re.fullmatch(_CALLBACK_HOST, host) or "@" in host or ":" in host:
                raise ValueError(f"{host!r} is not a host name or .suffix")
        return hosts

    @field_validator("partner_center_scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.path.strip("/"):
            raise ValueError("must be a scope URI such as https://host/user_impersonation")
        return value

    @field_validator("allowed_client_app_ids", mode="before")
    @classmethod
    def _client_app_ids(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        ids = [part.strip() for part in value.split(",") if part.strip()]
        bad = [part for part in ids if not is_guid(part)]
        if bad:
            raise ValueError(f"not a client id (GUID): {bad[0][:64]!r}")
        return frozenset(part.lower() for part in ids)

    @field_validator("webhook_certificate_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [entry for entry in value.split(",") if entry.strip()]
        if isinstance(value, list | tuple):
            return tuple(normalise_host(str(entry)) for entry in value)
        return value

    @field_validator("azure_client_certificate_path")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def credential_kind(self) -> CredentialKind:
        """Which client credential is configured (exactly one is)."""
        if self.azure_client_secret is not None:
            return CredentialKind.SECRET
        if self.azure_client_certificate_path is not None:
            return CredentialKind.CERTIFICATE
        return CredentialKind.FEDERATED

    @property
    def authority(self) -> str:
        """The tenant's authority URL as MSAL takes it."""
        return f"{self.azure_authority_host}/{self.azure_tenant_id}"

    @property
    def pool_size(self) -> int:
        """Connections kept per host: at least as many as the worker threads."""
        threads = self.python_threadpool_thread_count or min(32, (os.cpu_count() or 1) + 4)
        return max(32, threads)

    @property
    def upstream_urls(self) -> tuple[str, ...]:
        """The hosts the service calls: Partner Center, the authority (and the vault)."""
        urls = (self.partner_center_api_url, self.azure_authority_host)
        return (*urls, self.key_vault_url) if self.key_vault_url else urls

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment, failing with the name of any bad setting."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        unresolved: list[str] = []
        for spec in SETTINGS:
            raw = env.get(spec.name, "").strip()
            if raw.startswith(KEY_VAULT_REFERENCE) and spec.name in OPTIONAL_SECRETS:
                unresolved.append(spec.name)
                continue
            if raw.startswith(KEY_VAULT_REFERENCE):
                raise ConfigurationError(
                    f"{spec.name} is an unresolved Key Vault reference: set the secret in Key "
                    "Vault and let the app's managed identity read it (Key Vault Secrets User).",
                    setting=spec.name,
                )
            if raw:
                values[spec.name.lower()] = raw
        values["unresolved_references"] = tuple(unresolved)
        credentials = [name for name in CREDENTIAL_SETTINGS if name.lower() in values]
        if len(credentials) != 1:
            found = ", ".join(credentials) or "none"
            raise ConfigurationError(
                "Set exactly one client credential: AZURE_CLIENT_SECRET, "
                "AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_IDENTITY_CLIENT_ID "
                f"(found: {found}).",
                setting="AZURE_CLIENT_SECRET",
            )
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            first = err.errors()[0]
            name = str(first["loc"][0]).upper() if first["loc"] else "settings"
            if first["type"] == "missing":
                message = f"{name} is required."
            else:
                message = f"{name} is invalid: {first['msg']}."
            raise ConfigurationError(message, setting=name) from None


__all__ = [
    "CREDENTIAL_SETTINGS",
    "DEFAULT_EVENT_CALLBACK_HOSTS",
    "KEY_VAULT_REFERENCE",
    "SETTINGS",
    "SETTING_NAMES",
    "CredentialKind",
    "SettingSpec",
    "Settings",
]
