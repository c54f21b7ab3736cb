"""Retraining on request: the message contract, the promotion gate, and the service that runs them.

- ``message``: the JSON retrain request (``SCHEMA``, ``parse_request``, Pub/Sub decoding).
- ``gate``: pure checks of a candidate artifact against production (``evaluate``, ``GateThresholds``).
- ``pipeline``: train, register, gate, promote with a race-safe condition, record in BigQuery.
- ``service``: ``RetrainService``, one event in, decision out; what ``functions/retrain/main.py`` calls.
- ``publish``: publish a request to the retrain topic (the drift check publishes through it too,
  which is why this package re-exports nothing: importing ``publish`` must not pull in the gate).
"""
