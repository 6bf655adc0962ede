"""Rates over a level family: how often each verdict occurs, exactly over every level or with
a Clopper-Pearson interval over a uniform sample; the worst levels; the distribution of the
gap to the optimum (README, "Level families").

The reports of the levels arrive one at a time (as their jobs finish, or from a results
file) and are folded into counts, a fixed histogram of gaps and the few worst levels, so
the memory is the same for ten levels or a million.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from verifier.analyses.report import Report
from verifier.verdicts import FamilyVerdict

WORST_SHOWN = 10
CONFIDENCE = 0.95
# Gap histogram: exactly 0, then one bin a decade from 1e-12 to 1e6, then beyond.
GAP_EDGES = tuple(10.0**k for k in range(-12, 7))


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE):
    """The exact (Clopper-Pearson) two-sided interval for a binomial proportion (scipy)."""
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence, method="exact")
    return float(interval.low), float(interval.high)


@dataclass
class Unverified:
    """The levels of a family run without a result: how many by outcome (bad input, a
    limit, ...), and the first of them in family order, whatever order they arrive in."""

    counts: Counter = field(default_factory=Counter)
    _first: list = field(default_factory=list)

    def add(self, result: dict) -> None:
        self.counts[result["status"]] += 1
        entry = {"level": result["level"], "status": result["status"], "message": result["message"]}
        item = (-result["index"], entry)  # a heap of the smallest indices
        if len(self._first) < WORST_SHOWN:
            heapq.heappush(self._first, item)
        elif item[0] > self._first[0][0]:
            heapq.heapreplace(self._first, item)

    def examples(self) -> list[dict]:
        return [entry for _, entry in sorted(self._first, key=lambda item: -item[0])]


@dataclass
class Rates:
    """The running summary of a family's level results (each a dict: `index`, `level`,
    `status`, `message`, `reports`, as a results file holds them)."""

    counts: Counter = field(default_factory=Counter)
    unverified: Unverified = field(default_factory=Unverified)
    gap_bins: np.ndarray = field(default_factory=lambda: np.zeros(len(GAP_EDGES) + 2, int))
    gap_sum: float = 0.0
    gap_max: float = 0.0
    gapped: int = 0
    reports: int = 0
    failing: int = 0
    levels: int = 0
    objectives: set = field(default_factory=set)
    _worst: list = field(default_factory=list)

    def add(self, result: dict) -> None:
        """Fold one level's result in."""
        self.levels += 1
        if result["status"] != "done":
            self.unverified.add(result)
            return
        for report in result["reports"]:
            self.reports += 1
            self.failing += not report.get("passed")
            self.objectives.add(report.get("objective", ""))
            cause = None if report.get("passed") else report.get("cause")
            self.counts[(report["verdict"], cause)] += 1
            gap = _gap(report)
            if gap is None:
                continue
            self.gapped += 1
            self.gap_sum += gap
            self.gap_max = max(self.gap_max, gap)
            self.gap_bins[0 if gap == 0 else 1 + int(np.searchsorted(GAP_EDGES, gap, "right"))] += 1
            entry = {
                "level": result["level"],
                "verdict": report["verdict"],
                "cause": cause,
                "value": report.get("value"),
                "optimal_value": report.get("optimal_value"),
                "gap": gap,
            }
            item = (gap, -result["index"], entry)  # ties: the first level first
            if len(self._worst) < WORST_SHOWN:
                heapq.heappush(self._worst, item)
            elif item > self._worst[0]:
                heapq.heapreplace(self._worst, item)

    def worst(self) -> list[dict]:
        """The levels with the largest gap to the optimum, largest first."""
        return [entry for _, _, entry in sorted(self._worst, reverse=True)]

    def count_rows(self, sampled: bool) -> list[dict]:
        """One row per (verdict, cause): count, fraction of the reports, and with a sample
        the Clopper-Pearson interval of the fraction in the whole family."""
        rows = []
        for (verdict, cause), count in self.counts.most_common():
            row: dict[str, Any] = {
                "verdict": verdict,
                "cause": cause,
                "count": count,
                "fraction": count / self.reports,
                "interval": list(clopper_pearson(count, self.reports)) if sampled else None,
            }
            rows.append(row)
        return rows

    def gaps(self) -> dict:
        """The gap histogram: `bins` as [low, high) pairs (the first is exactly 0, the last
        open), `counts`, and the mean and largest gap."""
        lows = [0.0, 0.0, *GAP_EDGES]
        highs = [0.0, *GAP_EDGES, math.inf]
        return {
            "bins": [[low, high] for low, high in zip(lows, highs, strict=True)],
            "counts": self.gap_bins.tolist(),
            "mean": self.gap_sum / self.gapped if self.gapped else None,
            "max": self.gap_max if self.gapped else None,
        }


def _gap(report: dict) -> float | None:
    value, optimum = report.get("value"), report.get("optimal_value")
    if not isinstance(value, int | float) or not isinstance(optimum, int | float):
        return None
    gap = abs(optimum - value)
    return gap if math.isfinite(gap) else None


@dataclass(frozen=True, slots=True, eq=False)
class FamilyReport(Report):
    """A command over a level family: the rates of its verdicts (module docstring).

    levels       the levels of the family; `sample` how many were drawn (uniformly, without
                 replacement) where not all were verified
    verified     levels with reports; `unverified` the others by outcome (bad input, a
                 limit, a crash), with their first messages
    counts       per verdict and cause: count, fraction, and with a sample its 95%
                 Clopper-Pearson interval for the whole family
    """

    kind: ClassVar[str] = "family"
    model: str
    name: str
    command: str
    objective: str
    verdict: str
    levels: int
    sample: int | None
    verified: int
    reports: int
    unverified: dict
    unverified_examples: tuple[dict, ...]
    counts: tuple[dict, ...]
    worst: tuple[dict, ...]
    gaps: dict
    results: str | None
    seconds: float

    @property
    def passed(self) -> bool:
        return self.verdict == FamilyVerdict.PASS


def family_report(
    rates: Rates,
    model: str,
    name: str,
    command: str,
    levels: int,
    sample: int | None,
    results: str | None,
    seconds: float,
) -> FamilyReport:
    """The report of a family run from its folded results."""
    passed = not rates.failing and not rates.unverified.counts and rates.reports > 0
    return FamilyReport(
        model=model,
        name=name,
        command=command,
        objective="; ".join(sorted(rates.objectives)),
        verdict=FamilyVerdict.PASS if passed else FamilyVerdict.FAIL,
        levels=levels,
        sample=sample,
        verified=rates.levels - sum(rates.unverified.counts.values()),
        reports=rates.reports,
        unverified=dict(rates.unverified.counts),
        unverified_examples=tuple(rates.unverified.examples()),
        counts=tuple(rates.count_rows(sample is not None and sample < levels)),
        worst=tuple(rates.worst()),
        gaps=rates.gaps(),
        results=results,
        seconds=seconds,
    )
