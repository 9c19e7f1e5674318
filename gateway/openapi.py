"""The API's OpenAPI 2.0 (Swagger) definition, generated from the code: the connector's contract.

One source of truth: the paths and methods come from the function app's registered HTTP functions,
the parameters and bodies from the pydantic models of :mod:`gateway.schemas`, and the words
(summary, description, permission, visibility) from the :class:`OperationDoc` declared next to each
function in :mod:`gateway.functions`. Power Automate custom connectors take Swagger 2.0 only, so
pydantic's JSON Schema is converted, and a keyword Swagger 2.0 lacks is an error, not a silent drop.

``python -m gateway.openapi --write PATH`` writes the definition (``make connector``);
``--check PATH`` fails when the committed file is stale.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from pydantic import BaseModel

from .http import CORRELATION_HEADER
from .operation_docs import OperationDoc, PathParameter, Visibility
from .problems import (
    BAD_RESPONSE,
    CONSENT,
    FORBIDDEN,
    INDIRECT_RESELLER,
    INVALID_REQUEST,
    INVALID_SIGNATURE,
    MFA_REQUIRED,
    NOT_CONFIGURED,
    NOT_FOUND,
    PARTNER_CENTER_FORBIDDEN,
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_BASE,
    STORAGE_UNAVAILABLE,
    THROTTLED,
    TIMEOUT,
    UNAUTHENTICATED,
    UPSTREAM,
    Kind,
)
from .registry import HttpFunction, http_functions
from .schemas import Problem, QueryModel

BASE_PATH = "/api"  # host.json: extensions.http.routePrefix
#: Deliberately unresolvable (RFC 2606 ``.invalid``): a connector created from the file as committed
#: can send no token anywhere. The deploy pipeline puts the function app's host name here.
HOST_PLACEHOLDER = "partnercenter-gateway.invalid"
TITLE = "Partner Center Gateway"
DESCRIPTION = (
    "Microsoft Partner Center for the signed-in user: the link that invites a customer into a "
    "reseller relationship, the agreements a customer has accepted, whether it has accepted the "
    "Microsoft Customer Agreement, and the partner's attestation that it has. The gateway "
    "validates the Entra ID token, calls Partner Center on the user's behalf and answers errors "
    "as RFC 9457 problem details."
)
CONNECTOR_METADATA = (
    ("Website", "https://learn.microsoft.com/partner-center/developer/"),
    ("Privacy policy", "https://privacy.microsoft.com/privacystatement"),
    ("Categories", "Business Management;IT Operations"),
)
SECURITY_SCHEME = "oauth2"
# v1 endpoints: the connector's `aad` identity provider asks for a resource (api://...), not scopes.
AUTHORIZATION_URL = "https://login.microsoftonline.com/common/oauth2/authorize"
TOKEN_URL = "https://login.microsoftonline.com/common/oauth2/token"  # noqa: S105 - a URL
MAX_DEFINITION_BYTES = 1_000_000

CORRELATION_PARAMETER = "CorrelationId"
_REF_PREFIX = "#/definitions/"
_ROUTE_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Schema keywords Swagger 2.0 shares with JSON Schema; anything else pydantic emits must be
# converted (anyOf with null, const, $defs) or it is refused.
_SWAGGER_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "format",
        "title",
        "description",
        "default",
        "enum",
        "items",
        "properties",
        "required",
        "additionalProperties",
        "maxLength",
        "minLength",
        "pattern",
        "maximum",
        "minimum",
        "multipleOf",
        "maxItems",
        "minItems",
        "uniqueItems",
        "readOnly",
        # Power Automate's own extensions, declared on fields with ``json_schema_extra``.
        "x-ms-enum-values",
        "x-ms-notification-url",
        "x-ms-visibility",
    }
)
_PARAMETER_KEYWORDS = frozenset(
    {"type", "format", "default", "enum", "maxLength", "minLength", "pattern", "maximum", "minimum"}
)


class DefinitionError(Exception):
    """The app, its models or its operation docs cannot be described in Swagger 2.0."""


@dataclass(frozen=True)
class ErrorResponse:
    """A shared error response: its name under ``#/responses`` and the problem kinds it carries."""

    name: str
    kinds: tuple[Kind, ...]
    headers: tuple[str, ...] = ()


ERROR_RESPONSES: Mapping[int, ErrorResponse] = {
    400: ErrorResponse("InvalidRequest", (INVALID_REQUEST,)),
    401: ErrorResponse(
        "Unauthenticated", (UNAUTHENTICATED, MFA_REQUIRED, INVALID_SIGNATURE), ("WWW-Authenticate",)
    ),
    403: ErrorResponse("Forbidden", (FORBIDDEN, PARTNER_CENTER_FORBIDDEN, INDIRECT_RESELLER)),
    404: ErrorResponse("NotFound", (NOT_FOUND,)),
    429: ErrorResponse("Throttled", (THROTTLED,), ("Retry-After",)),
    502: ErrorResponse("UpstreamFailure", (UPSTREAM, BAD_RESPONSE)),
    503: ErrorResponse("Unavailable", (NOT_CONFIGURED, CONSENT, STORAGE_UNAVAILABLE)),
    504: ErrorResponse("UpstreamTimeout", (TIMEOUT,)),
}

_HEADERS: Mapping[str, dict[str, Any]] = {
    CORRELATION_HEADER: {
        "type": "string",
        "format": "uuid",
        "x-ms-summary": "Correlation id",
        "description": "The call's correlation id (the caller's, or a new one); also in the logs.",
    },
    "Retry-After": {
        "type": "integer",
        "x-ms-summary": "Retry after",
        "description": "Seconds to wait before calling again.",
    },
    "WWW-Authenticate": {
        "type": "string",
        "x-ms-summary": "Authentication challenge",
        "description": "Bearer challenge saying why the token was refused.",
    },
    "Location": {
        "type": "string",
        "x-ms-summary": "Location",
        "description": "Where the created resource is (a subscription: where Power Automate "
        "deletes it).",
    },
}


def definition_of(app: func.FunctionApp) -> dict[str, Any]:
    """The definition of ``app``'s HTTP functions, documented by :mod:`gateway.functions`."""
    # gateway.functions imports this module (for OperationDoc), so it is imported when called.
    from gateway.functions import OPERATIONS, VERSION  # noqa: PLC0415

    return build_definition(http_functions(app), OPERATIONS, version=VERSION)


def build_definition(
    functions: Sequence[HttpFunction], docs: Iterable[OperationDoc], *, version: str
) -> dict[str, Any]:
    """The Swagger 2.0 definition of ``functions``, each described by the doc of its name."""
    by_name = {doc.operation_id: doc for doc in docs}
    undocumented = sorted({f.name for f in functions} - by_name.keys())
    if undocumented:
        raise DefinitionError(f"HTTP functions without an OperationDoc: {', '.join(undocumented)}")
    unserved = sorted(by_name.keys() - {f.name for f in functions})
    if unserved:
        raise DefinitionError(f"OperationDocs of no HTTP function: {', '.join(unserved)}")

    definitions: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    errors_used: set[int] = set()
    for function in functions:
        doc = by_name[function.name]
        if len(function.methods) != 1:
            raise DefinitionError(f"{function.name}: one method, or its operationId is not unique.")
        path = "/" + _ROUTE_PARAM.sub(r"{\1}", function.route.strip("/"))
        operation = _operation(doc, _ROUTE_PARAM.findall(function.route), definitions)
        paths.setdefault(path, {})[function.methods[0].lower()] = operation
        errors_used.update(doc.errors)
    if errors_used:
        _merge(definitions, _definitions_of(Problem, frozenset()))

    return {
        "swagger": "2.0",
        "info": {"title": TITLE, "description": DESCRIPTION, "version": version},
        "host": HOST_PLACEHOLDER,
        "basePath": BASE_PATH,
        "schemes": ["https"],
        "produces": ["application/json", PROBLEM_CONTENT_TYPE],
        "paths": paths,
        "definitions": definitions,
        "parameters": {CORRELATION_PARAMETER: _correlation_parameter()},
        "responses": {
            ERROR_RESPONSES[status].name: _error_response(ERROR_RESPONSES[status])
            for status in sorted(errors_used)
        },
        "securityDefinitions": {SECURITY_SCHEME: _security_scheme(by_name.values())},
        "x-ms-connector-metadata": [
            {"propertyName": name, "propertyValue": value} for name, value in CONNECTOR_METADATA
        ],
    }


def render(definition: Mapping[str, Any]) -> str:
    """The definition as committed: sorted keys, two-space indent, one final newline."""
    return json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def display_name(value: str) -> str:
    """A friendly name for an enum value: ``MicrosoftCustomerAgreement`` -> ``Microsoft Customer
    Agreement``, ``all`` -> ``All``."""
    words = _WORD_START.sub(" ", value)
    return words[:1].upper() + words[1:]


def _operation(
    doc: OperationDoc, route_params: list[str], definitions: dict[str, Any]
) -> dict[str, Any]:
    where = doc.operation_id
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]+", where):
        raise DefinitionError(f"{where}: operationIds are PascalCase.")
    if not doc.summary or not doc.description:
        raise DefinitionError(f"{where}: a summary and a description are required.")
    declared = [p.name for p in doc.path_parameters]
    if declared != route_params:
        raise DefinitionError(f"{where}: route parameters {route_params}, documented {declared}.")
    unknown_errors = sorted(set(doc.errors) - ERROR_RESPONSES.keys())
    if unknown_errors:
        raise DefinitionError(f"{where}: no shared response for statuses {unknown_errors}.")

    parameters = [_path_parameter(p) for p in doc.path_parameters]
    marked: set[str] = set()
    if doc.query is not None:
        parameters += _query_parameters(doc.query, doc.advanced, marked)
    if doc.body is not None or doc.important:
        parameters.append(_body_parameter(doc, definitions, marked))
    parameters.append({"$ref": f"#/parameters/{CORRELATION_PARAMETER}"})

    successes = _successes(doc, definitions, marked)
    if doc.advanced - marked:
        raise DefinitionError(f"{where}: advanced names not found: {sorted(doc.advanced - marked)}")

    operation: dict[str, Any] = {
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "description": doc.description,
        "parameters": parameters,
        "responses": {
            **successes,
            **{
                str(status): {"$ref": f"#/responses/{ERROR_RESPONSES[status].name}"}
                for status in sorted(doc.errors)
            },
        },
    }
    if doc.permission is not None:
        operation["security"] = [{SECURITY_SCHEME: [doc.permission.value]}]
    if doc.visibility is not None:
        operation["x-ms-visibility"] = doc.visibility.value
    if doc.notification is not None:
        _merge(definitions, _definitions_of(doc.notification, frozenset()))
        operation["x-ms-trigger"] = "single"
        operation["x-ms-notification-content"] = {
            "description": doc.notification.__doc__ or doc.notification.__name__,
            "schema": {"$ref": _REF_PREFIX + doc.notification.__name__},
        }
    return operation


def _successes(doc: OperationDoc, definitions: dict[str, Any], marked: set[str]) -> dict[str, Any]:
    """The success responses of ``doc``: its status (200; 201 with ``Location``; 204 with no
    body), and a 201 beside the 200 for an operation that may create (``created``)."""
    where = doc.operation_id
    if doc.status not in (200, 201, 204):
        raise DefinitionError(f"{where}: success is 200, 201 or 204.")
    headers = {CORRELATION_HEADER: _HEADERS[CORRELATION_HEADER]}
    if doc.status == 201:
        headers["Location"] = _HEADERS["Location"]
    success: dict[str, Any] = {"headers": headers}
    if doc.status == 204:
        if doc.response is not None or not doc.response_description:
            raise DefinitionError(f"{where}: a 204 has no body; describe it in words.")
        success["description"] = doc.response_description
    elif doc.response is None:
        if not doc.response_description:
            raise DefinitionError(f"{where}: describe the response it does not model.")
        success.update(description=doc.response_description, schema={"type": "object"})
    else:
        own = _definitions_of(doc.response, doc.advanced, marked)
        _merge(definitions, own)
        description = doc.response_description or own[doc.response.__name__].get("description")
        if not description:
            raise DefinitionError(f"{where}: the response model needs a docstring.")
        schema = {"$ref": _REF_PREFIX + doc.response.__name__}
        success.update(description=description, schema=schema)
    successes = {str(doc.status): success}
    if doc.created:
        created_headers = {name: _HEADERS[name] for name in (CORRELATION_HEADER, "Location")}
        successes["201"] = {**success, "description": doc.created, "headers": created_headers}
    return successes


def _body_parameter(
    doc: OperationDoc, definitions: dict[str, Any], marked: set[str]
) -> dict[str, Any]:
    """The ``in: body`` parameter of ``doc``'s JSON body; its models join ``definitions``."""
    where = doc.operation_id
    if doc.body is None:
        raise DefinitionError(f"{where}: important names need a body.")
    important: set[str] = set()
    body = _definitions_of(doc.body, doc.advanced, marked, doc.important, important)
    if doc.important - important:
        missing = sorted(doc.important - important)
        raise DefinitionError(f"{where}: important names not found: {missing}")
    _merge(definitions, body)
    description = doc.body_description or body[doc.body.__name__].get("description")
    if not description:
        raise DefinitionError(f"{where}: the body model needs a docstring.")
    return {
        "name": "body",
        "in": "body",
        "required": True,
        "description": description,
        "x-ms-summary": "Body",
        "schema": {"$ref": _REF_PREFIX + doc.body.__name__},
    }


def _path_parameter(parameter: PathParameter) -> dict[str, Any]:
    return {
        "name": parameter.name,
        "in": "path",
        "required": True,
        "type": "string",
        "format": "uuid",
        "x-ms-summary": parameter.title,
        "description": parameter.description,
    }


def _query_parameters(
    model: type[QueryModel], advanced: frozenset[str], marked: set[str]
) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, ref_template=_REF_PREFIX + "{model}")
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        where = f"{model.__name__}.{name}"
        resolved = _swagger_schema(prop, where)
        resolved.pop("x-nullable", None)  # an absent query parameter is how "no value" is said
        ref = resolved.pop("$ref", None)
        if ref is not None:
            # Only enums are referenced from query models; a parameter must be inline.
            target = defs[ref.removeprefix(_REF_PREFIX)]
            resolved = {**_swagger_schema(target, where, property_titles=False), **resolved}
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            **{k: v for k, v in resolved.items() if k in _PARAMETER_KEYWORDS},
        }
        if "x-ms-summary" not in resolved:
            raise DefinitionError(f"{where}: give the field a title (the x-ms-summary).")
        parameter["x-ms-summary"] = resolved["x-ms-summary"]
        if resolved.get("description"):
            parameter["description"] = resolved["description"]
        if "enum" in parameter:
            parameter["x-ms-enum-values"] = [
                {"displayName": display_name(str(value)), "value": value}
                for value in parameter["enum"]
            ]
        if name in advanced:
            parameter["x-ms-visibility"] = Visibility.ADVANCED.value
            marked.add(name)
        parameters.append(parameter)
    return parameters


def _definitions_of(
    model: type[BaseModel],
    advanced: frozenset[str],
    marked: set[str] | None = None,
    important: frozenset[str] = frozenset(),
    marked_important: set[str] | None = None,
) -> dict[str, Any]:
    """``model`` and the models it refers to, as Swagger definitions by class name; properties
    named in ``advanced`` or ``important`` get that ``x-ms-visibility``."""
    schema = model.model_json_schema(by_alias=True, ref_template=_REF_PREFIX + "{model}")
    found = {model.__name__: schema, **schema.pop("$defs", {})}
    definitions = {}
    for name, raw in found.items():
        definition = _swagger_schema(raw, name, property_titles=False)
        for prop_name, prop in definition.get("properties", {}).items():
            if "x-ms-summary" not in prop:
                raise DefinitionError(f"{name}.{prop_name}: give the field a title.")
            if prop_name in advanced:
                prop["x-ms-visibility"] = Visibility.ADVANCED.value
                if marked is not None:
                    marked.add(prop_name)
            elif prop_name in important:
                prop["x-ms-visibility"] = Visibility.IMPORTANT.value
                if marked_important is not None:
                    marked_important.add(prop_name)
        definitions[name] = definition
    for definition in definitions.values():
        _inline_refs_with_siblings(definition, definitions)
    return {name: definitions[name] for name in _reachable(model.__name__, definitions)}


def _inline_refs_with_siblings(schema: dict[str, Any], definitions: Mapping[str, Any]) -> None:
    # Swagger 2.0 ignores whatever sits next to a $ref (the property's x-ms-summary, description,
    # x-nullable), so such a property gets a copy of the definition instead of the reference.
    properties = schema.get("properties", {})
    for name, prop in properties.items():
        ref = prop.get("$ref")
        if ref is not None and len(prop) > 1:
            target = copy.deepcopy(definitions[ref.removeprefix(_REF_PREFIX)])
            properties[name] = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
        _inline_refs_with_siblings(properties[name], definitions)
        if isinstance(properties[name].get("items"), dict):
            _inline_refs_with_siblings(properties[name]["items"], definitions)


def _reachable(root: str, definitions: Mapping[str, Any]) -> list[str]:
    """``root`` and the definitions it refers to, directly or not, in a stable order."""
    found = [root]
    for name in found:
        for ref in _refs(definitions[name]):
            target = ref.removeprefix(_REF_PREFIX)
            if target not in found:
                found.append(target)
    return found


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _swagger_schema(node: Mapping[str, Any], where: str, *, property_titles: bool = True) -> Any:
    """A pydantic JSON Schema node in Swagger 2.0 form.

    ``anyOf [X, null]`` becomes X with ``x-nullable``; ``const`` a one-value ``enum``; a field's
    ``title`` its ``x-ms-summary``. A model's own title (its class name) is dropped.
    """
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key == "anyOf":
            others = [v for v in value if v != {"type": "null"}]
            if len(value) != 2 or len(others) != 1:
                raise DefinitionError(f"{where}: Swagger 2.0 has no anyOf (only X-or-null).")
            converted.update(_swagger_schema(others[0], where))
            converted["x-nullable"] = True
        elif key == "const":
            converted["enum"] = [value]
        elif key == "examples" or (key == "default" and value is None):
            continue  # Swagger 2.0 has no `examples`; a null default is the nullable's absence
        elif key == "title":
            if property_titles:
                converted["x-ms-summary"] = value
        elif key == "properties":
            converted[key] = {
                name: _swagger_schema(prop, f"{where}.{name}") for name, prop in value.items()
            }
        elif key in {"items", "additionalProperties"} and isinstance(value, Mapping):
            converted[key] = _swagger_schema(value, where)
        elif key in _SWAGGER_KEYWORDS:
            converted[key] = value
        else:
            raise DefinitionError(f"{where}: Swagger 2.0 has no `{key}`.")
    return converted


def _merge(definitions: dict[str, Any], new: Mapping[str, Any]) -> None:
    for name, definition in new.items():
        if definitions.setdefault(name, definition) != definition:
            raise DefinitionError(f"Two different definitions named {name}.")


def _correlation_parameter() -> dict[str, Any]:
    return {
        "name": CORRELATION_HEADER,
        "in": "header",
        "required": False,
        "type": "string",
        "format": "uuid",
        "x-ms-summary": "Correlation id",
        "description": "A GUID that ties this call to your own logs; a new one when absent.",
        "x-ms-visibility": Visibility.ADVANCED.value,
    }


def _error_response(error: ErrorResponse) -> dict[str, Any]:
    kinds = "; ".join(f"{kind.title} ({PROBLEM_TYPE_BASE}{kind.slug})" for kind in error.kinds)
    return {
        "description": f"{kinds}.",
        "schema": {"$ref": _REF_PREFIX + Problem.__name__},
        "headers": {name: _HEADERS[name] for name in (CORRELATION_HEADER, *error.headers)},
    }


def _security_scheme(docs: Iterable[OperationDoc]) -> dict[str, Any]:
    uses: dict[str, list[str]] = {}
    for doc in docs:
        if doc.permission is not None:
            uses.setdefault(doc.permission.value, []).append(doc.summary)
    return {
        "type": "oauth2",
        "flow": "accessCode",
        "authorizationUrl": AUTHORIZATION_URL,
        "tokenUrl": TOKEN_URL,
        "scopes": {scope: "Needed to: " + "; ".join(s) for scope, s in uses.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.openapi --write PATH`` or ``--check PATH``."""
    parser = argparse.ArgumentParser(description="Generate or check the connector's definition.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="PATH", help="write the definition to PATH")
    action.add_argument("--check", type=Path, metavar="PATH", help="fail if PATH is not current")
    args = parser.parse_args(argv)

    # Importing the app registers its functions; only the command needs that, not the importers.
    from function_app import app  # noqa: PLC0415

    text = render(definition_of(app)).encode("utf-8")
    if len(text) >= MAX_DEFINITION_BYTES:
        print(f"The definition is {len(text)} bytes; connectors take under 1 MB.", file=sys.stderr)
        return 1
    if args.write is not None:
        args.write.write_bytes(text)
        print(f"Wrote {args.write} ({len(text)} bytes).")
        return 0
    current = args.check.read_bytes() if args.check.is_file() else None
    if current != text:
        print(
            f"{args.check} is stale: it is not what the code generates. "
            "Run `make connector` and commit the result.",
            file=sys.stderr,
        )
        return 1
    print(f"{args.check} is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
