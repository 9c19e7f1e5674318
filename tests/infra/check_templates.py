"""Check the Bicep templates against what Azure accepts, offline (part of `make lint`).

No Bicep compiler can run here, and checkov and pycep-parser accept anything that parses. This
reads every template with a real Bicep parser (tree-sitter-bicep) and checks:

- resource types and API versions against Azure's published definitions (bicep-types-az
  `types.json`, vendored in tests/infra/azure_types/ for the types in use);
- every property path written (nested objects, enum values, types, lengths and ranges, read-only
  and required properties), and every property path read from a resource (`storage.properties.x`);
- the Flex Consumption platform rules the definitions do not carry (tests/infra/flex_consumption.py);
- modules: every parameter passed exists, every required one is passed, a literal passed is of the
  parameter's type (and among its `@allowed` values), and every output read exists;
- CORS: no `*` origin.

Values are followed through variables, `?:` (both branches), parentheses and `@allowed`
parameters; what depends on deployment-time values (parameters, functions) is not guessed.

    python -m tests.infra.check_templates infra
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

from tests.infra import flex_consumption

TYPES_DIR = Path(__file__).with_name("azure_types")

#: Property flags of bicep-types (TypePropertyFlags).
REQUIRED, READ_ONLY, WRITE_ONLY = 1, 2, 4
#: Keys of a resource body that are Bicep's own, not properties of the resource type.
BICEP_RESOURCE_KEYS = frozenset({"parent", "scope", "dependsOn"})
#: Bicep's own module body keys.
MODULE_KEYS = frozenset({"name", "params", "scope", "dependsOn"})
#: Stands for a value known only at deployment time.
UNKNOWN = object()

#: Bicep's primitive parameter types a literal argument is checked against.
ARGUMENT_KINDS = frozenset({"string", "int", "bool", "object", "array"})


def argument_kind(value: Any) -> str:
    """The Bicep type of a literal value or of an object, array or loop node."""
    if isinstance(value, Node):
        return "object" if value.type == "object" else "array"
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "string"


#: A problem found below a resource: where it is written, and what it is.
Finding = tuple[Node, str]


@dataclass(frozen=True)
class Problem:
    """One thing Azure would refuse (or ignore), where it is written."""

    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def node_text(node: Node) -> str:
    """The source text of a node."""
    return (node.text or b"").decode("utf-8")


def named_children(node: Node) -> list[Node]:
    """The named children of a node, comments left out."""
    return [child for child in node.named_children if child.type != "comment"]


@dataclass
class Declaration:
    """A param, var, resource, module or output of a template."""

    kind: str
    name: str
    node: Node
    decorators: list[Node] = field(default_factory=list)

    @property
    def line(self) -> int:
        """1-based line of the declaration."""
        return self.node.start_point[0] + 1

    def children(self) -> list[Node]:
        """The declaration's named children, comments left out."""
        return named_children(self.node)


@functools.cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


class Template:
    """One parsed .bicep file and its declarations by kind and name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        tree = _parser().parse(path.read_bytes())
        self.root = tree.root_node
        self.declarations: dict[str, dict[str, Declaration]] = {
            kind: {} for kind in ("param", "var", "resource", "module", "output")
        }
        decorators: list[Node] = []
        for node in named_children(self.root):
            if node.type == "decorators":
                decorators = named_children(node)
                continue
            kind = node.type.removesuffix("_declaration").replace("parameter", "param")
            kind = kind.replace("variable", "var")
            if kind in self.declarations:
                name = node_text(named_children(node)[0])
                self.declarations[kind][name] = Declaration(kind, name, node, decorators)
            decorators = []

    def syntax_errors(self) -> list[Problem]:
        """Where tree-sitter could not parse the file."""
        problems: list[Problem] = []

        def walk(node: Node) -> None:
            if node.is_error or node.is_missing:
                problems.append(
                    Problem(
                        self.path, node.start_point[0] + 1, f"syntax error near {node_text(node)!r}"
                    )
                )
                return
            for child in node.children:
                walk(child)

        walk(self.root)
        return problems

    @property
    def params(self) -> dict[str, Declaration]:
        """Parameters by name."""
        return self.declarations["param"]

    @property
    def variables(self) -> dict[str, Declaration]:
        """Variables by name."""
        return self.declarations["var"]

    @property
    def resources(self) -> dict[str, Declaration]:
        """Resources by symbolic name."""
        return self.declarations["resource"]

    @property
    def modules(self) -> dict[str, Declaration]:
        """Modules by symbolic name."""
        return self.declarations["module"]

    @property
    def outputs(self) -> dict[str, Declaration]:
        """Outputs by name."""
        return self.declarations["output"]


def literal(node: Node) -> Any:
    """The Python value of a literal node (a string without interpolation, number, bool, null)."""
    if node.type == "string" and not any(c.type == "interpolation" for c in node.named_children):
        return "".join(node_text(c) for c in node.named_children if c.type == "string_content")
    if node.type == "number":
        return int(node_text(node))
    if node.type == "boolean":
        return node_text(node) == "true"
    if node.type == "null":
        return None
    return UNKNOWN


def decorator(declaration: Declaration, name: str) -> Node | None:
    """The argument of `@name(...)` on a declaration (with or without `sys.`), if present."""
    for node in declaration.decorators:
        call = named_children(node)[0]
        if call.type != "call_expression":
            continue
        function = node_text(call.child_by_field_name("function") or call).removeprefix("sys.")
        arguments = call.child_by_field_name("arguments")
        if function == name and arguments is not None and named_children(arguments):
            return named_children(arguments)[0]
    return None


def body(declaration: Declaration) -> Node | None:
    """The object of a resource or module, through `if (...)` and `[for ...: ...]`."""
    node = declaration.children()[-1]
    if node.type == "if_statement":
        node = named_children(node)[-1]
    if node.type == "for_statement":
        node = node.child_by_field_name("body") or named_children(node)[-1]
    return node if node.type == "object" else None


def properties(obj: Node) -> Iterator[tuple[str | None, Node, Node]]:
    """(key, key node, value node) of an object; key None when it is not a literal."""
    for prop in named_children(obj):
        if prop.type != "object_property":
            continue
        key_node, value = named_children(prop)[0], named_children(prop)[-1]
        key = node_text(key_node) if key_node.type == "identifier" else literal(key_node)
        yield (key if isinstance(key, str) else None), key_node, value


def member(obj: Node, key: str) -> Node | None:
    """The value of a literal key of an object literal."""
    return next((value for name, _, value in properties(obj) if name == key), None)


class AzureTypes:
    """The vendored bicep-types-az definitions."""

    def __init__(self, directory: Path = TYPES_DIR) -> None:
        self.api_versions: dict[str, list[str]] = json.loads(
            (directory / "api-versions.json").read_text(encoding="utf-8")
        )
        #: "microsoft.web/sites@2024-04-01" -> (the file's type list, the body type)
        self.resources: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        for path in sorted(directory.rglob("types.json")):
            types: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
            for entry in types:
                if entry["$type"] == "ResourceType":
                    self.resources[entry["name"].lower()] = (types, resolve(types, entry["body"]))

    def lookup(self, type_name: str, api_version: str) -> str | tuple[list[Any], dict[str, Any]]:
        """The definition of `type@version`, or why there is none."""
        found = self.resources.get(f"{type_name}@{api_version}".lower())
        if found:
            return found
        namespace = type_name.split("/", maxsplit=1)[0].lower()
        versions = self.api_versions.get(namespace)
        if versions is None:
            return f"no definitions are vendored for the provider namespace {type_name.split('/', maxsplit=1)[0]}"
        if api_version not in versions:
            return (
                f"API version {api_version} does not exist for {type_name.split('/', maxsplit=1)[0]} "
                f"(latest published: {', '.join(versions[-4:])})"
            )
        known = sorted({name.split("@")[0] for name in self.resources})
        close = difflib.get_close_matches(type_name.lower(), known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return (
            f"{type_name}@{api_version} is not among the vendored definitions{hint}; if it is "
            "real, add it to VENDORED in tests/infra/vendor_azure_types.py and vendor again"
        )


def resolve(types: list[dict[str, Any]], ref: dict[str, str]) -> dict[str, Any]:
    """The type entry a `{"$ref": "#/N"}` points at."""
    return types[int(ref["$ref"].removeprefix("#/"))]


def _literal_values(types: list[dict[str, Any]], entry: dict[str, Any]) -> list[str]:
    if entry["$type"] == "StringLiteralType":
        return [entry["value"]]
    if entry["$type"] == "UnionType":
        return [v for e in entry["elements"] for v in _literal_values(types, resolve(types, e))]
    return []


def _check_string(value: Any, entry: dict[str, Any], path: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{path}: expects a string, not {value!r}"]
    if not entry.get("minLength", 0) <= len(value) <= entry.get("maxLength", len(value)):
        limits = f"{entry.get('minLength', 0)}..{entry.get('maxLength', '')}"
        return [f"{path}: {value!r} is not {limits} characters long"]
    try:
        pattern = re.compile(entry.get("pattern", ""))
    except re.error:  # a .NET-only construct: the service checks it
        return []
    return [] if pattern.search(value) else [f"{path}: {value!r} does not match {pattern.pattern}"]


def _check_integer(value: Any, entry: dict[str, Any], path: str) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [f"{path}: expects an integer, not {value!r}"]
    if entry.get("minValue", value) <= value <= entry.get("maxValue", value):
        return []
    return [f"{path}: {value} is outside {entry.get('minValue')}..{entry.get('maxValue')}"]


def check_literal(value: Any, entry: dict[str, Any], path: str) -> list[str]:
    """Problems of a literal (string, number, bool) against a non-union type."""
    kind = entry["$type"]
    if kind == "StringLiteralType":
        return [] if value == entry["value"] else [f"{path}: {value!r} is not {entry['value']!r}"]
    if kind == "StringType":
        return _check_string(value, entry, path)
    if kind == "IntegerType":
        return _check_integer(value, entry, path)
    if kind == "BooleanType" and isinstance(value, bool):
        return []
    return [
        f"{path}: expects {entry.get('name') or kind.removesuffix('Type').lower()}, not {value!r}"
    ]


def object_properties(
    types: list[dict[str, Any]], entry: dict[str, Any], obj: Node
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The properties (and additionalProperties) an object literal is checked against.

    For a discriminated type, the element its discriminator names; all elements' properties when
    the discriminator is not a literal.
    """
    if entry["$type"] == "ObjectType":
        return entry["properties"], entry.get("additionalProperties")
    chosen = member(obj, entry["discriminator"])
    tag = literal(chosen) if chosen is not None else UNKNOWN
    props = dict(entry["baseProperties"])
    for value, ref in entry["elements"].items():
        if tag is UNKNOWN or value == tag:
            props.update(resolve(types, ref)["properties"])
    return props, None


class TemplateChecker:
    """Checks templates (and the modules they use) against the definitions and the rules."""

    def __init__(self, azure: AzureTypes) -> None:
        self.azure = azure
        self.templates: dict[Path, Template] = {}
        self.problems: list[Problem] = []
        self.resource_count = 0

    def template(self, path: Path) -> Template:
        """A parsed template, parsed once."""
        path = path.resolve()
        if path not in self.templates:
            self.templates[path] = Template(path)
        return self.templates[path]

    def report(self, template: Template, node: Node, message: str) -> None:
        """Record one problem at a node."""
        self.problems.append(Problem(template.path, node.start_point[0] + 1, message))

    # Values -----------------------------------------------------------------------------------

    def candidates(
        self, template: Template, node: Node, seen: frozenset[str] = frozenset()
    ) -> Iterator[Any]:
        """What an expression can evaluate to: nodes (objects, arrays, loops) or Python literals.

        Variables, parentheses and both branches of `?:` are followed; a parameter with
        `@allowed` yields its allowed values; anything else yields UNKNOWN.
        """
        if node.type == "parenthesized_expression":
            yield from self.candidates(template, named_children(node)[0], seen)
        elif node.type == "ternary_expression":
            for part in ("consequence", "alternative"):
                branch = node.child_by_field_name(part)
                if branch is not None:
                    yield from self.candidates(template, branch, seen)
        elif node.type == "identifier":
            name = node_text(node)
            if name in template.variables and name not in seen:
                value = template.variables[name].children()[-1]
                yield from self.candidates(template, value, seen | {name})
            elif name in template.params and (
                allowed := decorator(template.params[name], "allowed")
            ):
                yield from (literal(item) for item in named_children(allowed))
            else:
                yield UNKNOWN
        elif node.type in ("object", "array", "for_statement"):
            yield node
        else:
            yield literal(node)

    # Types ------------------------------------------------------------------------------------

    def check_value(
        self, template: Template, node: Node, types: list[Any], entry: dict[str, Any], path: str
    ) -> list[Finding]:
        """Problems of an expression against a type, for every value it can take."""
        found: list[Finding] = []
        for value in self.candidates(template, node):
            if value is UNKNOWN:
                continue
            found.extend(self._check(template, value, node, types, entry, path))
        return found

    def _check(
        self,
        template: Template,
        value: Any,
        where: Node,
        types: list[Any],
        entry: dict[str, Any],
        path: str,
    ) -> list[Finding]:
        kind = entry["$type"]
        if kind == "AnyType" or value is None:
            return []
        if kind != "UnionType":
            if isinstance(value, Node):
                return self._check_node(template, value, types, entry, path)
            return [(where, message) for message in check_literal(value, entry, path)]
        allowed = _literal_values(types, entry)
        if allowed and isinstance(value, str):
            # An "extensible" enum (the literals plus any string) still names every value the
            # service documents; Bicep warns (BCP036) and the service refuses the rest.
            if value in allowed:
                return []
            return [(where, f"{path}: {value!r} is not one of {', '.join(map(repr, allowed))}")]
        options = [resolve(types, e) for e in entry["elements"]]
        results = [self._check(template, value, where, types, option, path) for option in options]
        return [] if any(not result for result in results) else min(results, key=len)

    def _check_node(
        self, template: Template, node: Node, types: list[Any], entry: dict[str, Any], path: str
    ) -> list[Finding]:
        kind = entry["$type"]
        if node.type in ("array", "for_statement"):
            if kind != "ArrayType":
                return [(node, f"{path}: expects {entry.get('name') or kind}, not an array")]
            item_type = resolve(types, entry["itemType"])
            items = (
                [node.child_by_field_name("body") or named_children(node)[-1]]
                if node.type == "for_statement"
                else named_children(node)
            )
            return [
                finding
                for index, item in enumerate(items)
                for finding in self.check_value(
                    template, item, types, item_type, f"{path}[{index}]"
                )
            ]
        if kind in ("ObjectType", "DiscriminatedObjectType"):
            props, additional = object_properties(types, entry, node)
            return self.check_object(template, node, types, props, additional, path)
        return [(node, f"{path}: expects {entry.get('name') or kind}, not an object")]

    def check_object(
        self,
        template: Template,
        obj: Node,
        types: list[Any],
        props: dict[str, Any],
        additional: dict[str, str] | None,
        path: str,
        *,
        skip: frozenset[str] = frozenset(),
        require: bool = True,
    ) -> list[Finding]:
        """Problems of an object literal against an object type's properties."""
        found: list[Finding] = []
        written: set[str] = set()
        prefix = f"{path}." if path else ""
        for key, key_node, value in properties(obj):
            if key is None or key in skip:
                continue
            written.add(key)
            spec = props.get(key)
            if spec is None and additional is not None:
                found.extend(
                    self.check_value(
                        template, value, types, resolve(types, additional), f"{prefix}{key}"
                    )
                )
            elif spec is None:
                writable = [name for name, s in props.items() if not s["flags"] & READ_ONLY]
                close = difflib.get_close_matches(key, writable, n=1)
                hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(writable)}"
                found.append((key_node, f"{prefix}{key}: no such property ({hint})"))
            elif spec["flags"] & READ_ONLY:
                found.append((key_node, f"{prefix}{key}: read-only property; Azure sets it"))
            else:
                found.extend(
                    self.check_value(
                        template, value, types, resolve(types, spec["type"]), f"{prefix}{key}"
                    )
                )
        # A key that is an expression (`'${x}': ...`) may be any required property.
        computed_key = any(key is None for key, _, _ in properties(obj))
        if require and not computed_key:
            found.extend(
                (obj, f"{prefix}{name}: required property missing")
                for name, spec in props.items()
                if spec["flags"] & REQUIRED
                and not spec["flags"] & READ_ONLY
                and name not in written
            )
        return found

    # Declarations -----------------------------------------------------------------------------

    def check_file(self, path: Path) -> None:
        """Check one template and the reads of the modules and resources it uses."""
        template = self.template(path)
        self.problems.extend(template.syntax_errors())
        for declaration in template.resources.values():
            self.check_resource(template, declaration)
        for declaration in template.modules.values():
            self.check_module(template, declaration)
        self.check_reads(template)

    def resource_definition(
        self, template: Template, declaration: Declaration
    ) -> tuple[list[Any], dict[str, Any]] | None:
        """The definition of a resource's type, or None after reporting why there is none."""
        type_string = literal(declaration.children()[1])
        if not isinstance(type_string, str) or "@" not in type_string:
            self.report(
                template,
                declaration.node,
                f"resource {declaration.name}: type is not 'Type@apiVersion'",
            )
            return None
        type_name, api_version = type_string.split("@", 1)
        found = self.azure.lookup(type_name, api_version)
        if isinstance(found, str):
            self.report(template, declaration.node, f"resource {declaration.name}: {found}")
            return None
        return found

    def check_resource(self, template: Template, declaration: Declaration) -> None:
        """Type, API version and body of one resource, and the Flex Consumption rules."""
        self.resource_count += 1
        definition = self.resource_definition(template, declaration)
        obj = body(declaration)
        if definition is None or obj is None:
            return
        types, body_type = definition
        existing = any(child.type == "existing" for child in declaration.node.children)
        props, _ = object_properties(types, body_type, obj)
        for where, message in self.check_object(
            template, obj, types, props, None, "", skip=BICEP_RESOURCE_KEYS, require=not existing
        ):
            self.report(template, where, f"resource {declaration.name}: {message}")
        if body_type.get("name", "").lower() == "microsoft.web/sites":
            self.check_site(template, declaration, obj)

    def is_flex_site(self, template: Template, site: Node) -> bool:
        """Whether a site runs on Flex Consumption: functionAppConfig, or an FC1 plan here."""
        site_properties = member(site, "properties")
        if site_properties is None or site_properties.type != "object":
            return False
        if member(site_properties, "functionAppConfig") is not None:
            return True
        farm = member(site_properties, "serverFarmId")
        if farm is None or farm.type != "member_expression":
            return False
        plan = template.resources.get(node_text(farm.child_by_field_name("object") or farm))
        plan_body = body(plan) if plan else None
        sku = member(plan_body, "sku") if plan_body else None
        return (
            sku is not None
            and sku.type == "object"
            and (
                literal(member(sku, "name") or sku) == "FC1"
                or literal(member(sku, "tier") or sku) == "FlexConsumption"
            )
        )

    def check_site(self, template: Template, declaration: Declaration, site: Node) -> None:
        """Flex Consumption rules and CORS of one Microsoft.Web/sites resource."""
        site_properties = member(site, "properties")
        if site_properties is None or site_properties.type != "object":
            return
        site_config = member(site_properties, "siteConfig")
        cors = (
            member(site_config, "cors")
            if site_config is not None and site_config.type == "object"
            else None
        )
        origins = (
            member(cors, "allowedOrigins") if cors is not None and cors.type == "object" else None
        )
        if origins is not None:
            for value in self.candidates(template, origins):
                if (
                    isinstance(value, Node)
                    and value.type == "array"
                    and "*" in map(literal, named_children(value))
                ):
                    self.report(
                        template,
                        origins,
                        f"resource {declaration.name}: CORS allowedOrigins must not contain '*'",
                    )
        if not self.is_flex_site(template, site):
            return
        levels = [("properties", site_properties)]
        if site_config is not None and site_config.type == "object":
            levels.append(("properties.siteConfig", site_config))
        for path, obj in levels:
            for key, key_node, _ in properties(obj):
                rule = flex_consumption.SITE_PROPERTIES.get((key or "").lower())
                if rule:
                    self.report(
                        template,
                        key_node,
                        f"resource {declaration.name}: {path}.{key} on a Flex Consumption site: {rule.reason} [{rule.source}]",
                    )
        for name, node in self.app_settings(template, site_config):
            rule = flex_consumption.APP_SETTINGS.get(name.upper())
            if rule:
                self.report(
                    template,
                    node,
                    f"resource {declaration.name}: app setting {name} on a Flex Consumption site: {rule.reason} [{rule.source}]",
                )

    def app_settings(
        self, template: Template, site_config: Node | None
    ) -> Iterator[tuple[str, Node]]:
        """Names of the app settings in siteConfig.appSettings: [{name, value}] or a loop over items(object)."""
        settings = (
            member(site_config, "appSettings")
            if site_config is not None and site_config.type == "object"
            else None
        )
        if settings is None:
            return
        for value in self.candidates(template, settings):
            if isinstance(value, Node) and value.type == "array":
                for item in named_children(value):
                    name = (
                        literal(member(item, "name") or item) if item.type == "object" else UNKNOWN
                    )
                    if isinstance(name, str):
                        yield name, item
            elif isinstance(value, Node) and value.type == "for_statement":
                source = named_children(value)[-2]
                if (
                    source.type == "call_expression"
                    and node_text(source.child_by_field_name("function") or source) == "items"
                ):
                    arguments = source.child_by_field_name("arguments")
                    if arguments is not None and named_children(arguments):
                        yield from self.object_keys(template, named_children(arguments)[0])

    def object_keys(
        self, template: Template, node: Node, seen: frozenset[str] = frozenset()
    ) -> Iterator[tuple[str, Node]]:
        """Keys of an object expression, through variables, parentheses, `?:` and union()."""
        if node.type == "call_expression":
            if node_text(node.child_by_field_name("function") or node) == "union":
                arguments = node.child_by_field_name("arguments")
                for argument in named_children(arguments) if arguments is not None else []:
                    yield from self.object_keys(template, argument, seen)
        elif node.type == "identifier" and node_text(node) in template.variables:
            if node_text(node) not in seen:
                value = template.variables[node_text(node)].children()[-1]
                yield from self.object_keys(template, value, seen | {node_text(node)})
        elif node.type == "parenthesized_expression":
            yield from self.object_keys(template, named_children(node)[0], seen)
        elif node.type == "ternary_expression":
            for part in ("consequence", "alternative"):
                branch = node.child_by_field_name(part)
                if branch is not None:
                    yield from self.object_keys(template, branch, seen)
        elif node.type == "object":
            for key, key_node, _ in properties(node):
                if key is not None:
                    yield key, key_node

    def check_module(self, template: Template, declaration: Declaration) -> None:
        """The module's file exists; its parameters are passed as it declares them."""
        target_path = literal(declaration.children()[1])
        if not isinstance(target_path, str):
            self.report(
                template, declaration.node, f"module {declaration.name}: path is not a literal"
            )
            return
        path = template.path.parent / target_path
        if not path.is_file():
            self.report(
                template,
                declaration.node,
                f"module {declaration.name}: {target_path} does not exist",
            )
            return
        target = self.template(path)
        obj = body(declaration)
        if obj is None:
            return
        for key, key_node, _ in properties(obj):
            if key not in MODULE_KEYS:
                self.report(
                    template,
                    key_node,
                    f"module {declaration.name}: {key!r} is not a module property",
                )
        params = member(obj, "params")
        passed: dict[str, Node] = {}
        if params is not None and params.type == "object":
            passed = {key: value for key, _, value in properties(params) if key is not None}
        for name, value in passed.items():
            param = target.params.get(name)
            if param is None:
                close = difflib.get_close_matches(name, list(target.params), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.report(
                    template,
                    value,
                    f"module {declaration.name}: {target_path} has no parameter {name}{hint}",
                )
                continue
            self.check_argument(template, declaration, target_path, param, value)
        for name, param in target.params.items():
            children = param.children()
            has_default = len(children) > 2
            nullable = (
                any(c.type == "nullable_type" for c in named_children(children[1]))
                if len(children) > 1
                else False
            )
            if name not in passed and not has_default and not nullable:
                self.report(
                    template,
                    declaration.node,
                    f"module {declaration.name}: required parameter {name} of {target_path} is not passed",
                )

    def check_argument(
        self,
        template: Template,
        declaration: Declaration,
        target_path: str,
        param: Declaration,
        value: Node,
    ) -> None:
        """A value passed to a module parameter: of its declared type, and `@allowed` by it."""
        declared = node_text(param.children()[1]).removesuffix("?")
        allowed = decorator(param, "allowed")
        options = [literal(item) for item in named_children(allowed)] if allowed else None
        for candidate in self.candidates(template, value):
            if candidate is UNKNOWN or candidate is None:
                continue
            kind = argument_kind(candidate)
            if declared in ARGUMENT_KINDS and kind != declared:
                self.report(
                    template,
                    value,
                    f"module {declaration.name}: {param.name} of {target_path} is {declared}, "
                    f"not {kind}",
                )
            elif (
                options is not None and not isinstance(candidate, Node) and candidate not in options
            ):
                self.report(
                    template,
                    value,
                    f"module {declaration.name}: {param.name} = {candidate!r} is not allowed by "
                    f"{target_path} ({options})",
                )

    def check_reads(self, template: Template) -> None:
        """`module.outputs.x` names an output; `resource.a.b` is a path its type defines."""

        def walk(node: Node) -> None:
            if node.type == "member_expression":
                self.check_read(template, node)
                return
            for child in node.named_children:
                walk(child)

        walk(template.root)

    def check_read(self, template: Template, node: Node) -> None:
        """One chain of property accesses."""
        chain: list[str] = []
        current: Node | None = node
        while current is not None and current.type in ("member_expression", "subscript_expression"):
            if current.type == "member_expression":
                prop = current.child_by_field_name("property")
                chain.insert(0, node_text(prop) if prop is not None else "")
            current = current.child_by_field_name("object")
        if current is None or current.type != "identifier":
            return
        symbol = node_text(current)
        if symbol in template.modules:
            target_path = literal(template.modules[symbol].children()[1])
            path = template.path.parent / str(target_path)
            if len(chain) >= 2 and chain[0] == "outputs" and path.is_file():
                outputs = self.template(path).outputs
                if chain[1] not in outputs:
                    close = difflib.get_close_matches(chain[1], list(outputs), n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    self.report(
                        template,
                        node,
                        f"{symbol}.outputs.{chain[1]}: {target_path} has no such output{hint}",
                    )
        elif symbol in template.resources:
            definition = self.azure.resources.get(
                str(literal(template.resources[symbol].children()[1])).lower()
            )
            if definition is not None:
                self.check_read_path(template, node, symbol, chain, *definition)

    def check_read_path(
        self,
        template: Template,
        node: Node,
        symbol: str,
        chain: list[str],
        types: list[Any],
        entry: dict[str, Any],
    ) -> None:
        """Report the first name in `chain` that the type does not define."""
        for index, name in enumerate(chain):
            while entry["$type"] == "UnionType":
                objects = [resolve(types, e) for e in entry["elements"]]
                entry = next((e for e in objects if e["$type"] == "ObjectType"), objects[0])
            if entry["$type"] == "DiscriminatedObjectType":
                return
            if entry["$type"] != "ObjectType":
                return
            spec = entry["properties"].get(name)
            if spec is None:
                if entry.get("additionalProperties") is not None:
                    return
                close = difflib.get_close_matches(name, list(entry["properties"]), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                path = ".".join([symbol, *chain[: index + 1]])
                self.report(
                    template,
                    node,
                    f"{path}: {entry.get('name', 'the type')} has no property {name}{hint}",
                )
                return
            if spec["flags"] & WRITE_ONLY:
                self.report(
                    template,
                    node,
                    f"{symbol}.{'.'.join(chain[: index + 1])}: write-only property, it cannot be read",
                )
                return
            entry = resolve(types, spec["type"])


def check(paths: list[Path], azure: AzureTypes | None = None) -> TemplateChecker:
    """Check the .bicep files named or found under the directories named."""
    checker = TemplateChecker(azure or AzureTypes())
    files = sorted({f for p in paths for f in (p.rglob("*.bicep") if p.is_dir() else [p])})
    if not files:
        checker.problems.append(Problem(Path(", ".join(map(str, paths))), 0, "no .bicep files"))
    for path in files:
        checker.check_file(path)
    return checker


def main(argv: list[str] | None = None) -> int:
    """Print every problem; exit 1 if there is any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help=".bicep files or directories")
    args = parser.parse_args(argv)
    checker = check(args.paths)
    for problem in checker.problems:
        print(problem)
    print(
        f"check_templates: {len(checker.templates)} templates, {checker.resource_count} resources "
        f"checked against Azure's resource type definitions and the Flex Consumption rules: "
        f"{len(checker.problems)} problems"
    )
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())
