"""The function app's storage account: the tables and queue that hold events, subscriptions and
deliveries, reached through the Functions host's own connection setting ``AzureWebJobsStorage``.

The setting takes the host's real forms:

- a connection string (``DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...``, with
  optional ``TableEndpoint``/``QueueEndpoint``/``EndpointSuffix``/``SharedAccessSignature``), which
  is also how Azurite is addressed locally; ``UseDevelopmentStorage=true`` is Azurite on its default
  ports;
- identity-based: ``AzureWebJobsStorage__accountName`` (or ``__tableServiceUri`` and
  ``__queueServiceUri``), with ``__credential=managedidentity`` and ``__clientId`` for a
  user-assigned identity.

Clients are built lazily (never at import) and once per process; every call has timeouts and
the SDK's own retries, short enough for a webhook that must answer quickly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

from partnercenter import ConfigurationError, PartnerCenterError

from .logs import register_secret

# The Azure SDKs cost ~300 ms to import: they load on first use, not with the app (cold start).
if TYPE_CHECKING:
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential
    from azure.data.tables import TableClient, TableServiceClient
    from azure.storage.queue import QueueClient, QueueServiceClient

    Credential: TypeAlias = AzureNamedKeyCredential | AzureSasCredential | TokenCredential

logger = logging.getLogger("gateway.storage")

#: The Functions host's storage connection setting (also the queue trigger's ``connection``).
STORAGE_SETTING = "AzureWebJobsStorage"

EVENTS_TABLE = "events"
SUBSCRIPTIONS_TABLE = "subscriptions"
DELIVERIES_TABLE = "deliveries"
DELIVERY_QUEUE = "event-deliveries"
TABLES: tuple[str, ...] = (EVENTS_TABLE, SUBSCRIPTIONS_TABLE, DELIVERIES_TABLE)
QUEUES: tuple[str, ...] = (DELIVERY_QUEUE,)

#: Azurite's well-known development account (published in Azurite's README; not a secret).
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEV_TABLE_PORT = 10002
DEV_QUEUE_PORT = 10001

#: Seconds to open a connection and to wait for an answer, per attempt.
CONNECTION_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
#: Retries after the first attempt, and the back-off between them: a failing call gives up within
#: a few seconds, so a caller (Partner Center's delivery, a flow) gets its 5xx well before its
#: timeout.
RETRY_TOTAL = 3
RETRY_BACKOFF_FACTOR = 0.5


class StorageUnavailableError(PartnerCenterError):
    """The storage account could not be reached or refused a call; nothing was acknowledged."""

    remedy = "Try again later."

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503)


@dataclass(frozen=True)
class StorageTarget:
    """Where the tables and queues are, and the credential to reach them with."""

    table_endpoint: str
    queue_endpoint: str
    credential: Credential
    #: How the setting was given (``connection-string``, ``development``, ``identity``): for logs.
    form: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StorageTarget:
        """Read ``AzureWebJobsStorage`` (in any of its forms) from the environment."""
        env = os.environ if environ is None else environ
        connection_string = env.get(STORAGE_SETTING, "").strip()
        if connection_string:
            return cls.from_connection_string(connection_string)
        prefix = STORAGE_SETTING + "__"
        identity = {
            name[len(prefix) :].lower(): value.strip()
            for name, value in env.items()
            if name.startswith(prefix) and value.strip()
        }
        if identity:
            return cls.from_identity_settings(identity)
        raise ConfigurationError(
            f"{STORAGE_SETTING} is required: a connection string, or "
            f"{STORAGE_SETTING}__accountName with a managed identity.",
            setting=STORAGE_SETTING,
        )

    @classmethod
    def from_connection_string(cls, value: str) -> StorageTarget:
        """A target from a storage connection string (keys are case-insensitive, as in Azure)."""
        from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential  # noqa: PLC0415

        parts = _parse_connection_string(value)
        if parts.get("usedevelopmentstorage", "").lower() == "true":
            proxy = parts.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
            return cls(
                table_endpoint=f"{proxy}:{DEV_TABLE_PORT}/{DEV_ACCOUNT_NAME}",
                queue_endpoint=f"{proxy}:{DEV_QUEUE_PORT}/{DEV_ACCOUNT_NAME}",
                credential=AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY),
                form="development",
            )
        account = parts.get("accountname", "")
        protocol = parts.get("defaultendpointsprotocol", "https").lower()
        suffix = parts.get("endpointsuffix", "core.windows.net")
        endpoints = {}
        for service in ("table", "queue"):
            explicit = parts.get(f"{service}endpoint", "")
            if explicit:
                endpoints[service] = _endpoint(explicit, f"{service.capitalize()}Endpoint")
            elif account:
                endpoints[service] = f"{protocol}://{account}.{service}.{suffix}"
            else:
                raise ConfigurationError(
                    f"{STORAGE_SETTING} has neither AccountName nor "
                    f"{service.capitalize()}Endpoint.",
                    setting=STORAGE_SETTING,
                )
        credential: Credential
        if parts.get("accountkey"):
            if not account:
                raise ConfigurationError(
                    f"{STORAGE_SETTING} has an AccountKey but no AccountName.",
                    setting=STORAGE_SETTING,
                )
            credential = AzureNamedKeyCredential(account, parts["accountkey"])
            register_secret(parts["accountkey"])
        elif parts.get("sharedaccesssignature"):
            credential = AzureSasCredential(parts["sharedaccesssignature"].lstrip("?"))
            register_secret(credential.signature)
        else:
            raise ConfigurationError(
                f"{STORAGE_SETTING} has neither AccountKey nor SharedAccessSignature.",
                setting=STORAGE_SETTING,
            )
        return cls(endpoints["table"], endpoints["queue"], credential, "connection-string")

    @classmethod
    def from_identity_settings(cls, settings: Mapping[str, str]) -> StorageTarget:
        """A target from the ``AzureWebJobsStorage__*`` settings (keys lower-cased, no prefix)."""
        account = settings.get("accountname", "")
        endpoints = {}
        for service in ("table", "queue"):
            explicit = settings.get(f"{service}serviceuri", "")
            if explicit:
                endpoints[service] = _endpoint(explicit, f"{STORAGE_SETTING}__{service}ServiceUri")
            elif account:
                endpoints[service] = f"https://{account}.{service}.core.windows.net"
            else:
                raise ConfigurationError(
                    f"{STORAGE_SETTING}__accountName (or __{service}ServiceUri) is required for "
                    "identity-based storage.",
                    setting=f"{STORAGE_SETTING}__accountName",
                )
        return cls(
            endpoints["table"], endpoints["queue"], identity_credential(settings), "identity"
        )


def identity_credential(settings: Mapping[str, str]) -> TokenCredential:
    """The credential the Functions host would use for ``AzureWebJobsStorage__*``.

    ``__credential=managedidentity`` is the app's managed identity (``__clientId`` names a
    user-assigned one); without it, the default chain (environment, workload and managed
    identity, developer sign-ins). Neither does any network I/O until a token is needed.
    """
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential  # noqa: PLC0415

    client_id = settings.get("clientid") or None
    kind = settings.get("credential", "").lower()
    if kind == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id)
    if kind:
        raise ConfigurationError(
            f"{STORAGE_SETTING}__credential must be 'managedidentity' (got {kind!r}).",
            setting=f"{STORAGE_SETTING}__credential",
        )
    return DefaultAzureCredential(managed_identity_client_id=client_id)


class StorageClients:
    """Table and queue clients of one storage account, built on first use and cached per name.

    The SDK's clients are thread-safe and pool their connections: one per table or queue for the
    whole process.
    """

    def __init__(self, target: StorageTarget) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._tables: dict[str, TableClient] = {}
        self._queues: dict[str, QueueClient] = {}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StorageClients:
        """Clients for the account ``AzureWebJobsStorage`` names."""
        return cls(StorageTarget.from_environ(environ))

    def table(self, name: str) -> TableClient:
        """The client of table ``name``."""
        from azure.data.tables import TableClient  # noqa: PLC0415

        with self._lock:
            client = self._tables.get(name)
            if client is None:
                client = TableClient(
                    endpoint=self.target.table_endpoint,
                    table_name=name,
                    credential=self.target.credential,
                    **_table_options(self.target.table_endpoint),
                )
                self._tables[name] = client
            return client

    def queue(self, name: str) -> QueueClient:
        """The client of queue ``name``; messages are base64 text, as the queue trigger reads."""
        from azure.storage.queue import (  # noqa: PLC0415
            BinaryBase64DecodePolicy,
            QueueClient,
            TextBase64EncodePolicy,
        )

        with self._lock:
            client = self._queues.get(name)
            if client is None:
                client = QueueClient(
                    account_url=self.target.queue_endpoint,
                    queue_name=name,
                    credential=self.target.credential,
                    message_encode_policy=TextBase64EncodePolicy(),
                    message_decode_policy=BinaryBase64DecodePolicy(),
                    **_queue_options(self.target.queue_endpoint),
                )
                self._queues[name] = client
            return client

    def table_service(self) -> TableServiceClient:
        """A client of the account's table service (to create tables)."""
        from azure.data.tables import TableServiceClient  # noqa: PLC0415

        return TableServiceClient(
            endpoint=self.target.table_endpoint,
            credential=self.target.credential,
            **_table_options(self.target.table_endpoint),
        )

    def queue_service(self) -> QueueServiceClient:
        """A client of the account's queue service (to create queues)."""
        from azure.storage.queue import QueueServiceClient  # noqa: PLC0415

        return QueueServiceClient(
            account_url=self.target.queue_endpoint,
            credential=self.target.credential,
            **_queue_options(self.target.queue_endpoint),
        )

    def close(self) -> None:
        """Close every client's connection pool."""
        with self._lock:
            clients: list[TableClient | QueueClient] = [
                *self._tables.values(),
                *self._queues.values(),
            ]
            self._tables.clear()
            self._queues.clear()
        for client in clients:
            client.close()


def _environment_options(endpoint: str) -> dict[str, Any]:
    """The proxy and CA bundle the environment gives for ``endpoint``, read once per client.

    Left to itself, the SDK's ``requests`` session reads them from the environment again on
    every call (``trust_env``): about a sixth of a storage call's CPU here, for an answer that
    never changes while the process runs. The same variables are honoured, as ``requests``
    reads them (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, then
    ``CURL_CA_BUNDLE``).
    """
    from requests.utils import get_environ_proxies  # noqa: PLC0415

    options: dict[str, Any] = {"use_env_settings": False}
    proxies = get_environ_proxies(endpoint)
    if proxies:
        options["proxies"] = proxies
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


def _table_options(endpoint: str) -> dict[str, Any]:
    return {
        **_environment_options(endpoint),
        # The SDK logs every request and response at INFO: a line per storage call is noise.
        "http_logging_level": logging.DEBUG,
        "connection_timeout": CONNECTION_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retry_total": RETRY_TOTAL,
        "retry_backoff_factor": RETRY_BACKOFF_FACTOR,
        "retry_backoff_max": 4,
    }


def _queue_options(endpoint: str) -> dict[str, Any]:
    from azure.storage.queue import LinearRetry  # noqa: PLC0415

    # The storage SDK's default (exponential from 15 s, jitter of 3 s) waits about a minute before
    # giving up: far too long for a webhook that must answer quickly. Its exponential policy adds
    # ``increment_base ** n`` seconds whatever the initial back-off, so a short linear one it is.
    return {
        **_environment_options(endpoint),
        "http_logging_level": logging.DEBUG,
        "connection_timeout": CONNECTION_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retry_policy": LinearRetry(backoff=1, random_jitter_range=1, retry_total=RETRY_TOTAL),
    }


def ensure_storage(clients: StorageClients) -> None:
    """Create the tables and queues the gateway uses, where missing (Azure: the Bicep does)."""
    from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415

    with storage_errors("create the tables and queues"):
        with contextlib.closing(clients.table_service()) as tables:
            for name in TABLES:
                tables.create_table_if_not_exists(name)
        with contextlib.closing(clients.queue_service()) as queues:
            for name in QUEUES:
                with contextlib.suppress(ResourceExistsError):
                    queues.create_queue(name)


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn the storage SDK's failures inside into :class:`StorageUnavailableError`."""
    from azure.core.exceptions import AzureError  # noqa: PLC0415

    try:
        yield
    except AzureError as err:
        status = getattr(err, "status_code", None)
        logger.warning(
            "storage: could not %s (%s%s)",
            action,
            type(err).__name__,
            f", status {status}" if status else "",
        )
        raise StorageUnavailableError(f"Storage is unavailable: could not {action}.") from err


_lock = threading.Lock()
_clients: StorageClients | None = None


def storage_clients() -> StorageClients:
    """The process-wide clients, built from the environment on first use.

    Raises :class:`partnercenter.ConfigurationError` (naming the setting) while
    ``AzureWebJobsStorage`` is missing or wrong; a later call reads the environment again.
    """
    global _clients  # noqa: PLW0603 - the one process-wide instance
    clients = _clients
    if clients is not None:
        return clients
    with _lock:
        if _clients is None:
            _clients = StorageClients.from_environ()
            logger.info("storage: %s form of %s", _clients.target.form, STORAGE_SETTING)
        return _clients


def set_storage_clients(clients: StorageClients | None) -> None:
    """Replace the process-wide clients (the local host and tests use this); closes the old."""
    global _clients
    with _lock:
        old, _clients = _clients, clients
    if old is not None and old is not clients:
        old.close()


def _parse_connection_string(value: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for segment in value.split(";"):
        if not segment.strip():
            continue
        key, sep, item = segment.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                f"{STORAGE_SETTING} is not a connection string (Key=Value;...).",
                setting=STORAGE_SETTING,
            )
        parts[key.strip().lower()] = item.strip()
    return parts


def _endpoint(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(f"{name} must be an http(s) URL.", setting=STORAGE_SETTING)
    return value.rstrip("/")


__all__ = [
    "DELIVERIES_TABLE",
    "DELIVERY_QUEUE",
    "EVENTS_TABLE",
    "QUEUES",
    "STORAGE_SETTING",
    "SUBSCRIPTIONS_TABLE",
    "TABLES",
    "StorageClients",
    "StorageTarget",
    "StorageUnavailableError",
    "ensure_storage",
    "set_storage_clients",
    "storage_clients",
    "storage_errors",
]
