"""Which callback URLs a subscription may name (SSRF), and the session that calls them."""

from __future__ import annotations

import pytest
import requests

from gateway.callbacks import (
    CallbackHosts,
    CallbackSession,
    CallbackUrlError,
    callback_hosts,
    checked_callback_url,
    normalise_host,
)
from partnercenter import ConfigurationError, Settings, SharedTrustAdapter
from partnercenter._config import DEFAULT_EVENT_CALLBACK_HOSTS

DEFAULT = CallbackHosts.parse(DEFAULT_EVENT_CALLBACK_HOSTS.split(","))
LOGIC_APPS = (
    "https://prod-03.westus.logic.azure.com:443/workflows/c4ed9335bc864140a11f4508d19acea3/"
    "triggers/manual/run?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abc"
)
POWER_AUTOMATE = (
    "https://0123abcd.09.environment.api.powerplatform.com:443/powerautomate/automations/direct/"
    "workflows/86ffea63/triggers/manual/paths/invoke?api-version=1&sig=abc"
)


@pytest.mark.parametrize("url", [LOGIC_APPS, POWER_AUTOMATE])
def test_power_automate_and_logic_apps_callbacks_are_allowed(url: str) -> None:
    checked = checked_callback_url(url, DEFAULT)
    assert checked.startswith("https://") and "sig=abc" in checked


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://prod-03.westus.logic.azure.com/workflows/x", "https"),
        ("https://prod-03.westus.logic.azure.com:8443/workflows/x", "port 443"),
        ("https://prod-03.westus.logic.azure.com@evil.example/x", "user information"),
        ("https://user:pw@prod-03.westus.logic.azure.com/x", "user information"),
        ("https://evil.example/?h=prod-03.westus.logic.azure.com", "not allowed"),
        ("https://prod-03.westus.logic.azure.com.evil.example/x", "not allowed"),
        ("https://evillogic.azure.com/x", "not allowed"),
        ("https://logic.azure.com/x", "not allowed"),  # the suffix itself is not a callback host
        ("https://127.0.0.1/x", "IP address"),
        ("https://[::1]/x", "IP address"),
        ("https://2130706433/x", "IP address"),
        ("https://0x7f.1/x", "IP address"),
        ("https://prod-03.westus.logic.azure.com/x#frag", "fragment"),
        ("https://prod-03.westus.logic.azure.com\\@evil.example/x", "'\\'"),
        ("https://prod-03.westus.logic.azure.com/a b", "spaces"),
        ("https://prod-03.westus.logic.azure.com:0/x", "port 443"),
        ("https://prod-03.westus.logic.azure.com:99999/x", "not a valid URL"),
        ("ftp://prod-03.westus.logic.azure.com/x", "https"),
        ("https:///x", "not a valid host name"),
        ("", "must be a URL"),
        ("https://prod-03.westus.logic.azure.com/" + "a" * 3000, "longer than"),
    ],
)
def test_everything_else_is_refused(url: str, reason: str) -> None:
    with pytest.raises(CallbackUrlError) as caught:
        checked_callback_url(url, DEFAULT)
    assert reason in caught.value.message
    assert caught.value.argument == "callbackUrl"


def test_host_is_normalised_before_matching() -> None:
    checked = checked_callback_url("HTTPS://Prod-03.WestUS.Logic.Azure.Com./w?sig=x", DEFAULT)
    assert checked == "https://prod-03.westus.logic.azure.com/w?sig=x"
    assert checked_callback_url("https://prod-03.westus.logic.azure.com:443/w", DEFAULT) == (
        "https://prod-03.westus.logic.azure.com:443/w"
    )


def test_international_names_are_compared_in_punycode() -> None:
    hosts = CallbackHosts.parse(["bücher.example"])
    assert normalise_host("BÜCHER.example.") == "xn--bcher-kva.example"
    assert checked_callback_url("https://xn--bcher-kva.example/cb", hosts).startswith(
        "https://xn--bcher-kva.example/"
    )
    assert checked_callback_url("https://bücher.example/cb", hosts).startswith(
        "https://xn--bcher-kva.example/"
    )
    # A look-alike in another script is another host.
    with pytest.raises(CallbackUrlError):
        checked_callback_url("https://bücher.exampIe/cb", hosts)


def test_setting_forms() -> None:
    hosts = CallbackHosts.parse(["*.logic.azure.com", " .Example.org ", "exact.example.net"])
    assert hosts.allows("prod-1.westus.logic.azure.com")
    assert hosts.allows("a.example.org") and not hosts.allows("example.org")
    assert hosts.allows("exact.example.net") and not hosts.allows("sub.exact.example.net")
    for bad in (["10.0.0.1"], ["*.com"], [""], ["a..b"]):
        with pytest.raises(ValueError, match=r"\S"):
            CallbackHosts.parse(bad)


def test_the_setting_is_validated_with_the_other_settings() -> None:
    env = {
        "AZURE_TENANT_ID": "3b33e682-00c3-41ee-9dd2-a548adf56438",
        "AZURE_CLIENT_ID": "0f1bd2b6-4c0e-4a8d-8bd8-9c2a3d4e5f60",
        "AZURE_CLIENT_SECRET": "not-a-real-secret",
    }
    assert Settings.from_environ(env).event_callback_hosts == (
        ".logic.azure.com",
        ".environment.api.powerplatform.com",
    )
    custom = Settings.from_environ({**env, "EVENT_CALLBACK_HOSTS": "a.example, .b.example"})
    assert custom.event_callback_hosts == ("a.example", ".b.example")
    for bad in ("https://a.example", "a.example:443", "user@a.example", " , "):
        with pytest.raises(ConfigurationError) as caught:
            Settings.from_environ({**env, "EVENT_CALLBACK_HOSTS": bad})
        assert caught.value.setting == "EVENT_CALLBACK_HOSTS"
    with pytest.raises(ConfigurationError):
        callback_hosts(("*.com",))


def test_the_session_refuses_other_hosts_and_never_follows_redirects() -> None:
    session = CallbackSession(DEFAULT)
    assert session.trust_env is False
    with pytest.raises(CallbackUrlError):
        session.post("https://169.254.169.254/metadata", timeout=1)
    with pytest.raises(CallbackUrlError):
        session.get("https://internal.example/", timeout=1)
    with pytest.raises(ValueError, match="timeout"):
        session.post(LOGIC_APPS)
    # A redirect answer is returned as it is; requests is never asked to follow it.
    assert session.max_redirects == 0
    assert isinstance(session, requests.Session)
    # One TLS context, certifi's roots loaded once, for every callback host's connections.
    adapter = session.get_adapter(LOGIC_APPS)
    assert isinstance(adapter, SharedTrustAdapter)
    assert adapter.bundle == requests.utils.DEFAULT_CA_BUNDLE_PATH
