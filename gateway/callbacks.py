"""Callback URLs of event subscriptions: which are allowed, and the session that POSTs to them.

A subscription's ``callbackUrl`` is chosen by the caller, and the gateway later sends requests to
it from inside the function app's network: without a check that is server-side request forgery
(SSRF). Only https URLs on port 443 whose host is, or is under, one of ``EVENT_CALLBACK_HOSTS``
are taken. By default those are the hosts Power Automate and Logic Apps hand out as trigger
callback URLs: ``prod-NN.<region>.logic.azure.com`` (the documented form of a Logic Apps trigger
callback URL, see ``Get-AzLogicAppTriggerCallbackUrl``) and Power Automate's newer
``<environment>.NN.environment.api.powerplatform.com``.

The check is made on the URL as it will be sent, after the same normalisation a client does:
host names are lower-cased, IDNA-encoded (punycode) and stripped of a trailing dot; user info
(``https://allowed.host@evil.example``), IP literals, other ports and other schemes are refused.
The delivery session checks every request again and never follows a redirect.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from partnercenter import ConfigurationError, InvalidArgumentError, SharedTrustAdapter

MAX_CALLBACK_URL_LENGTH = 2048
HTTPS_PORT = 443


class CallbackUrlError(InvalidArgumentError):
    """A callback URL the gateway will not call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, argument="callbackUrl")


def normalise_host(host: str) -> str:
    """``host`` lower-cased, IDNA (punycode) encoded and without a trailing dot.

    Raises :class:`ValueError` for a host that is not a valid DNS name.
    """
    host = host.strip().rstrip(".").lower()
    if not host or len(host) > 253:
        raise ValueError("not a host name")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("not a valid international host name") from None
    labels = ascii_host.split(".")
    for label in labels:
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            raise ValueError("not a valid host name")
        if not all(c.isalnum() or c == "-" for c in label):
            raise ValueError("not a valid host name")
    return ascii_host


@dataclass(frozen=True)
class CallbackHosts:
    """The allowed callback hosts: exact names, and suffixes (``.logic.azure.com``) whose
    subdomains (never the suffix itself) are allowed."""

    exact: frozenset[str]
    suffixes: tuple[str, ...]

    @classmethod
    def parse(cls, items: Iterable[str]) -> CallbackHosts:
        """From the setting's items: ``host``, or ``.suffix`` / ``*.suffix`` for any host under it.

        Raises :class:`ValueError` naming a bad item.
        """
        exact: set[str] = set()
        suffixes: list[str] = []
        for raw in items:
            item = raw.strip()
            if not item:
                continue
            wildcard = item.startswith(("*.", "."))
            name = normalise_host(item.removeprefix("*").removeprefix("."))
            if _is_ip(name):
                raise ValueError(f"{item!r}: IP addresses are not callback hosts")
            if wildcard:
                if name.count(".") < 1:
                    raise ValueError(f"{item!r}: a wildcard needs at least two labels")
                suffixes.append("." + name)
            else:
                exact.add(name)
        if not exact and not suffixes:
            raise ValueError("no callback host given")
        return cls(frozenset(exact), tuple(suffixes))

    def allows(self, host: str) -> bool:
        """Whether a (normalised) host name is allowed."""
        return host in self.exact or any(
            host.endswith(suffix) and len(host) > len(suffix) for suffix in self.suffixes
        )

    def describe(self) -> str:
        """The allowed hosts, for error messages."""
        return ", ".join(sorted(self.exact) + [f"*{s}" for s in self.suffixes])


@functools.cache
def callback_hosts(items: tuple[str, ...]) -> CallbackHosts:
    """The allowed hosts of the ``EVENT_CALLBACK_HOSTS`` setting's items, parsed once."""
    try:
        return CallbackHosts.parse(items)
    except ValueError as err:
        raise ConfigurationError(
            f"EVENT_CALLBACK_HOSTS is invalid: {err}.", setting="EVENT_CALLBACK_HOSTS"
        ) from None


def checked_callback_url(url: object, hosts: CallbackHosts) -> str:
    """``url`` normalised, if the gateway may POST to it; else :class:`CallbackUrlError`."""
    if not isinstance(url, str) or not url:
        raise CallbackUrlError("callbackUrl must be a URL.")
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        raise CallbackUrlError(f"callbackUrl is longer than {MAX_CALLBACK_URL_LENGTH} characters.")
    if any(ord(c) < 0x21 or ord(c) == 0x7F or c == "\\" for c in url):
        raise CallbackUrlError("callbackUrl must not contain spaces, control characters or '\\'.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackUrlError("callbackUrl is not a valid URL.") from None
    if parts.scheme.lower() != "https":
        raise CallbackUrlError("callbackUrl must be an https URL.")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise CallbackUrlError("callbackUrl must not carry user information.")
    if parts.fragment:
        raise CallbackUrlError("callbackUrl must not have a fragment.")
    if port not in (None, HTTPS_PORT):
        raise CallbackUrlError("callbackUrl must use the https port 443.")
    raw_host = parts.hostname or ""
    if raw_host.startswith("[") or _is_ip(raw_host.rstrip(".")):
        raise CallbackUrlError("callbackUrl must name a host, not an IP address.")
    try:
        host = normalise_host(raw_host)
    except ValueError:
        raise CallbackUrlError("callbackUrl's host is not a valid host name.") from None
    if _is_ip(host) or not hosts.allows(host):
        raise CallbackUrlError(
            f"callbackUrl's host is not allowed; allowed: {hosts.describe()} "
            "(EVENT_CALLBACK_HOSTS)."
        )
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # Forms inet_aton still takes as an address (``0x7f.1``, ``2130706433``) are refused too.
        return bool(host) and all(
            label.isdigit() or label.startswith("0x") for label in host.split(".")
        )
    return True


class CallbackSession(requests.Session):
    """A session that sends only to allowed callback URLs and never follows redirects.

    Every request is checked again (the setting may have narrowed since the subscription was
    made), environment proxies and ``.netrc`` are ignored, and redirects are answers, not hops:
    a 3xx from a callback could otherwise point the gateway anywhere. Callback hosts are many
    (``prod-NN.<region>.logic.azure.com``): every new connection verifies with one TLS context,
    its CA bundle loaded once, instead of loading the bundle again (tens of ms of CPU each).
    """

    def __init__(self, hosts: CallbackHosts) -> None:
        super().__init__()
        self.hosts = hosts
        self.trust_env = False
        self.max_redirects = 0
        self.mount("https://", SharedTrustAdapter(requests.utils.DEFAULT_CA_BUNDLE_PATH))

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send one request to an allowed callback URL, without following redirects."""
        text = url.decode() if isinstance(url, bytes) else url
        checked = checked_callback_url(text, self.hosts)
        if kwargs.get("timeout") is None:
            raise ValueError("callback requests need a timeout")
        kwargs["allow_redirects"] = False
        return super().request(method, checked, *args, **kwargs)
