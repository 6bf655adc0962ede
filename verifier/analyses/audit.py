"""Goal-misgeneralization audit: which proxy goals can training not tell from φ, and what fixes it.

A proxy is a goal a learner could acquire instead of φ: reach a label (kinds, colors,
kind_color, custom labels), a fixed cell, a corner of the maze, or a user's PRISM path
formula. A policy is *proxy-optimal* when it maximises P(proxy) from the initial states;
what it does once the proxy is reached (or lost) is unconstrained, since the proxy no
longer cares. On an environment the proxy is *indistinguishable* from φ when every
proxy-optimal policy satisfies φ: training there rewards both alike.

Computed exactly as a reward verdict: on the product of the model with one bit "proxy
settled" (reached, or lost), a reward of 1 on settling by reaching it has as optimal
policies exactly the proxy-optimal ones (discount 1, with the end-component analysis of
reward_verdict excluding policies that idle before settling where the proxy is still
reachable); after settling every action is optimal. `aligned` there means every
proxy-optimal policy satisfies φ; otherwise the reward witness is a proxy-optimal policy
and its most likely path violating φ.

A proxy is a goal-misgeneralization *risk* when it is indistinguishable from φ on every
training environment and not on some deployment environment. The fix is a smallest set of
extra training environments (from the deployment set, or variants of the training mazes
with the exit recolored) on each of which every risky proxy it covers is distinguishable:
a set cover, solved exactly as a 0/1 integer program (scipy's HiGHS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from verifier.analyses.report import Report, json_key
from verifier.analyses.reward_verdict import ALIGNED, RewardReport, check_reward
from verifier.engine.query import Model, parse_properties
from verifier.errors import InputError
from verifier.inputs.environment import Environment
from verifier.inputs.load import maze_environment
from verifier.inputs.maze import PALETTE
from verifier.mdp import MDP, csr
from verifier.progress import stage
from verifier.spec.goals import candidate_goals
from verifier.spec.reward_file import RewardVector
from verifier.verdicts import AuditVerdict

if TYPE_CHECKING:
    from verifier.analyses.repair import Repair

SETTLED = "proxy_settled"  # the product's extra variable: 0 before, 1 after the proxy is settled
CORNERS = {
    "top-left": (0, 0),
    "top-right": (0, 1),
    "bottom-left": (1, 0),
    "bottom-right": (1, 1),
}


@dataclass(frozen=True, slots=True)
class Proxy:
    """A candidate proxy goal: P(left U target), `kind` label | cell | corner | user."""

    name: str
    kind: str
    text: str  # the path formula, for people: F "red", F row=3 & col=5, ...
    position: tuple[int, int] | None = None  # (row, col) of a cell proxy

    def masks(self, env: Environment) -> tuple[np.ndarray, np.ndarray]:
        """(left, target) bool [n_states] on one environment."""
        mdp = env.mdp
        everywhere = np.ones(mdp.n_states, dtype=bool)
        if self.kind == "label":
            return everywhere, mdp.label(self.name)
        if self.kind == "user":
            from verifier.spec.objective import resolve_objective

            prop = parse_properties(f"Pmax=? [ {self.text} ]", source=self.name)[0]
            return resolve_objective(env, prop).until_sets()
        row, col = self.cell(env)
        position = (_column(mdp, "row") == row) & (_column(mdp, "col") == col)
        return everywhere, position

    def cell(self, env: Environment) -> tuple[int, int]:
        """The (row, col) a cell or corner proxy stands for on `env`. A corner is the cell
        of the maze's states nearest (Manhattan) to that corner of its grid, the topmost,
        then leftmost, among equals; whatever lies there, φ's target included (Langosco et
        al.'s training mazes put the cheese in the corner: there "go to the corner" and
        "go to the exit" cannot be told apart, which is the risk the audit is for)."""
        if self.kind == "cell":
            if self.position is None:
                raise ValueError(f"cell proxy {self.name!r} without a position")
            return self.position
        mdp = env.mdp
        rows, cols = _column(mdp, "row"), _column(mdp, "col")
        down, right = CORNERS[self.name.removeprefix("corner ")]
        nearness = (rows if down else -rows) + (cols if right else -cols)
        best = int(np.lexsort((cols, rows, -nearness))[0])
        return int(rows[best]), int(cols[best])


@dataclass(frozen=True, slots=True, eq=False)
class ProxyFinding:
    """One proxy across the environments: its verdict on each (a reward verdict on the
    product: `aligned` = indistinguishable from φ)."""

    proxy: Proxy
    train: tuple[RewardReport, ...]
    deploy: tuple[RewardReport, ...]
    equivalent: tuple[str, ...] = ()  # proxies with the same target on every training env

    @property
    def indistinguishable(self) -> bool:
        return all(r.verdict == ALIGNED for r in self.train)

    @property
    def divergent(self) -> tuple[RewardReport, ...]:
        return tuple(r for r in self.deploy if r.verdict != ALIGNED)

    @property
    def risk(self) -> bool:
        return self.indistinguishable and bool(self.divergent)

    def to_dict(self) -> dict:
        return {
            "proxy": self.proxy.name,
            "kind": self.proxy.kind,
            "formula": self.proxy.text,
            "indistinguishable_on_training": self.indistinguishable,
            "divergent_on": [r.model for r in self.divergent],
            "risk": self.risk,
            "equivalent_on_training": list(self.equivalent),
            "training": {r.model: r.verdict for r in self.train},
            "deployment": {r.model: r.verdict for r in self.deploy},
            "witnesses": [
                {"model": r.model, "verdict": r.verdict, "witness": r.witness}
                for r in self.divergent
            ],
        }


@dataclass(frozen=True, slots=True, eq=False)
class Fix:
    """A smallest set of extra training environments separating every risky proxy from φ;
    `separates` maps each candidate environment to the risky proxies it separates."""

    environments: tuple[str, ...]
    separates: dict = field(default_factory=dict)
    uncovered: tuple[str, ...] = ()
    variants: dict = field(default_factory=dict)  # generated variant name -> maze TOML text

    def to_dict(self) -> dict:
        return {
            "environments": list(self.environments),
            "separates": {k: list(v) for k, v in self.separates.items()},
            "uncovered": list(self.uncovered),
            "variants": dict(self.variants),
        }


@dataclass(frozen=True, slots=True, eq=False)
class AuditReport(Report):
    """The audit of one training set against one deployment set: `risk` when some proxy
    is a goal-misgeneralization risk, else `no_risk`."""

    kind: ClassVar[str] = "audit"
    train: tuple[str, ...] = field(metadata=json_key("training"))
    deploy: tuple[str, ...] = field(metadata=json_key("deployment"))
    objective: str
    findings: tuple[ProxyFinding, ...] = field(metadata=json_key("proxies"))
    fix: Fix | None
    repair: Repair | None
    seconds: float

    @property
    def risks(self) -> tuple[ProxyFinding, ...]:
        return tuple(f for f in self.findings if f.risk)

    @property
    def verdict(self) -> AuditVerdict:
        return AuditVerdict.RISK if self.risks else AuditVerdict.NO_RISK

    @property
    def passed(self) -> bool:
        return not self.risks

    def derived(self) -> dict:
        return {"verdict": self.verdict, "risks": [f.proxy.name for f in self.risks]}


def run_audit(
    train: list[Environment],
    deploy: list[Environment],
    user_proxies: list[Proxy] | None = None,
    repair_labels: list[str] | None = None,
    repair_base: dict[str, float] | None = None,
    variants: bool = True,
    max_states: int | None = None,
) -> AuditReport:
    """Proxies, their verdicts, the fix and (with `repair_labels`) the reward repair nearest
    to the weights `repair_base` (label or `step` -> weight)."""
    started = time.perf_counter()
    for env in train + deploy:
        if len(env.properties) != 1:
            raise InputError(env.objective_source, "the audit takes exactly one objective")
    findings = audit_proxies(train, deploy, candidate_proxies(train, deploy, user_proxies))
    fix = propose_fix(train, deploy, findings, variants, max_states)
    repair = None
    if repair_labels is not None:
        from verifier.analyses.repair import repair_reward

        repair = repair_reward(train + deploy, repair_labels, repair_base)
    objectives = dict.fromkeys(_objective(env).text for env in train + deploy)
    return AuditReport(
        train=tuple(str(env.path) for env in train),
        deploy=tuple(str(env.path) for env in deploy),
        objective="; ".join(objectives),
        findings=tuple(findings),
        fix=fix,
        repair=repair,
        seconds=time.perf_counter() - started,
    )


def candidate_proxies(
    train: list[Environment], deploy: list[Environment], user: list[Proxy] | None = None
) -> list[Proxy]:
    """Labels that are candidate goals somewhere (README, "Why a policy fails": holding in
    no initial state, other than floor and terminal), the cells where φ's target lies in
    training, the four corners (mazes), then the user's proxies; φ's own target label is
    left out."""
    names: list[str] = []
    for env in train + deploy:
        names += [g for g in candidate_goals(env.mdp) if g not in names]
    proxies = [
        Proxy(name, "label", f'F "{name}"')
        for name in names
        if not _is_target(name, train + deploy)
    ]
    if all(env.maze is not None for env in train + deploy):
        cells = []
        for env in train:
            target = _objective(env).target
            rows, cols = _column(env.mdp, "row")[target], _column(env.mdp, "col")[target]
            cells += [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
        for row, col in sorted(set(cells)):
            text = f"F row={row} & col={col}"
            proxies.append(Proxy(f"cell {row},{col}", "cell", text, (row, col)))
        for corner in CORNERS:
            proxies.append(Proxy(f"corner {corner}", "corner", f"F the {corner} floor cell"))
    return proxies + list(user or [])


def load_proxies(path: str | Path) -> list[Proxy]:
    """A user file of extra proxies: one PRISM path formula or property per line (`#`
    comments), e.g. `F "key"` or `!"lava" U "door"`; a P-operator wrapper is accepted."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read proxies: {exc}") from None
    proxies = []
    for number, line in enumerate(lines, 1):
        text = line.split("//")[0].split("#")[0].strip()
        if not text:
            continue
        if text.startswith("P"):
            opening, closing = text.find("["), text.rfind("]")
            if opening < 0 or closing < opening:
                raise InputError(
                    str(path), f"{text!r} is not a P-operator property", f"line {number}"
                )
            text = text[opening + 1 : closing].strip()
        try:
            parse_properties(f"Pmax=? [ {text} ]", source=f"{path}:{number}")
        except InputError as exc:
            raise InputError(str(path), exc.message, f"line {number}") from None
        proxies.append(Proxy(f"user: {text}", "user", text))
    if not proxies:
        raise InputError(str(path), "no proxy in the file (one path formula per line)")
    return proxies


def evaluate(env: Environment, proxy: Proxy, cache: dict | None = None) -> RewardReport:
    """Does every proxy-optimal policy satisfy φ on `env`? A reward verdict on the product.

    Proxies with the same masks on a model (`red` and `exit_red` on the training mazes) have
    the same product and verdict: with a `cache`, each is computed once per environment."""
    left, target = proxy.masks(env)
    cache = {} if cache is None else cache
    key = (id(env), np.packbits(left).tobytes(), np.packbits(target).tobytes())
    if key not in cache:
        product, reward = _product(env.mdp, left, target)
        product_env = replace(env, model=Model(product), checked=None)
        cache[key] = check_reward(product_env, reward, env.properties[0])
    return replace(cache[key], reward=proxy.name, states=env.mdp.n_states)


@stage("checking every proxy goal")
def audit_proxies(
    train: list[Environment], deploy: list[Environment], proxies: list[Proxy]
) -> list[ProxyFinding]:
    """Every proxy on every environment; deployment is checked only for proxies that are
    indistinguishable on training (the others are no risk)."""
    findings = []
    signatures = {}
    cache: dict = {}
    for proxy in proxies:
        reports = tuple(evaluate(env, proxy, cache) for env in train)
        indistinguishable = all(r.verdict == ALIGNED for r in reports)
        deployed = tuple(evaluate(env, proxy, cache) for env in deploy) if indistinguishable else ()
        findings.append(ProxyFinding(proxy, reports, deployed))
        signatures[proxy.name] = b"".join(
            np.packbits(proxy.masks(env)[1]).tobytes() + b"|" for env in train
        )
    return [
        replace(
            f,
            equivalent=tuple(
                name
                for name, signature in signatures.items()
                if name != f.proxy.name and signature == signatures[f.proxy.name]
            ),
        )
        for f in findings
    ]


@stage("searching for the fix")
def propose_fix(
    train: list[Environment],
    deploy: list[Environment],
    findings: list[ProxyFinding],
    variants: bool = True,
    max_states: int | None = None,
) -> Fix | None:
    """A smallest set of extra training environments separating every risky proxy."""
    risky = [f for f in findings if f.risk]
    if not risky:
        return None
    separates = {}
    for index, env in enumerate(deploy):
        separates[str(env.path)] = [
            f.proxy.name for f in risky if f.deploy[index].verdict != ALIGNED
        ]
    generated = {}
    if variants:
        for env, maze in _recolored_variants(train):
            variant_env = maze_environment(maze, maze.name, env.objective, max_states)
            names = [
                f.proxy.name for f in risky if evaluate(variant_env, f.proxy).verdict != ALIGNED
            ]
            if names:
                separates[maze.name] = names
                from verifier.inputs.maze_generate import maze_to_toml

                generated[maze.name] = maze_to_toml(maze)
    chosen, uncovered = _smallest_cover([f.proxy.name for f in risky], separates)
    return Fix(
        environments=tuple(chosen),
        separates={k: tuple(v) for k, v in separates.items() if v},
        uncovered=tuple(uncovered),
        variants={name: generated[name] for name in chosen if name in generated},
    )


def _smallest_cover(items: list[str], sets: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """Minimum set cover as a 0/1 integer program (HiGHS); ties go to the earlier set, so
    deployment environments come before generated variants."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    names = [name for name, covered in sets.items() if covered]
    coverable = [item for item in items if any(item in sets[n] for n in names)]
    uncovered = [item for item in items if item not in coverable]
    if not coverable:
        return [], uncovered
    matrix = np.array([[item in sets[name] for name in names] for item in coverable], dtype=float)
    cost = 1.0 + 1e-3 * np.arange(len(names)) / len(names)
    result = milp(
        cost,
        constraints=LinearConstraint(matrix, lb=np.ones(len(coverable))),
        integrality=np.ones(len(names)),
        bounds=Bounds(0, 1),
    )
    if not result.success:  # cannot happen: every item is covered by some set
        raise RuntimeError(f"set cover failed: {result.message}")
    chosen = [name for name, x in zip(names, result.x, strict=True) if x > 0.5]
    return chosen, uncovered


def _recolored_variants(train: list[Environment]):
    """Each training maze with every exit recolored to each other palette color (a PRISM or
    Gymnasium training model has no cells to recolor: it gives none)."""
    for env in train:
        maze = env.maze
        if maze is None:
            continue
        exits = [char for char, cell in maze.cells.items() if cell.kind == "exit"]
        if not exits:
            continue
        current = {maze.cells[c].color for c in exits}
        for color in PALETTE:
            if color in current:
                continue
            cells = {**maze.cells, **{c: replace(maze.cells[c], color=color) for c in exits}}
            name = f"{maze.name}-exit-{color}"
            yield env, replace(maze, name=name, cells=cells, source=f"{maze.source} ({name})")


def _product(mdp: MDP, left: np.ndarray, target: np.ndarray) -> tuple[MDP, RewardVector]:
    """The model x {0: proxy open, 1: proxy settled}, and the reward 1 for settling by
    reaching `target`. Entering a state that is in `target`, or not in `left`, moves to
    layer 1; layer 1 copies the model without reward."""
    n = mdp.n_states
    settles = target | ~left
    matrix = mdp.transitions.tocoo()
    heads = matrix.col + n * settles[matrix.col]
    rows = np.concatenate([matrix.row, matrix.row + mdp.n_choices])
    cols = np.concatenate([heads, matrix.col + n])
    probs = np.concatenate([matrix.data, matrix.data])
    transitions = csr(rows, cols, probs, (2 * mdp.n_choices, 2 * n))
    reward = np.zeros(2 * mdp.n_choices)
    reward[: mdp.n_choices] = mdp.transitions @ target.astype(np.float64)
    initial = mdp.initial_states + n * settles[mdp.initial_states]
    valuations = np.column_stack(
        [np.vstack([mdp.valuations, mdp.valuations]), np.repeat([0, 1], n)]
    ).astype(np.int64)
    product = MDP(
        transitions=transitions,
        row_groups=np.concatenate([mdp.row_groups[:-1], mdp.row_groups + mdp.n_choices]),
        choice_actions=np.concatenate([mdp.choice_actions, mdp.choice_actions]),
        actions=mdp.actions,
        labels={name: np.concatenate([mask, mask]) for name, mask in mdp.labels.items()},
        initial_states=np.sort(initial),
        variables=(*mdp.variables, SETTLED),
        valuations=valuations,
        name=mdp.name,
    )
    return product, RewardVector("proxy", reward, 1.0, "proxy reached")


def _is_target(label: str, envs: list[Environment]) -> bool:
    """Whether `label` holds exactly on φ's target in every environment (φ's own target,
    under any of its names: `goal` and `green` in MiniGrid): no proxy of φ."""
    for env in envs:
        target = getattr(_objective(env), "target", None)
        states = env.mdp.labels.get(label)
        if target is None or states is None or not np.array_equal(states, target):
            return False
    return True


def _objective(env: Environment):
    from verifier.spec.objective import resolve_objective

    return resolve_objective(env, env.properties[0])


def _column(mdp: MDP, variable: str) -> np.ndarray:
    return mdp.valuations[:, mdp.variables.index(variable)]
