"""The Functions host's request rules, as `make run`'s host applies them (gateway/host_request.py).

Two views: a probe app whose function echoes what it received (what the host hands over), and the
gateway's own routes (the answers a caller gets in Azure). Requests are sent with http.client so
that the bytes on the wire are exactly the ones written here.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
import pytest

from gateway.devserver import serve_app
from gateway.host_request import host_path, host_query
from simulator import CUSTOMER_MCA, Simulator

from .test_api import bearer


def _probe_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="probe/{item}/detail", methods=["GET"])
    def probe(req: func.HttpRequest) -> func.HttpResponse:
        seen = {
            "url": req.url,
            "headers": dict(req.headers.items()),
            "params": dict(req.params),
            "route": dict(req.route_params),
        }
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")

    return app


@pytest.fixture(scope="module")
def probe() -> Iterator[tuple[str, int]]:
    server = serve_app(_probe_app(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_port
    finally:
        server.shutdown()
        thread.join(5)


def send(
    address: tuple[str, int],
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    method: str = "GET",
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*address, timeout=15)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def seen(address: tuple[str, int], target: str, headers: Sequence[tuple[str, str]] = ()) -> Any:
    status, _, body = send(address, target, headers)
    assert status == 200, body
    return json.loads(body)


# --- what the function receives ---------------------------------------------------------------


def test_empty_query_values_are_dropped(probe: tuple[str, int]) -> None:
    # GrpcMessageConversionExtensions.cs: a query value that is empty is not sent to the worker.
    assert seen(probe, "/api/probe/a/detail?type=&flag&kept=1")["params"] == {"kept": "1"}


def test_repeated_query_values_are_joined_with_commas(probe: tuple[str, int]) -> None:
    got = seen(probe, "/api/probe/a/detail?type=a&type=b&Type=c&other=%2C")["params"]
    # Query keys ignore case (the first spelling is kept), values are joined with ",".
    assert got == {"type": "a,b,c", "other": ","}


def test_header_names_arrive_lower_cased_and_repeats_joined(probe: tuple[str, int]) -> None:
    got = seen(
        probe,
        "/api/probe/a/detail",
        [("X-Correlation-ID", "abc"), ("X-Multi", "one"), ("x-multi", "two"), ("X-Empty", "")],
    )["headers"]
    assert got["x-correlation-id"] == "abc"
    assert got["x-multi"] == "one,two"
    assert got["x-empty"] == ""
    assert all(name == name.lower() for name in got)


def test_routes_match_whatever_their_case(probe: tuple[str, int]) -> None:
    got = seen(probe, "/API/Probe/MiXeD/DETAIL/")
    assert got["route"] == {"item": "MiXeD"}  # the value keeps its case; the trailing / is ignored


def test_encoded_slash_stays_inside_its_segment(probe: tuple[str, int]) -> None:
    got = seen(probe, "/api/probe/a%2Fb/detail")
    assert got["route"] == {"item": "a%2Fb"}
    # Other escapes are decoded, in the route value and in req.url alike.
    got = seen(probe, "/api/probe/caf%C3%A9/detail?q=1")
    assert got["route"] == {"item": "café"}
    assert urlsplit(got["url"]).path == "/api/probe/café/detail"
    assert got["url"].endswith("?q=1")


def test_dot_segments_are_removed_before_routing(probe: tuple[str, int]) -> None:
    assert seen(probe, "/api/other/../probe/x/./detail")["route"] == {"item": "x"}
    assert send(probe, "/api/probe/x/detail/..")[0] == 404


def test_only_declared_methods(probe: tuple[str, int]) -> None:
    # No implicit HEAD or OPTIONS as Werkzeug's routing would add.
    for method in ("HEAD", "OPTIONS", "POST"):
        status, headers, _ = send(probe, "/api/probe/a/detail", method=method)
        assert status == 405
        assert headers["allow"] == "GET"


def test_targets_without_a_leading_slash_are_refused(probe: tuple[str, int]) -> None:
    status, headers, body = send(probe, "api/probe/a/detail")
    assert status == 400
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 400


def test_host_path_and_query_rules() -> None:
    assert host_path("/a/%2f/%41?x=1") == "/a/%2F/A"
    assert host_path("http://h.example/a/./b/../c") == "/a/c"
    assert host_query("a=&a=") == {"a": ","}  # joined first, then dropped only if empty
    assert host_query("a=1+2&b=%ff") == {"a": "1 2", "b": "\ufffd"}


# --- what a caller of the gateway gets --------------------------------------------------------


@pytest.fixture
def gateway(base_url: str, fresh_sim: Simulator) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def test_empty_type_is_the_default(gateway: tuple[str, int], fresh_sim: Simulator) -> None:
    auth = list(bearer(fresh_sim.user_token()).items())
    status, _, body = send(gateway, f"/api/customers/{CUSTOMER_MCA}/agreements?type=", auth)
    assert status == 200, body
    _, _, everything = send(gateway, f"/api/customers/{CUSTOMER_MCA}/agreements?type=all", auth)
    assert json.loads(body) == json.loads(everything)


def test_upper_case_routes_are_served(gateway: tuple[str, int], fresh_sim: Simulator) -> None:
    assert send(gateway, "/api/HEALTH")[0] == 200
    auth = list(bearer(fresh_sim.user_token()).items())
    status, _, body = send(gateway, f"/API/Customers/{CUSTOMER_MCA}/AGREEMENTS", auth)
    assert status == 200, body


def test_repeated_type_is_one_joined_value(gateway: tuple[str, int], fresh_sim: Simulator) -> None:
    auth = list(bearer(fresh_sim.user_token()).items())
    target = f"/api/customers/{CUSTOMER_MCA}/agreements?type=all&type=all"
    status, _, body = send(gateway, target, auth)
    # The function sees type=all,all (not the last value, as Werkzeug would give): a bad type.
    assert status == 400
    assert json.loads(body)["detail"].startswith("Query parameter 'type'")


def test_encoded_slash_in_customer_id_reaches_the_function(
    gateway: tuple[str, int], fresh_sim: Simulator
) -> None:
    auth = list(bearer(fresh_sim.user_token()).items())
    status, _, body = send(gateway, f"/api/customers/{CUSTOMER_MCA}%2Fx/agreements", auth)
    assert status == 400  # the function refuses the id; not the host's 404
    assert "customerId" in json.loads(body)["detail"]
    assert fresh_sim.stats.api_requests == []


def test_header_names_of_any_case_reach_the_function(
    gateway: tuple[str, int], fresh_sim: Simulator
) -> None:
    correlation = "0b9d3c1e-8f5a-4c2b-9e7d-6a1f2b3c4d5e"
    headers = [
        ("AUTHORIZATION", f"Bearer {fresh_sim.user_token()}"),
        ("X-CORRELATION-ID", correlation),
    ]
    status, answer, body = send(gateway, "/api/relationship-request", headers)
    assert status == 200, body
    assert answer["x-correlation-id"] == correlation
