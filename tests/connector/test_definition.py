"""The connector's OpenAPI 2.0 definition: valid, current, complete, and written for makers."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import pytest
from openapi_spec_validator import OpenAPIV2SpecValidator
from openapi_spec_validator import validate as openapi_validate
from pydantic import BaseModel, Field
from swagger_spec_validator.common import SwaggerValidationWarning
from swagger_spec_validator.validator20 import validate_spec as swagger_validate

from function_app import app
from gateway import openapi
from gateway.functions import OPERATIONS
from gateway.openapi import DefinitionError, build_definition, display_name, render
from gateway.operation_docs import OperationDoc, Visibility
from gateway.registry import HttpFunction, http_functions

from ..conftest import repo_root
from .schemas import operation, operations, resolve, walk_schemas

CONNECTOR = repo_root() / "connector"
COMMITTED = CONNECTOR / "apiDefinition.swagger.json"


# --- valid Swagger 2.0 ------------------------------------------------------------------------


def test_swagger_spec_validator_passes(definition: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        # e.g. "$ref with siblings that will be overwritten": a summary Power Automate would lose
        warnings.simplefilter("error", SwaggerValidationWarning)
        swagger_validate(copy.deepcopy(definition))  # it writes x-scope into what it is given


def test_openapi_spec_validator_passes(definition: dict[str, Any]) -> None:
    openapi_validate(copy.deepcopy(definition), cls=OpenAPIV2SpecValidator)


def test_under_one_megabyte(definition: dict[str, Any]) -> None:
    assert len(render(definition).encode()) < openapi.MAX_DEFINITION_BYTES


# --- the committed file is what the code generates ----------------------------------------------


def test_committed_definition_is_current(definition: dict[str, Any]) -> None:
    committed = COMMITTED.read_text(encoding="utf-8")
    assert committed == render(definition), (
        "connector/apiDefinition.swagger.json is stale: run make connector and commit it"
    )


def test_generation_is_deterministic(definition: dict[str, Any]) -> None:
    assert render(openapi.definition_of(app)) == render(definition)


def test_check_command_passes_on_the_committed_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.openapi", "--check", str(COMMITTED)],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_check_command_fails_on_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "apiDefinition.swagger.json"
    stale.write_text(COMMITTED.read_text().replace("List a customer", "List some"))
    assert openapi.main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert openapi.main(["--check", str(tmp_path / "missing.json")]) == 1
    assert "make connector" in capsys.readouterr().err


def test_write_then_check(tmp_path: Path) -> None:
    target = tmp_path / "apiDefinition.swagger.json"
    assert openapi.main(["--write", str(target)]) == 0
    assert target.read_bytes() == COMMITTED.read_bytes()
    assert openapi.main(["--check", str(target)]) == 0


# --- one source of truth: the app's functions -----------------------------------------------------


def test_every_function_is_described_and_every_operation_is_served(
    definition: dict[str, Any],
) -> None:
    served = {
        ("/" + re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", f.route), m.lower(), f.name)
        for f in http_functions(app)
        for m in f.methods
    }
    described = {(path, method, op["operationId"]) for path, method, op in operations(definition)}
    assert described == served
    host = json.loads((repo_root() / "host.json").read_text())
    assert definition["basePath"] == "/" + host["extensions"]["http"]["routePrefix"]
    assert definition["schemes"] == ["https"]


def test_function_without_a_doc_is_refused() -> None:
    functions = http_functions(app)
    with pytest.raises(DefinitionError, match="without an OperationDoc: GetHealth"):
        build_definition(
            functions, [d for d in OPERATIONS if d.operation_id != "GetHealth"], version="1"
        )


def _one_function(name: str, route: str = "things") -> tuple[HttpFunction, ...]:
    return (HttpFunction(name, route, ("GET",), lambda req: NotImplemented),)


class _Union(BaseModel):
    """Either."""

    value: int | str = Field(title="Value")


class _Tagged(BaseModel):
    """A constant."""

    kind: Literal["thing"] = Field(title="Kind")


def test_what_swagger_2_cannot_say_is_refused() -> None:
    doc = OperationDoc("GetThing", "Get a thing", "A thing.", response=_Union)
    with pytest.raises(DefinitionError, match="anyOf"):
        build_definition(_one_function("GetThing"), [doc], version="1")


def test_const_becomes_a_one_value_enum() -> None:
    doc = OperationDoc("GetThing", "Get a thing", "A thing.", response=_Tagged)
    built = build_definition(_one_function("GetThing"), [doc], version="1")
    assert built["definitions"]["_Tagged"]["properties"]["kind"]["enum"] == ["thing"]


def test_route_parameters_must_be_documented() -> None:
    doc = OperationDoc("GetThing", "Get a thing", "A thing.", response=_Tagged)
    with pytest.raises(DefinitionError, match="route parameters"):
        build_definition(_one_function("GetThing", "things/{thingId}"), [doc], version="1")


# --- written for makers (Power Automate conventions) ------------------------------------------------


def test_operations_have_pascal_case_ids_summaries_and_descriptions(
    definition: dict[str, Any],
) -> None:
    for _, _, op in operations(definition):
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", op["operationId"])
        assert op["summary"] and not op["summary"].endswith(".")
        assert len(op["summary"]) <= 80
        assert op["description"]


def test_every_parameter_has_a_summary(definition: dict[str, Any]) -> None:
    for _, _, op in operations(definition):
        for reference in op["parameters"]:
            parameter = resolve(definition, reference)
            assert parameter.get("x-ms-summary"), f"{op['operationId']}: {parameter['name']}"


def test_every_response_property_has_a_summary(definition: dict[str, Any]) -> None:
    for name, schema in definition["definitions"].items():
        for where, prop in walk_schemas(schema, name):
            assert prop.get("x-ms-summary"), f"{where} has no x-ms-summary"


def test_visibility(definition: dict[str, Any]) -> None:
    allowed = {v.value for v in Visibility}
    for _, _, op in operations(definition):
        assert op.get("x-ms-visibility", "important") in allowed
    for operation_id in ("GetHealth", "GetApiDefinition"):
        assert operation(definition, operation_id)[2]["x-ms-visibility"] == "internal"
    relationship = operation(definition, "GetRelationshipRequestUrl")[2]
    advanced = {p["name"] for p in relationship["parameters"] if p.get("x-ms-visibility")}
    assert advanced == {
        "indirectResellerId",
        "indirectCloudSolutionProviderId",
        "dualRoleIndirectRelationship",
    }
    agreement = definition["definitions"]["AgreementOut"]["properties"]
    assert {n for n, p in agreement.items() if p.get("x-ms-visibility") == "advanced"} == {
        "templateId",
        "agreementLink",
    }
    correlation = definition["parameters"]["CorrelationId"]
    assert correlation["in"] == "header" and correlation["name"] == "x-correlation-id"
    assert correlation["required"] is False and correlation["x-ms-visibility"] == "advanced"


def test_mca_operations_speak_to_makers(definition: dict[str, Any]) -> None:
    _, method, status = operation(definition, "GetMcaStatus")
    assert method == "get" and status["summary"] == "Get MCA acceptance status"
    schema = definition["definitions"]["McaStatusResponse"]
    assert schema["properties"]["accepted"]["type"] == "boolean"
    assert "x-nullable" not in schema["properties"]["accepted"]
    assert set(schema["required"]) >= {"customerId", "accepted"}
    assert schema["properties"]["acceptedVia"]["enum"] == ["partnerAttestation", "directSigned"]
    path, method, attest = operation(definition, "AttestMcaAcceptance")
    assert (path, method) == ("/customers/{customerId}/agreements", "post")
    assert attest["summary"] == "Attest MCA acceptance"
    assert attest["security"] == [{"oauth2": ["Agreements.ReadWrite"]}]
    assert "Location" in attest["responses"]["201"]["headers"]
    assert attest["responses"]["200"]["schema"] == attest["responses"]["201"]["schema"]
    (body,) = [p for p in attest["parameters"] if p.get("in") == "body"]
    request = definition["definitions"][body["schema"]["$ref"].split("/")[-1]]
    assert request["additionalProperties"] is False
    contact = request["properties"]["primaryContact"]
    assert contact["x-ms-visibility"] == "important"
    assert contact["required"] == ["firstName", "lastName", "email"]
    for name in ("firstName", "lastName", "email", "phoneNumber"):
        assert contact["properties"][name]["x-ms-visibility"] == "important"
        assert contact["properties"][name]["maxLength"] <= 254
    assert request["properties"]["dateAgreed"]["format"] == "date-time"


def test_agreement_type_is_a_friendly_enum(definition: dict[str, Any]) -> None:
    (parameter,) = [
        p
        for p in operation(definition, "ListCustomerAgreements")[2]["parameters"]
        if p.get("name") == "type"
    ]
    assert parameter["enum"] == ["MicrosoftCustomerAgreement", "MicrosoftCloudAgreement", "all"]
    assert parameter["default"] == "all"
    assert [v["displayName"] for v in parameter["x-ms-enum-values"]] == [
        "Microsoft Customer Agreement",
        "Microsoft Cloud Agreement",
        "All",
    ]
    assert display_name("indirectResellerId") == "Indirect Reseller Id"


def test_security(definition: dict[str, Any]) -> None:
    scheme = definition["securityDefinitions"]["oauth2"]
    assert scheme["type"] == "oauth2" and scheme["flow"] == "accessCode"
    assert scheme["authorizationUrl"].startswith("https://login.microsoftonline.com/")
    assert scheme["tokenUrl"].startswith("https://login.microsoftonline.com/")
    assert "security" not in definition  # operations say it; health and the definition are open
    permissions = {d.operation_id: d.permission for d in OPERATIONS}
    for _, _, op in operations(definition):
        permission = permissions[op["operationId"]]
        if permission is None:
            assert "security" not in op
        else:
            assert op["security"] == [{"oauth2": [permission.value]}]
            assert permission.value in scheme["scopes"]


def test_errors_are_problem_details(definition: dict[str, Any]) -> None:
    assert "application/problem+json" in definition["produces"]
    expected = {400, 401, 403, 404, 429, 502, 503, 504}
    (_, _, agreements) = operation(definition, "ListCustomerAgreements")
    assert {int(s) for s in agreements["responses"]} == {200} | expected
    for name, response in definition["responses"].items():
        assert response["schema"] == {"$ref": "#/definitions/Problem"}, name
        assert "x-correlation-id" in response["headers"], name
    assert "Retry-After" in definition["responses"]["Throttled"]["headers"]
    assert "WWW-Authenticate" in definition["responses"]["Unauthenticated"]["headers"]
    for _, _, op in operations(definition):
        successes = [r for status, r in op["responses"].items() if status.startswith("2")]
        assert successes
        for success in successes:
            assert "x-correlation-id" in success["headers"]


def test_connector_metadata(definition: dict[str, Any]) -> None:
    names = [m["propertyName"] for m in definition["x-ms-connector-metadata"]]
    assert names == ["Website", "Privacy policy", "Categories"]
    assert definition["info"]["title"] and 30 <= len(definition["info"]["description"]) <= 500


# --- the other connector files --------------------------------------------------------------------


def test_api_properties_sign_in_with_entra_id_on_behalf_of_the_user() -> None:
    properties = json.loads((CONNECTOR / "apiProperties.json").read_text())["properties"]
    oauth = properties["connectionParameters"]["token"]["oAuthSettings"]
    assert oauth["identityProvider"] == "aad"
    assert oauth["properties"]["IsOnbehalfofLoginSupported"] is True
    assert oauth["properties"]["AzureActiveDirectoryResourceId"].startswith("api://")
    assert oauth["customParameters"]["resourceUri"]["value"].startswith("api://")
    assert "clientSecret" not in oauth  # given to paconn on the command line, never committed
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", properties["iconBrandColor"])


def test_paconn_settings_name_the_connector_files() -> None:
    settings = json.loads((CONNECTOR / "settings.json").read_text())
    assert {"connectorId", "environment"} <= settings.keys()
    for key in ("apiProperties", "apiDefinition"):
        assert (CONNECTOR / settings[key]).is_file()


def test_readme_has_the_sections_connectors_require() -> None:
    readme = (CONNECTOR / "readme.md").read_text()
    for section in (
        "## Publisher",
        "## Prerequisites",
        "## Supported Operations",
        "## Obtaining Credentials",
        "## Known Issues and Limitations",
        "## Deployment Instructions",
    ):
        assert section in readme
    for doc in OPERATIONS:
        assert doc.operation_id in readme


def test_the_subscribe_operation_is_a_power_automate_webhook_trigger(
    definition: dict[str, Any],
) -> None:
    path, method, subscribe = operation(definition, "WhenPartnerCenterEventOccurs")
    assert (path, method) == ("/subscriptions", "post")
    assert subscribe["x-ms-trigger"] == "single"
    created = subscribe["responses"]["201"]
    assert "Location" in created["headers"] and "200" not in subscribe["responses"]
    (body,) = [p for p in subscribe["parameters"] if p.get("in") == "body"]
    request = resolve(definition, body["schema"])
    assert set(request["required"]) == {"eventName", "callbackUrl"}
    callback = request["properties"]["callbackUrl"]
    assert callback["x-ms-notification-url"] is True
    assert callback["x-ms-visibility"] == "internal"
    event = request["properties"]["eventName"]
    assert "reseller-relationship-accepted-by-customer" in event["enum"]
    names = {v["value"]: v["displayName"] for v in event["x-ms-enum-values"]}
    assert names["reseller-relationship-accepted-by-customer"] == (
        "Reseller relationship accepted by customer"
    )
    assert set(names) == set(event["enum"])
    content = subscribe["x-ms-notification-content"]
    payload = resolve(definition, content["schema"])
    assert set(payload["properties"]) == {
        "eventId",
        "eventName",
        "customerId",
        "resourceUri",
        "changedAt",
        "receivedAt",
    }
    assert content["description"]


def test_the_trigger_is_removed_with_delete_at_its_location(definition: dict[str, Any]) -> None:
    path, method, remove = operation(definition, "DeleteEventSubscription")
    assert (path, method) == ("/subscriptions/{subscriptionId}", "delete")
    assert remove["x-ms-visibility"] == "internal"
    assert "schema" not in remove["responses"]["204"]
    assert "404" in remove["responses"]
