"""Decoding a message into its msgspec Struct, naming every bad field instead of the first.

msgspec stops at the first field it refuses, which is fast and right for a valid message; an
operator reading a rejected one wants all of its problems at once. ``decode`` tries the fast
conversion, and only when it fails runs ``problems``, which converts each field on its own.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def problems(struct: type[S], doc: Any, *, strict: bool = True) -> list[tuple[str, str]]:
    """Every field of ``doc`` that ``struct`` refuses, as (field as written in JSON, reason)."""
    if not isinstance(doc, dict):
        return [("", f"expected an object, got {type(doc).__name__}")]
    found = []
    for field in msgspec.structs.fields(struct):
        if field.encode_name not in doc:
            if field.required:
                found.append((field.encode_name, "missing"))
            continue
        try:
            msgspec.convert(doc[field.encode_name], field.type, strict=strict)
        except msgspec.ValidationError as exc:
            found.append((field.encode_name, str(exc).removesuffix(" - at `$`")))
    if struct.__struct_config__.forbid_unknown_fields:
        known = {f.encode_name for f in msgspec.structs.fields(struct)}
        found += [(name, "unknown field") for name in sorted(set(doc) - known)]
    return found


def decode(struct: type[S], doc: Any, error: type[Exception], *, strict: bool = True) -> S:
    """``doc`` as a ``struct``, or ``error`` naming every field it refuses (``field: reason; ...``)."""
    try:
        return msgspec.convert(doc, struct, strict=strict)
    except msgspec.ValidationError as exc:
        named = problems(struct, doc, strict=strict) or [("", str(exc))]
        raise error("; ".join(f"{name}: {why}" if name else why for name, why in named)) from None
