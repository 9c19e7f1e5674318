"""Fault injection on Partner Center and on the identity provider."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import msal
import pytest
import requests

from simulator import CUSTOMER_MCA, Fault, Simulator
from simulator.data import SEED_EXAMPLE_BODY
from tests.simulator.conftest import PC_DEFAULT_SCOPE, PC_SCOPE

AGREEMENTS = f"/v1/customers/{CUSTOMER_MCA}/agreements"
RELATIONSHIP = "/v1/customers/relationshiprequests"


def _get(
    sim: Simulator, http: requests.Session, token: str, path: str = AGREEMENTS, **kw: object
) -> requests.Response:
    return http.get(
        sim.partner_center_url + path,
        params={"agreementType": "*"} if path == AGREEMENTS else None,
        headers={"Authorization": f"Bearer {token}"},
        **kw,  # type: ignore[arg-type]
    )


def test_throttled_gateway_shape(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    sim.faults.add(Fault.throttled(7))
    response = _get(sim, http, pc_token)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {
        "statusCode": 429,
        "message": "Rate limit is exceeded. Try again in 7 seconds.",
    }
    assert response.headers["MS-CorrelationId"]
    assert _get(sim, http, pc_token).status_code == 200  # used up


def test_throttled_documented_shape_times_and_path(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    sim.faults.add(Fault.throttled(2, shape="documented", times=2, path=RELATIONSHIP))
    assert _get(sim, http, pc_token).status_code == 200  # other path: not matched
    for _ in range(2):
        response = _get(sim, http, pc_token, RELATIONSHIP)
        assert response.status_code == 429
        assert response.json()["source"] == "PartnerFD"
        assert isinstance(response.json()["code"], str)
    assert _get(sim, http, pc_token, RELATIONSHIP).status_code == 200
    assert len(sim.faults) == 0


def test_faults_are_served_in_order(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    sim.faults.add(Fault(status=503), Fault(status=502))
    assert [_get(sim, http, pc_token).status_code for _ in range(3)] == [503, 502, 200]


def test_partner_center_error_shapes(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    sim.faults.add(
        Fault.partner_center_error(409, 600061, "Agreement already exists.", shape="newer"),
        Fault.partner_center_error(500, "10001", "Internal error.", retryable=True),
    )
    newer = _get(sim, http, pc_token).json()
    assert newer["code"] == 600061
    assert set(newer) == {
        "code",
        "message",
        "description",
        "errorName",
        "isRetryable",
        "parameters",
    }
    assert newer["errorName"] == "Conflict"
    documented = _get(sim, http, pc_token).json()
    assert documented == {
        "code": "10001",
        "description": "Internal error.",
        "data": [],
        "source": "PartnerFD",
    }


def test_drop_closes_the_connection_without_a_response(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    assert _get(sim, http, pc_token).status_code == 200  # warm, reused connection
    sim.faults.add(Fault(drop=True))
    with pytest.raises(requests.ConnectionError):
        _get(sim, http, pc_token)
    assert _get(sim, http, pc_token).status_code == 200
    assert [r.status for r in sim.stats.api_requests] == [200, 0, 200]


def test_delay_then_real_answer(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    sim.faults.add(Fault(delay=0.3))
    started = time.monotonic()
    assert _get(sim, http, pc_token).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_delay_beyond_the_client_timeout(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    sim.faults.add(Fault(delay=0.5, drop=True))
    with pytest.raises(requests.ReadTimeout):
        _get(sim, http, pc_token, timeout=0.1)


def test_seed_example_is_invalid_json(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    sim.faults.add(Fault(body_kind="seed-example"))
    response = _get(sim, http, pc_token)
    assert response.status_code == 200
    assert response.text == SEED_EXAMPLE_BODY
    with pytest.raises(ValueError, match="Expecting"):
        json.loads(response.text)


def test_html_empty_and_truncated_bodies(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    full = _get(sim, http, pc_token).content
    sim.faults.add(
        Fault(status=502, body_kind="html"),
        Fault(body_kind="empty"),
        Fault(body_kind="truncated"),
    )
    html = _get(sim, http, pc_token)
    assert (html.status_code, html.headers["Content-Type"]) == (502, "text/html; charset=utf-8")
    assert html.text.startswith("<!DOCTYPE html>")
    empty = _get(sim, http, pc_token)
    assert (empty.status_code, empty.content) == (200, b"")
    truncated = _get(sim, http, pc_token)
    assert truncated.content == full[: len(full) // 2]


def test_bom_extra_fields_and_new_enum(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    real = _get(sim, http, pc_token).json()
    sim.faults.add(Fault(body_kind="bom"), Fault(body_kind="extra-fields"))
    sim.faults.add(Fault(body_kind="new-enum"))
    bom = _get(sim, http, pc_token).content
    assert bom.startswith(b"\xef\xbb\xbf")
    assert json.loads(bom.decode("utf-8-sig")) == real
    extra = _get(sim, http, pc_token).json()
    assert extra["futureField"]
    assert extra["items"][0]["primaryContact"]["futureField"]
    new_enum = _get(sim, http, pc_token).json()
    assert new_enum["totalCount"] == real["totalCount"] + 1
    assert new_enum["items"][-1]["type"] not in {item["type"] for item in real["items"]}


def test_custom_status_headers_and_raw_body(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    sim.faults.add(Fault(status=503, headers={"Retry-After": "1"}, body=b"upstream down"))
    response = _get(sim, http, pc_token)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.content == b"upstream down"


def test_aad_error_reaches_msal(
    sim: Simulator, make_app: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    sim.faults.add(
        Fault.aad_error(
            "interaction_required",
            50076,
            "Due to a configuration change made by your administrator, you must use multi-factor "
            "authentication to access this resource.",
        )
    )
    result = make_app().acquire_token_on_behalf_of(sim.user_token(), [PC_SCOPE])
    assert result["error"] == "interaction_required"
    assert result["error_codes"] == [50076]
    assert result["error_description"].startswith("AADSTS50076: ")
    assert sim.stats.token_requests["on_behalf_of"] == 1  # faulted requests count too


def test_token_drop_and_discovery_fault(
    sim: Simulator, make_app: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    app = make_app()
    sim.faults.add(Fault(target="token", drop=True))
    with pytest.raises(requests.ConnectionError):
        app.acquire_token_for_client([PC_DEFAULT_SCOPE])
    sim.faults.add(Fault(target="discovery", status=404))
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        make_app()


def test_jwks_fault(sim: Simulator, http: requests.Session) -> None:
    sim.faults.add(Fault(target="jwks", status=500, body_kind="html"))
    response = http.get(f"{sim.authority_host}/{sim.tenant_id}/discovery/v2.0/keys")
    assert response.status_code == 500
    assert "html" in response.headers["Content-Type"]


def test_fault_round_trips_through_json() -> None:
    faults = [
        Fault.throttled(3, shape="documented", path="/v1/x"),
        Fault(target="token", body=b"\x00\xff", delay=0.5, times=2),
        Fault.aad_error("invalid_grant", 700082, "expired"),
    ]
    for fault in faults:
        assert Fault.from_dict(json.loads(json.dumps(fault.to_dict()))) == fault
    with pytest.raises(ValueError, match="unknown fault fields"):
        Fault.from_dict({"stauts": 500})
    with pytest.raises(ValueError, match="unknown fault target"):
        Fault(target="graph")  # type: ignore[arg-type]


def test_stop_interrupts_a_delay(pc_token: str) -> None:
    local = Simulator().start()
    local.faults.add(Fault(delay=30))
    token = local.user_token(audience="https://api.partnercenter.microsoft.com", scopes=["x"])
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(
                f"{local.partner_center_url}{RELATIONSHIP}",
                headers={"Authorization": f"Bearer {token}"},
                verify=local.ca_bundle,
                timeout=10,
            )
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    local.stop()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2
    assert not worker.is_alive()
    assert errors  # the connection was closed under the delayed request
