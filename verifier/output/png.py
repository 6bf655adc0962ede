"""--png: the pictures of reports, one per environment and report (verifier.output.picture
draws them; matplotlib is imported only then)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from verifier.output.picture import deterministic_probs, require_drawable, write_picture

__all__ = ["draw", "picture_paths", "require_drawable", "write_pictures"]


def write_pictures(path: str | Path, drawn: Sequence[tuple]) -> list[str]:
    """--png: draw each (environment, report) pair (`draw`). One pair: `path`; several:
    `path-<model>[-<k>].png`, k counting the properties of one model. The paths written."""
    targets = picture_paths(path, drawn)
    for target, (env, report) in zip(targets, drawn, strict=True):
        draw(target, env, report)
    return targets


def draw(target: str | Path, env, report) -> None:
    """One picture: a reward's witness policy (else an optimal one) and its path, or a
    policy's action in every cell, its failing states and its witness path."""
    if report.kind == "reward":
        probs, failing, path_ = (
            np.zeros(env.mdp.n_choices),
            report.violation,
            report.witness_path,
        )
        if report.witness_policy is not None:  # else not memoryless, or a loop: the path
            probs = deterministic_probs(env.mdp, report.witness_policy)
        title = f"{env.path.name}: reward {report.reward} ({report.verdict})"
    elif report.kind == "policy":
        if report.decisions is None:
            raise ValueError(f"{report.model}: a policy report without the policy's decisions")
        probs, failing, path_ = (
            report.decisions.choice_probs,
            report.failing,
            report.witness_states,
        )
        title = f"{env.path.name}: {Path(report.policy).name} ({report.verdict})"
    else:
        raise ValueError(f"{report.model}: a {report.kind} report has no picture")
    write_picture(target, env, probs, failing, path_, title)


def picture_paths(path: str | Path, drawn: Sequence[tuple]) -> list[str]:
    """One picture: `path`; several: `path-<model>[-<k>].png`, k counting the properties."""
    if len(drawn) == 1:
        return [str(path)]
    target = Path(path)
    seen: dict[str, int] = {}
    paths = []
    for env, _ in drawn:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in env.path.stem)
        seen[stem] = seen.get(stem, 0) + 1
        paths.append(f"{target.stem}-{stem}" + (f"-{seen[stem]}" if seen[stem] > 1 else ""))
    return [str(target.with_name(name + target.suffix)) for name in paths]
