"""The retrain request: one JSON object in a Pub/Sub message's data, declared once as a msgspec Struct.

Every field but ``reason`` is optional; unknown fields are refused so that a typo such as
``"promtion": "force"`` fails loudly instead of silently training with the defaults.

    {"reason": "2021 data published", "window": "2012-2021", "promotion": "auto"}

``RetrainMessage`` is the message as published; ``SCHEMA`` is its JSON Schema (draft 2020-12),
generated from the Struct for publishers in other languages. ``decode_request`` is what the
function runs: the message, checked field by field (every bad field named in one error, as the
prediction API's exhaustive pass does), then completed with the deployment's defaults into a
``RetrainRequest``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect as mi
from msgspec import UNSET, Meta, Struct, UnsetType

from pharmaseg.errors import DataValidationError, Unprocessable
from pharmaseg.model.features import Window

POLICIES = ("auto", "never", "force")
MAX_K = 10
MAX_N_INIT = 100
MAX_BOOTSTRAP = 500
MAX_REASON = 500
MAX_REQUESTED_BY = 200
MAX_MESSAGE_BYTES = 16_384
DATA_URI_PATTERN = "^gs://[^/#]+/[^#]+(#[0-9]+)?$"
WINDOW_PATTERN = "^[0-9]{4}-[0-9]{4}$"

Promotion = Literal["auto", "never", "force"]


class RetrainMessage(Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A retrain request as published: what to train, on which data, and whether to promote."""

    reason: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_REASON,
            description="Why retrain; kept in the model's lineage and in model_versions.",
        ),
    ]
    data_uri: (
        Annotated[
            str,
            Meta(
                pattern=DATA_URI_PATTERN,
                description="Raw OECD CSV (LOCATION,TIME,PC_HEALTHXP,PC_GDP,USD_CAP[,TOTAL_SPEND]); a #GENERATION "
                "suffix pins one generation of the object. Default: PHARMASEG_RETRAIN_DATA_URI, else "
                "gs://$PHARMASEG_SOURCES_BUCKET/oecd_pharma_spending.csv.",
            ),
        ]
        | UnsetType
    ) = UNSET
    # The years are checked by features.Window (START < END); the pattern is for the schema's readers.
    window: (
        Annotated[
            str,
            Meta(
                description="Inclusive training years START-END. Default: PHARMASEG_RETRAIN_WINDOW if set, else "
                "the data's latest complete window as long as production's (see docs/retraining.md).",
                extra_json_schema={"pattern": WINDOW_PATTERN},
            ),
        ]
        | UnsetType
    ) = UNSET
    k: Annotated[int, Meta(ge=2, le=MAX_K, description="Clusters.")] = 3
    seed: Annotated[int, Meta(ge=0, le=2**31 - 1, description="k-means random state.")] = 42
    n_init: Annotated[int, Meta(ge=1, le=MAX_N_INIT, description="k-means restarts.")] = 10
    n_bootstrap: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=MAX_BOOTSTRAP,
                description="Bootstrap refits for the stability check. Default: PHARMASEG_RETRAIN_BOOTSTRAP (50).",
            ),
        ]
        | UnsetType
    ) = UNSET
    promotion: Annotated[
        Promotion,
        Meta(description="auto: promote if the gate passes; never: register only; force: promote regardless."),
    ] = "auto"
    requested_by: (
        Annotated[str, Meta(max_length=MAX_REQUESTED_BY, description="Who or what asked (person, drift check).")]
        | UnsetType
    ) = UNSET


def _schema() -> dict[str, Any]:
    generated = msgspec.json.schema(RetrainMessage)
    body = generated["$defs"][generated["$ref"].rsplit("/", 1)[-1]]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pharmaseg/retrain-request.json",
        **body,
        "title": "Retrain request",
    }


SCHEMA: dict[str, Any] = _schema()
FIELDS: tuple[str, ...] = RetrainMessage.__struct_fields__


class MalformedRequestError(Unprocessable):
    """The message cannot be a retrain request; acknowledging it is right, retrying cannot help.

    ``problems`` holds one (field, problem) pair per bad field; the message joins them.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or [("", message)]


class RetrainRequest(Struct, frozen=True, kw_only=True):
    """A valid request with the deployment's defaults filled in: what the pipeline trains."""

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
        return msgspec.structs.asdict(self)


# -- checking, every field at once ------------------------------------------------------------------

_TYPES = {f.name: f.type for f in msgspec.structs.fields(RetrainMessage)}
_FORMS = {"data_uri": "gs://BUCKET/OBJECT[#GENERATION]"}
_REASON_REQUIRED = "reason is required: say why this retrain is asked for"


def _core(info: mi.Type) -> mi.Type:
    """The type of a field without its description or optional parts (UNSET, null)."""
    while isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):
        kept = [t for t in info.types if not isinstance(t, (mi.UnsetType, mi.NoneType))]
        return _core(kept[0]) if len(kept) == 1 else info
    return info


def _field_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be field ``name``, in the contract's words; None when it can."""
    try:
        msgspec.convert(value, _TYPES[name])
        return None
    except msgspec.ValidationError:
        pass
    info = _core(mi.type_info(_TYPES[name]))
    if isinstance(info, mi.IntType):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} must be an integer, got {value!r}"
        return f"{name} must be between {info.ge} and {info.le}, got {value}"
    if isinstance(info, mi.LiteralType):
        return f"{name} must be one of {', '.join(POLICIES)}, got {value!r}"
    if not isinstance(value, str):
        return f"{name} must be a string, got {value!r}"
    if name == "reason" and not value:
        return _REASON_REQUIRED
    if isinstance(info, mi.StrType) and info.max_length is not None and len(value) > info.max_length:
        return f"{name} is longer than {info.max_length} characters"
    return f"{name} {value!r} must be {_FORMS.get(name, 'valid')}"


def _stripped(doc: dict[str, Any]) -> dict[str, Any]:
    """Text fields without surrounding blanks, as they are checked and kept.

    A null ``window`` or ``requested_by`` has always been read as none given (for the window:
    the data's latest complete window, as an empty one), though the schema asks for a string.
    """
    out = {k: v.strip() if isinstance(v, str) else v for k, v in doc.items()}
    if out.get("window", "") is None:
        out["window"] = ""
    if "requested_by" in out and out["requested_by"] is None:
        del out["requested_by"]
    return out


def check_message(doc: Any) -> RetrainMessage:
    """A decoded request -> RetrainMessage; MalformedRequestError naming every bad field otherwise."""
    if not isinstance(doc, dict):
        raise MalformedRequestError(f"the request must be a JSON object, got {type(doc).__name__}")
    doc = _stripped(doc)
    try:
        message, problems = msgspec.convert(doc, RetrainMessage), []
    except msgspec.ValidationError:
        message, problems = None, _problems(doc)
    if isinstance(doc.get("window"), str) and _window_problem(doc["window"]):
        problems.append(("window", _window_problem(doc["window"])))
    _raise(problems)
    return message


def _problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every field the Struct refuses, each with its reason (msgspec itself stops at the first)."""
    problems: list[tuple[str, str]] = []
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        problems.append(
            (", ".join(unknown), f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}")
        )
    if doc.get("reason") is None:
        problems.append(("reason", _REASON_REQUIRED))
    for name in FIELDS:
        if name in doc and not (name == "reason" and doc[name] is None):
            problem = _field_problem(name, doc[name])
            if problem:
                problems.append((name, problem))
    return problems


def _window_problem(window: str) -> str | None:
    """Why a window cannot train (not START-END, fewer than two years); None for none given or a good one."""
    if not window:
        return None
    try:
        Window.parse(window)
    except DataValidationError as exc:
        return str(exc)
    return None


def _raise(problems: list[tuple[str, str]]) -> None:
    if problems:
        raise MalformedRequestError("; ".join(problem for _, problem in problems), problems)


def parse_request(
    doc: Any, *, default_data_uri: str | None, default_window: str | None = None, default_bootstrap: int = 50
) -> RetrainRequest:
    """Validate a decoded request against the contract; returns a RetrainRequest with defaults filled."""
    message = check_message(doc)
    problems: list[tuple[str, str]] = []
    data_uri = default_data_uri if message.data_uri is UNSET else message.data_uri
    if not data_uri:
        problems.append(("data_uri", "data_uri is missing and no default is configured (PHARMASEG_RETRAIN_DATA_URI)"))
    elif message.data_uri is UNSET and _field_problem("data_uri", data_uri):  # a default is held to the contract too
        problems.append(("data_uri", _field_problem("data_uri", data_uri)))
    window = (default_window if message.window is UNSET else message.window) or None
    if message.window is UNSET and window and _window_problem(window):
        problems.append(("window", _window_problem(window)))
    _raise(problems)
    return RetrainRequest(
        reason=message.reason,
        data_uri=data_uri,
        window=window,
        k=message.k,
        seed=message.seed,
        n_init=message.n_init,
        n_bootstrap=default_bootstrap if message.n_bootstrap is UNSET else message.n_bootstrap,
        promotion=message.promotion,
        requested_by=None if message.requested_by is UNSET else message.requested_by,
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
    """The message data for a request (fields as in RetrainMessage); None values are left out."""
    return json.dumps({k: v for k, v in fields.items() if v is not None}, sort_keys=True).encode()
