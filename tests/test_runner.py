"""The local runner: workers are reused across jobs, replaced after a crash or a timeout,
and each job is charged its own peak memory."""

from __future__ import annotations

from pathlib import Path

from verifier.runner import Job, run_jobs

JOBS = str(Path(__file__).resolve().parent / "runner_jobs.py")


def job(name: str, function: str, timeout: float | None = None, **kwargs) -> Job:
    return Job(name, f"{JOBS}:{function}", kwargs, timeout)


def test_workers_run_job_after_job():
    """Six jobs on two workers run in at most two processes (imports are paid once each)."""
    outcomes = run_jobs([job(f"p{i}", "pid") for i in range(6)], workers=2)
    assert {o.status for o in outcomes} == {"done"}
    assert len({o.result["pid"] for o in outcomes}) <= 2


def test_a_crashed_or_timed_out_worker_is_replaced_and_the_others_go_on():
    jobs = [
        job("dies", "die"),
        job("after-crash", "pid"),
        job("hangs", "sleep", timeout=1.0, seconds=60),
        job("after-timeout", "double", x=21),
    ]
    outcomes = run_jobs(jobs, workers=1)
    assert [o.status for o in outcomes] == ["crash", "done", "timeout", "done"]
    assert outcomes[3].result == {"x": 42}


def test_each_job_is_charged_its_own_peak_memory():
    """A 400 MB job, then an empty one in the same worker: the second's peak is the
    worker's resident memory, not the first job's 400 MB."""
    outcomes = run_jobs([job("big", "allocate", mb=400), job("small", "allocate", mb=0)], 1)
    big, small = (o.peak_rss_mb for o in outcomes)
    assert outcomes[0].result["pid"] == outcomes[1].result["pid"]
    assert big > 400 and small < big - 300
