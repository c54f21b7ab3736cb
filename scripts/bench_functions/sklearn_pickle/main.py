"""Benchmark baseline: what the original project served, a pickled scikit-learn pipeline and pandas.

The pipeline (StandardScaler + KMeans) is downloaded from GCS and unpickled when the module is
imported, and each request goes through a one-row DataFrame, as the original API did.
"""

import os
import pickle

import functions_framework
import pandas as pd

from pharmaseg.gcp.clients import storage_client

FEATURES = [f"{m}_{s}" for m in ("PC_HEALTHXP", "PC_GDP", "USD_CAP") for s in ("growth", "avg", "volatility")]
_blob = storage_client().bucket(os.environ["BENCH_BUCKET"]).blob(os.environ["BENCH_PICKLE"])
PIPELINE = pickle.loads(_blob.download_as_bytes())


@functions_framework.http
def predict(request):
    body = request.get_json()
    frame = pd.DataFrame([body])[FEATURES]
    cluster = int(PIPELINE.predict(frame)[0])
    distances = PIPELINE.transform(frame)[0]
    return {
        "country": body["country"],
        "cluster": cluster,
        "distance": float(distances[cluster]),
        "confidence": float(1 / (1 + distances[cluster])),
    }
