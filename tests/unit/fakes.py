"""A requests adapter that answers from a handler: the network swapped out, no patching."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import BaseAdapter


class FakeClock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Handler = Callable[[requests.PreparedRequest], "requests.Response | Exception"]


class HandlerAdapter(BaseAdapter):
    """Calls ``handler`` for every request and records what was sent."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.requests.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        result = self.handler(request)
        if isinstance(result, Exception):
            raise result
        result.request = request
        return result

    def close(self) -> None:
        return None


def response(
    status: int, body: bytes | str = b"", headers: dict[str, str] | None = None
) -> requests.Response:
    """A canned response."""
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode() if isinstance(body, str) else body
    resp.headers.update(headers or {})
    return resp


def session_with(handler: Handler) -> tuple[requests.Session, HandlerAdapter]:
    """A session whose every request goes to ``handler``."""
    session = requests.Session()
    adapter = HandlerAdapter(handler)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, adapter
