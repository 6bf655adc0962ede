"""Reports: short colored text for people, complete JSON, JUnit XML for CI systems."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from verifier import __version__

_COLORS = {"holds": "32", "aligned": "32", "computed": "36", "fails": "31"}


def overall_verdict(reports: Sequence) -> str:
    """`pass` when every report passed, else `fail`."""
    return "pass" if all(r.passed for r in reports) else "fail"


def write_json(path: str | Path, command: str, reports: Sequence) -> None:
    document = {
        "verifier": __version__,
        "command": command,
        "verdict": overall_verdict(reports),
        "reports": [r.to_dict() for r in reports],
    }
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def write_junit(path: str | Path, command: str, reports: Sequence) -> None:
    """One test case per model and property; a failed verdict is a JUnit failure."""
    failures = sum(not r.passed for r in reports)
    root = ET.Element("testsuites")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"verify {command}",
        tests=str(len(reports)),
        failures=str(failures),
        errors="0",
        time=f"{sum(r.seconds for r in reports):.6f}",
    )
    for r in reports:
        data = r.to_dict()
        case = ET.SubElement(
            suite,
            "testcase",
            classname=data["model"],
            name=data["objective"],
            time=f"{r.seconds:.6f}",
        )
        if not r.passed:
            failure = ET.SubElement(case, "failure", message=f"verdict {data['verdict']}")
            failure.text = json.dumps(data, indent=2)
        ET.SubElement(
            case, "system-out"
        ).text = f"verdict {data['verdict']}, value {data['value']!r}"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def format_check(report, color: bool | None = None) -> str:
    """One line per report, verdict first."""
    data = report.to_dict()
    verdict = data["verdict"].upper()
    if color if color is not None else sys.stdout.isatty():
        verdict = f"\033[{_COLORS.get(data['verdict'], '0')}m{verdict}\033[0m"
    width = data["bound_width"]
    bounds = f" (sound bounds, width {width:.2g})" if width > 0 else ""
    return (
        f"{verdict}  {data['model']}  {data['objective']}  value {data['value']:.6g}{bounds}"
        f"  [{data['states']} states, {len(data['initial_states'])} initial]"
    )
