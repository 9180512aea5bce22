import os
from pathlib import Path

import pytest

from services.agent.config import AgentConfig
from services.worldmodel.config import TrainConfig
from shared.config import ConfigError, child_environment, load_settings


def test_defaults_are_the_cpu_preset():
    s = load_settings(environ={})
    assert s.preset == "cpu"
    assert s.collect.iterations == 10 and s.collect.movements == 20
    assert s.redis_url is None and s.api_token is None


def test_paper_preset_from_env():
    assert load_settings(environ={"PTZJEPA_PRESET": "paper"}).collect.iterations == 20


def test_env_overrides_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collect:\n  iterations: 3\ncamera:\n  sim:\n    seed: 7\n")
    s = load_settings(cfg, environ={"PTZJEPA_COLLECT__ITERATIONS": "5"})
    assert s.collect.iterations == 5
    assert s.camera.sim.seed == 7


def test_bad_value_names_the_field():
    with pytest.raises(ConfigError, match=r"camera\.port"):
        load_settings(environ={"PTZJEPA_CAMERA__PORT": "99999"})
    with pytest.raises(ConfigError, match=r"collect\.iterations"):
        load_settings(environ={"PTZJEPA_COLLECT__ITERATIONS": "zero"})


def test_unknown_field_in_yaml_is_an_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("colect:\n  iterations: 3\n")
    with pytest.raises(ConfigError, match="colect"):
        load_settings(cfg, environ={})


def test_unknown_preset_is_an_error():
    with pytest.raises(ConfigError, match="preset"):
        load_settings(environ={"PTZJEPA_PRESET": "gpu9000"})


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})


def test_secret_in_yaml_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("camera:\n  password: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert "PTZJEPA_CAMERA__PASSWORD" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_secrets_from_env_and_files(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    s = load_settings(environ={"PTZJEPA_API_TOKEN_FILE": str(secret),
                               "PTZJEPA_CAMERA__PASSWORD": "pw"})
    assert s.api_token.get_secret_value() == "s3cret"
    assert s.camera.password.get_secret_value() == "pw"
    assert "s3cret" not in repr(s) and "pw'" not in repr(s)


def test_unreadable_secret_file_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="PTZJEPA_API_TOKEN_FILE"):
        load_settings(environ={"PTZJEPA_API_TOKEN_FILE": str(tmp_path / "missing")})


def test_bad_camera_ranges_are_refused():
    with pytest.raises(ConfigError, match="tilt range is empty"):
        load_settings(environ={"PTZJEPA_CAMERA__TILT_MIN": "50", "PTZJEPA_CAMERA__TILT_MAX": "10"})


def test_child_environment_reproduces_settings_without_secrets_in_files(tmp_path):
    s = load_settings(environ={}, api_token="tok", node="n1", data_dir=tmp_path / "d")
    env = child_environment(s, tmp_path / "run")
    written = (tmp_path / "run" / "settings.yaml").read_text()
    assert "tok" not in written
    again = load_settings(environ=env)
    assert again.node == "n1" and again.api_token.get_secret_value() == "tok"
    assert Path(again.data_dir) == (tmp_path / "d").resolve()


def test_one_precedence_rule_key_by_key(tmp_path):
    # field defaults < preset < defaults= < config file < environment < explicit arguments, and
    # a layer changes only the keys it names, inside the frozen sections too
    cfg = tmp_path / "c.yaml"
    cfg.write_text("worldmodel:\n  train:\n    epochs: 3\n    lr: 0.01\ncollect:\n  movements: 5\n")
    s = load_settings(cfg, environ={"PTZJEPA_WORLDMODEL__TRAIN__LR": "0.02",
                                    "PTZJEPA_COLLECT__MOVEMENTS": "6"},
                      defaults={"worldmodel": {"train": {"time_budget_s": 15.0, "epochs": 1}},
                                "collect": {"iterations": 4, "movements": 1}},
                      worldmodel={"train": {"seed": 9}})
    assert s.worldmodel.train == {"time_budget_s": 15.0, "epochs": 3, "lr": 0.02, "seed": 9}
    assert s.collect.iterations == 4 and s.collect.movements == 6
    assert load_settings(environ={"PTZJEPA_COLLECT__ITERATIONS": "7"},
                         collect={"iterations": 8}).collect.iterations == 8


def test_load_settings_never_writes_the_process_environment(tmp_path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    for key in [k for k in os.environ if k.startswith("PTZJEPA_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PTZJEPA_API_TOKEN_FILE", str(secret))
    monkeypatch.setenv("PTZJEPA_NODE", "from-env")
    before = dict(os.environ)
    s = load_settings()
    assert s.node == "from-env" and s.api_token.get_secret_value() == "s3cret"
    assert dict(os.environ) == before
    assert load_settings(environ={}).node == "node0"  # an explicit mapping replaces os.environ


def test_a_moved_key_fails_and_names_its_home(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent:\n  updates: 30\nworldmodel:\n  time_budget_s: 60\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert "agent.updates" in str(info.value) and "agent.config.updates" in str(info.value)
    assert "worldmodel.train.time_budget_s" in str(info.value)
    with pytest.raises(ConfigError, match="PTZJEPA_AGENT__CONFIG__TIME_BUDGET_S"):
        load_settings(environ={"PTZJEPA_AGENT__TIME_BUDGET_S": "5"})


def test_an_unknown_key_in_a_section_is_an_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("camera:\n  sim:\n    sede: 3\n")
    with pytest.raises(ConfigError, match=r"camera\.sim\.sede"):
        load_settings(cfg, environ={})


def test_frozen_section_values_from_the_environment_are_decoded():
    s = load_settings(environ={"PTZJEPA_AGENT__CONFIG__UPDATES": "30",
                               "PTZJEPA_AGENT__CONFIG__HIDDEN": "[64]",
                               "PTZJEPA_AGENT__CONFIG__REWARD": "view",
                               "PTZJEPA_WORLDMODEL__MODEL__ENCODER__DIM": "96"})
    assert s.agent.config == {"updates": 30, "hidden": [64], "reward": "view"}
    assert s.worldmodel.model == {"encoder": {"dim": 96}}


def test_the_job_budgets_are_the_presets_on_both_presets():
    # Work budgets (steps, updates) bound the jobs; the wall-clock limits are safety caps above them.
    steps = {"cpu": (340, 3400), "paper": (60, 600)}
    updates = {"cpu": (5000, 120.0), "paper": (3600, 300.0)}
    for name in ("cpu", "paper"):
        train = TrainConfig.preset(name)
        assert (train.steps, train.schedule_steps) == steps[name]
        assert train.time_budget_s == 600.0 and train.epochs is None
        assert 0 < train.final_lr < train.lr and train.ema_end < 1.0
        agent = AgentConfig.preset(name)
        assert (agent.updates, agent.time_budget_s) == updates[name]
