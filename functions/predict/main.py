"""HTTP Cloud Function: pharmaceutical market segments for countries, each answer explained.

Routes, validation, the model cache, the A/B choice and the log lines live in
``pharmaseg.prediction`` (``service.PredictionService``); this module only adapts Flask's request
and response. Its cold path imports neither scikit-learn, pandas, scipy nor a BigQuery client.
"""

import flask
import functions_framework

from pharmaseg import config
from pharmaseg.prediction import service as prediction

_settings = config.load("predict")  # at start: a bad or missing variable stops the revision, each one named
_service: prediction.PredictionService | None = None


@functions_framework.http
def predict(request: flask.Request) -> flask.Response:
    """Answer one request; every failure is a JSON error, never a stack trace."""
    global _service
    if _service is None:  # a lazy global, as Google's samples do: the first request pays for the clients
        _service = prediction.PredictionService.deployed(_settings)
    answer = _service.handle(
        prediction.HttpRequest(
            request.method,
            request.path,
            request.query_string,
            request.headers,
            request.content_length,
            lambda: request.get_data(cache=False),
        )
    )
    return flask.Response(answer.body, answer.status, headers=answer.headers, content_type=answer.content_type)
