"""Checks of a parsed module against the provider schema and against itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tfcheck.loader import META, Block, Module, unquote
from tfcheck.schema import PROVIDERS, BlockSchema, ProviderSchema, UnknownType, provider_of

RESOURCE_META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
LIFECYCLE_ARGS = {
    "create_before_destroy",
    "prevent_destroy",
    "ignore_changes",
    "replace_triggered_by",
    "precondition",
    "postcondition",
}
PROVIDER_META = {"alias", "version"}


@dataclass(frozen=True)
class Finding:
    """One problem, located by file and address."""

    check: str
    file: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.file}: {self.where}: {self.message}"


def _blocks(value: Any) -> list[dict]:
    """The bodies of a block argument (hcl2 gives a list of dicts marked __is_block__)."""
    if isinstance(value, list) and all(isinstance(v, dict) and v.get("__is_block__") for v in value):
        return value
    return []


# ------------------------------------------------------------------------------------------------
# Schema: types, argument and block names, required arguments
# ------------------------------------------------------------------------------------------------
def _check_body(body: dict, schema: BlockSchema, file: str, where: str, top_meta: set[str]) -> Iterator[Finding]:
    present: set[str] = set()
    for key, value in body.items():
        if key in META:
            continue
        if key in top_meta:
            present.add(key)
            if key == "lifecycle":
                for lc in _blocks(value):
                    for arg in lc:
                        if arg not in META and arg not in LIFECYCLE_ARGS:
                            yield Finding("schema", file, f"{where}.lifecycle", f"unknown lifecycle argument {arg!r}")
            continue
        if key == "dynamic":
            for entry in value if isinstance(value, list) else [value]:
                for label, dyn in entry.items():
                    name = unquote(label)
                    present.add(name)
                    if name not in schema.arguments:
                        yield Finding("schema", file, where, f"unknown block {name!r} (dynamic)")
                    elif not schema.is_block(name):
                        yield Finding("schema", file, where, f"{name!r} is an argument, not a block (dynamic)")
                    else:
                        for dyn_key in dyn:
                            if dyn_key not in META and dyn_key not in {"for_each", "iterator", "labels", "content"}:
                                yield Finding(
                                    "schema", file, f"{where}.dynamic.{name}", f"unknown argument {dyn_key!r}"
                                )
                        contents = _blocks(dyn.get("content", []))
                        if not contents:
                            yield Finding("schema", file, f"{where}.dynamic.{name}", "missing content block")
                        for content in contents:
                            yield from _check_body(content, schema.arguments[name], file, f"{where}.{name}", set())
            continue
        present.add(key)
        if key not in schema.arguments:
            yield Finding("schema", file, where, f"unknown argument {key!r}")
            continue
        nested = schema.arguments[key]
        bodies = _blocks(value)
        if nested is not None:
            if not bodies:
                yield Finding("schema", file, where, f"{key!r} is a block: write `{key} {{ ... }}`")
            for sub in bodies:
                yield from _check_body(sub, nested, file, f"{where}.{key}", set())
        elif bodies:
            yield Finding("schema", file, where, f"{key!r} is an argument, not a block: write `{key} = ...`")
    for missing in sorted(schema.required - present):
        yield Finding("schema", file, where, f"missing required argument {missing!r}")


def block_provider(block: Block) -> str:
    """Provider of a resource or data block: ``provider = google-beta`` or its type's prefix."""
    explicit = block.body.get("provider")
    text = str(explicit).strip() if explicit else ""
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return provider_of(block.labels[0], text or None)


def check_schema(module: Module, schema: ProviderSchema) -> list[Finding]:
    """Every type exists; every argument and nested block is known; every required one is set."""
    findings = [Finding("schema", "-", "-", message) for message in module.duplicates]
    for block in [*module.resources.values(), *module.data.values()]:
        tf_type = block.labels[0]
        try:
            type_schema = schema.get(block.kind, tf_type, block_provider(block))
        except UnknownType as exc:
            findings.append(Finding("schema", block.file, block.address, str(exc.args[0])))
            continue
        findings.extend(_check_body(block.body, type_schema, block.file, block.address, RESOURCE_META))
    for block in module.providers:
        name = block.labels[0]
        if name not in PROVIDERS:
            findings.append(
                Finding("schema", block.file, block.address, f"only the {', '.join(PROVIDERS)} providers are checked")
            )
            continue
        findings.extend(
            _check_body(block.body, schema.get("provider", name, name), block.file, f"provider.{name}", PROVIDER_META)
        )
    return findings


# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------
_STRING_LITERAL = re.compile(r'"(?:[^"\\$]|\\.|\$(?!\{))*"')
_VAR = re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)")
LOCAL_REF = re.compile(r"(?<![\w.])local\.([A-Za-z_]\w*)")
_DATA = re.compile(r"(?<![\w.])data\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\[[^\]]*\])?(?:\.([A-Za-z_]\w*))?")
_MODULE = re.compile(r"(?<![\w.])module\.([A-Za-z_]\w*)")
_RESOURCE = re.compile(r"(?<![\w.])((?:google|time)_\w+)\.([A-Za-z_]\w*)(?:\[[^\]]*\])?(?:\.([A-Za-z_]\w*))?")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in META:
                yield from _strings(key)
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _expression_text(text: str) -> str:
    """The parts of a value Terraform evaluates (a quoted literal without ${} has none)."""
    if "${" not in text:
        return "" if text.startswith('"') else text
    inner = text
    # Drop literal strings nested in the expression, keeping interpolations in them.
    previous = None
    while previous != inner:
        previous = inner
        inner = _STRING_LITERAL.sub('""', inner)
    return inner


def check_references(module: Module, schema: ProviderSchema | None = None) -> list[Finding]:
    """Every var., local., data., module. and resource reference names something declared.

    With ``schema``, the attribute read after a resource or data source (``google_x.y.attr``)
    must also be one of the type's attributes.
    """
    findings: list[Finding] = []

    def attr_ok(kind: str, tf_type: str, name: str, attr: str | None) -> bool:
        if attr is None or schema is None:
            return True
        store = module.data if kind == "data" else module.resources
        try:
            return attr in schema.get(kind, tf_type, block_provider(store[(tf_type, name)])).attributes
        except UnknownType:
            return True  # reported by check_schema

    def scan(text: str, file: str, where: str) -> None:
        expr = _expression_text(text)
        if not expr:
            return
        for name in _VAR.findall(expr):
            if name not in module.variables:
                findings.append(Finding("references", file, where, f"undeclared variable var.{name}"))
        for name in LOCAL_REF.findall(expr):
            if name not in module.locals:
                findings.append(Finding("references", file, where, f"undeclared local value local.{name}"))
        for name in _MODULE.findall(expr):
            if name not in module.modules:
                findings.append(Finding("references", file, where, f"undeclared module module.{name}"))
        for dtype, dname, attr in _DATA.findall(expr):
            if (dtype, dname) not in module.data:
                findings.append(Finding("references", file, where, f"undeclared data source data.{dtype}.{dname}"))
            elif not attr_ok("data", dtype, dname, attr or None):
                findings.append(Finding("references", file, where, f"data.{dtype}.{dname} has no attribute {attr!r}"))
        for rtype, rname, attr in _RESOURCE.findall(expr):
            if (rtype, rname) not in module.resources:
                findings.append(Finding("references", file, where, f"undeclared resource {rtype}.{rname}"))
            elif not attr_ok("resource", rtype, rname, attr or None):
                findings.append(Finding("references", file, where, f"{rtype}.{rname} has no attribute {attr!r}"))

    for block in module.blocks():
        for text in _strings(block.body):
            scan(text, block.file, block.address)
    for name, value in module.locals.items():
        for text in _strings(value):
            scan(text, module.local_files[name], f"local.{name}")
    return findings


# ------------------------------------------------------------------------------------------------
# Conventions of Google's module layout
# ------------------------------------------------------------------------------------------------
def check_conventions(module: Module) -> list[Finding]:
    """Every variable has a description and a type; every output has a description."""
    findings = []
    for name, block in module.variables.items():
        for needed in ("description", "type"):
            if needed not in block.body:
                findings.append(Finding("conventions", block.file, f"var.{name}", f"missing {needed}"))
    for name, block in module.outputs.items():
        if "description" not in block.body:
            findings.append(Finding("conventions", block.file, f"output.{name}", "missing description"))
    return findings


def all_blocks(module: Module) -> list[Block]:
    return module.blocks()
