"""Frozen configs for the world model, with the `cpu` and `paper` presets.

A config is stored as JSON inside every checkpoint (safetensors metadata), so a model can be rebuilt
from the file alone; `from_dict` therefore rejects unknown or missing fields loudly instead of
guessing, and `validate` catches shapes that cannot work (dim not divisible by heads, image size not
divisible by patch size) before any weights are allocated.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from shared.presets import WORLD_MODEL as WORLD_MODEL_PRESETS

SURPRISE_TARGETS = ("pred_error", "grad_norm")
# Predictor fields that files written before them lack, with the value that reproduces what those
# files computed: stride 1 is one query per cell over the full memory, and 0 time features is a
# predictor that never saw dt (it ignores it), so reading them this way is exact, not a guess.
ADDED_PREDICTOR_FIELDS: dict[str, Any] = {"query_stride": 1, "memory_stride": 1, "time_features": 0,
                                          "time_scale_s": 1.0}
TIME_FEATURES_MAX = 2


class ConfigError(ValueError):
    """A world-model config that cannot be built (bad values, unknown fields, wrong JSON)."""


@dataclass(frozen=True)
class EncoderConfig:
    """ViT encoder: patch embedding, fixed 2-D sin-cos positions, pre-norm blocks."""

    img_size: int = 64
    patch_size: int = 8
    in_chans: int = 3
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def n_tokens(self) -> int:
        return self.grid * self.grid

    def validate(self) -> None:
        if self.img_size <= 0 or self.patch_size <= 0 or self.img_size % self.patch_size:
            raise ConfigError(f"encoder img_size {self.img_size} must be a positive multiple of "
                              f"patch_size {self.patch_size}")
        _check_width("encoder", self.dim, self.heads, self.depth)
        if self.dim % 4:
            raise ConfigError(f"encoder dim {self.dim} must be divisible by 4 (2-D sin-cos positions)")


@dataclass(frozen=True)
class PredictorConfig:
    """Action-conditioned predictor: per-position query tokens cross-attending to the state tokens.

    `query_self_attn` lets the queries of one transition also attend to each other (coherence across
    the predicted image); cross-attention to the state is always on.
    """

    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    pose_dim: int = 4
    query_self_attn: bool = True
    # Pose-aware warp (the residual's base): the source tokens resampled where the camera geometry
    # says each target cell's content was in the source view (pan/tilt shift, zoom scale about the
    # centre). Needs the camera's field of view at the widest zoom and the pose ranges that
    # normalised the poses (tilt span in degrees, zoom_max / zoom_min); pan is assumed to span 360.
    warp: bool = False
    warp_hfov_deg: float = 60.0
    warp_tilt_span_deg: float = 110.0
    warp_zoom_span: float = 20.0
    # Coarse queries and memory (cost): each query token stands for a query_stride x query_stride
    # block of cells and predicts all of them (its output head emits query_stride^2 tokens), and the
    # state is average-pooled by memory_stride before the queries cross-attend to it. 1 and 1: one
    # query per cell, full-resolution memory. The dream step's cost is ~depth x (queries + memory
    # tokens) token-passes, so strides of 4 and 2 on a 16 x 16 grid cut it ~8x (docs/worldmodel.md).
    query_stride: int = 1
    memory_stride: int = 1
    # Time: every transition is conditioned on dt, the signed seconds between its two frames'
    # capture times (docs/worldmodel.md, "Time"). Features of dt / time_scale_s: 1 = linear
    # (what moving and periodic content needs: displacement and phase grow with dt), 2 = linear
    # plus asinh (resolves short and long gaps alike). 0: no time input.
    time_features: int = 2
    time_scale_s: float = 1.0

    def validate(self) -> None:
        _check_width("predictor", self.dim, self.heads, self.depth)
        if not 0 <= self.time_features <= TIME_FEATURES_MAX or self.time_scale_s <= 0:
            raise ConfigError(f"predictor time_features must be 0..{TIME_FEATURES_MAX} and "
                              "time_scale_s positive")
        if self.query_stride < 1 or self.memory_stride < 1:
            raise ConfigError("predictor query_stride and memory_stride must be >= 1")
        if self.dim % 4:
            raise ConfigError(f"predictor dim {self.dim} must be divisible by 4 (2-D sin-cos positions)")
        if self.pose_dim != 4:
            raise ConfigError("predictor pose_dim must be 4 (sin pan, cos pan, tilt, log zoom)")
        if not (0.0 < self.warp_hfov_deg < 180.0 and self.warp_tilt_span_deg > 0
                and self.warp_zoom_span >= 1.0):
            raise ConfigError("predictor warp geometry needs 0 < hfov < 180, tilt span > 0, "
                              "zoom span >= 1")


@dataclass(frozen=True)
class SurpriseConfig:
    """Per-transition surprise heads.

    targets: which signals get a head (each a small MLP regressing log(target)); `primary` is the one
    `WorldModel.predict` returns.
    """

    targets: tuple[str, ...] = ("pred_error",)
    primary: str = "pred_error"
    hidden: int = 128

    def validate(self) -> None:
        if not self.targets:
            raise ConfigError("surprise targets must not be empty")
        for t in self.targets:
            if t not in SURPRISE_TARGETS:
                raise ConfigError(f"unknown surprise target {t!r}; choose from {SURPRISE_TARGETS}")
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"surprise targets repeat: {self.targets}")
        if self.primary not in self.targets:
            raise ConfigError(f"surprise primary {self.primary!r} is not among targets {self.targets}")
        if self.hidden <= 0:
            raise ConfigError("surprise hidden must be positive")


@dataclass(frozen=True)
class EnsembleConfig:
    """A bootstrap ensemble of predictor heads, whose disagreement is a surprise candidate.

    `heads` small MLPs (width `hidden`) on the predictor's final per-query features, each emitting a
    residual change on the main prediction's base token; 0: no ensemble. Each head weighs each
    training transition by its own Poisson(`sample_rate`) draw: Poisson(1) is the online form of the
    classic bootstrap (resampling n of n with replacement: a head skips ~37% of the transitions and
    sees others twice or more), so the heads' spread estimates how much a fit on this data could
    differ; Bernoulli(0.5) would hide half of every batch from every head for the same diversity.
    """

    heads: int = 0
    hidden: int = 128
    sample_rate: float = 1.0

    def validate(self) -> None:
        if self.heads < 0 or self.heads == 1:
            raise ConfigError(f"ensemble heads must be 0 (off) or >= 2, got {self.heads}")
        if self.hidden <= 0 or not self.sample_rate > 0:
            raise ConfigError("ensemble hidden and sample_rate must be positive")


@dataclass(frozen=True)
class WorldModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    surprise: SurpriseConfig = field(default_factory=SurpriseConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    name: str = "custom"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for part, cls in ((self.encoder, EncoderConfig), (self.predictor, PredictorConfig),
                          (self.surprise, SurpriseConfig), (self.ensemble, EnsembleConfig)):
            if not isinstance(part, cls):
                raise ConfigError(f"expected {cls.__name__}, got {type(part).__name__}")
            part.validate()
        for name in ("query_stride", "memory_stride"):
            stride = getattr(self.predictor, name)
            if self.encoder.grid % stride:
                raise ConfigError(f"predictor {name} {stride} must divide the token grid "
                                  f"{self.encoder.grid}")

    @staticmethod
    def preset(name: str) -> WorldModelConfig:
        """`cpu`: small enough to train in minutes on 2 cores. `paper`: the original's sizes."""
        if name not in WORLD_MODEL_PRESETS:
            raise ConfigError(f"unknown world-model preset {name!r}; choose 'cpu' or 'paper'")
        values = WORLD_MODEL_PRESETS[name]
        return WorldModelConfig(encoder=EncoderConfig(**values["encoder"]),
                                predictor=PredictorConfig(**values["predictor"]),
                                surprise=SurpriseConfig(**values["surprise"]),
                                ensemble=EnsembleConfig(**values.get("ensemble", {})),
                                name=values["name"])

    def replace(self, **changes: Any) -> WorldModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> WorldModelConfig:
        # Files written before the bootstrap ensemble have no `ensemble` field: read as heads 0 (no
        # ensemble), which is exactly what such files computed (`_without_light_heads` refuses the
        # ones whose removed light heads held weights).
        if isinstance(d, dict) and "ensemble" not in d:
            d = {**d, "ensemble": dataclasses.asdict(EnsembleConfig())}
        exact_fields(d, WorldModelConfig, "world-model config")
        parts: dict[str, Any] = {}
        for key, cls in (("encoder", EncoderConfig), ("predictor", PredictorConfig),
                         ("surprise", SurpriseConfig), ("ensemble", EnsembleConfig)):
            sub = d[key]
            if not isinstance(sub, dict):
                raise ConfigError(f"config field {key!r} must be an object")
            if key == "predictor":
                sub = {**ADDED_PREDICTOR_FIELDS, **sub}
            if key == "surprise":
                sub = _without_light_heads(sub)
            exact_fields(sub, cls, f"config.{key}")
            if key == "surprise":
                sub = {**sub, "targets": tuple(sub["targets"])}
            parts[key] = cls(**sub)
        return WorldModelConfig(**parts, name=str(d["name"]))

    @staticmethod
    def from_json(text: str) -> WorldModelConfig:
        try:
            d = json.loads(text)
        except (TypeError, json.JSONDecodeError) as e:
            raise ConfigError(f"world-model config is not valid JSON: {e}") from e
        try:
            return WorldModelConfig.from_dict(d)
        except TypeError as e:  # wrong value types reaching a constructor
            raise ConfigError(f"bad world-model config: {e}") from e


def _without_light_heads(sub: dict[str, Any]) -> dict[str, Any]:
    """A stored surprise config without the removed light-head fields. `ensemble_size` 0 held no
    weights and computed what no field computes now, so it is dropped; a model that had the heads
    or trained the removed `disagreement` target cannot be rebuilt by this code and is refused."""
    targets = sub.get("targets")
    if isinstance(targets, (list, tuple)) and "disagreement" in targets:
        raise ConfigError("config.surprise.targets names 'disagreement', a surprise target this "
                          "version no longer has (the bootstrap ensemble, config.ensemble, "
                          "replaces it); retrain the model")
    if "ensemble_size" not in sub:
        return sub
    size = sub["ensemble_size"]
    if size != 0:
        raise ConfigError(f"config.surprise.ensemble_size is {size!r}: its light heads no longer "
                          "exist (the bootstrap ensemble, config.ensemble, replaces them); "
                          "retrain the model")
    return {k: v for k, v in sub.items() if k != "ensemble_size"}


def _check_width(name: str, dim: int, heads: int, depth: int) -> None:
    if dim <= 0 or heads <= 0 or depth <= 0:
        raise ConfigError(f"{name} dim, heads and depth must be positive, got {dim}, {heads}, {depth}")
    if dim % heads:
        raise ConfigError(f"{name} dim {dim} must be divisible by heads {heads}")


def exact_fields(d: Any, cls: type, what: str) -> None:
    """Refuse `d` unless it is a dict with exactly the fields of dataclass `cls`.

    Stored configs are rebuilt from checkpoints, where a missing or unknown field means the file
    was written by another version of the code: guessing would rebuild a different model.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(d).__name__}")
    want = {f.name for f in dataclasses.fields(cls)}
    missing, extra = want - d.keys(), d.keys() - want
    if missing or extra:
        raise ConfigError(f"{what} does not match this version: missing {sorted(missing)}, "
                          f"unknown {sorted(extra)}")
