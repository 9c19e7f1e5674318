"""The service user's consent over real HTTP, against the simulator's Entra ID and Key Vault:
``make consent``, the token served from Key Vault, rotation, MFA and ``/api/health``."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway.consent import ConsentError, main, run_consent
from partnercenter import ServiceUserMfaRequiredError, Settings
from simulator import Fault, Simulator

from ..conftest import repo_root
from .conftest import SECRET, Gateway, environ_for_subprocess, play_browser

DAY = 86400


def _exp_date(sim: Simulator, expires: int | None) -> datetime:
    assert expires is not None
    return datetime.fromtimestamp(expires, UTC)


def test_make_consent_stores_the_consent_in_key_vault(gateway: Gateway) -> None:
    sim = gateway.sim
    user = sim.sign_in(name="Partner Admin", mfa=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.consent", "--port", "0", "--no-browser", "--timeout", "60"],
        cwd=repo_root(),
        env=environ_for_subprocess(sim),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        url = lines[1].strip()
        assert url.startswith(f"{sim.authority_host}/{sim.tenant_id}/oauth2/v2.0/authorize?")
        assert "code_challenge_method=S256" in url and "response_mode=form_post" in url
        assert "offline_access" in url and "user_impersonation" in url
        play_browser(sim)(url)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    [version] = sim.keyvault.versions(SECRET)
    assert "Stored the consent of" in out and version.version in out
    assert version.value not in out + err and "0.Asim." not in out + err
    assert sim.tokens.redeem(version.value) == user
    assert version.tags["consentedBy"] == user.oid
    assert version.tags["consentedByUpn"] == user.upn
    assert version.tags["mfa"] == "true"
    consented = datetime.fromisoformat(version.tags["consentedOn"])
    assert abs((consented - sim.clock.now()).total_seconds()) < 120
    expires = _exp_date(sim, version.expires) - consented
    assert timedelta(days=89, hours=23) < expires <= timedelta(days=90, minutes=2)
    # ...and the gateway serves application callers with it at once.
    assert gateway.call_as_app().status_code == 200


def test_a_consent_without_mfa_is_refused_and_nothing_is_stored(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.sign_in(name="Password Only", mfa=False)
    with pytest.raises(ServiceUserMfaRequiredError) as caught:
        run_consent(Settings.from_environ(), open_browser=play_browser(sim), port=0, timeout=60)
    assert "multi-factor" in str(caught.value)
    assert "make consent" in (caught.value.remedy or "")
    assert sim.keyvault.versions(SECRET) == []
    assert gateway.health()["consent"] == "missing"


def test_the_service_user_is_served_from_key_vault_and_a_new_version_takes_effect(
    gateway: Gateway,
) -> None:
    sim = gateway.sim
    sim.seed_consent()
    first = gateway.call_as_app()
    assert first.status_code == 200, first.text
    assert ("GET", f"/secrets/{SECRET}/", 200) in sim.keyvault.requests
    # An operator consents again as another user: the next renewal uses it, no restart.
    other = sim.sign_in(name="Second Admin")
    sim.keyvault.set_secret(
        SECRET, sim.tokens.new_refresh_token(other), expires=int(sim.clock.time()) + 90 * DAY
    )
    assert gateway.call_as_app().status_code == 200
    assert sim.stats.api_requests[-1].subject == (sim.tenant_id, other.oid)


def test_key_vault_down_while_serving_falls_back_to_the_token_redeemed_last(
    gateway: Gateway,
) -> None:
    sim = gateway.sim
    sim.seed_consent()
    assert gateway.call_as_app().status_code == 200
    sim.faults.add(Fault(target="keyvault", status=503, times=20))
    assert gateway.call_as_app().status_code == 200


def test_daily_rotation_keeps_the_consent_alive_for_200_days(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    failures: list[str] = []
    for day in range(1, 201):
        sim.clock.advance(days=1)
        gateway.rotate()
        answer = gateway.call_as_app()
        if answer.status_code != 200:
            failures.append(f"day {day}: {answer.status_code} {answer.text[:200]}")
    assert failures == []
    versions = sim.keyvault.versions(SECRET)
    assert len(versions) == 201
    latest = versions[-1]
    assert latest.tags["source"] == "rotation"
    assert latest.tags["consentedBy"] == versions[0].tags["consentedBy"]
    left = _exp_date(sim, latest.expires) - sim.clock.now()
    assert timedelta(days=89) < left <= timedelta(days=90)
    assert gateway.health()["consent"] == "ok"


def test_without_rotation_the_consent_dies_on_day_91(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.clock.advance(days=89)
    assert gateway.call_as_app().status_code == 200
    assert gateway.health()["consent"] == "expiring"
    sim.clock.advance(days=2)
    answer = gateway.call_as_app()
    assert answer.status_code == 503
    problem = answer.json()
    assert problem["entraCode"] == "AADSTS700082"
    assert "make consent" in problem["detail"]
    assert gateway.health()["consent"] == "expired"
    # A rotation cannot save it any more, and says what to do.
    gateway.rotate()
    assert len(sim.keyvault.versions(SECRET)) == 1


def test_a_rotation_that_is_recent_is_a_no_op(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    gateway.rotate()
    assert len(sim.keyvault.versions(SECRET)) == 1
    sim.clock.advance(hours=13)
    gateway.rotate()
    assert len(sim.keyvault.versions(SECRET)) == 2


def test_two_concurrent_rotations_leave_a_working_token(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.clock.advance(days=1)
    # Slow token requests: both rotations read the same version before either writes.
    sim.set_latency(token=0.5)
    answers = [gateway.run_function("RotateServiceUserConsent") for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert gateway.host.background.wait_idle(120)
    sim.set_latency(token=0.0)
    versions = sim.keyvault.versions(SECRET)
    assert 2 <= len(versions) <= 3
    for version in versions:
        assert sim.tokens.redeem(version.value) is not None
    assert gateway.call_as_app().status_code == 200
    # The tokens written keep working for 90 days from their own rotation.
    sim.clock.advance(days=89)
    assert gateway.call_as_app().status_code == 200


def test_two_rotations_racing_in_process_both_store_working_tokens(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.clock.advance(days=1)
    sim.set_latency(token=0.5)
    from gateway.runtime import get_runtime  # noqa: PLC0415

    client = get_runtime().client
    barrier = threading.Barrier(2)
    results = []

    def rotate() -> None:
        barrier.wait()
        results.append(client.rotate_service_user_consent())

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    sim.set_latency(token=0.0)
    assert len(results) == 2
    assert any(result.rotated for result in results)
    versions = sim.keyvault.versions(SECRET)
    assert len(versions) == 1 + sum(result.rotated for result in results)
    assert all(sim.tokens.redeem(v.value) is not None for v in versions)


def test_key_vault_down_during_rotation_loses_nothing(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    sim = gateway.sim
    stored = sim.seed_consent()
    sim.clock.advance(days=1)
    sim.faults.add(Fault(target="keyvault", method="PUT", status=503, times=50))
    with caplog.at_level(logging.WARNING, logger="gateway.consent"):
        gateway.rotate()
    [warning] = [r for r in caplog.records if r.name == "gateway.consent"]
    assert warning.levelno == logging.WARNING
    assert "make consent" in warning.getMessage()
    assert "Nothing was lost" in warning.getMessage()
    [version] = sim.keyvault.versions(SECRET)
    assert version.value == stored
    assert gateway.call_as_app().status_code == 200
    sim.faults.clear()
    gateway.rotate()
    assert len(sim.keyvault.versions(SECRET)) == 2
    assert gateway.call_as_app().status_code == 200


def test_key_vault_throttling_during_rotation_is_retried(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.clock.advance(days=1)
    sim.faults.add(Fault(target="keyvault", method="PUT", status=429, headers={"Retry-After": "1"}))
    gateway.rotate()
    assert len(sim.keyvault.versions(SECRET)) == 2


def test_a_failed_rotation_names_the_fix(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    sim = gateway.sim
    sim.keyvault.set_secret(SECRET, sim.refresh_token_for(expired=True))
    sim.clock.advance(days=1)
    with caplog.at_level(logging.WARNING, logger="gateway.consent"):
        gateway.rotate()
    [warning] = [r for r in caplog.records if r.name == "gateway.consent"]
    assert "AADSTS700082" in warning.getMessage()
    assert "multi-factor" in warning.getMessage() and "make consent" in warning.getMessage()
    assert len(sim.keyvault.versions(SECRET)) == 1


# --- MFA refusals ------------------------------------------------------------------------------


def test_a_service_user_consented_without_mfa_gets_a_problem_naming_it(gateway: Gateway) -> None:
    sim = gateway.sim
    # Stored by hand (no tags), from a sign-in without MFA: Partner Center refuses its token.
    sim.keyvault.set_secret(
        SECRET, sim.refresh_token_for(mfa=False), expires=int(sim.clock.time()) + 90 * DAY
    )
    answer = gateway.call_as_app()
    assert answer.status_code == 503
    problem = answer.json()
    assert problem["type"].endswith(":consent-needed")
    assert "service user" in problem["detail"] and "make consent" in problem["detail"]
    assert "multi-factor" in problem["detail"]
    assert gateway.health()["consent"] == "no-mfa"


def test_a_caller_without_mfa_gets_a_problem_saying_to_sign_in_with_mfa(gateway: Gateway) -> None:
    sim = gateway.sim
    answer = gateway.http.get(
        f"{gateway.base_url}/api/relationship-request",
        headers={"Authorization": f"Bearer {sim.user_token(mfa=False)}"},
        timeout=60,
    )
    assert answer.status_code == 401
    problem = answer.json()
    assert problem["type"].endswith(":mfa-required")
    assert "caller" in problem["detail"] and "multi-factor" in problem["detail"]
    assert "make consent" not in problem["detail"]
    assert 'error="insufficient_claims"' in answer.headers["WWW-Authenticate"]


def test_partner_center_code_900421_is_an_mfa_refusal(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.faults.add(
        Fault.partner_center_error(
            401, 900421, "The user is not MFA compliant.", shape="newer", error_name="Unauthorized"
        )
    )
    answer = gateway.http.get(
        f"{gateway.base_url}/api/relationship-request",
        headers={"Authorization": f"Bearer {sim.user_token()}"},
        timeout=60,
    )
    assert answer.status_code == 401
    assert answer.json()["type"].endswith(":mfa-required")
    assert answer.json()["partnerCenterCode"] == "900421"


# --- /api/health ------------------------------------------------------------------------------


def test_health_ok_shows_the_expiry_and_no_names_or_tokens(gateway: Gateway) -> None:
    sim = gateway.sim
    token = sim.seed_consent()
    body = gateway.health()
    assert body["consent"] == "ok"
    expires = datetime.fromisoformat(body["consentExpiresOn"])
    latest = sim.keyvault.latest(SECRET)
    assert latest is not None
    assert expires == _exp_date(sim, latest.expires)
    text = str(body)
    for private in (token, sim.browser_user.upn, sim.browser_user.oid, sim.browser_user.name):
        assert private not in text


def test_health_expiring_within_14_days_then_expired(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.clock.advance(days=75)
    assert gateway.health()["consent"] == "ok"
    sim.clock.advance(days=2)
    assert gateway.health()["consent"] == "expiring"
    sim.clock.advance(days=14)
    assert gateway.health()["consent"] == "expired"


def test_health_missing_when_the_vault_holds_no_consent(gateway: Gateway) -> None:
    body = gateway.health()
    assert body["consent"] == "missing"
    assert body.get("consentExpiresOn") is None


def test_health_missing_without_any_service_user(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEY_VAULT_URL")
    gateway.new_runtime()
    assert gateway.health()["consent"] == "missing"


def test_health_unknown_when_key_vault_fails_and_stays_quick(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.faults.add(Fault(target="keyvault", status=503, times=50))
    assert gateway.health()["consent"] == "unknown"


def test_health_unknown_when_key_vault_is_silent(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.faults.add(Fault(target="keyvault", delay=8.0, times=10))
    started = time.monotonic()
    body = gateway.health()
    assert body["consent"] == "unknown"
    print(f"health with a silent Key Vault answered in {time.monotonic() - started:.2f} s")


def test_health_unknown_when_the_app_lacks_its_role(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.keyvault.revoke(sim.client_id, SECRET)
    try:
        assert gateway.health()["consent"] == "unknown"
        answer = gateway.call_as_app()
        assert answer.status_code == 503
        assert "Key Vault Secrets" in answer.json()["detail"]
    finally:
        sim.keyvault.grant(sim.client_id, "Key Vault Secrets Officer", SECRET)


def test_health_unknown_for_a_plain_setting(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEY_VAULT_URL")
    monkeypatch.setenv("PARTNER_CENTER_REFRESH_TOKEN", gateway.sim.refresh_token_for())
    gateway.new_runtime()
    body = gateway.health()
    assert body["consent"] == "unknown"
    assert body["serviceUser"] is True
    assert gateway.call_as_app().status_code == 200


# --- the admin endpoint ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"input": 5}', b'"text"'],
    ids=["empty", "not-json", "list", "number", "string"],
)
def test_admin_refuses_a_bad_body(gateway: Gateway, body: bytes) -> None:
    answer = gateway.http.post(
        f"{gateway.base_url}/admin/functions/RotateServiceUserConsent", data=body, timeout=30
    )
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("application/problem+json")


def test_admin_unknown_function_is_a_404_problem(gateway: Gateway) -> None:
    answer = gateway.run_function("NoSuchFunction")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert gateway.run_function("GetHealth").status_code == 404  # HTTP functions: not here


def test_admin_takes_only_post(gateway: Gateway) -> None:
    answer = gateway.http.get(
        f"{gateway.base_url}/admin/functions/RotateServiceUserConsent", timeout=30
    )
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


def test_admin_names_are_case_insensitive(gateway: Gateway) -> None:
    gateway.sim.seed_consent()
    assert gateway.run_function("rotateserviceuserconsent").status_code == 202
    assert gateway.host.background.wait_idle(60)


def test_admin_answers_at_once_while_the_function_runs(gateway: Gateway) -> None:
    sim = gateway.sim
    sim.seed_consent()
    sim.clock.advance(days=1)
    sim.set_latency(token=1.0)
    answer = gateway.run_function("RotateServiceUserConsent")
    assert answer.status_code == 202
    assert len(sim.keyvault.versions(SECRET)) == 1  # still running
    assert gateway.host.background.wait_idle(60)
    assert len(sim.keyvault.versions(SECRET)) == 2


def test_make_consent_needs_key_vault(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KEY_VAULT_URL")
    assert main(["--port", "0", "--no-browser", "--timeout", "5"]) == 1
    assert "KEY_VAULT_URL" in capsys.readouterr().err


def test_a_sign_in_that_never_comes_back_times_out(gateway: Gateway) -> None:
    with pytest.raises(ConsentError, match="No sign-in came back"):
        run_consent(Settings.from_environ(), open_browser=lambda url: None, port=0, timeout=0.5)
    assert gateway.sim.keyvault.versions(SECRET) == []
