"""The access audit: the calls each function really made, against what Terraform grants it.

The emulators answer every call, so IAM mistakes would first show in a real project: a function
that writes where it may only read fails there with 403, retried until its events are dropped.
The recording proxy (``stack.recorder``) writes every call of every function to
``access.jsonl``; this module maps each call to the IAM permissions Google checks for it, on the
resource it checks them on, and looks for a grant of ``terraform/function_access.json`` (the file
``iam.tf`` iterates) whose role holds the permission on that resource or on the project. The
roles' permissions come from ``iam_roles.json``, each with the page it was copied from.

- A call no grant covers is a finding: function, resource, permission and the smallest known
  role that would cover it.
- A call this module cannot map is a finding too: a new kind of call must be mapped before it
  ships, not waved through.
- A grant no call used is listed (least privilege), without failing the audit.

``python -m pharmaseg_dev.stack.access_audit [ACCESS_LOG ...]`` prints the report and exits 1 on
findings; ``make access-audit`` runs the integration tests, whose last test is this audit.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack.layout import REPO_ROOT

GRANTS_FILE = REPO_ROOT / "terraform" / "function_access.json"
ROLES_FILE = Path(__file__).with_name("iam_roles.json")

# Continuations of an upload session: the session URI itself is the authorization, checked when
# the session was opened.
UPLOAD_SESSION = re.compile(r"^/upload/(storage/v1/b/[^/]+/o|bigquery/v2/projects/[^/]+/jobs)$")
TABLE_REF = re.compile(r"`([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_$]+)`")
WRITE_STATEMENTS = ("INSERT", "MERGE", "UPDATE", "DELETE", "TRUNCATE")


class UnmappedCall(ValueError):
    """A recorded call this audit does not know the permissions of."""


@dataclass(frozen=True, order=True)
class Need:
    """One permission on one resource: kind is bucket, dataset (project.dataset), topic or project."""

    permission: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.permission} on {self.kind} {self.name}"


@dataclass(frozen=True)
class Grant:
    """One line of function_access.json: a role for a function's account on a target (see resolve)."""

    function: str
    on: str
    role: str

    def __str__(self) -> str:
        return f"{self.function}: {self.role} on {self.on}"


@dataclass
class Report:
    calls: int = 0
    missing: dict[tuple[str, Need], dict[str, Any]] = field(default_factory=dict)
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    used: dict[Grant, int] = field(default_factory=dict)
    unused: list[Grant] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unmapped

    def text(self) -> str:
        lines = [f"access audit: {self.calls} calls checked"]
        for (function, need), found in sorted(self.missing.items()):
            suggestion = found["suggest"] or "no role of iam_roles.json holds it"
            lines.append(
                f"  MISSING {function}: {need} ({found['count']} calls, e.g. {found['example']}); "
                f"a role that would cover it: {suggestion}"
            )
        for call in self.unmapped:
            lines.append(f"  UNMAPPED {call['function']}: {call['reason']}")
        for grant, count in sorted(self.used.items(), key=lambda item: str(item[0])):
            lines.append(f"  used    {grant} ({count} calls)")
        for grant in self.unused:
            lines.append(f"  UNUSED  {grant}: no recorded call needed it")
        lines.append("result: " + ("ok" if self.ok else "FAILED"))
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Calls -> permissions
# ------------------------------------------------------------------------------------------------
def _query(call: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(call.get("query") or "")


def _writes_object(bucket: str, query: dict[str, list[str]]) -> list[Need]:
    """Creating an object; replacing one also needs delete, unless ifGenerationMatch=0 rules it out.

    https://cloud.google.com/storage/docs/access-control/iam-permissions ("storage.objects.delete
    ... also required to overwrite an existing object").
    """
    needs = [Need("storage.objects.create", "bucket", bucket)]
    if query.get("ifGenerationMatch") != ["0"]:
        needs.append(Need("storage.objects.delete", "bucket", bucket))
    return needs


def storage_needs(call: dict[str, Any]) -> list[Need]:
    """Cloud Storage JSON API calls: https://cloud.google.com/storage/docs/json_api/v1/objects."""
    method, path, query = call["method"], call["path"], _query(call)
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["upload", "storage"]:
        if method == "PUT" or "upload_id" in query:
            return []  # a chunk of a session opened by the POST below
        return _writes_object(parts[4], query)
    if parts[:1] == ["download"]:
        parts = parts[1:]
    if parts[:3] != ["storage", "v1", "b"] or len(parts) < 4:
        raise UnmappedCall(f"storage {method} {path}")
    bucket, rest = parts[3], parts[4:]
    if not rest:
        if method == "GET":
            return [Need("storage.buckets.get", "bucket", bucket)]
    elif rest == ["o"] and method == "GET":
        return [Need("storage.objects.list", "bucket", bucket)]
    elif len(rest) == 2 and rest[0] == "o":
        verb = {"GET": "get", "DELETE": "delete", "PATCH": "update", "PUT": "update"}.get(method)
        if verb:
            return [Need(f"storage.objects.{verb}", "bucket", bucket)]
    elif len(rest) == 7 and rest[0] == "o" and rest[2] in ("copyTo", "rewriteTo") and method == "POST":
        return [Need("storage.objects.get", "bucket", bucket), *_writes_object(rest[4], query)]
    elif len(rest) == 3 and rest[0] == "o" and rest[2] == "compose" and method == "POST":
        return [Need("storage.objects.get", "bucket", bucket), *_writes_object(bucket, query)]
    raise UnmappedCall(f"storage {method} {path}")


def _table_dataset(ref: dict[str, Any]) -> str:
    return f"{ref['projectId']}.{ref['datasetId']}"


def _job_needs(project: str, job: dict[str, Any] | None) -> list[Need]:
    """A job insert: bigquery.jobs.create on the project plus what the job reads and writes.

    https://cloud.google.com/bigquery/docs/access-control and each job type's "Required
    permissions" (running queries, loading data, loading from Cloud Storage).
    """
    if not job:
        raise UnmappedCall("BigQuery job insert without a readable configuration")
    needs = [Need("bigquery.jobs.create", "project", project)]
    if "query" in job:
        query = job["query"]
        text = query.get("query", "")
        datasets = {f"{p}.{d}" for p, d, _ in TABLE_REF.findall(text)}
        statement = re.sub(r"^(\s|--[^\n]*\n)*", "", text).split(None, 1)[0].upper() if text.strip() else ""
        needs += [Need("bigquery.tables.getData", "dataset", d) for d in datasets]
        if statement in WRITE_STATEMENTS:
            needs += [Need("bigquery.tables.updateData", "dataset", d) for d in datasets]
        elif statement == "CREATE":
            needs += [Need("bigquery.tables.create", "dataset", d) for d in datasets]
        elif statement == "DROP":
            needs += [Need("bigquery.tables.delete", "dataset", d) for d in datasets]
        destination = query.get("destinationTable")
        if destination:
            needs += _writes_table(destination, query)
        return needs
    if "load" in job:
        load = job["load"]
        needs += _writes_table(load["destinationTable"], load)
        for uri in load.get("sourceUris") or []:
            needs.append(Need("storage.objects.get", "bucket", uri.removeprefix("gs://").split("/", 1)[0]))
        return needs
    if "copy" in job:
        copy = job["copy"]
        sources = copy.get("sourceTables") or [copy.get("sourceTable")]
        needs += [Need("bigquery.tables.getData", "dataset", _table_dataset(t)) for t in sources if t]
        return needs + _writes_table(copy["destinationTable"], copy)
    if "extract" in job:
        extract = job["extract"]
        needs.append(Need("bigquery.tables.export", "dataset", _table_dataset(extract["sourceTable"])))
        for uri in extract.get("destinationUris") or []:
            needs += _writes_object(uri.removeprefix("gs://").split("/", 1)[0], {})
        return needs
    raise UnmappedCall(f"BigQuery job of an unknown type: {sorted(job)}")


def _writes_table(table: dict[str, Any], config: dict[str, Any]) -> list[Need]:
    dataset = _table_dataset(table)
    needs = [Need("bigquery.tables.updateData", "dataset", dataset)]
    if config.get("createDisposition", "CREATE_IF_NEEDED") != "CREATE_NEVER":
        needs.append(Need("bigquery.tables.create", "dataset", dataset))
    return needs


def bigquery_needs(call: dict[str, Any]) -> list[Need]:
    """BigQuery REST calls: https://cloud.google.com/bigquery/docs/reference/rest."""
    method, path = call["method"], call["path"]
    if UPLOAD_SESSION.match(path) and (method == "PUT" or "upload_id" in _query(call)):
        return []
    parts = path.strip("/").split("/")
    if parts[:1] == ["upload"]:
        parts = parts[1:]
    if parts[:3] != ["bigquery", "v2", "projects"] or len(parts) < 5:
        raise UnmappedCall(f"bigquery {method} {path}")
    project, rest = parts[3], parts[4:]
    if rest == ["jobs"] and method == "POST":
        return _job_needs(project, call.get("job"))
    if rest[0] in ("jobs", "queries") and len(rest) == 2 and method == "GET":
        # A job's own creator reads it with bigquery.jobs.create (jobs.get's "IAM Permissions").
        return [Need("bigquery.jobs.create", "project", project)]
    if rest[0] == "datasets" and len(rest) >= 2:
        dataset = f"{project}.{rest[1]}"
        tail = rest[2:]
        if not tail and method == "GET":
            return [Need("bigquery.datasets.get", "dataset", dataset)]
        if tail == ["tables"]:
            verb = {"GET": "list", "POST": "create"}.get(method)
            if verb:
                return [Need(f"bigquery.tables.{verb}", "dataset", dataset)]
        if len(tail) == 2 and tail[0] == "tables":
            verb = {"GET": "get", "DELETE": "delete", "PATCH": "update", "PUT": "update"}.get(method)
            if verb:
                return [Need(f"bigquery.tables.{verb}", "dataset", dataset)]
        if len(tail) == 3 and tail[0] == "tables":
            if tail[2] == "insertAll" and method == "POST":
                return [Need("bigquery.tables.updateData", "dataset", dataset)]
            if tail[2] == "data" and method == "GET":
                return [Need("bigquery.tables.getData", "dataset", dataset)]
    raise UnmappedCall(f"bigquery {method} {path}")


PUBSUB_RPCS = {
    "/google.pubsub.v1.Publisher/Publish": ("pubsub.topics.publish", "topic"),
    "/google.pubsub.v1.Publisher/GetTopic": ("pubsub.topics.get", "topic"),
    "/google.pubsub.v1.Subscriber/Pull": ("pubsub.subscriptions.consume", "subscription"),
    "/google.pubsub.v1.Subscriber/Acknowledge": ("pubsub.subscriptions.consume", "subscription"),
}


def pubsub_needs(call: dict[str, Any]) -> list[Need]:
    """Pub/Sub RPCs: https://cloud.google.com/pubsub/docs/access-control#required_permissions."""
    known = PUBSUB_RPCS.get(call["path"])
    resource = (call.get("resource") or {}).get(known[1]) if known else None
    if not known or not resource:
        raise UnmappedCall(f"pubsub {call['path']}")
    return [Need(known[0], known[1], resource.rsplit("/", 1)[-1])]


def needs_of(call: dict[str, Any]) -> list[Need]:
    """The permissions Google checks for one recorded call; UnmappedCall when this audit cannot say."""
    return {"storage": storage_needs, "bigquery": bigquery_needs, "pubsub": pubsub_needs}[call["service"]](call)


# ------------------------------------------------------------------------------------------------
# Grants and roles
# ------------------------------------------------------------------------------------------------
def load_roles(path: Path = ROLES_FILE) -> dict[str, set[str]]:
    return {role: set(spec["permissions"]) for role, spec in json.loads(path.read_text())["roles"].items()}


def resolve(on: str, project: str) -> tuple[str, str]:
    """A grant's ``on`` (bucket:<role>, topic:<role>, dataset, project) as (kind, resource name)."""
    kind, _, role = on.partition(":")
    if kind == "bucket":
        return "bucket", cloud_resources.bucket_name(role, project)
    if kind == "topic":
        return "topic", cloud_resources.topic_name(role)
    if kind == "dataset":
        return "dataset", f"{project}.{cloud_resources.dataset_name()}"
    if kind == "project":
        return "project", project
    raise ValueError(f"unknown grant target {on!r} (bucket:<role>, topic:<role>, dataset or project)")


def load_grants(path: Path = GRANTS_FILE) -> list[Grant]:
    return [Grant(g["function"], g["on"], g["role"]) for g in json.loads(path.read_text())["grants"]]


def read_calls(paths: Iterable[Path]) -> list[dict[str, Any]]:
    calls = []
    for path in paths:
        with open(path) as handle:
            calls += [json.loads(line) for line in handle if line.strip()]
    return calls


def _covers(grant: Grant, need: Need, project: str, roles: dict[str, set[str]]) -> bool:
    """True if the grant's role holds the permission on the needed resource, or on its project."""
    if need.permission not in roles.get(grant.role, set()):
        return False
    kind, name = resolve(grant.on, project)
    return kind == "project" or (kind, name) == (need.kind, need.name)


def _smallest_role(permission: str, roles: dict[str, set[str]]) -> str | None:
    holding = [role for role, permissions in roles.items() if permission in permissions]
    return min(holding, key=lambda role: (len(roles[role]), role)) if holding else None


def audit(calls: list[dict[str, Any]], grants: list[Grant], roles: dict[str, set[str]]) -> Report:
    """Check every call against the grants of the function that made it, in the call's project.

    Each stack (the demo's, each test module's own) is a project of its own: the recorder writes
    it on every call, and a grant names a resource of whichever project the call was made in.
    """
    unknown_roles = sorted({g.role for g in grants} - set(roles))
    if unknown_roles:
        raise ValueError(f"roles granted but missing from {ROLES_FILE.name}: {', '.join(unknown_roles)}")
    report = Report(calls=len(calls))
    for call in calls:
        try:
            needs = needs_of(call)
        except UnmappedCall as exc:
            report.unmapped.append({"function": call["function"], "reason": f"no permission known for {exc}"})
            continue
        mine = [g for g in grants if g.function == call["function"]]
        example = f"{call['method']} {call['path']}"
        for need in needs:
            covering = [g for g in mine if _covers(g, need, call["project"], roles)]
            for grant in covering:
                report.used[grant] = report.used.get(grant, 0) + 1
            if not covering:
                found = report.missing.setdefault(
                    (call["function"], need),
                    {"count": 0, "example": example, "suggest": _smallest_role(need.permission, roles)},
                )
                found["count"] += 1
    report.unused = [g for g in grants if g not in report.used]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pharmaseg_dev.stack.access_audit", description=__doc__.splitlines()[0]
    )
    parser.add_argument("access_logs", nargs="+", type=Path, help="access.jsonl files written by the recorder")
    parser.add_argument("--grants", type=Path, default=GRANTS_FILE)
    args = parser.parse_args(argv)
    report = audit(read_calls(args.access_logs), load_grants(args.grants), load_roles())
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
