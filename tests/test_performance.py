"""The performance suite end to end on tiny mazes: every pipeline with ours and its baseline,
agreeing, and the JSON, the markdown table and the PNG plot written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIZES = (100, 300)  # 17 x 17 = 289 states; the per-state policy baseline takes about 1 s there


@pytest.mark.slow
@pytest.mark.torch
def test_performance_suite_on_tiny_mazes(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "performance.py")]
    command += ["--sizes", ",".join(map(str, SIZES)), "--timeout", "60", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

    document = json.loads((tmp_path / "performance.json").read_text())
    assert document["pipelines"] == ["compile", "check", "reward", "policy"]
    assert not document["disagreements"]
    meta = document["meta"]
    assert meta["cpu_count"] and len(meta["load_average_start"]) == 3
    assert len(meta["load_average_end"]) == 3
    for pipeline in document["pipelines"]:
        for target in SIZES:
            rows = [
                r for r in document["rows"] if r["pipeline"] == pipeline and r["target"] == target
            ]
            assert rows, (pipeline, target)
            for row in rows:
                for role in ("ours", "baseline") + (("solver",) if pipeline == "reward" else ()):
                    record = row[role]
                    assert record["status"] == "done", (pipeline, target, role, record)
                    assert record["time_s"] > 0 and record["peak_rss_mb"] > 0
                found = row["agreement"]
                assert found["agree"] and found["same_states"], (pipeline, target, found)
                assert found.get("max_abs_diff", 0.0) <= 1e-6
                assert row["ratio"] > 0

    assert (tmp_path / "performance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = [
        line
        for line in (tmp_path / "performance.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| pipeline")
    ]
    for pipeline in document["pipelines"]:
        for size in ("10^2", "300"):
            assert any(line.startswith(f"| {pipeline}") and f"| {size} |" in line for line in table)
