"""How the Azure Functions host routes an HTTP request and hands it to a Python function.

``make run``'s host (``gateway/devserver.py``) applies these rules so that what passes locally
passes in Azure. Each rule cites the source it follows; "host" is Azure/azure-functions-host
(commit 89dc438, October 2024), "Kestrel" is ASP.NET Core's web server, which the host runs on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from .registry import HttpFunction

_ENCODED_SLASH = re.compile(r"%2f", re.IGNORECASE)
_PARAMETER = re.compile(r"^\{(\*?)(\w+)(\?)?\}$")


class BadRequestTargetError(ValueError):
    """A request target that Kestrel refuses with 400 before any routing."""


def host_path(raw_target: str) -> str:
    """The request path as the host routes it and shows it in ``req.url``.

    Kestrel decodes percent-escapes in the path except ``%2F``, which stays encoded so that it
    cannot split a segment (aspnetcore ``src/Shared/UrlDecoder/UrlDecoder.cs``, ``DecodeInPlace``
    with ``isFormEncoding: false``), then removes dot segments (``PathNormalizer.cs``,
    ``RemoveDotSegments``, RFC 3986 5.2.4). An absolute-form target (``http://h/p``) is routed by
    its path; a target that is neither absolute nor starts with ``/`` is a 400 (``HttpParser``).
    """
    if raw_target.startswith(("http://", "https://")):
        raw_target = urlsplit(raw_target).path or "/"
    path = raw_target.split("?", 1)[0]
    if not path.startswith("/"):
        raise BadRequestTargetError(raw_target[:100])
    pieces = _ENCODED_SLASH.split(path)
    decoded = "%2F".join(unquote(piece, errors="replace") for piece in pieces)
    return _remove_dot_segments(decoded)


def _remove_dot_segments(path: str) -> str:
    segments = path.split("/")[1:]
    kept: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                kept.append("")
        elif segment == "..":
            if kept:
                kept.pop()
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


def host_query(raw_query: str) -> dict[str, str]:
    """The query parameters as the function receives them in ``req.params``.

    ASP.NET Core collects the query into a dictionary whose keys ignore case, the first spelling
    kept (aspnetcore ``src/Http/Http/src/Features/QueryFeature.cs``, ``KeyValueAccumulator``);
    the host sends each key's values joined with ``,`` (``StringValues.ToString()``) and drops a
    key whose value is empty (host ``src/WebJobs.Script.Grpc/MessageExtensions/
    GrpcMessageConversionExtensions.cs`` lines 139-153, ``ToRpcHttp``; the Python worker does not
    declare ``UseNullableValueDictionaryForHttp``, which would keep them, lines 142-145).
    """
    values: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True, errors="replace"):
        folded = key.casefold()
        spelling.setdefault(folded, key)
        values.setdefault(folded, []).append(value)
    joined = {spelling[folded]: ",".join(found) for folded, found in values.items()}
    return {key: value for key, value in joined.items() if value}


def host_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request headers as the function receives them in ``req.headers``.

    Header names arrive lower-cased and a repeated header's values joined with ``,`` (host
    ``GrpcMessageConversionExtensions.cs`` line 168: ``pair.Key.ToLowerInvariant()``,
    ``pair.Value.ToString()``). Empty values are kept: the Python worker does not declare
    ``IgnoreEmptyValuedRpcHttpHeaders`` (same file, lines 163-166).
    """
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


@dataclass(frozen=True)
class RouteMatch:
    """The function a path and method lead to, and its route parameters."""

    function: HttpFunction
    route_params: dict[str, str]


class MethodNotAllowedError(LookupError):
    """The path matches routes, but none that takes the method."""

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = tuple(sorted(set(allowed)))


class RouteNotFoundError(LookupError):
    """No route matches the path."""


class _Route:
    """One route template, matched as ASP.NET Core routing matches it."""

    def __init__(self, prefix: str, function: HttpFunction) -> None:
        self.function = function
        self.methods = frozenset(m.upper() for m in function.methods)
        pattern = "".join(
            self._segment(segment) for segment in f"{prefix}/{function.route}".split("/") if segment
        )
        # Literal segments match whatever their case (ASP.NET Core routing compares route
        # templates with OrdinalIgnoreCase), and a trailing slash is ignored.
        self._regex = re.compile(f"^{pattern}/?$", re.IGNORECASE)

    @staticmethod
    def _segment(segment: str) -> str:
        parameter = _PARAMETER.match(segment)
        if parameter is None:
            if "{" in segment or "}" in segment:
                raise ValueError(f"unsupported route segment {segment!r} (constraints, mixed)")
            return "/" + re.escape(segment)
        catch_all, name, optional = parameter.groups()
        if catch_all:
            return f"(?:/(?P<{name}>.*))?"
        if optional:
            return f"(?:/(?P<{name}>[^/]+))?"
        return f"/(?P<{name}>[^/]+)"

    def match(self, path: str) -> dict[str, str] | None:
        found = self._regex.match(path)
        if found is None:
            return None
        # A parameter that is absent (optional, empty catch-all) is not sent (host
        # GrpcMessageConversionExtensions.cs line 234: only non-null route values).
        return {name: value for name, value in found.groupdict().items() if value}


class RouteTable:
    """The app's HTTP routes under the host's route prefix (host.json ``routePrefix``)."""

    def __init__(self, prefix: str, functions: Iterable[HttpFunction]) -> None:
        self._routes = [_Route(prefix, function) for function in functions]

    def match(self, method: str, path: str) -> RouteMatch:
        """The function for ``method`` and ``path`` (as :func:`host_path` gives it)."""
        allowed: list[str] = []
        for route in self._routes:
            params = route.match(path)
            if params is None:
                continue
            # No implicit HEAD or OPTIONS: a function takes only the methods it declares.
            if method.upper() in route.methods:
                return RouteMatch(route.function, params)
            allowed.extend(route.methods)
        if allowed:
            raise MethodNotAllowedError(allowed)
        raise RouteNotFoundError(path)


def host_url(scheme: str, host: str, path: str, raw_query: str) -> str:
    """``req.url`` as the host builds it: scheme, Host header, path and the query as sent (host
    ``GrpcMessageConversionExtensions.cs`` line 130)."""
    query = f"?{raw_query}" if raw_query else ""
    return f"{scheme}://{host}{path}{query}"
