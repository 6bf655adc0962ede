"""Run many independent jobs: in parallel processes on this machine, or on a Dask cluster.

A job names a function by `module:function` (or `path/to/file.py:function`) and passes it
JSON-like keyword arguments; the function returns a JSON-like dict. Jobs run in worker
processes apart from the caller, so one job that crashes (a segfault in a native library),
runs past its timeout or exhausts memory is reported as such and the others go on.

Locally the workers are a pebble pool forked from a forkserver that has the verifier's
modules imported already. A worker runs job after job, so what a job imports (torch, for
a policy check: seconds) is paid once per worker, not once per job; a worker whose job
crashed the process or ran out of time is killed and replaced by a fresh one. The peak
memory of a job is measured from its start (Linux resets the high-water mark per job;
elsewhere it is the worker's peak so far). On a Dask cluster (`scheduler=ADDRESS`) each
job runs as a child interpreter of the Dask worker (`python -m verifier.runner`), because a
Dask task cannot be killed and a worker that crashed takes its tasks with it. Files named
by the jobs must be visible at the same paths on every worker (a shared file system).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import multiprocessing
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from verifier.errors import DependencyMissing, InputError, VerifierError

# A job's outcome: `done` (the function returned), the `outcome` its VerifierError class
# names (`error`: bad input or a missing package; `limit`: a limit the user set; `backend`:
# a backend failed or could not certify), `limit` also when memory ran out, `timeout` (killed
# after its timeout), `crash` (any other failure, including the process dying).
OUTCOMES = ("done", "error", "limit", "backend", "timeout", "crash")

PRELOAD = [
    "numpy",
    "scipy.sparse",
    "verifier.storm",
    "verifier.analyses.reward_verdict",
    "verifier.analyses.policy_verdict",
]


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work: `function(**kwargs)` with a wall-clock `timeout` in seconds."""

    key: str
    function: str
    kwargs: dict = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a job; `result` is the function's dict when `status` is `done`."""

    job: Job
    status: str
    result: dict | None = None
    message: str = ""
    seconds: float = 0.0
    peak_rss_mb: float | None = None

    def to_dict(self) -> dict:
        return {
            "key": self.job.key,
            "status": self.status,
            "message": self.message,
            "seconds": self.seconds,
            "peak_rss_mb": self.peak_rss_mb,
            "result": self.result,
        }


def run_jobs(
    jobs: Sequence[Job],
    workers: int | None = None,
    scheduler: str | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every job and return their outcomes in the order of `jobs`.

    `workers` is the number of jobs at once on this machine (default: the CPU count);
    `scheduler` the address of a Dask scheduler instead. `on_done` is called as each job
    finishes, in completion order (for progress).
    """
    outcomes: dict[int, Outcome] = {}
    # Each job runs under a key that starts with its index, to put its outcome back in place.
    indexed = [
        Job(f"{i}:{job.key}", job.function, job.kwargs, job.timeout) for i, job in enumerate(jobs)
    ]

    def done(outcome: Outcome) -> None:
        index = int(outcome.job.key.partition(":")[0])
        outcomes[index] = outcome = Outcome(jobs[index], **_fields(outcome))
        if on_done is not None:
            on_done(outcome)

    stream_jobs(indexed, workers, scheduler, done)
    return [outcomes[i] for i in range(len(jobs))]


def stream_jobs(
    jobs: Iterable[Job],
    workers: int | None = None,
    scheduler: str | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    window: int | None = None,
) -> None:
    """Run the jobs as `jobs` yields them, at most `window` (default: four per worker) in
    flight, calling `on_done` with each outcome as it finishes: a million jobs are never
    held at once, and each result can be saved the moment it exists."""
    on_done = on_done or (lambda outcome: None)
    if scheduler:
        _run_dask(jobs, scheduler, on_done, window or 64)
        return
    workers = workers or multiprocessing.cpu_count()
    _run_local(jobs, workers, on_done, window or 4 * workers)


def _fields(outcome: Outcome) -> dict:
    return {
        "status": outcome.status,
        "result": outcome.result,
        "message": outcome.message,
        "seconds": outcome.seconds,
        "peak_rss_mb": outcome.peak_rss_mb,
    }


def _run_local(jobs: Iterable[Job], workers: int, on_done, window: int) -> None:
    import pebble

    iterator = iter(jobs)
    first = next(iterator, None)
    if first is None:
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    with pebble.ProcessPool(
        max_workers=workers, context=context, initializer=_ignore_interrupts
    ) as pool:
        try:
            pending: dict[Future[Outcome], Job] = {}
            upcoming: Job | None = first
            while upcoming is not None or pending:
                while upcoming is not None and len(pending) < window:
                    scheduled = pool.schedule(execute, args=(upcoming,), timeout=upcoming.timeout)
                    pending[scheduled] = upcoming
                    upcoming = next(iterator, None)
                finished, _ = wait(set(pending), return_when=FIRST_COMPLETED)
                for done in finished:
                    on_done(_collect(pending.pop(done), done))
        except BaseException:  # Ctrl-C in the caller: stop the workers, not wait for them
            pool.stop()
            raise


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C is the caller's to handle (it stops the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _collect(job: Job, future) -> Outcome:
    """The outcome of a pebble future: the job's own, or why its process gave none."""
    import pebble

    try:
        return future.result()
    except FutureTimeout:
        return _timed_out(job)
    except pebble.ProcessExpired as exc:
        return Outcome(job, "crash", message=f"the process died (exit code {exc.exitcode})")
    except Exception as exc:  # the pool could not run it at all (e.g. unpicklable result)
        return Outcome(job, "crash", message=_one_line(exc))


def _run_dask(jobs: Iterable[Job], scheduler: str, on_done, window: int) -> None:
    """The jobs on a Dask cluster, `window` in flight. A task whose worker is lost is run
    again on another worker by Dask's scheduler (its `allowed-failures`), so no job is lost
    with a worker; after that many losses it is a crash."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DependencyMissing("running on a cluster", "Dask", "cluster", "--scheduler") from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, ValueError) as exc:  # unreachable, or not an address ("missing port")
        raise InputError("--scheduler", f"cannot reach {scheduler}: {_one_line(exc)}") from None
    with client:
        iterator = enumerate(jobs)
        submitted: dict[str, Job] = {}
        running = as_completed()

        def submit() -> bool:
            item = next(iterator, None)
            if item is None:
                return False
            i, job = item
            future = client.submit(execute_isolated, job, key=f"verify-{i}-{job.key}", pure=False)
            submitted[str(future.key)] = job
            running.add(future)
            return True

        while len(submitted) < window and submit():
            pass
        for future in running:
            job = submitted.pop(str(future.key))
            try:
                outcome = future.result()
            except Exception as exc:  # the Dask worker itself died (KilledWorker) or similar
                outcome = Outcome(job, "crash", message=f"Dask: {_one_line(exc)}")
            on_done(outcome)
            submit()


def execute(job: Job) -> Outcome:
    """Run one job in this process, turning its errors into an outcome."""
    _reset_peak_rss()
    start = time.perf_counter()
    status, result, message = "done", None, ""
    try:
        result = resolve(job.function)(**job.kwargs)
    except VerifierError as exc:
        status, message = exc.outcome, str(exc)
    except MemoryError:
        status, message = "limit", "out of memory"
    except Exception as exc:
        status, message = "crash", f"{type(exc).__name__}: {_one_line(exc)}"
    return Outcome(job, status, result, message, time.perf_counter() - start, peak_rss_mb())


def execute_isolated(job: Job) -> Outcome:
    """Run one job in a child interpreter (for Dask workers): killed after its timeout,
    and a crash of the child is an outcome, not the worker's death."""
    with tempfile.TemporaryDirectory(prefix="verify-job-") as scratch:
        request, answer = Path(scratch, "job.json"), Path(scratch, "outcome.json")
        request.write_text(json.dumps(_job_dict(job)), encoding="utf-8")
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "verifier.runner", str(request), str(answer)],
                capture_output=True,
                text=True,
                timeout=job.timeout,
            )
        except subprocess.TimeoutExpired:
            return _timed_out(job)
        if done.returncode != 0 or not answer.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit code {done.returncode}"
            return Outcome(
                job,
                "crash",
                message=f"the process died: {reason}",
                seconds=time.perf_counter() - start,
            )
        data = json.loads(answer.read_text(encoding="utf-8"))
        return Outcome(job, **{k: v for k, v in data.items() if k != "key"})


def resolve(reference: str) -> Callable[..., dict]:
    """`module:function` or `path/to/file.py:function` -> the function."""
    module_name, sep, name = reference.rpartition(":")
    if not sep or not module_name or not name:
        raise InputError(reference, "a job function is written module:function")
    if module_name.endswith(".py"):
        path = Path(module_name)
        spec = importlib.util.spec_from_file_location(f"_job_{path.stem}", path)
        if spec is None or spec.loader is None or not path.is_file():
            raise InputError(module_name, "no such file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, name)


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB since the last `_reset_peak_rss`
    (VmHWM on Linux; elsewhere ru_maxrss, the peak since the process started)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _reset_peak_rss() -> None:
    """Start a new high-water mark of resident memory (Linux: clear_refs 5), so that a job
    in a reused worker is charged its own peak, not an earlier job's."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def _timed_out(job: Job) -> Outcome:
    if job.timeout is None:
        raise ValueError(f"job {job.key!r} timed out without a timeout")
    return Outcome(job, "timeout", message=f"killed after {job.timeout:g} s", seconds=job.timeout)


def _job_dict(job: Job) -> dict:
    return {"key": job.key, "function": job.function, "kwargs": job.kwargs, "timeout": job.timeout}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _main(arguments: Iterable[str]) -> int:
    """`python -m verifier.runner JOB.json OUTCOME.json`: the child side of execute_isolated."""
    request, answer = arguments
    job = Job(**json.loads(Path(request).read_text(encoding="utf-8")))
    outcome = execute(job)
    data = outcome.to_dict()
    Path(answer).write_text(json.dumps(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
