"""The deployed footprint is private by default and each identity holds only the roles it needs.

Read from the templates with the same parser as the template check (tree-sitter-bicep), so a
change that opens the network or widens a role scope fails here, not in a security review.
"""

from __future__ import annotations

from tree_sitter import Node

from tests.infra.check_templates import (
    Template,
    body,
    literal,
    member,
    named_children,
    node_text,
)
from tests.infra.templates import INFRA

MAIN = Template(INFRA / "main.bicep")
RBAC = Template(INFRA / "app" / "rbac.bicep")

#: Built-in role definition ids.
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


def default(template: Template, param: str) -> object:
    """The literal default of a parameter."""
    return literal(template.params[param].children()[-1])


def resource_body(template: Template, name: str) -> Node:
    obj = body(template.resources[name])
    assert obj is not None
    return obj


def path(obj: Node, *keys: str) -> Node:
    """The value at a path of literal keys in an object literal."""
    node: Node | None = obj
    for key in keys:
        assert node is not None and node.type == "object", keys
        node = member(node, key)
    assert node is not None, keys
    return node


def test_private_networking_is_the_default() -> None:
    assert default(MAIN, "vnetEnabled") is True
    assert default(MAIN, "monitoringPublicQueryAccess") == "Disabled"
    network = MAIN.modules["network"]
    assert node_text(network.children()[-1]).startswith("if (vnetEnabled)")


def test_storage_and_key_vault_refuse_public_traffic_when_private() -> None:
    for file, resource in (("storage.bicep", "storage"), ("keyvault.bicep", "vault")):
        template = Template(INFRA / "app" / file)
        properties = path(resource_body(template, resource), "properties")
        assert node_text(path(properties, "publicNetworkAccess")) == (
            "vnetEnabled ? 'Disabled' : 'Enabled'"
        )
        assert node_text(path(properties, "networkAcls", "defaultAction")) == (
            "vnetEnabled ? 'Deny' : 'Allow'"
        )


def test_storage_takes_no_shared_key_and_no_anonymous_blob_access() -> None:
    properties = path(
        resource_body(Template(INFRA / "app" / "storage.bicep"), "storage"), "properties"
    )
    assert literal(path(properties, "allowSharedKeyAccess")) is False
    assert literal(path(properties, "allowBlobPublicAccess")) is False


def test_private_endpoints_cover_blob_queue_table_and_the_vault() -> None:
    services = [
        literal(item)
        for item in named_children(MAIN.variables["storagePrivateEndpoints"].children()[-1])
    ]
    assert services == ["blob", "queue", "table"]
    vault = body(MAIN.modules["keyVaultPrivateEndpoint"])
    assert vault is not None
    assert literal(path(vault, "params", "groupId")) == "vault"
    endpoint = Template(INFRA / "app" / "private-endpoint.bicep")
    types = {literal(r.children()[1]).split("@")[0] for r in endpoint.resources.values()}
    assert types == {
        "Microsoft.Network/privateDnsZones",
        "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
        "Microsoft.Network/privateEndpoints",
        "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
    }


def test_the_app_is_integrated_into_a_subnet_delegated_for_flex_consumption() -> None:
    api = body(MAIN.modules["api"])
    assert api is not None
    assert node_text(path(api, "params", "virtualNetworkSubnetId")).startswith("vnetEnabled ?")
    vnet = resource_body(Template(INFRA / "app" / "network.bicep"), "vnet")
    subnets = named_children(path(vnet, "properties", "subnets"))
    delegations = [
        node_text(d)
        for s in subnets
        for d in named_children(path(s, "properties"))
        if "delegations" in node_text(d)
    ]
    assert any("'Microsoft.App/environments'" in d for d in delegations)


def role_assignments() -> dict[str, tuple[str, str, str]]:
    """Each role assignment of rbac.bicep: (role id, scope, condition or '')."""
    variables = {name: literal(v.children()[-1]) for name, v in RBAC.variables.items()}
    found = {}
    for name, declaration in RBAC.resources.items():
        if not node_text(declaration.children()[1]).startswith(
            "'Microsoft.Authorization/roleAssignments"
        ):
            continue
        obj = body(declaration)
        assert obj is not None
        definition = node_text(path(obj, "properties", "roleDefinitionId"))
        role = next(value for var, value in variables.items() if f", {var})" in definition)
        last = declaration.children()[-1]
        condition = node_text(named_children(last)[0]) if last.type == "if_statement" else ""
        found[name] = (role, node_text(path(obj, "scope")), condition)
    return found


def test_each_role_of_the_app_identity_has_the_narrowest_scope() -> None:
    assignments = role_assignments()
    assert assignments["hostBlobAccess"][:2] == (BLOB_DATA_OWNER, "storage")
    assert assignments["tableAccess"][:2] == (TABLE_DATA_CONTRIBUTOR, "tables[i]")
    assert assignments["queueAccess"][:2] == (QUEUE_DATA_CONTRIBUTOR, "queues[i]")
    assert assignments["refreshTokenAccess"][:2] == (SECRETS_OFFICER, "refreshTokenSecret")
    assert assignments["clientSecretAccess"][:2] == (SECRETS_USER, "clientSecret")
    assert assignments["telemetryAccess"][:2] == (METRICS_PUBLISHER, "applicationInsights")
    # No table, queue or Key Vault role of the app identity on the account or the vault.
    app_roles = {name: a for name, a in assignments.items() if name != "operatorSecretsAccess"}
    assert {scope for _, scope, _ in app_roles.values()} == {
        "storage",
        "tables[i]",
        "queues[i]",
        "refreshTokenSecret",
        "clientSecret",
        "applicationInsights",
    }
    assert [role for role, scope, _ in app_roles.values() if scope == "storage"] == [
        BLOB_DATA_OWNER
    ]


def test_the_scoped_tables_queues_and_secret_are_the_ones_the_app_uses() -> None:
    tables = [literal(i) for i in named_children(MAIN.variables["eventTableNames"].children()[-1])]
    assert tables == ["events", "subscriptions", "deliveries"]
    queues = node_text(MAIN.variables["eventQueueNames"].children()[-1])
    assert "deliveryQueueName" in queues and "-poison" in queues
    assert literal(MAIN.variables["deliveryQueueName"].children()[-1]) == "event-deliveries"
    assert literal(MAIN.variables["refreshTokenName"].children()[-1]) == (
        "partner-center-refresh-token"
    )
    secret = RBAC.resources["refreshTokenSecret"]
    assert node_text(secret.children()[1]).startswith("'Microsoft.KeyVault/vaults/secrets@")


def test_the_operator_role_is_opt_in() -> None:
    role, scope, condition = role_assignments()["operatorSecretsAccess"]
    assert (role, scope) == (SECRETS_OFFICER, "vault")
    assert "grantOperatorSecretsOfficer" in condition
    assert default(MAIN, "grantOperatorSecretsOfficer") is False
