"""Graph algorithms on an MDP's transition structure: reachability, most likely paths,
closed classes of a chain, end components, absorbing states.

Everything here reads only the sparsity pattern (and, for paths, the probabilities); the
numerics live in verifier/engine/.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components, dijkstra

from verifier.mdp import MDP


def reachable(tails: np.ndarray, heads: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """bool [n]: the nodes reachable from `sources` (bool [n]) along the edges
    tails[i] -> heads[i], the sources included (one breadth-first search in C)."""
    n = len(sources)
    if not sources.any():
        return sources.copy()
    starts = np.flatnonzero(sources)
    graph = sp.csr_matrix(
        (
            np.ones(len(tails) + len(starts), dtype=np.int8),
            (np.concatenate([tails, np.full(len(starts), n)]), np.concatenate([heads, starts])),
        ),
        shape=(n + 1, n + 1),
    )
    order = breadth_first_order(graph, n, directed=True, return_predecessors=False)
    found = np.zeros(n + 1, dtype=bool)
    found[order] = True
    return found[:n]


def most_likely_path(
    rows: np.ndarray,
    cols: np.ndarray,
    probs: np.ndarray,
    through: np.ndarray,
    start: int,
    ends: np.ndarray,
) -> tuple[list[int], float] | None:
    """The most probable path from `start` to a state in `ends` (bool [n]) along the
    transitions rows[i] -> cols[i] (probability probs[i]) leaving only `through` states, and
    its probability: Dijkstra on -log p, each step costing 1e-12 more so that shorter paths
    win ties. None if there is none."""
    n = len(ends)
    keep = through[rows] & (rows != cols)
    weights = -np.log(probs[keep]) + 1e-12
    graph = sp.csr_matrix((weights, (rows[keep], cols[keep])), shape=(n, n))
    distance, predecessor = dijkstra(graph, indices=start, return_predecessors=True)
    reached = np.flatnonzero(ends & np.isfinite(distance))
    if len(reached) == 0:
        return None
    end = int(reached[np.argmin(distance[reached])])
    path = [end]
    while path[-1] != start:
        path.append(int(predecessor[path[-1]]))
    path.reverse()
    return path, float(np.exp(-(distance[end] - 1e-12 * (len(path) - 1))))


def end_components(mdp: MDP, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal end components of the sub-MDP that uses only the `allowed` choices.

    Returns (component int64 [n_states], -1 outside every end component; inside bool
    [n_choices], the allowed choices that stay in their component). The classic fixpoint:
    strongly connected components, drop choices that can leave theirs, repeat.
    """
    inside = allowed.copy()
    choice_state = mdp.choice_states()
    matrix = mdp.transitions.tocoo()
    while True:
        live = inside[matrix.row]
        graph = sp.csr_matrix(
            (
                np.ones(int(live.sum()), dtype=np.int8),
                (choice_state[matrix.row[live]], matrix.col[live]),
            ),
            shape=(mdp.n_states, mdp.n_states),
        )
        _, component = connected_components(graph, directed=True, connection="strong")
        has_choice = np.logical_or.reduceat(inside, mdp.row_groups[:-1])
        leaves = np.zeros(mdp.n_choices, dtype=bool)
        escaping = (component[matrix.col] != component[choice_state[matrix.row]]) | ~has_choice[
            matrix.col
        ]
        leaves[matrix.row[escaping]] = True
        shrunk = inside & ~leaves
        if (shrunk == inside).all():
            break
        inside = shrunk
    has_choice = np.logical_or.reduceat(inside, mdp.row_groups[:-1])
    _, ids = np.unique(np.where(has_choice, component, -1), return_inverse=True)
    ids = ids.astype(np.int64) - (0 if has_choice.all() else 1)
    return np.where(has_choice, ids, -1), inside


def closed_states(chain: sp.csr_matrix) -> tuple[int, np.ndarray, np.ndarray]:
    """Strongly connected components of a chain (count, component of each state) and the
    states of closed ones (bottom components, which the chain never leaves)."""
    n_classes, scc = connected_components(chain, directed=True, connection="strong")
    coo = chain.tocoo()
    leaving = np.zeros(n_classes, dtype=bool)
    leaving[scc[coo.row[scc[coo.row] != scc[coo.col]]]] = True
    return n_classes, scc, ~leaving[scc]


def absorbing_states(mdp: MDP) -> np.ndarray:
    """bool [n_states]: terminal states, which end the episode and earn nothing: those
    labelled `terminal` (a maze's terminal kinds and `terminal = true` cells). In a model
    without that label, states with a single choice that stays put. A state walled in on
    all sides is not terminal: every move stays put, and every move costs its step."""
    if "terminal" in mdp.labels:
        return mdp.labels["terminal"].copy()
    states = mdp.choice_states()
    matrix = mdp.transitions.tocoo()
    self_loop = np.zeros(mdp.n_choices)
    on_diagonal = matrix.col == states[matrix.row]
    np.add.at(self_loop, matrix.row[on_diagonal], matrix.data[on_diagonal])
    stays = np.isclose(self_loop, 1.0, rtol=0, atol=1e-12)
    single = np.diff(mdp.row_groups) == 1
    return single & stays[np.minimum(mdp.row_groups[:-1], max(mdp.n_choices - 1, 0))]
