from pathlib import Path

import pytest

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
