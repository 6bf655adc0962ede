"""One report schema: every kind of report has exactly the keys the shipped JSON Schema
lists, the schema's verdicts are verdicts.py's, and README's JSON section is made from it."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from verifier import audit, check, compare_rewards, verify_policy, verify_reward
from verifier.cli import main
from verifier.output.schema import report_schema, schema_markdown, validate
from verifier.verdicts import (
    AuditVerdict,
    CheckVerdict,
    CompareVerdict,
    PolicyVerdict,
    RewardVerdict,
)

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
REDBLUE = ROOT / "models" / "redblue"
DEFINITIONS = report_schema()["$defs"]
VERDICTS = {
    "check": CheckVerdict,
    "reward": RewardVerdict,
    "compare": CompareVerdict,
    "policy": PolicyVerdict,
    "audit_keys": AuditVerdict,
}


def _keys(kind: str) -> tuple[set[str], set[str]]:
    """(required, allowed) keys of a kind of report in the schema."""
    definition = DEFINITIONS[kind]
    parts = [definition] + [
        DEFINITIONS[ref["$ref"].rpartition("/")[2]] for ref in definition.get("allOf", [])
    ]
    required = set().union(*(set(p.get("required", ())) for p in parts))
    allowed = set().union(*(set(p.get("properties", {})) for p in parts))
    return required, allowed


@pytest.mark.parametrize("kind", sorted(VERDICTS))
def test_the_schema_lists_the_verdicts_of_verdicts_py(kind):
    verdict = DEFINITIONS[kind]["properties"]["verdict"]
    assert verdict["enum"] == [v.value for v in VERDICTS[kind]]


def _reports():
    deploy = REDBLUE / "deploy-01.toml"
    exit_reward, red = REDBLUE / "rewards" / "exit.toml", REDBLUE / "rewards" / "red.toml"
    yield "check", check(deploy, 'P>=0.5 [ F "exit" ]')[0]
    yield "reward", verify_reward(deploy, red, tradeoff=True)[0]
    yield "compare", compare_rewards(deploy, exit_reward, red)[0]
    yield "policy", verify_policy(REDBLUE / "policy.pt", deploy, reward=exit_reward)[0]
    yield "audit_keys", audit(REDBLUE / "train-01.toml", deploy, variants=False)


def test_every_kind_of_report_has_the_keys_of_its_schema_and_validates():
    for kind, report in _reports():
        data = report.to_dict()
        required, allowed = _keys(kind)
        assert required <= data.keys() <= allowed, (kind, data.keys() ^ allowed)
        assert data["passed"] is report.passed
        if kind == "audit_keys":
            validate({"verifier": "0", "command": "audit", **data})
        else:
            document = {"verifier": "0", "command": "policy", "verdict": "fail", "counts": []}
            validate({**document, "reports": [data]})


def test_a_number_not_computed_is_null_and_an_infinite_return_stays_infinite(tmp_path):
    """A reward loop (+1 for standing on the object, forever): unbounded; the worst and
    best φ over optimal policies are not computed (null), the optimal return is +inf."""
    maze = tmp_path / "loop.toml"
    maze.write_text('map = """\nSB.A\n"""\n[cells.A]\nkind = "exit"\n[cells.B]\nkind = "object"\n')
    reward = tmp_path / "loop-reward.toml"
    reward.write_text("[arrive]\nobject = 1.0\n")
    (report,) = verify_reward(maze, reward)
    data = report.to_dict()
    assert data["verdict"] == "unbounded"
    assert data["value"] is None and data["objective_min"] is None
    assert math.isinf(data["optimal_return"])
    assert math.isnan(report.value)  # the Python report keeps NaN


def test_compare_with_junit_writes_one_failing_case(tmp_path, capsys):
    """Once a KeyError (a comparison has no value of φ): now one test case, failed, as the
    two rewards' optimal policies differ at the cell right of the start."""
    junit, report = tmp_path / "c.xml", tmp_path / "c.json"
    argv = ["reward", "--model", str(REDBLUE / "deploy-01.toml")]
    argv += ["--reward", str(REDBLUE / "rewards" / "exit.toml")]
    argv += ["--compare", str(REDBLUE / "rewards" / "red.toml")]
    assert main([*argv, "--junit", str(junit), "--json", str(report)]) == 1
    assert capsys.readouterr().out.startswith("DIFFERENT")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
    assert suite.find("testcase/system-out").text == "verdict different"
    (entry,) = json.loads(report.read_text())["reports"]
    assert (entry["value"], entry["optimal_value"]) == (None, None)


def test_readme_json_section_is_generated_from_the_schema():
    """README's "Reports (JSON)" tables are `python -m verifier.output.schema`'s output."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- schema: begin -->\n", "<!-- schema: end -->"
    section = readme[readme.index(begin) + len(begin) : readme.index(end)]
    assert section.strip() == schema_markdown().strip(), (
        "regenerate: python -m verifier.output.schema"
    )
