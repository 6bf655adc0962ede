"""Job functions for the runner's tests: one per way a job can end."""

from __future__ import annotations

import os
import time

from verifier.errors import DependencyMissing, InputError, ResourceLimit, SolverError


def double(x: int) -> dict:
    return {"x": 2 * x}


def sleep(seconds: float) -> dict:
    time.sleep(seconds)
    return {}


def die() -> dict:
    os._exit(9)  # the process vanishes, as on a segfault in a native library


def raise_input_error() -> dict:
    raise InputError("maze.toml", "broken", "line 3")


def raise_limit() -> dict:
    raise ResourceLimit("too many states")


def raise_solver_error() -> dict:
    raise SolverError("Bellman residual 1e-3 exceeds 2e-10")


def raise_dependency_missing() -> dict:
    raise DependencyMissing("reading .pt policies", "torch", "torch", "p.pt")


def raise_bug() -> dict:
    raise ZeroDivisionError("division by zero")


def pid() -> dict:
    return {"pid": os.getpid()}


def allocate(mb: int) -> dict:
    """Touch `mb` MiB, then free them."""
    block = bytearray(mb * 2**20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    del block
    return {"pid": os.getpid()}
