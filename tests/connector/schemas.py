"""Reading the definition the way a client does: operations, responses and JSON Schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# No types-jsonschema in requirements-dev.txt; pyproject.toml's mypy overrides are not ours to edit.
from jsonschema import Draft4Validator

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def operations(definition: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) of every operation in the definition."""
    for path, item in definition["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def operation(definition: dict[str, Any], operation_id: str) -> tuple[str, str, dict[str, Any]]:
    """The path, method and operation of ``operation_id``."""
    for found in operations(definition):
        if found[2]["operationId"] == operation_id:
            return found
    raise KeyError(operation_id)


def resolve(definition: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its local ``$ref`` (``#/parameters/...``, ``#/responses/...``) names."""
    ref = node.get("$ref")
    if ref is None:
        return node
    _, section, name = ref.split("/")
    return definition[section][name]


def response_spec(definition: dict[str, Any], operation_id: str, status: int) -> dict[str, Any]:
    """The response the definition declares for ``operation_id`` answering ``status``."""
    responses = operation(definition, operation_id)[2]["responses"]
    assert str(status) in responses, f"{operation_id} does not declare a {status} response"
    return resolve(definition, responses[str(status)])


def json_schema(node: Any) -> Any:
    """A Swagger 2.0 schema as JSON Schema (draft 4).

    ``x-nullable`` becomes a null alternative, and objects refuse undeclared properties, so an
    answer carrying a field the definition does not describe fails.
    """
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: json_schema(value) for key, value in node.items() if not key.startswith("x-")}
    if "properties" in schema:
        schema.setdefault("additionalProperties", False)
    if node.get("x-nullable"):
        if "$ref" in schema:
            return {"anyOf": [schema, {"type": "null"}]}
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def validator(definition: dict[str, Any], schema: dict[str, Any]) -> Draft4Validator:
    """A validator of ``schema`` with the definition's ``#/definitions`` resolvable."""
    root = {
        "definitions": json_schema(definition["definitions"]),
        "allOf": [json_schema(schema)],
    }
    return Draft4Validator(root, format_checker=Draft4Validator.FORMAT_CHECKER)


def walk_schemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, property schema) under ``node``, nested objects and array items too."""
    if not isinstance(node, dict):
        return
    for name, prop in node.get("properties", {}).items():
        yield f"{where}.{name}", prop
        yield from walk_schemas(prop, f"{where}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk_schemas(node["items"], f"{where}[]")
