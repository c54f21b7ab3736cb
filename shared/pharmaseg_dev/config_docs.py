"""docs/configuration.md and terraform/settings.tf, generated from ``pharmaseg.config.SETTINGS``.

Dev tooling: the functions read their settings with ``config.load`` and never need these
renderings, so they stay out of every function's archive. ``pharmaseg config`` prints them; tests
(tests/unit/test_config.py) and the offline Terraform checks fail while either file is stale.
"""

from __future__ import annotations

import json
from decimal import Decimal

from pharmaseg.config import ALL, SETTINGS, TOOLING, Setting


def markdown_table() -> str:
    """The settings as the Markdown tables of docs/configuration.md (kept in sync by a test)."""
    lines = [
        "| variable | type | default | read by | Terraform | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS.values():
        if s.default is None or s.default == "":
            default = "(unset)" if s.default is None else "(empty)"
        else:
            default = f"`{s.default:g}`" if isinstance(s.default, float) else f"`{s.default}`"
        readers = "all" if s.functions == ALL else ", ".join(s.functions)
        kind = s.kind.__name__ + (f" ({', '.join(s.choices)})" if s.choices else "")
        if s.low is not None or s.high is not None:
            low = "" if s.low is None else f"{_hcl_number(s.low)} <= "
            high = "" if s.high is None else f" <= {_hcl_number(s.high)}"
            kind += f", {low}x{high}"
        if s.pattern:
            kind += f", matching `{s.pattern}`"
        if s.json_type:
            kind += f", JSON of a Terraform `{s.json_type}`"
        terraform = f"`{s.terraform}`" if s.terraform else f"`var.{s.tf_variable}`"
        lines.append(f"| `{s.name}` | {kind} | {default} | {readers} | {terraform} | {s.doc} |")
    lines += ["", "Not function settings (local stack and CLI only; Terraform sets none of them):", ""]
    lines += ["| variable | meaning |", "| --- | --- |"]
    lines += [f"| `{v.name}` | {v.doc} |" for v in TOOLING.values()]
    return "\n".join(lines) + "\n"


# -- Terraform: terraform/settings.tf is generated from SETTINGS (kept in sync by a test) --------

TERRAFORM_FILE = "terraform/settings.tf"
TERRAFORM_COMMAND = f"pharmaseg config --terraform > {TERRAFORM_FILE}"
_TF_TYPES = {str: "string", int: "number", float: "number"}


def _hcl_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("${", "$${").replace("%{", "%%{") + '"'


def _hcl_number(number: float) -> str:
    """A number literal without an exponent (1e-09 -> 0.000000001)."""
    if float(number).is_integer():
        return str(int(number))
    return format(Decimal(repr(float(number))), "f")


def _hcl_default(s: Setting) -> str:
    if s.default is None:
        return "null"
    if s.json_type:
        doc = json.loads(s.default)
        if doc != {}:  # variable defaults are literals: extend this when a JSON setting defaults to more
            raise ValueError(f"{s.name}: only an empty JSON object default is rendered to Terraform")
        return "{}"
    return _hcl_number(s.default) if s.kind is not str else _hcl_string(s.default)


def _tf_validations(s: Setting) -> list[tuple[str, str]]:
    """(condition, error_message) of the variable of ``s``: the same rules as ``Setting.parse``."""
    var, name = f"var.{s.tf_variable}", s.tf_variable
    # A nullable variable's checks hold for null (Terraform's || evaluates both sides: can() and
    # try() turn the error of a comparison with null into false).
    unset = [f"{var} == null"] if s.default is None else []
    rules = []
    if s.choices:
        options = ", ".join(_hcl_string(c) for c in s.choices)
        rules.append(([f"contains([{options}], {var})"], f"{name} must be one of {', '.join(s.choices)}."))
    if s.pattern:
        regex = _hcl_string(f"^(?:{s.pattern})$")
        rules.append(([f'{var} == ""', f"can(regex({regex}, {var}))"], f"{name} must be empty or match {s.pattern}."))
    if s.kind is not str:
        parts, words = [], []
        if s.kind is int:
            parts.append(f"floor({var}) == {var}")
            words.append("a whole number")
        if s.low is not None:
            parts.append(f"{var} >= {_hcl_number(s.low)}")
        if s.high is not None:
            parts.append(f"{var} <= {_hcl_number(s.high)}")
        if s.low is not None and s.high is not None:
            words.append(f"between {_hcl_number(s.low)} and {_hcl_number(s.high)}")
        elif s.low is not None:
            words.append(f"at least {_hcl_number(s.low)}")
        elif s.high is not None:
            words.append(f"at most {_hcl_number(s.high)}")
        if parts:
            condition = " && ".join(parts)
            rules.append(([f"try({condition}, false)" if unset else condition], f"{name} must be {', '.join(words)}."))
    return [(" || ".join(unset + alternatives), message) for alternatives, message in rules]


def _tf_value(s: Setting) -> str:
    """The environment value of ``s`` in Terraform: a string, or null (then left out)."""
    if s.terraform:
        return s.terraform
    var = f"var.{s.tf_variable}"
    if s.json_type:
        return f"jsonencode({var})"
    return var if s.kind is str else f"tostring({var})"


def _aligned(pairs: list[tuple[str, str]], indent: str) -> list[str]:
    """``key = value`` lines with the equals signs aligned, as ``terraform fmt`` writes them."""
    width = max(len(key) for key, _ in pairs)
    return [f"{indent}{key.ljust(width)} = {value}" for key, value in pairs]


def terraform_settings() -> str:
    """terraform/settings.tf: a variable per tunable setting, and each function's environment."""
    lines = [
        f"# Generated from shared/pharmaseg/config.py by `{TERRAFORM_COMMAND}`; do not edit.",
        "# One variable per setting Terraform does not derive from its own resource names (its default",
        "# and bounds are the code's), and local.function_env: each function's environment, exactly the",
        "# settings it reads. A setting left null is left out of the environment (the code's default).",
    ]
    for s in SETTINGS.values():
        if s.tf_variable is None:
            continue
        attributes = [
            ("description", _hcl_string(f"{s.name}: {s.doc}")),
            ("type", s.json_type or _TF_TYPES[s.kind]),
            ("default", _hcl_default(s)),
            ("nullable", "true" if s.default is None else "false"),
        ]
        lines += ["", f'variable "{s.tf_variable}" {{', *_aligned(attributes, "  ")]
        for condition, message in _tf_validations(s):
            validation = [("condition", condition), ("error_message", _hcl_string(message))]
            lines += ["", "  validation {", *_aligned(validation, "    "), "  }"]
        lines.append("}")
    lines += ["", "locals {", "  function_env = {", "    for fn, env in {"]
    for function in ALL:
        env = [(s.name, _tf_value(s)) for s in SETTINGS.values() if function in s.functions]
        lines += [f"      {function} = {{", *_aligned(env, "        "), "      }"]
    lines += ["    } : fn => { for name, value in env : name => value if value != null }", "  }", "}"]
    return "\n".join(lines) + "\n"
