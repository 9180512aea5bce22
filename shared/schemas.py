"""Pydantic schemas shared by services: what travels over REST and in manifests."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.pose import Pose, PoseRanges


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a request must not silently do nothing."""

    model_config = ConfigDict(extra="forbid")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class PoseModel(Strict):
    pan: float = Field(description="degrees")
    tilt: float = Field(description="degrees, positive is up")
    zoom: float = Field(description="optical magnification, 1 = widest")

    _check = field_validator("pan", "tilt", "zoom")(_finite)

    @classmethod
    def of(cls, pose: Pose) -> PoseModel:
        return cls(pan=pose.pan, tilt=pose.tilt, zoom=pose.zoom)

    def to_pose(self) -> Pose:
        return Pose(self.pan, self.tilt, self.zoom)


class MoveRequest(Strict):
    mode: Literal["absolute", "relative"]
    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = Field(0.0, description="absolute: magnification; relative: added magnification")

    _check = field_validator("pan", "tilt", "zoom")(_finite)


class RangesModel(Strict):
    pan_min: float
    pan_max: float
    tilt_min: float
    tilt_max: float
    zoom_min: float
    zoom_max: float
    pan_wraps: bool

    @classmethod
    def of(cls, ranges: PoseRanges) -> RangesModel:
        return cls(**ranges.__dict__)

    def to_ranges(self) -> PoseRanges:
        return PoseRanges(**self.model_dump())


class CameraInfo(Strict):
    node: str
    camera: str
    driver: str
    ranges: RangesModel
    hfov_deg_at_min_zoom: float | None = None
    image_width: int | None = None
    image_height: int | None = None
    extra: dict[str, Any] = {}


class FrameRecord(Strict):
    """One line of a round's manifest (JSON lines)."""

    frame_id: str
    path: str = Field(description="store-relative path of the JPEG")
    pose: PoseModel
    captured_at: datetime
    node: str
    camera: str
    source: Literal["sweep", "navigate", "import"]
    round_id: str
    step: int = Field(ge=0)
    action: int | None = Field(None, description="index into shared.pose.ACTIONS, None for a jump")
    sim_time: float | None = None
    dynamic_fraction: float | None = Field(None, description="simulator ground truth, if known")
    kind_fractions: dict[str, float] | None = Field(
        default=None, description="simulator ground truth, if known: share of the view per zone "
                                  "kind (keys shared.scene.ZONE_KINDS, summing to 1)")
    extra: dict[str, Any] = {}


class CollectRequest(Strict):
    iterations: int | None = Field(None, ge=1, le=10_000, description="default from config")
    movements: int | None = Field(None, ge=0, le=10_000, description="default from config")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="default: random")


class WorldModelRequest(Strict):
    slot: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                             description="train this slot; default: any free slot")


class DreamerRequest(Strict):
    slot: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                             description="default: the most recently published slot")
    version: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="default: the slot's latest")
    dreams: int | None = Field(None, ge=1, le=100_000)


class AgentRequest(Strict):
    updates: int | None = Field(None, ge=1, le=10_000_000)


class NavigateRequest(Strict):
    iterations: int | None = Field(None, ge=1, le=10_000)
    movements: int | None = Field(None, ge=1, le=10_000)


class CycleRequest(Strict):
    collect: CollectRequest | None = None
    navigate: NavigateRequest | None = None
    worldmodel: WorldModelRequest | None = None
    dreamer: DreamerRequest | None = None
    agent: AgentRequest | None = None


class LifelongStop(Strict):
    now: bool = Field(False, description="also stop the running cycle (else: at its end)")


class JobAccepted(BaseModel):
    job_id: str
    queue: str
    status: str


class JobView(BaseModel):
    job_id: str
    func: str | None
    status: str
    progress: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
