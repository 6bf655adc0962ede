"""The JSON Schema of `verify --json`, shipped with the package (report.schema.json): every
document `verify` writes validates against it, and README's "Reports (JSON)" section is
generated from it (`python -m verifier.output.schema` prints the section).

Examples
--------
>>> from verifier.output.schema import validate
>>> validate({"verifier": "0.1.0", "command": "check", "verdict": "pass", "reports": []})
"""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib import resources

from verifier.errors import DependencyMissing

SCHEMA_FILE = "report.schema.json"
# The README section, by schema definition: its heading line, and the keys the kinds share.
_SECTIONS = (
    ("model_report", "Every report on one model (`check`, `reward`, `compare`, `policy`):"),
    ("check", "`check` reports add:"),
    ("reward", "`reward` reports add:"),
    ("compare", "`compare` reports (`verify reward --compare`) add:"),
    ("policy", "`policy` reports add:"),
    (
        "audit_keys",
        "The `audit` report (`verify audit --json`: its keys beside `verifier` and `command`):",
    ),  # fmt: skip
    ("family", "A `family` report (`--model FAMILY`: README, Level families):"),
    ("family_audit", "A `family_audit` report (`verify audit` of two families):"),
)


@cache
def report_schema() -> dict:
    """The schema (JSON Schema, draft 2020-12) as a dict."""
    text = resources.files("verifier.output").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def validate(document: dict) -> None:
    """Raise jsonschema's ValidationError unless `document` (a JSON document `verify`
    writes, as loaded) follows the schema. Needs the jsonschema package (the dev extra)."""
    try:
        import jsonschema
    except ImportError:
        raise DependencyMissing("validating reports", "jsonschema", "dev") from None
    jsonschema.Draft202012Validator(report_schema()).validate(document)


def schema_markdown() -> str:
    """README's "Reports (JSON)" tables: one per kind of report, its keys and meanings."""
    definitions = report_schema()["$defs"]
    shared = set(definitions["model_report"]["properties"])
    lines: list[str] = []
    for name, heading in _SECTIONS:
        properties = definitions[name]["properties"]
        rows = []
        for key, spec in properties.items():
            inherits = "allOf" in definitions[name] and name != "audit_keys"
            if inherits and key in shared and "enum" not in spec:
                continue
            meaning = _meaning(key, spec, name != "model_report")
            if key not in definitions[name].get("required", ()) and key not in shared:
                meaning = f"optional: {meaning}"
            rows.append(f"| `{key}` | {meaning} |")
        lines += ["", heading, "", "| key | meaning |", "|---|---|", *rows]
    return "\n".join(lines[1:]) + "\n"


def _meaning(key: str, spec: dict, kind: bool) -> str:
    if "enum" in spec and key == "verdict" and kind:
        return "one of " + ", ".join(f"`{v}`" for v in spec["enum"])
    if key == "kind" and "const" in spec:
        return f"`{spec['const']}`"
    return spec.get("description", "")


if __name__ == "__main__":
    sys.stdout.write(schema_markdown())
