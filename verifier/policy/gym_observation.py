"""The `env` observation: for every state of a Gymnasium model, exactly what the environment
and the model's observation wrappers return in that state.

MiniGrid: restore the state's snapshot, call the level's own `gen_obs()` (the egocentric 7x7
view with direction and mission), then, still in that state, each wrapper's
`observation()`, inner to outer, as `ObservationWrapper.step` does (FullyObsWrapper,
ImgObsWrapper, FlatObsWrapper, ...). Toy text: the env's state index, through the same
wrappers. Arrays are stacked into a batch; a dict observation becomes a dict of batches,
without its text entries (MiniGrid's `mission`: a policy network takes numbers;
FlatObsWrapper encodes the mission itself).
"""

from __future__ import annotations

import numpy as np

from verifier.errors import InputError


def env_observations(env, states: np.ndarray):
    """A batch of the observations of `states` (int [k]) of a Gymnasium environment:
    an array [k, *shape], or a dict of such arrays for a dict observation."""
    model = env.gym
    if model is None:
        raise InputError(str(env.path), 'the "env" observation exists for Gymnasium models only')
    instance = model.instance
    if model.kind == "minigrid":
        from verifier.inputs.minigrid import restore

        base = instance.unwrapped
        observations = []
        for state in states.tolist():
            restore(base, model.snapshots[state], model.doors)
            observations.append(_wrapped(instance.wrappers, base.gen_obs()))
    else:
        observations = [_wrapped(instance.wrappers, int(s)) for s in env.mdp.valuations[states, 0]]
    return _stack(observations)


def _wrapped(wrappers, obs):
    """The wrappers' `observation()`, inner to outer, while the env is in the state (some,
    like FullyObsWrapper, read the env rather than the observation)."""
    for wrapper in wrappers:
        obs = wrapper.observation(obs)
    return obs


def _stack(observations: list):
    first = observations[0] if observations else np.zeros(0)
    if isinstance(first, dict):
        return {
            key: np.stack([np.asarray(o[key]) for o in observations])
            for key, value in first.items()
            if not isinstance(value, str)
        }
    return np.ascontiguousarray(np.stack([np.asarray(o) for o in observations]))
