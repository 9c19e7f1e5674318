"""gateway.storage: AzureWebJobsStorage in its real forms, and the clients against Azurite."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import ResourceExistsError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from gateway.storage import (
    DELIVERY_QUEUE,
    EVENTS_TABLE,
    QUEUES,
    TABLES,
    StorageClients,
    StorageTarget,
    StorageUnavailableError,
    ensure_storage,
    storage_clients,
    storage_errors,
)
from partnercenter import ConfigurationError
from simulator.azurite import Azurite

KEY = "a2V5"  # base64 "key": a stand-in account key


def test_connection_string_with_account_and_suffix() -> None:
    target = StorageTarget.from_environ(
        {
            "AzureWebJobsStorage": f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};"
            "EndpointSuffix=core.usgovcloudapi.net"
        }
    )
    assert target.table_endpoint == "https://acct.table.core.usgovcloudapi.net"
    assert target.queue_endpoint == "https://acct.queue.core.usgovcloudapi.net"
    assert isinstance(target.credential, AzureNamedKeyCredential)
    assert target.credential.named_key == ("acct", KEY)
    assert target.form == "connection-string"


def test_connection_string_keys_are_case_insensitive_and_default_to_azure_public() -> None:
    target = StorageTarget.from_connection_string(f"accountname=acct;ACCOUNTKEY={KEY};")
    assert target.table_endpoint == "https://acct.table.core.windows.net"
    assert target.queue_endpoint == "https://acct.queue.core.windows.net"


def test_account_key_keeps_its_padding() -> None:
    key = "Zm9vYmFy=="
    target = StorageTarget.from_connection_string(f"AccountName=acct;AccountKey={key}")
    assert isinstance(target.credential, AzureNamedKeyCredential)
    assert target.credential.named_key.key == key


def test_explicit_endpoints_win() -> None:
    target = StorageTarget.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
        "TableEndpoint=http://127.0.0.1:41000/devstoreaccount1/;"
        "QueueEndpoint=http://127.0.0.1:41001/devstoreaccount1"
    )
    assert target.table_endpoint == "http://127.0.0.1:41000/devstoreaccount1"
    assert target.queue_endpoint == "http://127.0.0.1:41001/devstoreaccount1"


def test_shared_access_signature() -> None:
    target = StorageTarget.from_connection_string(
        "TableEndpoint=https://acct.table.core.windows.net;"
        "QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=?sv=2024&sig=abc"
    )
    assert isinstance(target.credential, AzureSasCredential)
    assert target.credential.signature == "sv=2024&sig=abc"


def test_use_development_storage_is_azurite_on_its_default_ports() -> None:
    target = StorageTarget.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert target.table_endpoint == "http://127.0.0.1:10002/devstoreaccount1"
    assert target.queue_endpoint == "http://127.0.0.1:10001/devstoreaccount1"
    assert isinstance(target.credential, AzureNamedKeyCredential)
    assert target.credential.named_key.name == "devstoreaccount1"
    assert target.form == "development"


def test_identity_based_user_assigned_managed_identity() -> None:
    client_id = str(uuid.uuid4())
    target = StorageTarget.from_environ(
        {
            "AzureWebJobsStorage__accountName": "stgateway",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": client_id,
        }
    )
    assert target.table_endpoint == "https://stgateway.table.core.windows.net"
    assert target.queue_endpoint == "https://stgateway.queue.core.windows.net"
    assert isinstance(target.credential, ManagedIdentityCredential)
    assert target.form == "identity"


def test_identity_based_service_uris() -> None:
    target = StorageTarget.from_environ(
        {
            "AzureWebJobsStorage__tableServiceUri": "https://x.table.core.chinacloudapi.cn/",
            "AzureWebJobsStorage__queueServiceUri": "https://x.queue.core.chinacloudapi.cn",
            "AzureWebJobsStorage__credential": "managedidentity",
        }
    )
    assert target.table_endpoint == "https://x.table.core.chinacloudapi.cn"
    assert target.queue_endpoint == "https://x.queue.core.chinacloudapi.cn"


def test_identity_based_without_credential_uses_the_default_chain() -> None:
    target = StorageTarget.from_environ({"AzureWebJobsStorage__accountName": "stgateway"})
    assert isinstance(target.credential, DefaultAzureCredential)


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "not a connection string"}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "AccountName=acct"}, "AzureWebJobsStorage"),
        (
            {"AzureWebJobsStorage": f"AccountKey={KEY};TableEndpoint=https://t"},
            "AzureWebJobsStorage",
        ),
        (
            {"AzureWebJobsStorage": f"AccountName=a;AccountKey={KEY};TableEndpoint=ftp://x"},
            "AzureWebJobsStorage",
        ),
        (
            {"AzureWebJobsStorage__credential": "managedidentity"},
            "AzureWebJobsStorage__accountName",
        ),
        (
            {"AzureWebJobsStorage__accountName": "a", "AzureWebJobsStorage__credential": "secret"},
            "AzureWebJobsStorage__credential",
        ),
    ],
)
def test_bad_settings_name_the_setting(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        StorageTarget.from_environ(environ)
    assert caught.value.setting == setting
    assert KEY not in str(caught.value)


def test_clients_are_cached_per_name() -> None:
    clients = StorageClients.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    try:
        assert clients.table("events") is clients.table("events")
        assert clients.table("events") is not clients.table("deliveries")
        assert clients.queue("event-deliveries") is clients.queue("event-deliveries")
    finally:
        clients.close()


def test_ensure_storage_creates_the_tables_and_queue(azurite: Azurite) -> None:
    clients = storage_clients()
    ensure_storage(clients)  # a second time: idempotent
    with clients.table_service() as service:
        names = {table.name for table in service.list_tables()}
    assert set(TABLES) <= names
    with clients.queue_service() as service:
        queues = {queue.name for queue in service.list_queues()}
    assert set(QUEUES) <= queues


def test_table_round_trip(azurite: Azurite) -> None:
    table = storage_clients().table(EVENTS_TABLE)
    row = uuid.uuid4().hex
    table.create_entity({"PartitionKey": "test", "RowKey": row, "Enqueued": False})
    with pytest.raises(ResourceExistsError):
        table.create_entity({"PartitionKey": "test", "RowKey": row})
    assert table.get_entity("test", row)["Enqueued"] is False
    table.delete_entity("test", row)


def test_queue_messages_are_base64_text_as_the_queue_trigger_reads(azurite: Azurite) -> None:
    name = f"test-{uuid.uuid4().hex[:12]}"
    clients = storage_clients()
    with clients.queue_service() as service:
        service.create_queue(name)
    queue = clients.queue(name)
    queue.send_message(json.dumps({"eventId": "abc"}))
    # What the Functions host sees on the wire: base64 of the UTF-8 text.
    raw = clients.queue_service().get_queue_client(name).receive_message()
    assert raw is not None
    assert json.loads(base64.b64decode(raw.content)) == {"eventId": "abc"}
    queue.send_message(json.dumps({"eventId": "def"}))
    decoded = [m for m in queue.receive_messages() if m.content != raw.content]
    assert decoded
    assert json.loads(decoded[0].content) == {"eventId": "def"}


def test_an_unreachable_account_is_storage_unavailable() -> None:
    # A port nothing listens on: Azurite's development key, a closed port.
    clients = StorageClients.from_environ(
        {
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
            "KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
            "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1"
        }
    )
    try:
        with pytest.raises(StorageUnavailableError), storage_errors("read"):
            clients.table(EVENTS_TABLE).get_entity("event", "x")
        with pytest.raises(StorageUnavailableError), storage_errors("send"):
            clients.queue(DELIVERY_QUEUE).send_message("{}")
    finally:
        clients.close()
