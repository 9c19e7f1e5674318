"""Vendor Azure's published resource type definitions for the resource types infra/ uses.

The definitions are bicep-types-az's generated `types.json` files (one per resource provider and
API version; the Bicep compiler's own type source). They are large (Microsoft.Web's is 600 kB,
Microsoft.Network's over 1 MB), so only the resource types listed in `VENDORED` are kept, with
every type they reach and nothing else. The result is data for tests/infra/check_templates.py.

    git clone --filter=blob:none https://github.com/Azure/bicep-types-az /tmp/bicep-types-az
    python -m tests.infra.vendor_azure_types /tmp/bicep-types-az

To use a new resource type or API version in infra/, add it to `VENDORED`, run this again against
a current clone, and commit tests/infra/azure_types/ (its README records the source commit).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

#: Where the vendored definitions go.
TYPES_DIR = Path(__file__).with_name("azure_types")

#: generated/<folder>/<namespace>/<apiVersion>/types.json -> the resource types kept from it.
VENDORED: dict[str, list[str]] = {
    "applicationinsights/microsoft.insights/2020-02-02": ["Microsoft.Insights/components"],
    "authorization/microsoft.authorization/2022-04-01": ["Microsoft.Authorization/roleAssignments"],
    "keyvault/microsoft.keyvault/2023-07-01": [
        "Microsoft.KeyVault/vaults",
        "Microsoft.KeyVault/vaults/secrets",
    ],
    "monitor_1/microsoft.insights/2021-05-01-preview": ["Microsoft.Insights/diagnosticSettings"],
    "msi/microsoft.managedidentity/2023-01-31": [
        "Microsoft.ManagedIdentity/userAssignedIdentities"
    ],
    "network/microsoft.network/2024-05-01": [
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/privateEndpoints",
        "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
    ],
    "operationalinsights/microsoft.operationalinsights/2023-09-01": [
        "Microsoft.OperationalInsights/workspaces"
    ],
    "privatedns/microsoft.network/2024-06-01": [
        "Microsoft.Network/privateDnsZones",
        "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
    ],
    "storage/microsoft.storage/2023-05-01": [
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage/storageAccounts/blobServices",
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Microsoft.Storage/storageAccounts/queueServices",
        "Microsoft.Storage/storageAccounts/queueServices/queues",
        "Microsoft.Storage/storageAccounts/tableServices",
        "Microsoft.Storage/storageAccounts/tableServices/tables",
    ],
    "web/microsoft.web/2024-04-01": [
        "Microsoft.Web/serverfarms",
        "Microsoft.Web/sites",
        "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
    ],
}


def _git(clone: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(clone), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def _refs(node: Any) -> list[int]:
    """Indexes of every `{"$ref": "#/N"}` inside one type entry."""
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return [int(node["$ref"].removeprefix("#/"))]
        return [index for value in node.values() for index in _refs(value)]
    if isinstance(node, list):
        return [index for item in node for index in _refs(item)]
    return []


def _renumber(node: Any, new_index: dict[int, int]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return {"$ref": f"#/{new_index[int(node['$ref'].removeprefix('#/'))]}"}
        return {key: _renumber(value, new_index) for key, value in node.items()}
    if isinstance(node, list):
        return [_renumber(item, new_index) for item in node]
    return node


def trim(types: list[dict[str, Any]], resource_types: list[str]) -> list[dict[str, Any]]:
    """The `ResourceType` entries named (any API version in the file) and the types they reach."""
    wanted = {name.lower() for name in resource_types}
    roots = [
        index
        for index, entry in enumerate(types)
        if entry["$type"] == "ResourceType" and entry["name"].split("@")[0].lower() in wanted
    ]
    found = {entry["name"].split("@")[0].lower() for entry in (types[i] for i in roots)}
    if missing := wanted - found:
        raise SystemExit(f"not in this types.json: {sorted(missing)}")
    kept: set[int] = set()
    pending = list(roots)
    while pending:
        index = pending.pop()
        if index not in kept:
            kept.add(index)
            pending.extend(_refs(types[index]))
    order = sorted(kept)
    new_index = {old: new for new, old in enumerate(order)}
    return [_renumber(types[old], new_index) for old in order]


def api_versions(clone: Path, commit: str) -> dict[str, list[str]]:
    """Every API version bicep-types-az publishes for each provider namespace vendored here."""
    namespaces = {folder.split("/")[1] for folder in VENDORED}
    listing = _git(clone, "ls-tree", "-r", "--name-only", commit, "generated/").splitlines()
    versions: dict[str, set[str]] = {}
    for path in listing:
        parts = path.split("/")
        if len(parts) == 5 and parts[4] == "types.json" and parts[2] in namespaces:
            versions.setdefault(parts[2], set()).add(parts[3])
    return {namespace: sorted(found) for namespace, found in sorted(versions.items())}


def main(argv: list[str] | None = None) -> int:
    """Write the trimmed definitions and the API version list under TYPES_DIR."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clone", type=Path, help="a git clone (or mirror) of Azure/bicep-types-az")
    parser.add_argument("--commit", default="HEAD", help="the commit to read (default HEAD)")
    args = parser.parse_args(argv)
    commit = _git(args.clone, "rev-parse", args.commit).strip()
    for folder, resource_types in VENDORED.items():
        source = json.loads(_git(args.clone, "show", f"{commit}:generated/{folder}/types.json"))
        target = TYPES_DIR / folder / "types.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(trim(source, resource_types), indent=1) + "\n", "utf-8")
    (TYPES_DIR / "api-versions.json").write_text(
        json.dumps(api_versions(args.clone, commit), indent=1) + "\n", "utf-8"
    )
    date = _git(args.clone, "show", "-s", "--format=%cI", commit).strip()
    source = {
        "repository": "Azure/bicep-types-az",
        "commit": commit,
        "date": date,
        "files": {f"generated/{folder}/types.json": kept for folder, kept in VENDORED.items()},
    }
    (TYPES_DIR / "source.json").write_text(json.dumps(source, indent=1) + "\n", "utf-8")
    print(f"vendored from Azure/bicep-types-az {commit} ({date})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
