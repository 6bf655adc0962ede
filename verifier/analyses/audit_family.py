"""The audit of a training *distribution* (README, "Level families"): for each proxy goal, how
often a level distinguishes it from φ, on training and on deployment, after Abdel Sadek et
al. (RLC 2025, "Mitigating goal misgeneralization via minimax regret"):

- a level is *distinguishing* for a proxy when the proxy's optimal behaviour and φ's differ
  there: some proxy-optimal policy fails φ (analyses/audit.py decides it exactly, as a
  reward verdict on the product with "proxy settled"); on a non-distinguishing level every
  proxy-optimal policy satisfies φ, so training there cannot tell the proxy from φ;
- a training distribution whose distinguishing levels for a proxy are rare lets an
  approximately optimal learner pursue the proxy (their Theorem: approximate maximum
  expected value training can misgeneralize when distinguishing levels have small mass).

Rates: d_train(p) and d_deploy(p), the fractions of distinguishing levels (exact over every
level, or with 95% Clopper-Pearson intervals over a sample). A proxy is a **risk** when it is
rare in training and not in deployment: d_train(p) < floor <= d_deploy(p), `floor` the
user's threshold of "rare" (default 0.05). The **fix** mixes deployment-like levels into
training: with a fraction λ of them the rate becomes (1 - λ) d_train + λ d_deploy, at least
the floor for every risky proxy when λ >= λ* = max over risky p of
(floor - d_train(p)) / (d_deploy(p) - d_train(p)). With a sample, λ* is also given from the
rates' 95% bounds (the upper bound of d_train, the lower of d_deploy) where that exists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from verifier.analyses.rates import Unverified, clopper_pearson
from verifier.analyses.report import Report
from verifier.verdicts import AuditVerdict

FLOOR = 0.05


@dataclass
class ProxyRates:
    """The running count, per proxy, of the levels distinguishing it from φ (level results
    of the `proxies` job, as a results file holds them)."""

    levels: int = 0
    distinguishing: Counter = field(default_factory=Counter)
    objectives: set = field(default_factory=set)
    unverified: Unverified = field(default_factory=Unverified)

    def add(self, result: dict) -> None:
        if result["status"] != "done":
            self.unverified.add(result)
            return
        for report in result["reports"]:
            self.levels += 1
            self.objectives.add(report["objective"])
            for name, distinguishing in report["distinguishing"].items():
                self.distinguishing[name] += bool(distinguishing)

    def rate(self, name: str, sampled: bool) -> dict:
        """The fraction of levels distinguishing `name`, with its interval when sampled."""
        count = self.distinguishing[name]
        return {
            "count": count,
            "levels": self.levels,
            "rate": count / self.levels if self.levels else None,
            "interval": list(clopper_pearson(count, self.levels))
            if sampled and self.levels
            else None,
        }


@dataclass(frozen=True, slots=True, eq=False)
class FamilyAuditReport(Report):
    """The audit of a training family against a deployment family (module docstring)."""

    kind: ClassVar[str] = "family_audit"
    train: str
    deploy: str
    objective: str
    floor: float
    levels: dict
    proxies: tuple[dict, ...]
    fix: dict | None
    unverified: dict
    unverified_examples: dict
    seconds: float

    @property
    def risks(self) -> tuple[str, ...]:
        return tuple(p["proxy"] for p in self.proxies if p["risk"])

    @property
    def verdict(self) -> AuditVerdict:
        return AuditVerdict.RISK if self.risks else AuditVerdict.NO_RISK

    @property
    def passed(self) -> bool:
        return not self.risks and not any(self.unverified.values())

    def derived(self) -> dict:
        return {"verdict": self.verdict, "risks": list(self.risks)}


def family_audit(
    train: ProxyRates,
    deploy: ProxyRates,
    proxies: list[tuple[str, str, str]],
    names: tuple[str, str],
    sizes: tuple[tuple[int, int], tuple[int, int]],
    floor: float,
    seconds: float,
) -> FamilyAuditReport:
    """The report from the folded rates. `proxies` are (name, kind, formula); `sizes` the
    (levels, chosen) of each family, chosen < levels for a sample."""
    sampled = (sizes[0][1] < sizes[0][0], sizes[1][1] < sizes[1][0])
    rows: list[dict] = []
    for name, kind, formula in proxies:
        on_train = train.rate(name, sampled[0])
        on_deploy = deploy.rate(name, sampled[1])
        d_train, d_deploy = on_train["rate"], on_deploy["rate"]
        risk = d_train is not None and d_deploy is not None and d_train < floor <= d_deploy
        row = {
            "proxy": name,
            "kind": kind,
            "formula": formula,
            "training": on_train,
            "deployment": on_deploy,
            "risk": risk,
            "mixing": _mixing(d_train, d_deploy, floor) if risk else None,
        }
        if risk and (on_train["interval"] or on_deploy["interval"]):
            high = on_train["interval"][1] if on_train["interval"] else d_train
            low = on_deploy["interval"][0] if on_deploy["interval"] else d_deploy
            row["mixing_bound"] = _mixing(high, low, floor) if high < floor <= low else None
        rows.append(row)
    risky = [row for row in rows if row["risk"]]
    fix = None
    if risky:
        needed: float = max(float(row["mixing"]) for row in risky)
        bounds: list[float | None] = [row.get("mixing_bound") for row in risky]
        known = [b for b in bounds if b is not None]
        fix = {
            "mixing": needed,
            "mixing_bound": max(known) if len(known) == len(bounds) and known else None,
            "criterion": (
                "every risky proxy's distinguishing rate in the mixed training distribution, "
                "(1 - λ) d_train + λ d_deploy, at least the floor"
            ),
        }
    return FamilyAuditReport(
        train=names[0],
        deploy=names[1],
        objective="; ".join(sorted(train.objectives | deploy.objectives)),
        floor=floor,
        levels={
            "training": {"levels": sizes[0][0], "verified": train.levels},
            "deployment": {"levels": sizes[1][0], "verified": deploy.levels},
        },
        proxies=tuple(rows),
        fix=fix,
        unverified={
            "training": dict(train.unverified.counts),
            "deployment": dict(deploy.unverified.counts),
        },
        unverified_examples={
            "training": train.unverified.examples(),
            "deployment": deploy.unverified.examples(),
        },
        seconds=seconds,
    )


def _mixing(d_train: float, d_deploy: float, floor: float) -> float:
    """The least λ with (1 - λ) d_train + λ d_deploy >= floor (d_train < floor <= d_deploy)."""
    return (floor - d_train) / (d_deploy - d_train)
