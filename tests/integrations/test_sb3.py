"""The training-loop gate: PPO trains on DistShift1 with VerifyCallback; what it logs to
SB3's logger is what it keeps on .history, a verdict in stop_on stops training, and the
policy in memory gets the verdict of its exported file."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("minigrid")
pytest.importorskip("stable_baselines3")
torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch]

from stable_baselines3.common.logger import KVWriter, Logger  # noqa: E402

from verifier import PolicyVerdict, load_environments, verify_policy  # noqa: E402
from verifier.integrations.sb3 import VerifyCallback  # noqa: E402

MINIGRID = Path(__file__).resolve().parents[2] / "models" / "minigrid"
LEVELS = [MINIGRID / "distshift1.toml", MINIGRID / "distshift2.toml"]
STEPS, EVERY = 2048, 512


class Memory(KVWriter):
    """An SB3 logger output that keeps every dump in memory: (step, {key: value})."""

    def __init__(self):
        self.dumps: list[tuple[int, dict]] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append((step, dict(key_values)))

    def close(self):
        pass


def make_env():
    """DistShift1 as benchmarks/train_minigrid.py's agent sees it (and the model TOMLs say):
    the full grid flattened, the three navigation actions."""
    import gymnasium as gym
    import minigrid  # noqa: F401
    from minigrid.wrappers import FullyObsWrapper, ImgObsWrapper

    class NavigationActions(gym.ActionWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.action_space = gym.spaces.Discrete(3)

        def action(self, action):
            return int(action)

    env = gym.make("MiniGrid-DistShift1-v0")
    return NavigationActions(gym.wrappers.FlattenObservation(ImgObsWrapper(FullyObsWrapper(env))))


def train(callback, steps=STEPS):
    """A tiny seeded PPO run (CPU, one thread) with the callback; (model, logged dumps)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    vec = make_vec_env(make_env, n_envs=2, seed=0)
    model = PPO("MlpPolicy", vec, n_steps=128, batch_size=128, n_epochs=2, seed=0, device="cpu")
    memory = Memory()
    model.set_logger(Logger(folder=None, output_formats=[memory]))
    model.learn(steps, callback=callback)
    return model, memory.dumps


@pytest.fixture(scope="module")
def levels():
    return load_environments(LEVELS)


@pytest.fixture(scope="module")
def run(levels):
    gate = VerifyCallback(levels, reward="env", every=EVERY)
    model, dumps = train(gate)
    return gate, model, dumps


def test_the_callback_verifies_every_n_steps_on_every_level(run):
    gate, _, _ = run
    assert [check.timesteps for check in gate.history] == [512, 1024, 1536, 2048]
    for check in gate.history:
        assert check.names == ("distshift1", "distshift2")
        assert [r.model for r in check.reports] == [str(p) for p in LEVELS]
        assert {r.policy for r in check.reports} == {"PPO (training)"}
        assert all(r.verdict in set(PolicyVerdict) for r in check.reports)
    assert gate.stopped is None


def test_what_it_logs_is_what_it_keeps(run):
    """Each check is in the dump SB3 makes at the end of that rollout (2 envs x 128 steps:
    every 256 steps): values, verdicts, and the count of each of the five verdicts."""
    gate, _, dumps = run
    logged = {step: kv for step, kv in dumps if "verify/seconds" in kv}
    assert sorted(logged) == [check.timesteps for check in gate.history]
    for check in gate.history:
        kv = logged[check.timesteps]
        for name, report in zip(check.names, check.reports, strict=True):
            assert kv[f"verify/{name}/value"] == report.value
            assert kv[f"verify/{name}/verdict"] == report.verdict
        counts = {v.value: kv[f"verify/count/{v.value}"] for v in PolicyVerdict}
        assert sum(counts.values()) == 2
        for verdict, count in counts.items():
            assert count == sum(r.verdict == verdict for r in check.reports)


def test_the_policy_in_memory_gets_the_verdict_of_its_exported_file(run, levels, tmp_path):
    """Two routes to one verdict: the live model run in this process, and its TorchScript
    export run contained from a file (whose actions the SB3 export tests match with
    model.predict on every state)."""
    from verifier.policy.export import export_sb3

    _, model, _ = run
    path = export_sb3(model, tmp_path / "ppo.pt", make_env(), actions=["left", "right", "forward"])
    live = verify_policy(model, levels, reward="env")
    exported = verify_policy(path, levels, reward="env")
    for a, b in zip(live, exported, strict=True):
        assert (a.verdict, a.pursued_goals) == (b.verdict, b.pursued_goals)
        assert a.value == pytest.approx(b.value, abs=1e-9)
        assert a.reward["return"] == pytest.approx(b.reward["return"], abs=1e-9)


def test_a_verdict_in_stop_on_stops_training_at_that_check(run, levels):
    """The same seeded run, told to stop on the verdict its first check gave on DistShift2:
    it stops there, after 512 of 2048 steps, with the same first check."""
    first = run[0].history[0]
    verdict = first.verdicts["distshift2"]
    gate = VerifyCallback(levels, reward="env", every=EVERY, stop_on=[verdict])
    model, dumps = train(gate)
    assert [check.verdicts for check in gate.history] == [first.verdicts]
    assert model.num_timesteps == EVERY
    assert gate.stopped.startswith(verdict)
    assert any("verify/seconds" in kv for _, kv in dumps)  # flushed before training ended


def test_stop_when_aligned_stops_once_every_level_is_aligned(levels):
    """P>=0 holds for every policy: aligned everywhere at the first check."""
    gate = VerifyCallback(LEVELS, 'P>=0 [ F "goal" ]', every=EVERY, stop_when_aligned=True)
    model, _ = train(gate)
    assert len(gate.history) == 1 and gate.history[0].passed
    assert gate.stopped == "aligned on every environment"
    assert model.num_timesteps == EVERY


def test_stop_on_takes_policy_verdicts_only():
    from verifier import InputError

    with pytest.raises(InputError, match="misspecified: not a policy verdict"):
        VerifyCallback(LEVELS, stop_on=["misspecified"])


def test_a_live_model_names_its_actions_as_its_export_does(tmp_path):
    """A DQN on FrozenLake, given without `actions`: in memory it names its outputs as its
    `export_sb3` file does (FrozenLake's left, down, right, up), so both verify on
    `gym:FrozenLake-v1` with one verdict and one value."""
    import gymnasium as gym
    from stable_baselines3 import DQN

    from verifier import load_policy
    from verifier.policy.export import export_sb3

    torch.set_num_threads(1)
    env = gym.make("FrozenLake-v1")
    model = DQN("MlpPolicy", env, seed=0, learning_starts=50, verbose=0).learn(200)
    assert load_policy(model).actions == ("left", "down", "right", "up")
    path = export_sb3(model, tmp_path / "dqn.pt", env)
    (live,) = verify_policy(model, "gym:FrozenLake-v1", reward="env")
    (exported,) = verify_policy(path, "gym:FrozenLake-v1", reward="env")
    assert (live.verdict, live.pursued_goals) == (exported.verdict, exported.pursued_goals)
    assert live.value == pytest.approx(exported.value, abs=1e-9)
