"""The console command as a user runs it: real process, real data, exit codes and messages."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PHARMASEG = [str(Path(sys.executable).parent / "pharmaseg")]


def run(*args, **kw):
    return subprocess.run([*PHARMASEG, *args], capture_output=True, text=True, timeout=120, **kw)


def test_train_json_reproduces_the_original_segments(oecd_path, tmp_path):
    result = run("train", "--data", str(oecd_path), "--json", "--bootstrap", "5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert round(doc["metrics"]["silhouette"], 3) == 0.289
    assert sorted(s["size"] for s in doc["segments"]) == [5, 8, 23]
    assert doc["assignments"]["DEU"] == "High-Value Pharma Markets"
    assert doc["assignments"]["CRI"] == "Declining Markets"
    assert doc["assignments"]["FRA"] == "Stable Moderate Markets"
    declining = next(s for s in doc["segments"] if s["name"] == "Declining Markets")
    assert declining["countries"] == ["CRI", "HRV", "HUN", "IRL", "SVK"]
    assert (tmp_path / "model.json").is_file()


@pytest.mark.parametrize(
    "content, message",
    [
        ("LOCATION,TIME,PC_GDP,USD_CAP\nAUS,2011,1,2\n", "line 1 (header): missing column(s) PC_HEALTHXP"),
        (
            "LOCATION,TIME,PC_HEALTHXP,PC_GDP,USD_CAP\nAUS,2011,1,two,3\n",
            "line 2, column PC_GDP: 'two' is not a number",
        ),
        (
            "LOCATION,TIME,PC_HEALTHXP,PC_GDP,USD_CAP\nAUS,2011,1,2,3\nAUS,2011,1,2,3\n",
            "line 3, column TIME: duplicate country-year AUS 2011",
        ),
    ],
)
def test_bad_csv_gets_one_line_error_and_nonzero_exit(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = run("train", "--data", str(path))
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    result = run("train", "--data", str(tmp_path / "nope.csv"))
    assert result.returncode == 2
    assert "nope.csv: no such file" in result.stderr


def test_too_few_countries_for_k(tmp_path, oecd_path):
    result = run("train", "--data", str(oecd_path), "--window", "2022-2023")
    assert result.returncode == 2
    assert "countries with complete data" in result.stderr


def test_registry_without_credentials_is_a_clear_error(monkeypatch, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")}
    env["HOME"] = str(tmp_path)  # no gcloud application-default credentials either
    result = subprocess.run(
        [*PHARMASEG, "registry", "--bucket", "b", "list"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 3
    assert result.stderr.startswith("pharmaseg: error: Google Cloud call failed") and "Traceback" not in result.stderr


def test_promote_needs_register(oecd_path):
    result = run("train", "--data", str(oecd_path), "--promote")
    assert result.returncode == 2 and "--promote needs --register" in result.stderr
