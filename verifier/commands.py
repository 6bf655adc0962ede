"""The commands as functions: what `verify`, suites, the Python API and the training callback
all call (README, "Python API").

Each takes models as `environments` resolves them, runs one analysis on each environment
and returns typed reports (`.passed`, `.verdict`, `.to_dict()`); none prints or exits, none
but `compile_maze` writes a file, and bad input raises an InputError naming the flag or
file. Every command works under a state budget, `max_states` (DEFAULT_MAX_STATES unless
given; None for none), as on the command line. What a person should be told about an input
(a maze's warnings, how a Gymnasium model was abstracted) goes to `notify(text)`, by default
as a Python warning. The analyses are imported by the command that needs them, so that
`verify check` starts without the policy and audit machinery.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from verifier.budget import DEFAULT_MAX_STATES
from verifier.errors import InputError

if TYPE_CHECKING:
    from verifier.analyses.audit import AuditReport
    from verifier.analyses.check import CheckReport
    from verifier.analyses.policy_verdict import PolicyReport
    from verifier.analyses.reward_verdict import CompareReport, RewardReport
    from verifier.inputs.environment import Environment
    from verifier.policy.load import Policy

ModelPath = str | os.PathLike
# A model argument: a path, a `gym:` id, a directory, a loaded environment, or several.
Models: TypeAlias = "ModelPath | Environment | Iterable[ModelPath | Environment]"
Notify = Callable[[str], None]


class VerifierWarning(UserWarning):
    """What the verifier tells about an input it accepted (maze warnings, abstractions)."""


def environments(
    model: Models,
    spec: str | None = None,
    *,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    notify: Notify | None = None,
) -> Iterator[Environment]:
    """Every environment a model argument stands for, loaded one at a time, in order.

    A model is a maze or Gymnasium `.toml`, a PRISM `.prism`, a `gym:ENV_ID`, a directory
    (its model files, sorted) or an Environment already loaded; several form a deployment
    set. A Gymnasium model with `seeds` gives one environment per seed. `spec` replaces
    each file's own objective (a loaded environment keeps its own); `constants` sets open
    PRISM constants; more than `max_states` states is a ResourceLimit.

    Examples
    --------
    >>> [env.path.name for env in environments(["models/lava.toml"])]
    ['lava.toml']
    """
    from verifier.inputs.environment import Environment
    from verifier.inputs.load import iter_environments
    from verifier.inputs.paths import model_paths

    items = [model] if isinstance(model, str | os.PathLike | Environment) else list(model)
    if not items:
        raise InputError("--model", "no model given")
    say = notify or _warn
    said: set[str] = set()  # a note is said once per call, not once per seed
    for item in items:
        if isinstance(item, Environment):
            if spec is not None:
                raise InputError(
                    str(item.path),
                    "a loaded environment carries its objective; give the spec when loading "
                    "it (load_environments(model, spec))",
                )
            yield item
            continue
        for path in model_paths([os.fspath(item)]):
            for env in iter_environments(path, spec, constants, max_states):
                if env.maze is not None:
                    for warning in env.maze.warnings:
                        say(f"warning: {warning}")
                for note in env.notes:
                    if note not in said:
                        said.add(note)
                        say(f"note: {note}")
                yield env


def load_environments(
    model: Models,
    spec: str | None = None,
    *,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    notify: Notify | None = None,
) -> list[Environment]:
    """Every environment a model argument stands for (`environments`), loaded now: load
    once, verify many times (a training callback, several rewards on one set).

    Examples
    --------
    >>> envs = load_environments("models/redblue", 'Pmax=? [ F "exit" ]')
    >>> [(env.path.name, env.mdp.n_states) for env in envs[:2]]
    [('deploy-01.toml', 16), ('deploy-02.toml', 15)]
    """
    found = environments(model, spec, constants=constants, max_states=max_states, notify=notify)
    return list(found)


def load_policy(
    policy: Any,
    *,
    observation: str | None = None,
    actions: Sequence[str] | None = None,
    output: str | None = None,
    timeout: float | None = None,
    memory: int | None = None,
    name: str | None = None,
) -> Policy:
    """A policy to verify: a file (`.pt`, `.onnx`, `.npz`, `.json`), a Policy already
    loaded, or a Stable-Baselines3 model or torch.nn.Module in memory (run in this process,
    no file needed: verifier.policy.live). `observation`, `actions` and `output` override a
    file's metadata (and describe a torch module); a policy file is read, checked and run
    only in a contained child (verifier.policy.safety), stopped when it runs longer than
    `timeout` seconds or allocates more than `memory` MB (ResourceLimit).

    Examples
    --------
    >>> policy = load_policy("models/redblue/policy.pt")
    >>> policy.actions
    ('up', 'down', 'left', 'right')
    """
    if timeout is not None and not 0.0 < timeout < float("inf"):
        raise InputError("--timeout", f"must be a positive number of seconds, got {timeout}")
    if isinstance(policy, str | os.PathLike) and not Path(policy).is_file():
        raise InputError(os.fspath(policy), "no such policy file")  # before the machinery
    from verifier.policy import load as policy_file
    from verifier.policy.live import is_live, live_policy

    if isinstance(policy, str | os.PathLike):
        names = tuple(actions) if actions else None
        if memory is None:
            return policy_file.load_policy(Path(policy), observation, names, output, timeout)
        return policy_file.load_policy(Path(policy), observation, names, output, timeout, memory)
    if isinstance(policy, policy_file.Policy):
        return policy
    if not is_live(policy):
        raise InputError(
            name or type(policy).__name__,
            "not a policy: give a file, a Policy, a Stable-Baselines3 model or a torch module",
        )
    return live_policy(policy, observation, actions, output, name)


def check(
    model: Models,
    spec: str | None = None,
    *,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    notify: Notify | None = None,
) -> list[CheckReport]:
    """`verify check`: each property at the initial states of each model, one CheckReport
    each (`holds`/`fails` for a bound, `computed` for a query).

    Examples
    --------
    >>> (report,) = check("models/lava.toml", 'Pmax=? [ !"lava" U "exit" ]')
    >>> print(report.verdict, round(report.value, 6))
    computed 0.9
    """
    from verifier.analyses.check import check_environment

    found = environments(model, spec, constants=constants, max_states=max_states, notify=notify)
    return [report for env in found for report in check_environment(env)]


def verify_reward(
    model: Models,
    reward: str | os.PathLike,
    spec: str | None = None,
    *,
    discount: float | None = None,
    epsilon: float | None = None,
    exact: bool = False,
    tradeoff: bool = False,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    notify: Notify | None = None,
) -> list[RewardReport]:
    """`verify reward`: do the optimal policies of `reward` (a reward TOML, or the name of a
    PRISM `rewards` structure) satisfy φ? One RewardReport per model and property: aligned,
    underspecified, misspecified, unbounded or trapped. `discount` overrides the reward's;
    `epsilon` takes the verdict over the policies within it of the optimal return; `exact`
    certifies the optimal actions in rational arithmetic; `tradeoff` adds the worst φ as a
    function of ε.

    Examples
    --------
    >>> for report in verify_reward("models/redblue", "models/redblue/rewards/red.toml"):
    ...     print(Path(report.model).name, report.verdict)
    deploy-01.toml misspecified
    deploy-02.toml misspecified
    train-01.toml aligned
    train-02.toml aligned
    train-03.toml aligned
    """
    from verifier.analyses.reward_verdict import reward_reports

    found = environments(model, spec, constants=constants, max_states=max_states, notify=notify)
    return [
        report
        for env in found
        for report in reward_reports(
            env, os.fspath(reward), discount, exact, epsilon=epsilon, tradeoff=tradeoff
        )
    ]


def compare_rewards(
    model: Models,
    reward: str | os.PathLike,
    other: str | os.PathLike,
    *,
    discount: float | None = None,
    exact: bool = False,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    notify: Notify | None = None,
) -> list[CompareReport]:
    """`verify reward --compare`: do two rewards have the same optimal policies on each
    model (`same`/`different`, with a state where they differ)?

    Examples
    --------
    >>> (report,) = compare_rewards(
    ...     "models/redblue/deploy-01.toml",
    ...     "models/redblue/rewards/exit.toml",
    ...     "models/redblue/rewards/red.toml",
    ... )
    >>> print(report.verdict, report.witness["exit"], report.witness["red"])
    different ['right'] ['down']
    """
    from verifier.analyses.reward_verdict import reward_reports

    found = environments(model, constants=constants, max_states=max_states, notify=notify)
    first, second = os.fspath(reward), os.fspath(other)
    return [
        report for env in found for report in reward_reports(env, first, discount, exact, second)
    ]


def verify_policy(
    policy: Any,
    model: Models,
    spec: str | None = None,
    *,
    reward: str | os.PathLike | None = None,
    discount: float | None = None,
    stochastic: bool = False,
    competence: float | None = None,
    near_optimal: float | None = None,
    epsilon: float | None = None,
    observation: str | None = None,
    actions: Sequence[str] | None = None,
    output: str | None = None,
    timeout: float | None = None,
    name: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    notify: Notify | None = None,
    progress: Callable | None = None,
) -> list[PolicyReport]:
    """`verify POLICY`: the policy on every state of each model, and its verdict against φ
    (aligned, capability_failure, reward_misspecification, goal_misgeneralization,
    misaligned). `policy` is anything `load_policy` takes: a file, a Policy, or an SB3
    model or torch module in memory. With `reward` (the training reward) an outer failure
    is told from goal misgeneralization (README, "Why a policy fails"): a failing policy is
    reward_misspecification only when R is not aligned here (judged over the policies
    within `epsilon` of the optimal return, if given) and its return is within
    `near_optimal` (default 0.1) of |V*|. A goal is pursued when the policy ends there with
    at least `competence` (default 0.9) of the best probability, from at least that fraction
    of the states that can reach it, far more reliably than a random policy. `stochastic`
    uses the policy's distribution instead of its argmax; `progress` wraps the batches of
    the policy run (a tqdm-like callable).

    Examples
    --------
    >>> (report,) = verify_policy(
    ...     "models/redblue/policy.pt",
    ...     "models/redblue/deploy-01.toml",
    ...     reward="models/redblue/rewards/exit.toml",
    ... )
    >>> print(report.verdict, report.pursued_goal)
    goal_misgeneralization red
    """
    from verifier.analyses.policy_verdict import COMPETENCE, NEAR_OPTIMAL, policy_reports

    competence = COMPETENCE if competence is None else competence
    near_optimal = NEAR_OPTIMAL if near_optimal is None else near_optimal
    if not 0.0 < competence <= 1.0:
        raise InputError("--competence", f"must be in (0, 1], got {competence}")
    if not 0.0 <= near_optimal < 1.0:
        raise InputError("--near-optimal", f"must be in [0, 1), got {near_optimal}")
    if epsilon is not None and not 0.0 <= epsilon < float("inf"):
        raise InputError("--epsilon", f"must be a non-negative number, got {epsilon}")
    loaded = load_policy(
        policy, observation=observation, actions=actions, output=output, timeout=timeout, name=name
    )
    label = name or loaded.path
    training = None if reward is None else os.fspath(reward)
    found = environments(model, spec, constants=constants, max_states=max_states, notify=notify)
    return [
        report
        for env in found
        for report in policy_reports(
            env,
            loaded,
            label,
            training,
            discount,
            stochastic,
            competence,
            progress=progress,
            near_optimal=near_optimal,
            epsilon=epsilon,
        )
    ]


def audit(
    train: Models,
    deploy: Models,
    spec: str | None = None,
    *,
    proxies: str | os.PathLike | None = None,
    repair: str | os.PathLike | None = None,
    features: Sequence[str] = (),
    variants: bool = True,
    max_states: int | None = DEFAULT_MAX_STATES,
    notify: Notify | None = None,
) -> AuditReport:
    """`verify audit`: which proxy goals can training not tell from φ, and what fixes it.
    The verdict is `risk` when a proxy is indistinguishable from φ on every training model
    and not on some deployment model. `proxies` adds a file of PRISM path formulas; `repair`
    (a reward TOML) searches the span of its labels and step cost, plus `features`, for a
    reward aligned everywhere; `variants` proposes recolored training mazes as fixes.

    Examples
    --------
    >>> report = audit(
    ...     ["models/redblue/train-01.toml", "models/redblue/train-02.toml"],
    ...     ["models/redblue/deploy-01.toml"],
    ... )
    >>> print(report.verdict, report.to_dict()["risks"][:2])
    risk ['red', 'exit_red']
    """
    from verifier.analyses.audit import load_proxies, run_audit
    from verifier.spec.reward_file import load_reward

    training = load_environments(train, spec, max_states=max_states, notify=notify)
    deployment = load_environments(deploy, spec, max_states=max_states, notify=notify)
    extra = load_proxies(Path(proxies)) if proxies is not None else None
    labels: list[str] | None = None
    base: dict[str, float] = {}
    if repair is not None or features:
        if repair is not None:
            weights = load_reward(Path(repair))
            base = {**weights.arrive, "step": weights.step}
        labels = sorted(base.keys() - {"step"}) + [f for f in features if f not in base]
        known = set().union(*(env.mdp.labels for env in training + deployment))
        for label in labels:
            if label not in known:
                source = os.fspath(repair) if repair is not None else "--features"
                raise InputError(source, f"{label!r} is a label of no environment")
    return run_audit(training, deployment, extra, labels, base, variants, max_states)


def state_listing(
    model: ModelPath,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
) -> dict:
    """`verify states`: every state of one model with its index, valuation and labels, in
    the order a table policy keyed by state index follows. The model's properties are not
    read: listing states needs none."""
    from verifier.inputs.load import load_environment
    from verifier.policy.observation import state_listing as listing

    env = load_environment(
        Path(model), constants=constants, max_states=max_states, properties=False
    )
    return {"model": os.fspath(model), **listing(env.mdp)}


def compile_maze(
    maze: ModelPath, output: ModelPath | None = None, *, notify: Notify | None = None
) -> tuple[Path, Path]:
    """`verify compile`: write a maze as a PRISM model at `output` (default: beside the
    maze, .prism) and its objective beside it (.props); the two paths."""
    from verifier.inputs.maze import load_maze
    from verifier.inputs.maze_compile import to_prism

    found = load_maze(Path(maze))
    for warning in found.warnings:
        (notify or _warn)(f"warning: {warning}")
    prism = Path(output) if output else Path(maze).with_suffix(".prism")
    props = prism.with_suffix(".props")
    try:
        prism.write_text(to_prism(found), encoding="utf-8")
        props.write_text(found.intended + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(str(prism), f"cannot write: {exc.strerror}") from None
    return prism, props


def generate_maze(size: str = "21x21", seed: int = 0, **options: Any) -> str:
    """`verify generate`: a seeded random perfect maze of `size` ("HxW", both odd, at least
    5) as TOML; `options` are random_maze's (objects, keys, lava, exit_color, slip, start,
    exit_region, max_states: by default the state budget of every command)."""
    from verifier.inputs.maze_generate import maze_to_toml, parse_size, random_maze

    try:
        height, width = parse_size(size)
    except ValueError as exc:
        raise InputError("--size", str(exc)) from None
    options.setdefault("max_states", DEFAULT_MAX_STATES)
    try:
        maze = random_maze(height, width, seed, **options)
    except ValueError as exc:
        raise InputError("generate", str(exc)) from None
    return maze_to_toml(maze)


def _warn(text: str) -> None:
    warnings.warn(text, VerifierWarning, stacklevel=4)
