"""Budgets: how many states a command may explore, and how much memory a model may take.

Every command works under a state budget: `--max-states N`, or DEFAULT_MAX_STATES when none
is given, or none at all with `--max-states none` (README, "Commands"). Readers check it
while they enumerate (a maze's layers, a MiniGrid level's breadth-first search, Storm's
exploration of a PRISM program) and, where the size is known from the input alone (a
toy-text map, a generated maze), before they allocate anything. Where a model's memory can
be estimated before it is built, the estimate is held against the memory available now.
"""

from __future__ import annotations

from verifier.errors import ResourceLimit

DEFAULT_MAX_STATES = 10_000_000
NO_LIMIT = 0  # `--max-states none`: what the command line passes on for "no budget"


def state_budget(given: int | None) -> int | None:
    """The state budget a command works under: `given` (--max-states), DEFAULT_MAX_STATES
    when none was given, None (no limit) for NO_LIMIT."""
    if given is None:
        return DEFAULT_MAX_STATES
    return None if given == NO_LIMIT else given


def parse_max_states(text: str) -> int:
    """`--max-states` as written: a positive integer (1e6 allowed), or `none` (NO_LIMIT).
    ValueError otherwise."""
    if text.strip().lower() == "none":
        return NO_LIMIT
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"must be a positive integer or none, got {text!r}") from None
    if not number.is_integer() or not 1 <= number < 2**63:
        raise ValueError(f"must be a positive integer or none, got {text!r}")
    return int(number)


def over_budget(what: str, max_states: int, detail: str = "") -> ResourceLimit:
    """The ResourceLimit of a model past its state budget, saying how to change it."""
    default = ", the default" if max_states == DEFAULT_MAX_STATES else ""
    return ResourceLimit(
        f"{what} has more than {max_states} states{detail} (--max-states {max_states}"
        f"{default}); raise it with --max-states N, or lift it with --max-states none"
    )


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def require_memory(needed: float, what: str, purpose: str = "") -> None:
    """ResourceLimit, before allocating, if `needed` bytes exceed the memory available now
    (so that a huge model ends with the figure instead of the out-of-memory killer):
    "`what` needs about N GB[ for `purpose`], more than ..."."""
    available = available_memory()
    if available is not None and needed > available:
        purpose = f" for {purpose}" if purpose else ""
        raise ResourceLimit(
            f"{what} needs about {size(needed)}{purpose}, more than the {size(available)} of "
            "memory available"
        )


def size(n_bytes: float) -> str:
    """A byte count for people: MB below a gigabyte, else GB (TB beyond)."""
    n_bytes = min(n_bytes, 1e300)  # an int past float's range
    if n_bytes >= 1e12:
        return f"{n_bytes / 1e12:.1f} TB"
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"
