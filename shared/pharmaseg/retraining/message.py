"""The retrain request: one JSON object in a Pub/Sub message's data, validated with clear errors.

Every field but ``reason`` is optional; unknown fields are refused so that a typo such as
``"promtion": "force"`` fails loudly instead of silently training with the defaults.

    {"reason": "2021 data published", "window": "2012-2021", "promotion": "auto"}

``SCHEMA`` is the same contract as a JSON Schema (draft 2020-12) for publishers in other
languages; ``parse_request`` is what the function runs, so it needs no schema library.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from pharmaseg.errors import DataValidationError, PharmasegError
from pharmaseg.features import Window

POLICIES = ("auto", "never", "force")
MAX_K = 10
MAX_N_INIT = 100
MAX_BOOTSTRAP = 500
MAX_REASON = 500
MAX_MESSAGE_BYTES = 16_384

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://pharmaseg/retrain-request.json",
    "title": "Retrain request",
    "type": "object",
    "additionalProperties": False,
    "required": ["reason"],
    "properties": {
        "reason": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_REASON,
            "description": "Why retrain; kept in the model's lineage and in model_versions.",
        },
        "data_uri": {
            "type": "string",
            "pattern": "^gs://[^/#]+/[^#]+(#[0-9]+)?$",
            "description": "Raw OECD CSV (LOCATION,TIME,PC_HEALTHXP,PC_GDP,USD_CAP[,TOTAL_SPEND]); a #GENERATION "
            "suffix pins one generation of the object. "
            "Default: PHARMASEG_RETRAIN_DATA_URI, else gs://$PHARMASEG_SOURCES_BUCKET/oecd_pharma_spending.csv.",
        },
        "window": {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{4}$",
            "description": "Inclusive training years START-END. Default: PHARMASEG_RETRAIN_WINDOW if set, else the "
            "data's latest complete window as long as production's (see docs/retraining.md).",
        },
        "k": {"type": "integer", "minimum": 2, "maximum": MAX_K, "default": 3},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 42},
        "n_init": {"type": "integer", "minimum": 1, "maximum": MAX_N_INIT, "default": 10},
        "n_bootstrap": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BOOTSTRAP,
            "description": "Bootstrap refits for the stability check. Default: PHARMASEG_RETRAIN_BOOTSTRAP (50).",
        },
        "promotion": {
            "enum": list(POLICIES),
            "default": "auto",
            "description": "auto: promote if the gate passes; never: register only; force: promote regardless.",
        },
        "requested_by": {"type": "string", "maxLength": 200, "description": "Who or what asked (person, drift check)."},
    },
}


class MalformedRequestError(PharmasegError):
    """The message cannot be a retrain request; acknowledging it is right, retrying cannot help."""


@dataclass(frozen=True)
class RetrainRequest:
    reason: str
    data_uri: str
    window: str | None  # None: the data's latest complete window, chosen when the data is read
    k: int = 3
    seed: int = 42
    n_init: int = 10
    n_bootstrap: int = 50
    promotion: str = "auto"
    requested_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _integer(doc: dict[str, Any], name: str, default: int) -> int:
    value = doc.get(name, default)
    spec = SCHEMA["properties"][name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedRequestError(f"{name} must be an integer, got {value!r}")
    if not spec["minimum"] <= value <= spec["maximum"]:
        raise MalformedRequestError(f"{name} must be between {spec['minimum']} and {spec['maximum']}, got {value}")
    return value


def _string(doc: dict[str, Any], name: str, default: str | None) -> str | None:
    value = doc.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedRequestError(f"{name} must be a string, got {value!r}")
    return value.strip()


def parse_request(
    doc: Any, *, default_data_uri: str | None, default_window: str | None = None, default_bootstrap: int = 50
):
    """Validate a decoded request against the contract; returns a RetrainRequest with defaults filled."""
    if not isinstance(doc, dict):
        raise MalformedRequestError(f"the request must be a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(SCHEMA["properties"]))
    if unknown:
        raise MalformedRequestError(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SCHEMA['properties']))}"
        )
    reason = _string(doc, "reason", None)
    if not reason:
        raise MalformedRequestError("reason is required: say why this retrain is asked for")
    if len(reason) > MAX_REASON:
        raise MalformedRequestError(f"reason is longer than {MAX_REASON} characters")
    data_uri = _string(doc, "data_uri", default_data_uri)
    if not data_uri:
        raise MalformedRequestError("data_uri is missing and no default is configured (PHARMASEG_RETRAIN_DATA_URI)")
    if not re.fullmatch(SCHEMA["properties"]["data_uri"]["pattern"], data_uri):
        raise MalformedRequestError(f"data_uri {data_uri!r} must be gs://BUCKET/OBJECT[#GENERATION]")
    window = _string(doc, "window", default_window) or None
    if window is not None:
        try:
            Window.parse(window)
        except DataValidationError as exc:
            raise MalformedRequestError(str(exc)) from None
    promotion = _string(doc, "promotion", "auto")
    if promotion not in POLICIES:
        raise MalformedRequestError(f"promotion must be one of {', '.join(POLICIES)}, got {promotion!r}")
    requested_by = _string(doc, "requested_by", None)
    if requested_by is not None and len(requested_by) > 200:
        raise MalformedRequestError("requested_by is longer than 200 characters")
    return RetrainRequest(
        reason=reason,
        data_uri=data_uri,
        window=window,
        k=_integer(doc, "k", 3),
        seed=_integer(doc, "seed", 42),
        n_init=_integer(doc, "n_init", 10),
        n_bootstrap=_integer(doc, "n_bootstrap", default_bootstrap),
        promotion=promotion,
        requested_by=requested_by,
    )


def decode_request(data: bytes, **defaults: Any) -> RetrainRequest:
    """Bytes of a message's data -> validated RetrainRequest (MalformedRequestError otherwise)."""
    if not data:
        raise MalformedRequestError("the message data is empty; expected a JSON retrain request")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedRequestError(f"the message data is {len(data)} bytes; a request is at most {MAX_MESSAGE_BYTES}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequestError(f"the message data is not JSON: {exc}") from None
    return parse_request(doc, **defaults)


def encode_request(**fields: Any) -> bytes:
    """The message data for a request (fields as in SCHEMA); None values are left out."""
    return json.dumps({k: v for k, v in fields.items() if v is not None}, sort_keys=True).encode()
