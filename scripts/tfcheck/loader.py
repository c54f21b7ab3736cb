"""Parse a Terraform module directory into plain Python data (python-hcl2 8.x output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

META = ("__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__")


def unquote(text: str) -> str:
    """A label or literal as written, without the quotes hcl2 keeps."""
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


@dataclass
class Block:
    """One labelled top-level block (resource, data, variable, output, module, provider)."""

    kind: str
    labels: tuple[str, ...]
    body: dict[str, Any]
    file: str

    @property
    def address(self) -> str:
        prefix = {"resource": "", "data": "data.", "variable": "var.", "output": "output.", "module": "module."}
        return prefix.get(self.kind, f"{self.kind}.") + ".".join(self.labels)


@dataclass
class Module:
    """Every top-level block of a directory's ``.tf`` files."""

    path: Path
    resources: dict[tuple[str, str], Block] = field(default_factory=dict)
    data: dict[tuple[str, str], Block] = field(default_factory=dict)
    variables: dict[str, Block] = field(default_factory=dict)
    outputs: dict[str, Block] = field(default_factory=dict)
    modules: dict[str, Block] = field(default_factory=dict)
    providers: list[Block] = field(default_factory=list)
    locals: dict[str, Any] = field(default_factory=dict)
    local_files: dict[str, str] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def blocks(self) -> list[Block]:
        return [
            *self.resources.values(),
            *self.data.values(),
            *self.variables.values(),
            *self.outputs.values(),
            *self.modules.values(),
            *self.providers,
        ]


def _add(store: dict, key: Any, block: Block, module: Module) -> None:
    if key in store:
        module.duplicates.append(f"{block.address} declared twice ({store[key].file}, {block.file})")
    store[key] = block


def load_module(path: Path) -> Module:
    """Parse every ``*.tf`` file directly in ``path`` (Terraform does not recurse either)."""
    module = Module(path=Path(path))
    for tf in sorted(Path(path).glob("*.tf")):
        with tf.open() as handle:
            doc = hcl2.load(handle)
        name = tf.name
        for entry in doc.get("resource", []):
            for rtype, named in entry.items():
                for rname, body in named.items():
                    labels = (unquote(rtype), unquote(rname))
                    _add(module.resources, labels, Block("resource", labels, body, name), module)
        for entry in doc.get("data", []):
            for dtype, named in entry.items():
                for dname, body in named.items():
                    labels = (unquote(dtype), unquote(dname))
                    _add(module.data, labels, Block("data", labels, body, name), module)
        for kind, store in (("variable", module.variables), ("output", module.outputs), ("module", module.modules)):
            for entry in doc.get(kind, []):
                for label, body in entry.items():
                    _add(store, unquote(label), Block(kind, (unquote(label),), body, name), module)
        for entry in doc.get("provider", []):
            for label, body in entry.items():
                module.providers.append(Block("provider", (unquote(label),), body, name))
        for entry in doc.get("locals", []):
            for key, value in entry.items():
                if key in META:
                    continue
                if key in module.locals:
                    module.duplicates.append(f"local.{key} declared twice ({module.local_files[key]}, {name})")
                module.locals[key] = value
                module.local_files[key] = name
        module.terraform.extend(doc.get("terraform", []))
    return module
