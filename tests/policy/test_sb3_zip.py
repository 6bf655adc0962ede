"""Stable-Baselines3 `.zip` agents, read without unpickling (verifier/policy/sb3_zip.py): the
rebuilt network decides as SB3's own `predict` on every state and as the `export_sb3` file; nothing
in the zip is ever unpickled; what cannot be rebuilt for certain is exit 2 with the export
command."""

from __future__ import annotations

import base64
import functools
import json
import pickle
import zipfile

import numpy as np
import pytest
from helpers import chosen_actions, spread_decisions

from verifier.cli import main
from verifier.inputs.gym import action_names
from verifier.inputs.load import load_environment
from verifier.policy.decide import decide
from verifier.policy.gym_observation import env_observations
from verifier.policy.load import load_policy

pytest.importorskip("minigrid")
sb3 = pytest.importorskip("stable_baselines3")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

LEVEL = "MiniGrid-Empty-5x5-v0"
# the observation wrappers of each policy kind's MiniGrid level (MlpPolicy: a 5x5x3 uint8
# grid, which SB3 treats as an image: transposed and scaled; CnnPolicy: 40x40 RGB pixels;
# MultiInputPolicy: the 56x56 RGB view and the direction, a Discrete entry)
WRAPPERS = {
    "MlpPolicy": ["minigrid.wrappers.FullyObsWrapper", "minigrid.wrappers.ImgObsWrapper"],
    "CnnPolicy": ["minigrid.wrappers.RGBImgObsWrapper", "minigrid.wrappers.ImgObsWrapper"],
    "MultiInputPolicy": ["minigrid.wrappers.RGBImgPartialObsWrapper"],
}
EXPORT = "export_sb3(model, 'policy.pt', env)"


def model_toml(tmp_path, env_id: str, wrappers: list[str], name: str = "model.toml"):
    path = tmp_path / name
    listed = ", ".join(f'"{w}"' for w in wrappers)
    path.write_text(f'[gymnasium]\nid = "{env_id}"\nseed = 0\nwrappers = [{listed}]\n')
    return path


def training_env(env_id: str, wrappers: list[str]):
    """The env with the model's wrappers; a dict observation keeps its numeric entries only
    (SB3 cannot train on MiniGrid's text `mission`; `verify` leaves it out too)."""
    import gymnasium as gym
    from gymnasium.wrappers import FilterObservation

    from verifier.inputs.gym import _wrapper_class

    env = gym.make(env_id)
    for name in wrappers:
        env = _wrapper_class(name, "test", "wrappers")(env)
    if isinstance(env.observation_space, gym.spaces.Dict):
        numeric = [
            key
            for key, space in env.observation_space.spaces.items()
            if isinstance(space, gym.spaces.Box | gym.spaces.Discrete)
        ]
        env = FilterObservation(env, numeric)
    return env


def agent(algorithm: str, policy, env, steps: int = 64, **kwargs):
    """A briefly trained SB3 agent (seeded, CPU, one torch thread, no log folder)."""
    from stable_baselines3.common.logger import Logger

    torch.set_num_threads(1)
    options = {
        "PPO": {"n_steps": 64, "batch_size": 64},
        "A2C": {"n_steps": 8},
        "DQN": {"learning_starts": 0, "buffer_size": 1000},
    }[algorithm]
    model = getattr(sb3, algorithm)(policy, env, seed=0, device="cpu", **options, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    if steps:
        model.learn(steps)
    return model


def report(tmp_path, policy, model) -> dict:
    out = tmp_path / f"{policy.stem}{policy.suffix}.json"
    code = main([str(policy), "--model", str(model), "--json", str(out)])
    assert code in (0, 1), code
    return json.loads(out.read_text())["reports"][0]


CASES = [
    *((algorithm, kind) for algorithm in ("PPO", "A2C", "DQN") for kind in WRAPPERS),
    ("PPO", "FrozenLake"),
    ("A2C", "FrozenLake"),
    ("DQN", "FrozenLake"),
]


def _setting(tmp_path, kind: str):
    """(the model file, the training env, the SB3 policy name) of a case."""
    if kind == "FrozenLake":
        return "gym:FrozenLake-v1", training_env("FrozenLake-v1", []), "MlpPolicy"
    return model_toml(tmp_path, LEVEL, WRAPPERS[kind]), training_env(LEVEL, WRAPPERS[kind]), kind


@pytest.mark.parametrize(("algorithm", "kind"), CASES)
def test_sb3_zip_decides_as_predict_in_every_state_and_as_its_export(tmp_path, algorithm, kind):
    """`verify model.zip`: on every running state the action taken is SB3's own
    `model.predict(obs, deterministic=True)` on the env's observation of that state, and
    the verdict and values are those of the same agent exported with `export_sb3`."""
    from verifier.policy.export import export_sb3

    model_file, env, policy_name = _setting(tmp_path, kind)
    verified = load_environment(model_file)
    mdp = verified.mdp
    model = agent(algorithm, policy_name, env)
    spread_decisions(model, env_observations(verified, np.arange(mdp.n_states)))
    model.save(tmp_path / "agent.zip")
    policy = load_policy(tmp_path / "agent.zip")
    assert (policy.format, policy.observation, policy.actions) == ("sb3-zip", "env", ())
    ours = chosen_actions(verified, policy)
    running = np.flatnonzero(~mdp.labels["terminal"])
    predicted, _ = model.predict(env_observations(verified, running), deterministic=True)
    names = action_names(env)
    assert len(set(predicted.tolist())) >= 2  # a test that can fail
    assert [ours[s] for s in running] == [names[a] for a in predicted]
    exported = export_sb3(model, tmp_path / "policy.pt", env)
    ours_report = report(tmp_path, tmp_path / "agent.zip", model_file)
    export_report = report(tmp_path, exported, model_file)
    for key in ("verdict", "value", "optimal_value", "pursued_goal", "masked_states"):
        assert ours_report[key] == export_report[key], key


@pytest.mark.parametrize(
    ("algorithm", "kind", "kwargs"),
    [
        (
            "PPO",
            "MlpPolicy",
            {
                "net_arch": {"pi": [32, 16], "vf": [8]},
                "activation_fn": torch.nn.ReLU,
                "share_features_extractor": False,
            },
        ),
        ("A2C", "CnnPolicy", {"features_extractor_kwargs": {"features_dim": 32}}),
        ("DQN", "FrozenLake", {"net_arch": [16], "activation_fn": torch.nn.LeakyReLU}),
        (
            "PPO",
            "MultiInputPolicy",
            {"normalize_images": False, "features_extractor_kwargs": {"cnn_output_dim": 16}},
        ),
    ],
)
def test_sb3_zip_reads_the_policy_keyword_arguments(tmp_path, algorithm, kind, kwargs):
    """net_arch, activation_fn, an unshared extractor, normalize_images and the extractor's
    widths are read from the zip's readable policy_kwargs; predict agrees on every state."""
    model_file, env, policy_name = _setting(tmp_path, kind)
    verified = load_environment(model_file)
    model = agent(algorithm, policy_name, env, steps=0, policy_kwargs=kwargs)
    spread_decisions(model, env_observations(verified, np.arange(verified.mdp.n_states)))
    model.save(tmp_path / "agent.zip")
    ours = chosen_actions(verified, load_policy(tmp_path / "agent.zip"))
    running = np.flatnonzero(~verified.mdp.labels["terminal"])
    predicted, _ = model.predict(env_observations(verified, running), deterministic=True)
    names = action_names(env)
    assert len(set(predicted.tolist())) >= 2
    assert [ours[s] for s in running] == [names[a] for a in predicted]


def test_shipped_distshift_zip_is_the_shipped_export(capsys):
    """models/minigrid/distshift-ppo.zip (SB3's save of the agent whose export is
    distshift-ppo.pt, benchmarks/sb3_zip_load.py): the same action in every state of both
    levels, so the same verdicts: aligned on DistShift1, and on DistShift2 the capability
    failure of an agent stuck against a wall (tests/policy/test_gym_policy.py)."""
    for level in ("distshift1", "distshift2"):
        env = load_environment(f"models/minigrid/{level}.toml")
        zipped = chosen_actions(env, load_policy("models/minigrid/distshift-ppo.zip"))
        assert zipped == chosen_actions(env, load_policy("models/minigrid/distshift-ppo.pt"))
    agent_zip = "models/minigrid/distshift-ppo.zip"
    assert main([agent_zip, "--model", "models/minigrid/distshift1.toml", "--reward", "env"]) == 0
    assert main([agent_zip, "--model", "models/minigrid/distshift2.toml", "--reward", "env"]) == 1
    out = capsys.readouterr().out
    assert "ALIGNED" in out and "CAPABILITY_FAILURE" in out and "loop at x=2, y=1" in out


class _Touch:
    """Unpickling this creates the file at `path` (a stand-in for any code a pickle runs)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _payload(path) -> str:
    return base64.b64encode(pickle.dumps(_Touch(path))).decode()


def _rewrite(source, target, data=None, members=None) -> None:
    """A copy of the zip at `source` with its `data` JSON replaced (`data(doc) -> doc`) and
    members replaced or added (`members`: name -> bytes)."""
    members = dict(members or {})
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            content = old.read(name)
            if name == "data" and data is not None:
                content = json.dumps(data(json.loads(content))).encode()
            new.writestr(name, members.pop(name, content))
        for name, content in members.items():
            new.writestr(name, content)


@pytest.fixture
def saved(tmp_path):
    """An untrained PPO MlpPolicy agent on the 5x5 level and its model file."""
    model = agent("PPO", "MlpPolicy", training_env(LEVEL, WRAPPERS["MlpPolicy"]), steps=0)
    path = tmp_path / "clean" / "agent.zip"
    path.parent.mkdir()
    model.save(path)
    return path, model_toml(tmp_path, LEVEL, WRAPPERS["MlpPolicy"])


def test_pickle_payloads_in_every_serialized_entry_never_run(tmp_path, saved, capsys):
    """Every ":serialized:" entry of `data` (the policy class, the spaces, the schedules, ...)
    replaced by a pickle that creates a marker file: the verdict is the clean zip's, from the
    readable fields, and the marker is never created. The payload is live: unpickling it,
    as SB3's own load does, creates its file."""
    clean, model = saved
    marker = tmp_path / "marker"

    def poisoned(doc):
        for entry in doc.values():
            if isinstance(entry, dict) and ":serialized:" in entry:
                entry[":serialized:"] = _payload(marker)
        return doc

    poisoned_zip = tmp_path / "poisoned.zip"
    _rewrite(clean, poisoned_zip, data=poisoned)
    code = main([str(clean), "--model", str(model)])
    clean_out = capsys.readouterr().out
    assert code in (0, 1) and main([str(poisoned_zip), "--model", str(model)]) == code
    assert capsys.readouterr().out.replace(str(poisoned_zip), str(clean)) == clean_out
    assert not marker.exists()
    live = tmp_path / "live"
    pickle.loads(base64.b64decode(_payload(live)))
    assert live.exists()


@pytest.mark.parametrize(
    ("entry", "place"),
    [
        ("policy_class", "data: policy_class"),
        ("observation_space", "data: observation_space"),
        ("action_space", "data: action_space"),
        ("policy_kwargs", "data: policy_kwargs"),
    ],
)
def test_an_entry_that_is_only_a_pickle_is_refused_without_running_it(
    tmp_path, saved, capsys, entry, place
):
    """An entry reduced to its pickle (no readable fields) cannot be rebuilt: exit 2 naming
    it and the export command; its pickle never runs."""
    clean, model = saved
    marker = tmp_path / "marker"

    def only_pickle(doc):
        doc[entry] = {":type:": "<class 'dict'>", ":serialized:": _payload(marker)}
        if entry != "policy_kwargs":
            doc[entry][":type:"] = "<class 'abc.ABCMeta'>"
        return doc

    path = tmp_path / "agent.zip"
    _rewrite(clean, path, data=only_pickle)
    assert main([str(path), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if "note:" not in line]
    assert len(err) == 1 and f"{path}: {place}" in err[0] and EXPORT in err[0], err
    assert not marker.exists()


def test_a_pickle_payload_in_policy_pth_never_runs(tmp_path, saved, capsys):
    """policy.pth is read with torch.load(weights_only=True), which refuses any global a
    state dict does not need: exit 2 naming policy.pth; the marker is never created."""
    clean, model = saved
    marker = tmp_path / "marker"
    payload = tmp_path / "payload.pth"
    torch.save({"action_net.weight": _Touch(marker)}, payload)
    path = tmp_path / "agent.zip"
    _rewrite(clean, path, members={"policy.pth": payload.read_bytes()})
    assert main([str(path), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: policy.pth: not a weights-only state dict" in err
    assert not marker.exists()


@pytest.mark.parametrize("name", ["vecnormalize.pkl", "vec_normalize.pkl"])
def test_vecnormalize_statistics_beside_the_agent_are_refused_unread(tmp_path, saved, capsys, name):
    """A vecnormalize.pkl beside the zip means the network was trained on normalised
    observations whose statistics are a pickle: exit 2 saying how to export with them; the
    pickle is never read."""
    clean, model = saved
    marker = tmp_path / "marker"
    (clean.parent / name).write_bytes(pickle.dumps(_Touch(marker)))
    assert main([str(clean), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "VecNormalize" in err and "normalize=VecNormalize.load" in err
    assert not marker.exists()


class _CustomPolicy(sb3.common.policies.ActorCriticPolicy):
    """A policy class of the training script's own: its code is needed to rebuild it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


class _CustomExtractor(sb3.common.torch_layers.BaseFeaturesExtractor):
    def __init__(self, observation_space):
        super().__init__(observation_space, features_dim=16)
        self.linear = torch.nn.Linear(int(np.prod(observation_space.shape)), 16)

    def forward(self, obs):
        return self.linear(obs.flatten(1))


def _refusal_cases():
    mlp = WRAPPERS["MlpPolicy"]
    return [
        ("custom class", _CustomPolicy, mlp, {}, "data: policy_class", "_CustomPolicy"),
        (
            "activation",
            "MlpPolicy",
            mlp,
            {"activation_fn": functools.partial(torch.nn.LeakyReLU, 0.2)},
            "data: policy_kwargs.activation_fn",
            "functools.partial",
        ),
        (
            "extractor",
            "MlpPolicy",
            mlp,
            {"features_extractor_class": _CustomExtractor},
            "data: policy_kwargs.features_extractor_class",
            "_CustomExtractor",
        ),
        (
            "bounds cut",
            "MlpPolicy",
            WRAPPERS["CnnPolicy"],
            {},
            "data: observation_space.low",
            "printed in part",
        ),
    ]


@pytest.mark.parametrize(
    ("case", "policy", "wrappers", "kwargs", "place", "named"),
    _refusal_cases(),
    ids=[c[0] for c in _refusal_cases()],
)
def test_what_the_zip_does_not_fix_for_certain_is_refused_with_the_export_command(
    tmp_path, capsys, case, policy, wrappers, kwargs, place, named
):
    """A custom policy class or features extractor (code the zip only has pickled), an
    activation whose readable text is not a torch.nn class, and a 40x40x3 image under
    MlpPolicy, whose bounds numpy prints cut ('...') so that SB3's 1/255 scaling is not
    known: exit 2, one line naming the entry, the export command."""
    model = agent("PPO", policy, training_env(LEVEL, wrappers), steps=0, policy_kwargs=kwargs)
    path = tmp_path / "agent.zip"
    model.save(path)
    assert main([str(path), "--model", str(model_toml(tmp_path, LEVEL, wrappers))]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "note:" not in line]
    assert len(err) == 1 and f"{path}: {place}: " in err[0] and named in err[0], err
    assert EXPORT in err[0]


def test_continuous_actions_are_refused(tmp_path, capsys):
    """A Box action space is no finite MDP's choice: exit 2 naming data: action_space."""
    import gymnasium as gym

    model = agent("PPO", "MlpPolicy", gym.make("Pendulum-v1"), steps=0)
    model.save(tmp_path / "agent.zip")
    assert main([str(tmp_path / "agent.zip"), "--model", "gym:FrozenLake-v1"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'agent.zip'}: data: action_space: " in err and "Box" in err


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ({}, "data is missing"),
        ({"data": b"{}"}, "policy.pth is missing"),
        ({"data": b"{", "policy.pth": b""}, "data: invalid JSON"),
        ({"data": b"[]", "policy.pth": b""}, "data: must be a JSON object"),
    ],
)
def test_a_zip_that_is_not_an_sb3_agent_is_refused(tmp_path, capsys, members, problem):
    path = tmp_path / "agent.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other", b"")
        for name, content in members.items():
            archive.writestr(name, content)
    assert main([str(path), "--model", "gym:FrozenLake-v1"]) == 2
    assert problem in capsys.readouterr().err


def test_a_zip_on_a_model_with_another_observation_is_refused_before_running(
    tmp_path, saved, capsys
):
    """The agent was trained on the full 5x5 grid (SB3 stores it channels-first, 3x5x5);
    the `gym:` shorthand gives MiniGrid's dict observation: exit 2 naming both."""
    clean, _ = saved
    assert main([str(clean), "--model", f"gym:{LEVEL}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "note:" not in line]
    assert err == [
        f"verify: {clean}: the policy expects a 3x5x5 image (or 5x5x3); this model gives a dict "
        "observation (image 7x7x3, direction)"
    ]


def test_actions_of_a_zip_are_named_by_the_environment_or_by_the_flag(tmp_path, saved, capsys):
    """The agent's 7 outputs take MiniGrid's 7 action names; --actions names them otherwise
    (and must name 7); a maze has neither the observation nor the actions."""
    clean, model = saved
    policy = load_policy(clean)
    env = load_environment(model)
    assert policy.actions == () and policy.interface.action_count == 7
    decide(policy, env)
    assert main([str(clean), "--model", str(model), "--actions", "left,right,forward"]) == 2
    assert "names 3 actions for the policy's 7 outputs" in capsys.readouterr().err
    assert main([str(clean), "--model", "models/lava.toml"]) == 2
    assert "exists for Gymnasium models only" in capsys.readouterr().err


def test_text_from_the_zip_reaches_no_terminal_raw(tmp_path, saved, capsys):
    """A dict key with an escape sequence in the readable spaces text is refused without
    printing it raw: one line, no ESC character."""
    clean, model = saved

    def escaped(doc):
        doc["observation_space"] = {
            ":type:": "<class 'gymnasium.spaces.dict.Dict'>",
            "spaces": "{'\\x1b[2Kimage': Box(0, 255, (3, 5, 5), uint8)}",
        }
        return doc

    path = tmp_path / "agent.zip"
    _rewrite(clean, path, data=escaped)
    assert main([str(path), "--model", str(model)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "note:" not in line]
    assert len(err) == 1 and "\x1b" not in err[0] and "not a plain name" in err[0], err


def test_weights_declaring_more_than_the_cap_are_refused_before_loading(
    tmp_path, saved, capsys, monkeypatch
):
    """policy.pth is itself a zip whose records torch allocates at their declared sizes: a
    deflated record of 1 MiB of zeros (a few KiB on disk) is refused under a 64 KiB cap."""
    from verifier.policy import sb3_zip

    clean, model = saved
    raw = tmp_path / "raw.pth"
    torch.save({"action_net.weight": torch.zeros(2**18)}, raw)
    deflated = tmp_path / "deflated.pth"
    with zipfile.ZipFile(raw) as old, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info.filename))
    assert deflated.stat().st_size < 2**16
    path = tmp_path / "agent.zip"
    _rewrite(clean, path, members={"policy.pth": deflated.read_bytes()})
    monkeypatch.setattr(sb3_zip, "MAX_WEIGHTS_BYTES", 2**16)
    assert main([str(path), "--model", str(model)]) == 2
    assert (
        f"{path}: policy.pth: declares 1 MiB of tensors, more than 0 MiB" in capsys.readouterr().err
    )


def test_torch_before_2_6_is_refused_for_zips(tmp_path, saved, monkeypatch):
    """torch's weights-only loading could run code before 2.6 (CVE-2025-32434)."""
    from verifier.errors import InputError

    clean, _ = saved
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(InputError, match="needs torch 2.6 or later"):
        load_policy(clean)
