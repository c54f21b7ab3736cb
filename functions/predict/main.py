"""HTTP Cloud Function: pharmaceutical market segments for countries, each answer explained.

Routes, validation, the model cache, the A/B choice and the log lines live in
``pharmaseg.predict`` (``service.PredictionService``); this module only adapts Flask's request
and response. Its cold path imports neither scikit-learn, pandas, scipy nor a BigQuery client.
"""

import flask
import functions_framework
import werkzeug.exceptions

from pharmaseg import config
from pharmaseg.predict import service as prediction

# Built when the module loads: a missing, malformed or conflicting setting stops the revision, each
# one named. The GCS connections are made on the first request that reads a model or a report.
_service = prediction.PredictionService.deployed(config.load("predict"))


@functions_framework.http
def predict(request: flask.Request) -> flask.Response:
    """Answer one request; every failure is a JSON error, never a stack trace."""
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


@functions_framework.errorhandler(werkzeug.exceptions.HTTPException)
def framework_error(exc: werkzeug.exceptions.HTTPException) -> flask.Response:
    """What Flask answers on its own is JSON too: functions-framework's routing refuses some paths
    (``/robots.txt``, ``/favicon.ico``, a path with a newline) before ``predict`` sees them, and
    those go to the service, which answers them as it answers any path it has no route for."""
    if exc.code == 404:
        return predict(flask.request)
    answer = prediction.error_answer(exc.code or 500, exc.name.lower(), [("request", exc.description or exc.name)])
    return flask.Response(answer.body, answer.status, content_type=answer.content_type)
