"""Order of bring-up, checked on the parsed module (no provider, no plan).

Terraform creates a resource once everything it references or lists in ``depends_on`` exists; a
Google API does not wait for anything. These rules say what must come first, and each finding
names the missing dependency:

- ``apis``: every resource or data source of a type served by an API depends, directly or
  transitively, on that API's ``google_project_service`` (the whole ``for_each`` or its key);
  service accounts on iam.googleapis.com among them.
- ``agents``: a grant whose member is a service agent (``gcp-sa-<service>``, or an identity's
  email) depends on the ``google_project_service_identity`` that creates that agent.
- ``functions``: every function and Eventarc trigger waits on a ``time_sleep`` that itself comes
  after every grant of the configuration (except the grants made on the functions themselves).
- ``metrics``: every log-based metric comes after the functions; every alert policy and dashboard
  that reads a ``logging.googleapis.com/user/...`` metric depends on that metric, and an alert
  policy also waits on a ``time_sleep`` after it (Monitoring refuses a new metric for minutes).
- ``access`` (:func:`check_function_access`): every grant to a function's service account comes
  from ``function_access.json``, and that file names known functions, targets and roles.

Dependencies are found as Terraform finds them: references in any argument (through ``local``
values too) and ``depends_on``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfcheck.checks import LOCAL_REF, Finding, _strings
from tfcheck.consistency import load_spec
from tfcheck.loader import Block, Module, unquote

# Type prefix -> the API that serves it (longest prefix wins).
API_OF_PREFIX = {
    "google_artifact_registry_": "artifactregistry.googleapis.com",
    "google_bigquery_": "bigquery.googleapis.com",
    "google_cloud_run_v2_": "run.googleapis.com",
    "google_cloud_scheduler_": "cloudscheduler.googleapis.com",
    "google_cloudbuild_": "cloudbuild.googleapis.com",
    "google_cloudfunctions2_": "cloudfunctions.googleapis.com",
    "google_eventarc_": "eventarc.googleapis.com",
    "google_logging_": "logging.googleapis.com",
    "google_monitoring_": "monitoring.googleapis.com",
    "google_project_iam_": "cloudresourcemanager.googleapis.com",
    "google_project_service_identity": "serviceusage.googleapis.com",
    "google_pubsub_": "pubsub.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_storage_": "storage.googleapis.com",
    "data.google_bigquery_default_service_account": "bigquery.googleapis.com",
    "data.google_project": "cloudresourcemanager.googleapis.com",
    "data.google_storage_project_service_account": "storage.googleapis.com",
}

# Types that call no API of this project, or one this configuration does not manage.
NO_API = {
    "google_project_service": "it is the enablement itself",
    "google_kms_crypto_key_iam_member": "the key may live in another project, whose KMS API is not ours to enable",
    "time_sleep": "a wait on the machine that runs Terraform",
}

GRANT = re.compile(r"_iam_(member|binding|policy)$")
_REF = re.compile(r"(?<![\w.])(data\.)?((?:google|time)_\w+)\.([A-Za-z_]\w*)(?:\[\s*\"([^\"]*)\"\s*\])?")
_USER_METRIC = re.compile(r"logging\.googleapis\.com/user/([A-Za-z0-9_/.-]+)")
_AGENT = re.compile(r"gcp-sa-([a-z0-9-]+)\.iam\.gserviceaccount\.com")
_IDENTITY_KEY = re.compile(r"google_project_service_identity\.\w+\[\s*\\?\"([^\"\\]+)\\?\"\s*\]")

Edge = tuple[str, str | None]  # (node address, for_each key or None for the whole resource)


def _address(block: Block) -> str:
    return ("data." if block.kind == "data" else "") + ".".join(block.labels)


def _expr(value: Any) -> str:
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


@dataclass
class Graph:
    """Dependencies of every resource, data source and local value of a module."""

    module: Module
    edges: dict[str, set[Edge]] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)

    @classmethod
    def of(cls, module: Module) -> Graph:
        graph = cls(module)
        for block in [*module.resources.values(), *module.data.values()]:
            address = _address(block)
            graph.blocks[address] = block
            graph.edges[address] = graph._refs(block.body)
        for name, value in module.locals.items():
            graph.edges[f"local.{name}"] = graph._refs(value)
        return graph

    def _refs(self, value: Any) -> set[Edge]:
        found: set[Edge] = set()
        for expr in _strings(value):
            # A quoted literal without interpolation references nothing; elsewhere the raw text is
            # kept (string keys such as this["iam.googleapis.com"] matter here).
            if expr.startswith('"') and "${" not in expr:
                continue
            for data, rtype, name, key in _REF.findall(expr):
                found.add((f"{data}{rtype}.{name}", key or None))
            for name in LOCAL_REF.findall(expr):
                found.add((f"local.{name}", None))
        return found

    def reach(self, start: str) -> set[Edge]:
        """Everything ``start`` waits for, with the keys it was reached through."""
        seen: set[Edge] = set()
        stack = [start]
        visited = {start}
        while stack:
            for edge in self.edges.get(stack.pop(), ()):
                seen.add(edge)
                if edge[0] not in visited:
                    visited.add(edge[0])
                    stack.append(edge[0])
        return seen

    def expand(self, value: Any, depth: int = 0) -> str:
        """The raw text of ``value`` with every local value it reads spliced in."""
        text = " ".join(_strings(value)) if not isinstance(value, str) else value
        if depth > 8:
            return text
        for name in set(LOCAL_REF.findall(text)):
            if name in self.module.locals:
                text += " " + self.expand(self.module.locals[name], depth + 1)
        return text

    def of_type(self, tf_type: str) -> list[str]:
        return [a for a, b in self.blocks.items() if b.kind == "resource" and b.labels[0] == tf_type]


def api_of(address: str) -> str | None:
    """The API a block calls; None when it calls none of ours, "" when the type is unknown here."""
    kind_type = address.rsplit(".", 1)[0]
    tf_type = kind_type.removeprefix("data.")
    if tf_type in NO_API:
        return None
    is_data = kind_type != tf_type
    candidates = [
        prefix
        for prefix in API_OF_PREFIX
        if (kind_type.startswith(prefix) if prefix.startswith("data.") else tf_type.startswith(prefix))
        and (is_data or not prefix.startswith("data."))
    ]
    if not candidates:
        return ""
    return API_OF_PREFIX[max(candidates, key=len)]


def _enables(graph: Graph, edge: Edge, service: str) -> bool:
    """``edge`` is the google_project_service that enables ``service`` (or all of them)."""
    address, key = edge
    block = graph.blocks.get(address)
    if block is None or block.labels[0] != "google_project_service":
        return False
    if "for_each" not in block.body:
        return unquote(str(block.body.get("service", ""))) == service
    return key is None or key == service


def _creates_agent(graph: Graph, edge: Edge, service: str) -> bool:
    address, key = edge
    block = graph.blocks.get(address)
    if block is None or block.labels[0] != "google_project_service_identity":
        return False
    if "for_each" not in block.body:
        return unquote(str(block.body.get("service", ""))) == service
    if key is not None:
        return key == service
    return f'"{service}"' in graph.expand(block.body.get("for_each"))


def _f(block: Block, rule: str, message: str) -> Finding:
    return Finding(f"ordering/{rule}", block.file, _address(block), message)


def _check_apis(graph: Graph) -> Iterator[Finding]:
    for address, block in graph.blocks.items():
        service = api_of(address)
        if service is None:
            continue
        if service == "":
            yield _f(block, "apis", f"no API is known for {block.labels[0]}: add it to tfcheck.ordering.API_OF_PREFIX")
            continue
        if not any(_enables(graph, edge, service) for edge in graph.reach(address)):
            yield _f(
                block,
                "apis",
                f"calls {service} but does not depend on its enablement: add depends_on = "
                f'[google_project_service.this] (or .this["{service}"]), or reference something that has it',
            )


def _check_agents(graph: Graph) -> Iterator[Finding]:
    for address, block in graph.blocks.items():
        if not GRANT.search(block.labels[0]):
            continue
        member = graph.expand(block.body.get("member", block.body.get("members", "")))
        services = {f"{name}.googleapis.com" for name in _AGENT.findall(member)}
        services |= set(_IDENTITY_KEY.findall(member))
        reached = graph.reach(address)
        for service in sorted(services):
            if not any(_creates_agent(graph, edge, service) for edge in reached):
                yield _f(
                    block,
                    "agents",
                    f"grants to the {service} service agent but does not depend on the "
                    "google_project_service_identity that creates it: read the email from "
                    f'google_project_service_identity.this["{service}"]',
                )


def _check_functions(graph: Graph) -> Iterator[Finding]:
    deployed = [*graph.of_type("google_cloudfunctions2_function"), *graph.of_type("google_eventarc_trigger")]
    grants = [
        a
        for a, b in graph.blocks.items()
        if b.kind == "resource" and GRANT.search(b.labels[0]) and not ({e[0] for e in graph.reach(a)} & set(deployed))
    ]
    waits = graph.of_type("time_sleep")
    for address in deployed:
        block = graph.blocks[address]
        reached = {e[0] for e in graph.reach(address)}
        mine = [w for w in waits if w in reached]
        if not mine:
            yield _f(block, "functions", "does not wait for IAM propagation: add a time_sleep to its depends_on")
            continue
        waited = set().union(*({e[0] for e in graph.reach(w)} for w in mine))
        for grant in grants:
            if grant not in waited:
                yield _f(
                    block,
                    "functions",
                    f"its propagation wait ({', '.join(mine)}) does not come after {grant}: "
                    f"add {grant} to the wait's depends_on",
                )


def _metric_names(graph: Graph) -> dict[str, str]:
    return {unquote(str(graph.blocks[a].body.get("name", ""))): a for a in graph.of_type("google_logging_metric")}


def _check_metrics(graph: Graph) -> Iterator[Finding]:
    functions = set(graph.of_type("google_cloudfunctions2_function"))
    for address in graph.of_type("google_logging_metric"):
        if not functions & {e[0] for e in graph.reach(address)}:
            yield _f(
                graph.blocks[address],
                "metrics",
                "log-based metric created before the functions whose logs it counts: "
                "add depends_on = [google_cloudfunctions2_function.this]",
            )
    names = _metric_names(graph)
    readers = [*graph.of_type("google_monitoring_alert_policy"), *graph.of_type("google_monitoring_dashboard")]
    for address in readers:
        block = graph.blocks[address]
        text = graph.expand(block.body)
        reached = {e[0] for e in graph.reach(address)}
        wanted: set[str] = set()
        for literal in _USER_METRIC.findall(text):
            if literal.startswith("$"):
                continue
            if literal not in names:
                yield _f(
                    block, "metrics", f"reads log-based metric {literal!r}, which no google_logging_metric defines"
                )
                continue
            wanted.add(names[literal])
        wanted |= {
            f"google_logging_metric.{name}"
            for name in re.findall(r"logging\.googleapis\.com/user/\$\{google_logging_metric\.(\w+)\.name\}", text)
        }
        for metric in sorted(wanted - reached):
            yield _f(
                block,
                "metrics",
                f"reads the log-based metric of {metric} but does not depend on it: add {metric} to depends_on",
            )
        if block.labels[0] != "google_monitoring_alert_policy" or not wanted:
            continue
        # Monitoring may refuse a new log-based metric for minutes (provider issue 11102).
        waits = [w for w in graph.of_type("time_sleep") if w in reached]
        waited = set().union(set(), *({e[0] for e in graph.reach(w)} for w in waits))
        for metric in sorted(wanted - waited):
            yield _f(
                block,
                "metrics",
                f"does not wait for {metric} to become visible to Monitoring: depend on a time_sleep "
                f"that comes after {metric}",
            )


def check_ordering(module: Module) -> list[Finding]:
    """Every ordering rule of the module docstring."""
    graph = Graph.of(module)
    return [*_check_apis(graph), *_check_agents(graph), *_check_functions(graph), *_check_metrics(graph)]


# ------------------------------------------------------------------------------------------------
# Function grants: only from function_access.json
# ------------------------------------------------------------------------------------------------
ACCESS_FILE = "function_access.json"
KINDS = {"bucket", "topic", "dataset", "project"}


def check_function_access(module: Module, repo_root: Path) -> list[Finding]:
    """function_access.json is well formed, and it is the only source of function grants."""
    findings: list[Finding] = []
    path = module.path / ACCESS_FILE
    spec = load_spec(repo_root)
    try:
        grants = json.loads(path.read_text())["grants"]
    except (OSError, ValueError, KeyError) as exc:
        return [Finding("access", ACCESS_FILE, "-", f"cannot read the grants: {exc}")]
    targets = {"bucket": set(spec["buckets"]), "topic": set(spec["topics"])}
    seen = set()
    for i, grant in enumerate(grants):
        where = f"grants[{i}]"
        missing = {"function", "on", "role", "why"} - set(grant)
        if missing:
            findings.append(Finding("access", ACCESS_FILE, where, f"missing {', '.join(sorted(missing))}"))
            continue
        kind, _, target = grant["on"].partition(":")
        if grant["function"] not in spec["functions"]:
            findings.append(Finding("access", ACCESS_FILE, where, f"unknown function {grant['function']!r}"))
        if kind not in KINDS:
            findings.append(
                Finding("access", ACCESS_FILE, where, f"on {grant['on']!r}: kind must be one of {sorted(KINDS)}")
            )
        elif kind in targets and target not in targets[kind]:
            findings.append(
                Finding("access", ACCESS_FILE, where, f"on {grant['on']!r}: no {kind} {target!r} in resources.json")
            )
        elif kind not in targets and target:
            findings.append(Finding("access", ACCESS_FILE, where, f"on {grant['on']!r}: {kind} takes no target"))
        if not str(grant["role"]).startswith("roles/"):
            findings.append(Finding("access", ACCESS_FILE, where, f"role {grant['role']!r} is not a roles/... name"))
        if not str(grant["why"]).strip():
            findings.append(Finding("access", ACCESS_FILE, where, "say why"))
        key = (grant["function"], grant["on"], grant["role"])
        if key in seen:
            findings.append(Finding("access", ACCESS_FILE, where, f"duplicate grant {key}"))
        seen.add(key)

    graph = Graph.of(module)
    for address, block in graph.blocks.items():
        if not GRANT.search(block.labels[0]):
            continue
        member = graph.expand(block.body.get("member", block.body.get("members", "")))
        if "google_service_account.function" not in member:
            continue
        for_each = _expr(block.body.get("for_each", ""))
        if not for_each.startswith("local.") or ACCESS_FILE not in graph.expand(for_each):
            findings.append(
                Finding(
                    "access",
                    block.file,
                    address,
                    f"grants to a function's service account without iterating {ACCESS_FILE} "
                    "(for_each must be one of the local.function_*_grants derived from it)",
                )
            )
    return findings
