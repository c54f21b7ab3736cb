"""End to end on the running stack: train, register, promote, predict over HTTP, promote again."""

from __future__ import annotations

import copy
import json
import urllib.request

import pytest

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.gcp.clients import bigquery_client
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.registry import ModelRegistry
from tests.models import trained
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_train_register_promote_predict_and_promote_again_without_restart(local_stack_env):
    status = local_stack_env
    url = status["functions"]["predict"] + "/predict"
    table, artifact = trained(n_bootstrap=2)
    registry = ModelRegistry(status["buckets"]["models"])
    first = registry.register(copy.deepcopy(artifact))
    registry.promote(first, reason="e2e")
    pid_before = status["pids"]["predict"]

    deu = {"country": "DEU", **dict(zip(FEATURE_NAMES, table.values[table.countries.index("DEU")].tolist()))}
    answer = wait_for(lambda: (a := post(url, deu)) and a["model_version"] == first and a)
    assert answer["cluster_name"] == "High-Value Pharma Markets"

    second = registry.register(copy.deepcopy(artifact))
    registry.promote(second, reason="e2e again")
    served = wait_for(lambda: post(url, deu)["model_version"] == second)
    assert served
    assert status["pids"]["predict"] == pid_before  # same process: no restart was needed

    client = bigquery_client()
    table_id = f"{cloud_resources.dataset_name()}.{cloud_resources.table_name('predictions_log')}"
    query = (
        f"SELECT jsonPayload.model_version AS v, jsonPayload.features.USD_CAP_avg AS usd FROM {table_id} "
        f"WHERE jsonPayload.country = 'DEU' AND jsonPayload.model_version = '{second}'"
    )
    rows = wait_for(lambda: list(client.query(query).result()))
    assert rows[0]["usd"] == pytest.approx(deu["USD_CAP_avg"])
