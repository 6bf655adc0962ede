"""Progress on a terminal: which stage a long command is in, and the time since it began.

Library code marks its long stages with `@stage("solving the reward")`; nothing is shown
unless the command line called `enable()` (it does when stderr is a terminal), so library
calls, tests, pipes and suite workers stay silent. Nested stages show the innermost one and
fall back to the outer one when it ends; the line disappears when the outermost ends.
The command line also shows a bar over a big policy's batches (`batches`) and over a
suite's checks (`jobs`).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_console = None  # a rich Console on stderr once enabled
_display: tuple[Progress, TaskID] | None = None  # while a stage runs
_stack: list[str] = []


def enable(console=None) -> None:
    """Show stages from now on, on `console` (default: a rich Console on stderr)."""
    global _console
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    _console = console


def disable() -> None:
    global _console
    _console = None


def stage(name: str) -> Callable:
    """Decorator: while the function runs, show `name` with a spinner and the time spent."""

    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if _console is None:
                return function(*args, **kwargs)
            _enter(name)
            try:
                return function(*args, **kwargs)
            finally:
                _leave()

        return wrapper

    return decorate


def _enter(name: str) -> None:
    global _display
    _stack.append(name)
    if _display is None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        display = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=_console,
            transient=True,
            redirect_stdout=False,
        )
        display.start()
        _display = (display, display.add_task(name, total=None))
    else:
        display, task = _display
        display.update(task, description=name)


def _leave() -> None:
    global _display
    _stack.pop()
    if _display is None:
        raise RuntimeError("progress: leaving a stage that was never entered")
    display, task = _display
    if _stack:
        display.update(task, description=_stack[-1])
        return
    display.stop()
    _display = None


def batches(n_states: int) -> Callable | None:
    """A progress bar over the batches of a policy run on a model of 200,000 states or more,
    when stderr is a terminal (None otherwise)."""
    if n_states < 200_000 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda batches: tqdm(batches, desc="policy", unit="batch", leave=False)


@contextlib.contextmanager
def jobs(total: int):
    """Yields the function to call as each of `total` jobs ends (with its outcome): a bar on
    a terminal, else one line per finished job on stderr."""
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("checks", total=total)
            yield lambda outcome: bar.advance(task)
        return
    done = 0

    def line(outcome) -> None:
        nonlocal done
        done += 1
        print(
            f"[{done}/{total}] {outcome.job.key}: {outcome.status} ({outcome.seconds:.1f} s)",
            file=sys.stderr,
        )

    yield line


@contextlib.contextmanager
def levels(total: int, name: str):
    """Yields the function to call as each of `total` levels of a family is finished: on a
    terminal a bar with the levels done, the rate and the time left; elsewhere a line at
    every tenth of the family."""
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(name, total=total, rate="")

            def tick(result) -> None:
                bar.advance(task)
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed:.1f} levels/s" if speed else "")

            yield tick
        return
    done = 0
    step = max(1, total // 10)

    def line(result) -> None:
        nonlocal done
        done += 1
        if done % step == 0 or done == total:
            print(f"{name}: {done}/{total} levels", file=sys.stderr)

    yield line
