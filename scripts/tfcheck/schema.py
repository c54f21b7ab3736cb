"""The providers' schemas, read offline from the cdktn-provider-* bindings.

Three providers are checked: ``google`` (cdktn-provider-google), ``google-beta``
(cdktn-provider-google-beta, for the few resources that exist only there, e.g.
``google_project_service_identity``) and ``time`` (cdktn-provider-time, ``time_sleep``). The beta
and time bindings are found beside the google ones (same site-packages).

Each resource ``google_<x>`` has a module ``cdktn_provider_google/<x>/__init__.py`` (data sources:
``data_google_<x>``). In it, the keyword-only arguments of ``<Class>Config.__init__`` are the
resource's arguments: those without a default are required. An argument documented as
``<name> block.`` is a nested block whose own struct class (named in the type hint) lists the
block's arguments the same way. Properties of the resource class are its attributes (arguments
and computed values), which references such as ``google_x.y.attr`` may read.

The files are read with ``ast``; nothing is imported, so the jsii runtime never starts.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

META_ARGUMENTS = frozenset({"connection", "count", "depends_on", "for_each", "lifecycle", "provider", "provisioners"})


def default_bindings_dir(repo_root: Path) -> Path:
    """Where ``make infra-tools`` installs the bindings."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        repo_root / ".venv-infra" / "lib" / version / "site-packages" / "cdktn_provider_google",
        *sorted((repo_root / ".venv-infra" / "lib").glob("python3*/site-packages/cdktn_provider_google")),
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


@dataclass
class BlockSchema:
    """Arguments of a resource or nested block: name -> nested BlockSchema, or None for an attribute."""

    name: str
    arguments: dict[str, BlockSchema | None] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)  # readable attributes (top level only)

    def is_block(self, arg: str) -> bool:
        return self.arguments.get(arg) is not None


class UnknownType(KeyError):
    """The provider has no resource or data source of that type."""


# Provider name -> (bindings package, type prefix, resource folder, data folder) of its types.
# cdktn-provider-google names a resource's folder without "google_", cdktn-provider-google-beta
# keeps the full type name, cdktn-provider-time drops "time_".
PROVIDERS = {
    "google": ("cdktn_provider_google", "google_", "{short}", "data_google_{short}"),
    "google-beta": ("cdktn_provider_google_beta", "google_", "{type}", "data_{type}"),
    "time": ("cdktn_provider_time", "time_", "{short}", "data_time_{short}"),
}


def provider_of(tf_type: str, explicit: str | None = None) -> str:
    """The provider a block uses: its ``provider =`` meta-argument, else its type's prefix."""
    if explicit:
        return explicit.split(".", 1)[0]
    return "time" if tf_type.startswith("time_") else "google"


class ProviderSchema:
    """Lazy, cached view of the bindings: parse a type's module only when it is asked for."""

    def __init__(self, bindings_dir: Path):
        self.bindings_dir = Path(bindings_dir)
        if not (self.bindings_dir / "__init__.py").is_file():
            raise FileNotFoundError(
                f"cdktn-provider-google bindings not found at {self.bindings_dir}; run `make infra-tools`"
            )
        site = self.bindings_dir.parent
        self.provider_dirs = {name: site / package for name, (package, *_rest) in PROVIDERS.items()}
        self.provider_dirs["google"] = self.bindings_dir
        self._cache: dict[tuple[str, str, str], BlockSchema] = {}

    def _provider_dir(self, provider: str) -> Path:
        if provider not in self.provider_dirs:
            raise UnknownType(f"provider {provider!r} is not checked (known: {', '.join(PROVIDERS)})")
        path = self.provider_dirs[provider]
        if not (path / "__init__.py").is_file():
            raise FileNotFoundError(f"{PROVIDERS[provider][0]} bindings not found at {path}; run `make infra-tools`")
        return path

    def version_of(self, provider: str) -> str | None:
        """Provider version the bindings were generated from (e.g. "8.7.0")."""
        text = (self._provider_dir(provider) / "provider" / "__init__.py").read_text()
        found = re.search(r"providers/hashicorp/[\w-]+/([0-9.]+)/docs", text)
        return found.group(1) if found else None

    @property
    def provider_version(self) -> str | None:
        text = (self.bindings_dir / "provider" / "__init__.py").read_text()
        found = re.search(r"providers/hashicorp/google/([0-9.]+)/docs", text)
        return found.group(1) if found else None

    def _module_file(self, kind: str, tf_type: str, provider: str = "google") -> Path:
        _package, prefix, resource_folder, data_folder = PROVIDERS.get(provider, PROVIDERS["google"])
        if not tf_type.startswith(prefix):
            raise UnknownType(f"{tf_type}: not a {provider} provider type")
        short = tf_type[len(prefix) :]
        folder = (data_folder if kind == "data" else resource_folder).format(short=short, type=tf_type)
        path = self._provider_dir(provider) / folder / "__init__.py"
        if not path.is_file():
            message = f"{kind} type {tf_type} does not exist in the {provider} provider schema"
            if provider == "google" and self.has_type(kind, tf_type, "google-beta"):
                message += "; it exists only in google-beta: set provider = google-beta"
            raise UnknownType(message)
        return path

    def has_type(self, kind: str, tf_type: str, provider: str = "google") -> bool:
        try:
            self._module_file(kind, tf_type, provider)
        except (UnknownType, FileNotFoundError):
            return False
        return True

    def get(self, kind: str, tf_type: str, provider: str | None = None) -> BlockSchema:
        """Schema of a resource (kind "resource"), data source (kind "data") or provider block.

        ``provider`` defaults to the one the type's prefix implies (google_ -> google,
        time_ -> time); pass "google-beta" for a block with ``provider = google-beta``.
        """
        provider = provider or (tf_type if kind == "provider" else provider_of(tf_type))
        key = (kind, tf_type, provider)
        if key not in self._cache:
            if kind == "provider":
                path = self._provider_dir(provider) / "provider" / "__init__.py"
            else:
                path = self._module_file(kind, tf_type, provider)
            self._cache[key] = _parse_module(str(path), tf_type)
        return self._cache[key]


def _kwonly(init: ast.FunctionDef) -> list[tuple[str, ast.expr | None, bool]]:
    args = init.args
    return [(a.arg, a.annotation, d is None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]


def _param_docs(init: ast.FunctionDef) -> dict[str, str]:
    doc = ast.get_docstring(init) or ""
    return {m.group(1): m.group(2) for m in re.finditer(r":param (\w+): ?([^\n]*)", doc)}


def _tf_name(python_name: str) -> str:
    # jsii appends "_" to Python keywords (e.g. "from_", "in_").
    return python_name[:-1] if python_name.endswith("_") and not python_name.endswith("__") else python_name


@cache
def _parse_module(path: str, tf_type: str) -> BlockSchema:
    tree = ast.parse(Path(path).read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    inits = {
        name: node
        for name, cls in classes.items()
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    }

    config = next(
        (
            name
            for name, cls in classes.items()
            if any(
                ast.unparse(base).endswith(("TerraformMetaArguments", "TerraformProviderConfig")) for base in cls.bases
            )
            or (name.endswith("ProviderConfig") and tf_type in PROVIDERS)
        ),
        None,
    )
    if config is None:
        # The provider's config struct has no meta-argument base: take the class named *ProviderConfig.
        config = next((n for n in classes if n.endswith("ProviderConfig")), None)
    if config is None or config not in inits:
        raise UnknownType(f"{tf_type}: no Config class in {path}")

    def struct(class_name: str, name: str, stack: tuple[str, ...]) -> BlockSchema:
        schema = BlockSchema(name=name)
        init = inits.get(class_name)
        if init is None:
            return schema
        docs = _param_docs(init)
        for py_name, annotation, required in _kwonly(init):
            if class_name == config and py_name in META_ARGUMENTS:
                continue
            tf_name = _tf_name(py_name)
            nested = None
            if re.match(rf"{re.escape(py_name)} block\b", docs.get(py_name, "")):
                hint = ast.unparse(annotation) if annotation is not None else ""
                referenced = [c for c in re.findall(r"['\"](\w+)['\"]", hint) if c in classes]
                target = referenced[0] if referenced else None
                if target and target not in stack:
                    nested = struct(target, tf_name, (*stack, target))
                else:
                    nested = BlockSchema(name=tf_name)
            schema.arguments[tf_name] = nested
            if required:
                schema.required.add(tf_name)
        return schema

    top = struct(config, tf_type, (config,))

    # Attributes: properties of the resource class (the one whose Config this is).
    resource_class = classes.get(config[: -len("Config")]) if config.endswith("Config") else None
    if resource_class is not None:
        for node in resource_class.body:
            if isinstance(node, ast.FunctionDef) and any(
                ast.unparse(d) == "builtins.property" for d in node.decorator_list
            ):
                if not node.name.endswith("_input"):
                    top.attributes.add(_tf_name(node.name))
    top.attributes.update(top.arguments)
    top.attributes.add("id")
    return top
