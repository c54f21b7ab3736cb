"""The prediction API: what ``functions/predict`` serves.

- ``contract``: the request and answer types and the routes, declared once (msgspec Structs, ``ROUTES``).
- ``validation``: one pass before a model is chosen: a fast decode of well-formed bodies, an
  exhaustive pass naming every bad field.
- ``openapi``: the OpenAPI 3.1 document, generated from the contract.
- ``service``: the dispatch of ``ROUTES``, model choice (pinned, production, A/B), answers.
- ``logline``: the prediction log line, the contract with BigQuery's predictions_log table.
- ``page``: the strategy page, imported only when a browser asks for it.
"""
