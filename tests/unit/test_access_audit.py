"""The access audit's reading of calls and grants, on calls written by hand."""

from __future__ import annotations

import json

import pytest

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack import access_audit
from pharmaseg_dev.stack.access_audit import Grant, Need, UnmappedCall, needs_of

P = "proj"
MODELS = cloud_resources.bucket_name("models", P)
DATASET = f"{P}.{cloud_resources.dataset_name()}"


def call(function="predict", service="storage", method="GET", path="/", query="", project=P, **extra):
    return {
        "function": function,
        "project": project,
        "service": service,
        "method": method,
        "path": path,
        "query": query,
        **extra,
    }


@pytest.mark.parametrize(
    "recorded, expected",
    [
        (call(path=f"/download/storage/v1/b/{MODELS}/o/a%2Fb.json", query="alt=media"), ["storage.objects.get"]),
        (call(path=f"/storage/v1/b/{MODELS}/o"), ["storage.objects.list"]),
        (call(method="DELETE", path=f"/storage/v1/b/{MODELS}/o/x"), ["storage.objects.delete"]),
        # an upload that may replace an object also needs delete; ifGenerationMatch=0 rules that out
        (
            call(method="POST", path=f"/upload/storage/v1/b/{MODELS}/o", query="uploadType=multipart"),
            ["storage.objects.create", "storage.objects.delete"],
        ),
        (
            call(method="POST", path=f"/upload/storage/v1/b/{MODELS}/o", query="uploadType=media&ifGenerationMatch=0"),
            ["storage.objects.create"],
        ),
        (call(method="PUT", path=f"/upload/storage/v1/b/{MODELS}/o", query="upload_id=abc"), []),
        (call(path=f"/storage/v1/b/{MODELS}"), ["storage.buckets.get"]),
    ],
)
def test_storage_calls_map_to_their_permissions(recorded, expected):
    assert [n.permission for n in needs_of(recorded)] == expected


def test_a_copy_reads_the_source_and_writes_the_destination_bucket():
    copy = call(method="POST", path="/storage/v1/b/src/o/a%2Fb.csv/copyTo/b/dst/o/c.csv")
    assert needs_of(copy) == [
        Need("storage.objects.get", "bucket", "src"),
        Need("storage.objects.create", "bucket", "dst"),
        Need("storage.objects.delete", "bucket", "dst"),
    ]


def bq_job(configuration):
    return call(service="bigquery", method="POST", path=f"/bigquery/v2/projects/{P}/jobs", job=configuration)


def test_query_jobs_need_the_job_and_the_data_of_every_table_they_name():
    select = bq_job({"query": {"query": f"SELECT * FROM `{DATASET}.drift_reports` WHERE x = 1"}})
    assert needs_of(select) == [
        Need("bigquery.jobs.create", "project", P),
        Need("bigquery.tables.getData", "dataset", DATASET),
    ]
    merge = bq_job({"query": {"query": f"-- upsert\nMERGE `{DATASET}.batch_runs` T USING (SELECT 1) S ON TRUE"}})
    assert Need("bigquery.tables.updateData", "dataset", DATASET) in needs_of(merge)


def test_a_load_from_cloud_storage_also_reads_the_object_with_the_callers_rights():
    load = bq_job(
        {
            "load": {
                "destinationTable": {"projectId": P, "datasetId": "pharmaseg", "tableId": "t"},
                "sourceUris": ["gs://inbox-bucket/staging/x.csv"],
            }
        }
    )
    assert set(needs_of(load)) == {
        Need("bigquery.jobs.create", "project", P),
        Need("bigquery.tables.updateData", "dataset", DATASET),
        Need("bigquery.tables.create", "dataset", DATASET),
        Need("storage.objects.get", "bucket", "inbox-bucket"),
    }


def test_reading_ones_own_job_needs_only_jobs_create():
    got = call(service="bigquery", path=f"/bigquery/v2/projects/{P}/queries/abc")
    assert needs_of(got) == [Need("bigquery.jobs.create", "project", P)]


def test_publishing_needs_publish_on_the_topic():
    publish = call(
        service="pubsub",
        method="RPC",
        path="/google.pubsub.v1.Publisher/Publish",
        resource={"topic": f"projects/{P}/topics/pharmaseg-retrain"},
    )
    assert needs_of(publish) == [Need("pubsub.topics.publish", "topic", "pharmaseg-retrain")]


@pytest.mark.parametrize(
    "recorded",
    [
        call(method="POST", path=f"/storage/v1/b/{MODELS}/iam"),
        call(service="bigquery", method="POST", path=f"/bigquery/v2/projects/{P}/datasets"),
        call(service="pubsub", method="RPC", path="/google.pubsub.v1.Publisher/CreateTopic", resource={"name": "t"}),
    ],
)
def test_a_call_the_audit_does_not_know_is_refused(recorded):
    with pytest.raises(UnmappedCall):
        needs_of(recorded)


def roles():
    return access_audit.load_roles()


def test_a_project_level_grant_covers_every_resource_of_the_project():
    grants = [Grant("retrain", "project", "roles/storage.objectViewer")]
    report = access_audit.audit([call(function="retrain", path=f"/storage/v1/b/{MODELS}/o/x")], grants, roles())
    assert report.ok and report.used == {grants[0]: 1}


def test_a_grant_names_the_resource_of_the_calls_own_project():
    """Each stack is a project: the models bucket of another project is another bucket."""
    grants = [Grant("predict", "bucket:models", "roles/storage.objectViewer")]
    other = cloud_resources.bucket_name("models", "elsewhere")
    calls = [call(path=f"/storage/v1/b/{other}/o/x", project="elsewhere"), call(path=f"/storage/v1/b/{other}/o/x")]
    report = access_audit.audit(calls, grants, roles())
    assert list(report.missing) == [("predict", Need("storage.objects.get", "bucket", other))]
    assert report.missing[("predict", Need("storage.objects.get", "bucket", other))]["count"] == 1


def test_missing_unmapped_and_unused_are_all_reported():
    grants = [
        Grant("predict", "bucket:models", "roles/storage.objectViewer"),
        Grant("predict", "bucket:reports", "roles/storage.objectViewer"),
    ]
    calls = [
        call(path=f"/storage/v1/b/{MODELS}/o/x"),
        call(method="DELETE", path=f"/storage/v1/b/{MODELS}/o/x"),
        call(method="POST", path=f"/storage/v1/b/{MODELS}/iam"),
    ]
    report = access_audit.audit(calls, grants, roles())
    assert not report.ok
    assert list(report.missing) == [("predict", Need("storage.objects.delete", "bucket", MODELS))]
    assert report.missing[("predict", Need("storage.objects.delete", "bucket", MODELS))]["suggest"] == (
        "roles/storage.objectUser"
    )
    assert len(report.unmapped) == 1 and report.unused == [grants[1]]
    assert "UNUSED  predict: roles/storage.objectViewer on bucket:reports" in report.text()


def test_every_role_terraform_grants_is_known_with_its_source():
    spec = json.loads(access_audit.ROLES_FILE.read_text())["roles"]
    granted = {g["role"] for g in json.loads(access_audit.GRANTS_FILE.read_text())["grants"]}
    assert granted <= set(spec)
    assert all(r["source"].startswith("https://cloud.google.com/") and r["permissions"] for r in spec.values())


def test_grants_resolve_to_a_projects_resources():
    grants = access_audit.load_grants()
    assert {access_audit.resolve(g.on, P) for g in grants if g.function == "predict"} == {
        ("bucket", MODELS),
        ("bucket", cloud_resources.bucket_name("reports", P)),
    }
    assert ("dataset", DATASET) in {access_audit.resolve(g.on, P) for g in grants}
    assert access_audit.resolve("topic:retrain", P) == ("topic", cloud_resources.topic_name("retrain"))
