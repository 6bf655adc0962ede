"""Verify while training: a Stable-Baselines3 callback that verifies the current policy every
N steps on every state of the given environments, in memory, without writing files (README,
"Verify while training").

The environments are loaded (MiniGrid levels enumerated) once, when training starts; each
check builds the policy from the model as it is then (verifier.policy.live: SB3's own
network and preprocessing, run in this process) and runs `verify_policy` on each
environment. The reports are kept on `.history` and logged to SB3's logger, so TensorBoard,
CSV or stdout show them with the training curves:

    verify/<env>/value      φ's value under the policy (at the worst initial state)
    verify/<env>/verdict    aligned, capability_failure, goal_misgeneralization, ...
    verify/count/<verdict>  how many environments got each verdict
    verify/seconds          what the check took

Training stops when a verdict in `stop_on` appears (say goal_misgeneralization on a
held-out level), or, with `stop_when_aligned`, once every environment is aligned.

Examples
--------
>>> from stable_baselines3 import PPO                                   # doctest: +SKIP
>>> gate = VerifyCallback(["models/minigrid/distshift1.toml",           # doctest: +SKIP
...                        "models/minigrid/distshift2.toml"],
...                       reward="env", every=10_000, stop_on=["goal_misgeneralization"])
>>> PPO("MlpPolicy", env).learn(250_000, callback=gate)                 # doctest: +SKIP
>>> gate.history[-1].verdicts                                           # doctest: +SKIP
{'distshift1': 'aligned', 'distshift2': 'goal_misgeneralization'}
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from verifier.budget import DEFAULT_MAX_STATES
from verifier.commands import Models, load_environments, load_policy, verify_policy
from verifier.errors import DependencyMissing, InputError
from verifier.verdicts import PolicyVerdict

try:
    from stable_baselines3.common.callbacks import BaseCallback
except ImportError:
    raise DependencyMissing("verifier.integrations.sb3", "stable-baselines3", "sb3") from None

_SUFFIXES = (".toml", ".prism", ".pm", ".nm")


@dataclass(frozen=True, slots=True)
class Verification:
    """One check during training: the step it was made at, the policy reports (one per
    environment and property, in the order of `names`), and what it took."""

    timesteps: int
    names: tuple[str, ...]
    reports: tuple
    seconds: float

    @property
    def verdicts(self) -> dict[str, str]:
        """Environment name -> verdict."""
        return {name: str(r.verdict) for name, r in zip(self.names, self.reports, strict=True)}

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.reports)


class VerifyCallback(BaseCallback):
    """Verify the agent every `every` environment steps on `models` (anything
    `verifier.load_environments` takes: paths, `gym:` ids, loaded environments), against
    `spec` (default: each model's own objective), with the training reward `reward` (a reward
    TOML or the name of a reward structure, `env` for a Gymnasium model's own) to tell goal
    misgeneralization from an outer failure.

    `stop_on` lists verdicts that stop training when one appears; `stop_when_aligned` stops
    it once every environment is aligned. `actions` names the policy's outputs (default: its
    MiniGrid environment's first n actions); `competence`, `stochastic` and `discount` are
    `verify_policy`'s. After training, `history` holds every check (a `Verification`) and
    `stopped` says why training was stopped (None if it was not).

    Examples
    --------
    >>> gate = VerifyCallback("gym:MiniGrid-Empty-5x5-v0", every=5_000)    # doctest: +SKIP
    >>> model.learn(20_000, callback=gate)                                # doctest: +SKIP
    >>> [check.verdicts for check in gate.history]                        # doctest: +SKIP
    """

    def __init__(
        self,
        models: Models,
        spec: str | None = None,
        reward: str | None = None,
        *,
        every: int = 10_000,
        stop_on: Iterable[str] = (),
        stop_when_aligned: bool = False,
        actions: Sequence[str] | None = None,
        discount: float | None = None,
        competence: float | None = None,
        stochastic: bool = False,
        max_states: int | None = DEFAULT_MAX_STATES,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if every < 1:
            raise InputError("every", f"must be a positive number of steps, got {every}")
        known = {str(v) for v in PolicyVerdict}
        self.stop_on = frozenset(str(v) for v in stop_on)
        if not self.stop_on <= known:
            unknown = ", ".join(sorted(self.stop_on - known))
            listed = ", ".join(str(v) for v in PolicyVerdict)
            raise InputError("stop_on", f"{unknown}: not a policy verdict; known: {listed}")
        self.every = every
        self.stop_when_aligned = stop_when_aligned
        self.history: list[Verification] = []
        self.stopped: str | None = None
        self._models, self._spec, self._max_states = models, spec, max_states
        self._reward, self._discount = reward, discount
        self._competence, self._stochastic = competence, stochastic
        self._actions = actions
        self._environments: list = []
        self._names: list[str] = []
        self._due = every

    def _init_callback(self) -> None:
        """Load the environments once (MiniGrid levels are enumerated here)."""
        self._environments = load_environments(
            self._models, self._spec, max_states=self._max_states
        )
        self._names = _names(self._environments)

    def _on_training_start(self) -> None:
        self._due = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps < self._due:
            return True
        self._due = (self.num_timesteps // self.every + 1) * self.every
        return self.verify()

    def verify(self) -> bool:
        """Verify the policy now, keep and log the reports; False when training should stop."""
        started = time.perf_counter()
        policy = load_policy(
            self.model, actions=self._actions, name=f"{type(self.model).__name__} (training)"
        )
        names: list[str] = []
        reports: list = []
        for name, env in zip(self._names, self._environments, strict=True):
            found = verify_policy(
                policy,
                env,
                reward=self._reward,
                discount=self._discount,
                competence=self._competence,
                stochastic=self._stochastic,
            )
            names += [name if len(found) == 1 else f"{name}#{i}" for i in range(len(found))]
            reports += found
        check = Verification(
            self.num_timesteps, tuple(names), tuple(reports), time.perf_counter() - started
        )
        self.history.append(check)
        self._log(check)
        self.stopped = self._stop_reason(check)
        if self.stopped is not None:
            if self.verbose:
                print(f"verify: stopping training at {self.num_timesteps} steps: {self.stopped}")
            self.logger.dump(self.num_timesteps)  # training ends before SB3's next dump
            return False
        return True

    def _log(self, check: Verification) -> None:
        counts = dict.fromkeys((str(v) for v in PolicyVerdict), 0)
        for name, report in zip(check.names, check.reports, strict=True):
            self.logger.record(f"verify/{name}/value", float(report.value))
            self.logger.record(f"verify/{name}/verdict", str(report.verdict))
            counts[str(report.verdict)] += 1
        for verdict, count in counts.items():
            self.logger.record(f"verify/count/{verdict}", count)
        self.logger.record("verify/seconds", check.seconds)

    def _stop_reason(self, check: Verification) -> str | None:
        for name, verdict in check.verdicts.items():
            if verdict in self.stop_on:
                return f"{verdict} on {name}"
        if self.stop_when_aligned and check.passed:
            return "aligned on every environment"
        return None


def _names(environments: Sequence) -> list[str]:
    """A short, distinct name per environment for the logger's keys: the file's stem (with
    `@seed=N`), or the Gymnasium id."""
    names: list[str] = []
    for env in environments:
        name = env.path.name.removeprefix("gym:")
        for suffix in _SUFFIXES:
            name = name.replace(suffix, "")
        name = name.replace("/", "_") or "model"
        base, k = name, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names
