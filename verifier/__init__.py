"""Model-checking verifier for reinforcement-learning alignment.

The commands of `verify` as functions, each returning typed reports with `.verdict`,
`.passed` and `.to_dict()` (README, "Python API"):

    check(model, spec)                    a property at the initial states
    verify_reward(model, reward, spec)    do the optimal policies of a reward satisfy φ?
    compare_rewards(model, r1, r2)        do two rewards have the same optimal policies?
    verify_policy(policy, model, spec)    a learned policy on every state, and why it fails
    audit(train, deploy, spec)            proxy goals training cannot tell from φ
    verify_family(command, family)        check, reward or policy over a level family: rates
    audit_families(train, deploy)         distinguishing rates of two families, the mixing fix
    run_suite(path)                       a suite of checks with expected verdicts

`model` is a path, a list of paths, a directory, a `gym:` id or an environment already
loaded (`load_environments`); `policy` a file, a loaded policy (`load_policy`), or a
Stable-Baselines3 model or torch module in memory. `verifier.integrations.sb3` verifies an
agent while it trains.

The pipeline, one package per stage: model files -> environments (inputs) -> objective and
rewards (spec), learned policies (policy) -> certified answers (engine, over storm) ->
verdicts (analyses) -> reports (output) -> the commands (commands), the command line (cli)
and suites (suite). Names are imported on first use, so `import verifier` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from verifier.errors import (
    BackendError,
    DependencyMissing,
    EnumerationError,
    InputError,
    LinearProgramError,
    ResourceLimit,
    SolverError,
    VerifierError,
)
from verifier.verdicts import (
    AuditVerdict,
    CheckVerdict,
    CompareVerdict,
    PolicyVerdict,
    RewardVerdict,
)
from verifier.version import __version__

if TYPE_CHECKING:
    from verifier.analyses.audit import AuditReport
    from verifier.analyses.audit_family import FamilyAuditReport
    from verifier.analyses.check import CheckReport
    from verifier.analyses.policy_verdict import PolicyReport
    from verifier.analyses.rates import FamilyReport
    from verifier.analyses.report import Report
    from verifier.analyses.reward_verdict import CompareReport, RewardReport
    from verifier.commands import (
        VerifierWarning,
        audit,
        check,
        compare_rewards,
        load_environments,
        load_policy,
        verify_policy,
        verify_reward,
    )
    from verifier.families import audit_families, verify_family
    from verifier.inputs.environment import Environment
    from verifier.mdp import MDP
    from verifier.policy.load import Policy
    from verifier.suite import SuiteResult, run_suite


# Public name -> the module that defines it, imported on first use.
_LAZY = {
    **dict.fromkeys(
        (
            "check",
            "verify_reward",
            "compare_rewards",
            "verify_policy",
            "audit",
            "load_environments",
            "load_policy",
            "VerifierWarning",
        ),
        "verifier.commands",
    ),
    "verify_family": "verifier.families",
    "audit_families": "verifier.families",
    "run_suite": "verifier.suite",
    "SuiteResult": "verifier.suite",
    "MDP": "verifier.mdp",
    "Environment": "verifier.inputs.environment",
    "Policy": "verifier.policy.load",
    "Report": "verifier.analyses.report",
    "CheckReport": "verifier.analyses.check",
    "RewardReport": "verifier.analyses.reward_verdict",
    "CompareReport": "verifier.analyses.reward_verdict",
    "PolicyReport": "verifier.analyses.policy_verdict",
    "AuditReport": "verifier.analyses.audit",
    "FamilyReport": "verifier.analyses.rates",
    "FamilyAuditReport": "verifier.analyses.audit_family",
}

__all__ = [
    # the commands
    "check",
    "verify_reward",
    "compare_rewards",
    "verify_policy",
    "audit",
    "verify_family",
    "audit_families",
    "run_suite",
    # the loaders
    "load_environments",
    "load_policy",
    # the types
    "MDP",
    "Environment",
    "Policy",
    "Report",
    "CheckReport",
    "RewardReport",
    "CompareReport",
    "PolicyReport",
    "AuditReport",
    "FamilyReport",
    "FamilyAuditReport",
    "SuiteResult",
    "CheckVerdict",
    "RewardVerdict",
    "CompareVerdict",
    "PolicyVerdict",
    "AuditVerdict",
    # the errors and warnings
    "VerifierError",
    "InputError",
    "DependencyMissing",
    "ResourceLimit",
    "BackendError",
    "SolverError",
    "LinearProgramError",
    "EnumerationError",
    "VerifierWarning",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
