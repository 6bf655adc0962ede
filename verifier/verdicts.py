"""Every verdict the verifier gives, in one place (README, "Reward verdicts" and "Why a
policy fails"), the audit's included. Members are strings: they compare, print and
serialise as their values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum


class CheckVerdict(StrEnum):
    """`verify check`: a bounded property holds or fails; a query's value is computed."""

    HOLDS = "holds"
    FAILS = "fails"
    COMPUTED = "computed"


class RewardVerdict(StrEnum):
    """`verify reward`: what the optimal policies of a reward do about φ."""

    ALIGNED = "aligned"
    UNDERSPECIFIED = "underspecified"
    MISSPECIFIED = "misspecified"
    UNBOUNDED = "unbounded"
    TRAPPED = "trapped"


class CompareVerdict(StrEnum):
    """`verify reward --compare`: do two rewards have the same optimal policies?"""

    SAME = "same"
    DIFFERENT = "different"


class PolicyVerdict(StrEnum):
    """`verify POLICY`: the behavioural taxonomy of a learned policy's failure."""

    ALIGNED = "aligned"
    CAPABILITY_FAILURE = "capability_failure"
    REWARD_MISSPECIFICATION = "reward_misspecification"
    GOAL_MISGENERALIZATION = "goal_misgeneralization"
    MISALIGNED = "misaligned"


class AuditVerdict(StrEnum):
    """`verify audit`: is some proxy goal indistinguishable from φ on training and not on
    deployment (a goal-misgeneralization risk)?"""

    RISK = "risk"
    NO_RISK = "no_risk"


class FamilyVerdict(StrEnum):
    """A command over a level family: did every level pass?"""

    PASS = "pass"
    FAIL = "fail"


# The verdicts that pass, for colouring reports; `computed` is neither.
PASSING = frozenset(
    {
        CheckVerdict.HOLDS,
        RewardVerdict.ALIGNED,
        CompareVerdict.SAME,
        PolicyVerdict.ALIGNED,
        AuditVerdict.NO_RISK,
    }
)


def verdict_counts(reports: Iterable) -> list[tuple[str, str | None, int]]:
    """(verdict, cause, count) over reports, most frequent first: a deployment set's or a
    family's summary. The cause (a policy report's `cause`: the pursued goal, or where the
    failing runs end) tells failures of one verdict apart; passing reports have none."""
    counts = Counter(
        (str(r.verdict), None if r.passed else getattr(r, "cause", None)) for r in reports
    )
    return [(verdict, cause, n) for (verdict, cause), n in counts.most_common()]
