"""A local Entra ID, Partner Center REST API and Key Vault over TLS, for tests, benchmarks and
``make run``.

Never deployed. ``Simulator`` runs both servers in this process; ``python -m simulator`` runs them
as a command, and ``SimulatorClient`` drives such a process through the ``/_sim/`` control plane.

    with Simulator() as sim:
        os.environ["REQUESTS_CA_BUNDLE"] = sim.ca_bundle  # MSAL's session must trust the CA
        app = msal.ConfidentialClientApplication(
            sim.client_id, client_credential=sim.client_secret,
            authority=f"{sim.authority_host}/{sim.tenant_id}", instance_discovery=False)
        result = app.acquire_token_on_behalf_of(
            sim.user_token(), ["https://api.partnercenter.microsoft.com/user_impersonation"])
        sim.faults.add(Fault.throttled(5))  # the next Partner Center request gets a 429

Refresh tokens die 90 days after issue on ``sim.clock`` (``sim.clock.advance(days=91)``), and
every redemption returns a new one. The authorize endpoint signs in ``sim.browser_user`` (see
``sim.sign_in(mfa=False)``) and checks PKCE (S256). ``sim.keyvault`` serves the secrets API at
``sim.key_vault_url`` (challenge-based auth, versions, ``exp``, tags, RBAC per secret; faults
with target ``keyvault``, optionally per ``method``); ``sim.seed_consent()`` stores a consent.

Connections are kept alive (HTTP/1.1); ``stats.connections`` counts those that carried at least
one request outside ``/_sim/``. A ``drop`` fault closes the TCP connection without any response.

Fault ``body_kind`` values: ``seed-example`` (the invalid-JSON response example of seed document
004, status 200 unless ``status`` is set), ``html`` (an HTML error page), ``empty`` (zero bytes),
``bom`` (the body prefixed with a UTF-8 BOM), ``extra-fields`` (unknown fields added to every JSON
object), ``new-enum`` (an agreement of a never-seen type appended to an agreements collection),
``truncated`` (the body cut in half). ``commit_first`` handles the request for real before the
fault's delay and drop: ``Fault(drop=True, commit_first=True)`` is a connection lost after
Partner Center committed (an attestation is stored, no answer comes back).

Agreements: ``sim.agreements`` holds the attestations made since the last reset
(``POST /v1/customers/{id}/agreements`` answers 201, 600061 for a repeat with the same contact,
600002 for a future date, 403 to an indirect reseller); ``rotate_mca_template`` publishes a new
MCA template (the old id is then refused); ``set_partner(indirect_reseller=True)`` makes the
partner an indirect reseller. ``reset`` restores all three.
"""

from simulator._client import SimulatorClient
from simulator._clock import SimClock
from simulator._core import Simulator
from simulator._faults import Fault, FaultQueue
from simulator._stats import ApiRequest, Stats
from simulator.data import (
    CUSTOMER_ATTESTED,
    CUSTOMER_ATTESTED_AND_DIRECT_SIGNED,
    CUSTOMER_CLOUD_ONLY,
    CUSTOMER_DIRECT_SIGNED,
    CUSTOMER_MCA,
    CUSTOMER_NEITHER,
    CUSTOMER_NEW_TYPE,
    CUSTOMER_NO_AGREEMENTS,
    CUSTOMER_OLD_TEMPLATE,
    CUSTOMER_UNKNOWN,
    CUSTOMERS,
    MCA_TEMPLATE_ID,
    OLD_MCA_TEMPLATE_ID,
)

__all__ = [
    "CUSTOMERS",
    "CUSTOMER_ATTESTED",
    "CUSTOMER_ATTESTED_AND_DIRECT_SIGNED",
    "CUSTOMER_CLOUD_ONLY",
    "CUSTOMER_DIRECT_SIGNED",
    "CUSTOMER_MCA",
    "CUSTOMER_NEITHER",
    "CUSTOMER_NEW_TYPE",
    "CUSTOMER_NO_AGREEMENTS",
    "CUSTOMER_OLD_TEMPLATE",
    "CUSTOMER_UNKNOWN",
    "MCA_TEMPLATE_ID",
    "OLD_MCA_TEMPLATE_ID",
    "ApiRequest",
    "Fault",
    "FaultQueue",
    "SimClock",
    "Simulator",
    "SimulatorClient",
    "Stats",
]
