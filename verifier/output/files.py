"""Report files: complete JSON and JUnit XML for CI systems, written whole or not at all."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from verifier.errors import InputError
from verifier.verdicts import verdict_counts
from verifier.version import __version__


def overall_verdict(reports: Sequence) -> str:
    """`pass` when every report passed, else `fail`."""
    return "pass" if all(r.passed for r in reports) else "fail"


def write_text_atomic(path: str | Path, text: str | bytes) -> None:
    """Write a report whole or not at all: to a regular file (or a new path) through a
    temporary file in the same directory and os.replace, so that two writers of one path
    never interleave and a reader never sees half a report. Anything else that exists (a
    device such as /dev/null, a FIFO, a terminal) is written in place: replacing it would
    destroy it. A directory is refused (InputError)."""
    path = Path(path)
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        kind = report_target(path)
        if kind == "special":
            with open(path, "wb") as file:
                file.write(data)
            return
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc.strerror or exc}") from None


def report_target(path: str | Path) -> str:
    """What a report path is: `file` (a regular file, or nothing yet: written atomically)
    or `special` (a device, FIFO or socket: written in place). InputError for a directory."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file"
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise InputError(str(path), "cannot write: is a directory, not a file")
    return "file" if stat.S_ISREG(mode) else "special"


def check_writable(path: str | Path, flag: str) -> None:
    """Refuse a report path that cannot be written, before any work is done: a regular
    file (or a new path) gets a file created and removed beside it, as the atomic writer of
    reports will; a device or FIFO must be writable in place; a directory is refused."""
    target = Path(path)
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "is a directory, not a file")
        if report_target(target) == "special":
            if not os.access(target, os.W_OK):
                raise PermissionError(13, "permission denied")
            return
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}."):
            pass
    except InputError as exc:
        raise InputError(str(path), f"cannot write the {flag} report: {exc.message}") from None
    except OSError as exc:
        raise InputError(
            str(path), f"cannot write the {flag} report: {exc.strerror or exc}"
        ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_json_document(path: str | Path, document: dict) -> None:
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def write_json(path: str | Path, command: str, reports: Sequence) -> None:
    document = {
        "verifier": __version__,
        "command": command,
        "verdict": overall_verdict(reports),
        "counts": [
            {"verdict": verdict, "cause": cause, "count": n}
            for verdict, cause, n in verdict_counts(reports)
        ],
        "reports": [r.to_dict() for r in reports],
    }
    _write_json_document(path, document)


def write_junit(path: str | Path, command: str, reports: Sequence) -> None:
    """One test case per model and property; a failed verdict is a JUnit failure."""
    cases = []
    for r in reports:
        data = r.to_dict()
        failure = None if r.passed else (f"verdict {data['verdict']}", json.dumps(data, indent=2))
        out = f"verdict {data['verdict']}"
        if data.get("value") is not None:  # a comparison or a family has no value of φ
            out += f", value {data['value']!r}"
        cases.append((data["model"], data["objective"], r.seconds, out, failure, None))
    _write_junit_cases(path, f"verify {command}", cases)


def _write_junit_cases(path: str | Path, name: str, cases: Sequence[tuple]) -> None:
    """A JUnit XML file of one test suite; each case is (classname, name, seconds,
    system-out, failure, error), failure and error None or (message, text)."""
    root = ET.Element("testsuites")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(sum(case[4] is not None for case in cases)),
        errors=str(sum(case[5] is not None for case in cases)),
        time=f"{sum(case[2] for case in cases):.6f}",
    )
    for classname, case_name, seconds_, out, failure, error in cases:
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=case_name, time=f"{seconds_:.6f}"
        )
        for tag, problem in (("failure", failure), ("error", error)):
            if problem is not None:
                ET.SubElement(case, tag, message=problem[0]).text = problem[1]
        ET.SubElement(case, "system-out").text = out
    write_text_atomic(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write_suite_json(path: str | Path, result) -> None:
    """A suite's result (verifier.suite.SuiteResult) as JSON: every row."""
    _write_json_document(path, {"verifier": __version__, "command": "suite", **result.to_dict()})


def write_suite_junit(path: str | Path, result) -> None:
    """One test case per row: a verdict other than expected is a failure, a check that gave
    no verdict (timeout, limit, crash, bad input) an error."""
    cases = []
    for row in result.rows:
        data = row.to_dict()
        expected = data["expect"] or "a passing verdict"
        failure = error = None
        if row.status == "FAIL":
            message = f"verdict {data['verdict']}, expected {expected}"
            failure = (message, json.dumps(data["report"], indent=2))
        elif not row.ok:
            error = (f"{data['verdict']}: {data['message']}", data["message"])
        name = f"{data['check']} {data['objective']}".strip()
        out = f"verdict {data['verdict']}"
        cases.append((data["environment"], name, data["seconds"], out, failure, error))
    _write_junit_cases(path, f"verify suite {result.suite.name}", cases)


def write_audit_json(path: str | Path, report) -> None:
    _write_json_document(path, {"verifier": __version__, "command": "audit", **report.to_dict()})


def write_audit_junit(path: str | Path, report) -> None:
    """One test case per proxy: a goal-misgeneralization risk is a failure."""
    cases = []
    for finding in report.findings:
        item = finding.to_dict()
        failure = None
        if finding.risk:
            divergent = ", ".join(item["divergent_on"])
            failure = (f"risk: diverges from the objective on {divergent}", json.dumps(item))
        out = (
            "indistinguishable from the objective on training"
            if finding.indistinguishable
            else "told apart by training"
        )
        cases.append((f"proxy {item['kind']}", item["proxy"], 0.0, out, failure, None))
    _write_junit_cases(path, "verify audit", cases)
