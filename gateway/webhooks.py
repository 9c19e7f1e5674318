"""Register the gateway's webhook with Partner Center: ``python -m gateway.webhooks``.

    python -m gateway.webhooks register [--url URL] [--events a,b,...]
    python -m gateway.webhooks show
    python -m gateway.webhooks update [--url URL] [--events a,b,...]
    python -m gateway.webhooks test [--wait SECONDS]

It runs as the consented service user (``PARTNER_CENTER_REFRESH_TOKEN``, App+User) with the
gateway's own settings. ``--url`` defaults to the function app's receiver,
``https://$WEBSITE_HOSTNAME/api/events/partner-center``; ``--events`` to the events the gateway
handles. ``test`` asks Partner Center for its test event and watches the ``events`` table
(``AzureWebJobsStorage``) until the event arrives, reporting what Partner Center saw if not.
Exit status: 0 on success, 1 when Partner Center or the test refused, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TextIO

from partnercenter import (
    GATEWAY_EVENTS,
    SERVICE_USER,
    ConfigurationError,
    NotFoundError,
    PartnerCenterClient,
    PartnerCenterError,
    Settings,
    ValidationStatus,
    WebhookRegistration,
)

from .event_store import EVENT_PARTITION
from .storage import EVENTS_TABLE, StorageClients, storage_clients, storage_errors

RECEIVER_ROUTE = "/api/events/partner-center"
TEST_EVENT = "test-created"


def default_receiver_url() -> str | None:
    """The deployed function app's receiver URL, from the platform's ``WEBSITE_HOSTNAME``."""
    host = os.environ.get("WEBSITE_HOSTNAME", "").strip()
    return f"https://{host}{RECEIVER_ROUTE}" if host else None


def find_test_event(
    clients: StorageClients, correlation_id: str, since: datetime
) -> dict[str, str] | None:
    """The stored ``test-created`` event of the test ``correlation_id``, if it has arrived.

    Partner Center's test event names its correlation id in its ``ResourceUri``; a test event
    received since ``since`` without it counts too (older Partner Center versions).
    """
    with storage_errors("read the events table"):
        found = list(
            clients.table(EVENTS_TABLE).query_entities(
                "PartitionKey eq @p and EventName eq @n and ReceivedAt ge @t",
                parameters={
                    "p": EVENT_PARTITION,
                    "n": TEST_EVENT,
                    "t": since.astimezone(UTC).isoformat(timespec="milliseconds"),
                },
            )
        )
    found.sort(key=lambda e: correlation_id.lower() not in str(e["ResourceUri"]).lower())
    if not found:
        return None
    event = found[0]
    return {
        "eventId": str(event["RowKey"]),
        "resourceUri": str(event["ResourceUri"]),
        "receivedAt": str(event["ReceivedAt"]),
    }


def describe_status(status: ValidationStatus) -> str:
    """Partner Center's view of a test event's delivery, in one line."""
    results = [r for event in status.events for r in event.results]
    if not results:
        return f"Partner Center's status: {status.status or 'unknown'}, no delivery attempt yet."
    last = results[-1]
    message = f" ({last.response_message})" if last.response_message else ""
    return (
        f"Partner Center's status: {status.status or 'unknown'}; {len(results)} delivery "
        f"attempt(s), the last answered {last.response_code}{message}."
    )


class WebhookCommand:
    """The command's operations, on a client and the event store."""

    def __init__(
        self,
        client: PartnerCenterClient,
        out: TextIO,
        *,
        clients: Callable[[], StorageClients] = storage_clients,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.out = out
        self._clients = clients
        self._sleep = sleep

    def _print_registration(self, registration: WebhookRegistration) -> None:
        self.out.write(registration.model_dump_json(by_alias=True, indent=2) + "\n")

    def register(self, url: str, events: Sequence[str]) -> int:
        """Create the registration; refuse (pointing at ``update``) if one exists."""
        try:
            existing = self.client.get_webhook_registration(SERVICE_USER)
        except NotFoundError:
            existing = None
        if existing is not None:
            if existing.webhook_url == url and set(existing.webhook_events) == set(events):
                self.out.write("Already registered:\n")
                self._print_registration(existing)
                return 0
            self.out.write("A different registration exists; use `update` to replace it:\n")
            self._print_registration(existing)
            return 1
        self._print_registration(self.client.create_webhook_registration(SERVICE_USER, url, events))
        return 0

    def show(self) -> int:
        """Print the registration."""
        try:
            registration = self.client.get_webhook_registration(SERVICE_USER)
        except NotFoundError:
            self.out.write("No webhook is registered with Partner Center.\n")
            return 1
        self._print_registration(registration)
        return 0

    def update(self, url: str, events: Sequence[str]) -> int:
        """Replace the registration's URL and events."""
        self._print_registration(self.client.update_webhook_registration(SERVICE_USER, url, events))
        return 0

    def test(self, wait: float) -> int:
        """Send Partner Center's test event and report whether it reached the event store."""
        since = datetime.now(UTC)
        correlation_id = self.client.send_webhook_test_event(SERVICE_USER)
        self.out.write(f"Test event requested (correlation id {correlation_id}).\n")
        deadline = time.monotonic() + wait
        pause = 0.5
        while True:
            arrived = find_test_event(self._clients(), correlation_id, since)
            if arrived is not None:
                self.out.write(
                    f"Arrived: event {arrived['eventId']} stored at {arrived['receivedAt']}.\n"
                )
                return 0
            if time.monotonic() >= deadline:
                break
            self._sleep(pause)
            pause = min(pause * 2, 5.0)
        self.out.write(f"The test event did not arrive within {wait:g} s.\n")
        try:
            status = self.client.get_webhook_test_event_status(SERVICE_USER, correlation_id)
            self.out.write(describe_status(status) + "\n")
        except PartnerCenterError as err:
            self.out.write(f"Partner Center's status could not be read: {err}\n")
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.webhooks",
        description="Register the gateway's webhook with Partner Center, show or update the "
        "registration, and send Partner Center's test event.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in (
        ("register", "register the receiver URL for the gateway's events"),
        ("update", "replace the registered URL and events"),
    ):
        command = commands.add_parser(name, help=summary)
        command.add_argument(
            "--url",
            default=default_receiver_url(),
            help="the receiver URL (default: https://$WEBSITE_HOSTNAME" + RECEIVER_ROUTE + ")",
        )
        command.add_argument(
            "--events",
            default=",".join(GATEWAY_EVENTS),
            help="comma-separated event names (default: the events the gateway handles)",
        )
    commands.add_parser("show", help="print the registration")
    test = commands.add_parser("test", help="send the test event and wait for it to arrive")
    test.add_argument("--wait", type=float, default=120.0, help="seconds to wait (default 120)")
    return parser


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command; returns the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    if args.command in ("register", "update") and not args.url:
        out.write("Give --url (or set WEBSITE_HOSTNAME).\n")
        return 2
    events = [e.strip() for e in getattr(args, "events", "").split(",") if e.strip()]
    try:
        client = PartnerCenterClient(Settings.from_environ())
    except ConfigurationError as err:
        out.write(f"Configuration: {err}\n")
        return 2
    try:
        command = WebhookCommand(client, out)
        actions: dict[str, Callable[[], int]] = {
            "register": lambda: command.register(args.url, events),
            "update": lambda: command.update(args.url, events),
            "show": command.show,
            "test": lambda: command.test(args.wait),
        }
        return actions[args.command]()
    except PartnerCenterError as err:
        out.write(f"Failed: {err}\n")
        code = getattr(err, "code", None)
        if code:
            out.write(f"Partner Center code: {code}\n")
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["WebhookCommand", "default_receiver_url", "find_test_event", "main"]
