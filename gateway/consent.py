"""``make consent``: the service user's one-time consent (Secure Application Model), stored in
Key Vault.

Runs MSAL's authorization-code flow with PKCE for the gateway's app registration: it prints the
sign-in URL (and opens a browser where there is one), catches the answer (posted by the sign-in
page: ``response_mode=form_post``) on a short-lived listener on ``http://localhost:<port>``,
redeems the code for a Partner Center token (scope
``.../user_impersonation``; MSAL adds ``offline_access``, ``openid`` and ``profile``), refuses a
sign-in without multi-factor authentication (the token's ``amr`` must contain ``mfa``: Partner
Center refuses App+User calls without it), and stores the refresh token as a new version of the
Key Vault secret with ``expires`` 90 days out and tags saying who consented and when. It prints
what it stored, never the token.

    python -m gateway.consent [--port 8400] [--timeout 300] [--no-browser]

It reads the service's settings (``KEY_VAULT_URL``, ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, a
client credential, ...). The app registration needs ``http://localhost:<port>`` as a Web
redirect URI.
"""

from __future__ import annotations

import argparse
import html
import sys
import threading
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from partnercenter import (
    CONSENT_LIFETIME,
    ConfigurationError,
    ConsentRecord,
    PartnerCenterClient,
    PartnerCenterError,
    RedeemedConsent,
    Settings,
    consent_tags,
)

DEFAULT_PORT = 8400
DEFAULT_TIMEOUT = 300.0
#: The posted answer of the sign-in page: a code, a state, a session state.
MAX_FORM = 64 * 1024
_DONE_PAGE = (
    "<!DOCTYPE html><html><head><title>Partner Center gateway consent</title></head><body>"
    "<h1>{title}</h1><p>{detail}</p><p>You can close this window.</p></body></html>"
)


class ConsentError(Exception):
    """The consent did not complete; the message says why and what to do."""


class _RedirectListener(HTTPServer):
    """Catches one redirect from the sign-in page on 127.0.0.1 (``localhost``)."""

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _RedirectHandler)
        self.received = threading.Event()
        self.params: dict[str, str] = {}


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _RedirectListener

    def do_POST(self) -> None:
        """The sign-in page posts ``code`` and ``state`` (or ``error``) here (``form_post``:
        the code never appears in a URL, the browser's history or a proxy's log)."""
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_FORM:
            self._page(400, "Not the sign-in answer", "Waiting for the sign-in to finish.")
            return
        self._receive(dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace"))))

    def do_GET(self) -> None:
        """A sign-in answered in the query string (``response_mode=query``)."""
        self._receive(dict(parse_qsl(urlsplit(self.path).query)))

    def _receive(self, params: dict[str, str]) -> None:
        if not ({"code", "error"} & params.keys()):
            self._page(404, "Not the sign-in answer", "Waiting for the sign-in to finish.")
            return
        failed = "error" in params
        self._page(
            200,
            "Sign-in failed" if failed else "Signed in",
            html.escape(params.get("error_description", "")[:500])
            if failed
            else "The consent is being stored; see the terminal.",
        )
        if not self.server.received.is_set():
            self.server.params = params
            self.server.received.set()

    def _page(self, status: int, title: str, detail: str) -> None:
        body = _DONE_PAGE.format(title=title, detail=detail).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request line carries the authorization code."""


def run_consent(
    settings: Settings,
    *,
    open_browser: Callable[[str], object],
    port: int = DEFAULT_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    out: TextIO = sys.stdout,
) -> ConsentRecord:
    """Run the consent and store its refresh token; the stored version's record."""
    client = PartnerCenterClient(settings)
    try:
        store = client.consent.store
        if store is None or not store.writable:
            raise ConfigurationError(
                "Set KEY_VAULT_URL: the consent is stored in Key Vault, where the app reads and "
                "rotates it.",
                setting="KEY_VAULT_URL",
            )
        app = client.consent_application()
        listener = _RedirectListener(port)
        try:
            redirect_uri = f"http://localhost:{listener.server_address[1]}"
            flow = app.initiate_auth_code_flow(
                [settings.partner_center_scope],
                redirect_uri=redirect_uri,
                prompt="select_account",
                response_mode="form_post",
            )
            thread = threading.Thread(target=listener.serve_forever, daemon=True)
            thread.start()
            print(f"Sign in as the service user, with MFA, at:\n{flow['auth_uri']}\n", file=out)
            out.flush()
            open_browser(flow["auth_uri"])
            if not listener.received.wait(timeout):
                raise ConsentError(
                    f"No sign-in came back to {redirect_uri} within {timeout:.0f} s; run it again."
                )
            params = listener.params
        finally:
            listener.shutdown()
            listener.server_close()
        if "error" in params:
            raise ConsentError(
                f"The sign-in failed: {params['error']}: "
                f"{params.get('error_description', '')[:300]}"
            )
        result = app.acquire_token_by_auth_code_flow(flow, params)
        if "access_token" not in result:
            raise ConsentError(
                f"Entra ID refused the authorization code: {result.get('error')}: "
                f"{str(result.get('error_description', '')).splitlines()[0][:300]}"
            )
        consent = RedeemedConsent.from_result(result)
        consent.require_mfa()
        now = client.consent.wall_clock()
        record = store.write(
            consent.refresh_token,
            expires_on=now + CONSENT_LIFETIME,
            tags=consent_tags(consent, now),
            timeout=settings.partner_center_deadline_seconds,
        )
        client.consent.record_success(record.version)
        who = consent.upn or "the service user"
        expires = record.expires_on.isoformat() if record.expires_on else "unknown"
        print(
            f"Stored the consent of {who} (object id {consent.object_id}) in {store.location}, "
            f"version {record.version}; it expires {expires} unless rotated (the app rotates "
            "it daily).",
            file=out,
        )
        return record
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.consent``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port of the localhost redirect listener (0: any free port)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument(
        "--no-browser", action="store_true", help="only print the sign-in URL (no browser)"
    )
    args = parser.parse_args(argv)
    browser: Callable[[str], object] = (lambda _url: None) if args.no_browser else webbrowser.open
    try:
        run_consent(
            Settings.from_environ(), open_browser=browser, port=args.port, timeout=args.timeout
        )
    except (ConsentError, PartnerCenterError, OSError) as err:
        remedy = getattr(err, "remedy", None)
        print(f"Consent not stored: {err}" + (f" {remedy}" if remedy else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
