"""The local host for the events soak: ``make run``'s host (``gateway.devserver``), its event
callbacks routed to the soak's local callback server, and retries seconds apart instead of
minutes so that a 60-second run sees them through.

``python -m bench.events_host --port P --callback-port C --callback-ca FILE`` with the gateway's
settings (simulator, ``AzureWebJobsStorage``) in the environment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import devserver
from gateway.callbacks import CallbackHosts, CallbackSession
from gateway.delivery import EventDelivery, RetrySchedule, set_delivery
from gateway.storage import storage_clients
from simulator.power_automate import ConnectToAdapter

#: Retries of failed callbacks 1, 2 then 4 s apart (the deployed schedule starts at 30 s).
SOAK_RETRIES = RetrySchedule(delays=(1.0, 2.0, 4.0), jitter=0.1)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the app as ``make run`` does, delivering callbacks to the soak's server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--callback-port", type=int, required=True)
    parser.add_argument("--callback-ca", required=True)
    args = parser.parse_args(argv)
    session = CallbackSession(CallbackHosts.parse([".logic.azure.com"]))
    session.mount("https://", ConnectToAdapter(args.callback_port, args.callback_ca))
    set_delivery(EventDelivery(storage_clients(), session, schedule=SOAK_RETRIES))
    return devserver.main(["--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
