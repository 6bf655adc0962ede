"""What the benchmark scripts share: timing, peak memory, the results header, formatting."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (ru_maxrss is KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS
    return resource.getrusage(who).ru_maxrss * scale / 2**20


def clock(step):
    """(result, wall seconds) of one call."""
    start = time.perf_counter()
    result = step()
    return result, time.perf_counter() - start


def versions(extra: dict | None = None) -> dict:
    """The machine, the library versions and the verifier commit, for a results header."""
    import numpy
    import scipy
    import stormpy

    model_name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "processor": platform.processor(),
        "cpu_model": model_name,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "stormpy": getattr(stormpy, "__version__", "?"),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
        "verifier_commit": _git("rev-parse", "--short", "HEAD"),
        "verifier_uncommitted": _git("status", "--porcelain", "--", "verifier"),
    }
    return {**info, **(extra or {})}


def _git(*arguments: str) -> str:
    """Read-only git queries for the record (empty when git is unavailable)."""
    try:
        done = subprocess.run(["git", *arguments], capture_output=True, text=True, cwd=ROOT)
    except OSError:
        return ""
    return done.stdout.strip()


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def ratio(value: float) -> str:
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1g}x" if value < 1 else f"{value:.1f}x"


def status(record: dict | None) -> str | None:
    """A table cell for a run that gave no numbers, None when it did."""
    if record is None:
        return "not tried (a smaller size timed out)"
    if "timeout" in record:
        return f"timeout (> {record['timeout']:g} s, whole subprocess)"
    if "error" in record:
        return f"error: {record['error']}"
    return None


def run_worker(script: str, kind: str, arguments: list[str], timeout: float | None) -> dict:
    """One worker of `script` in a fresh interpreter: its JSON record, {"timeout": seconds}
    when it ran out of time, {"error": message} when it failed."""
    command = [sys.executable, str(Path(script).resolve()), "--worker", kind, *arguments]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit code {done.returncode}"
        print(f"warning: {kind} worker: {message}", file=sys.stderr)
        return {"error": message, "stderr_tail": lines[-15:]}
    record = json.loads(done.stdout.strip().splitlines()[-1])
    if "timeout" not in record:
        record["process_s"] = time.perf_counter() - start
    return record
