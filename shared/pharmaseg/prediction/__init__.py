"""The prediction API: what ``functions/predict`` serves.

- ``contract``: the request and answer types, declared once (msgspec Structs).
- ``validation``: a fast decode of well-formed bodies, an exhaustive pass naming every bad field.
- ``openapi``: the OpenAPI 3.1 document, generated from the contract.
- ``service``: routes, model choice (pinned, production, A/B), answers with their explanations.
- ``logline``: the prediction log line, the contract with BigQuery's predictions_log table.
- ``page``: the strategy page, imported only when a browser asks for it.
"""
