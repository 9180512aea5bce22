"""The world-model bench's data: sweeps of a simulated PTZ camera, with the action that reached each
frame and each frame's capture time on the camera's simulated clock (a move costs its settle time,
a snapshot its own), so the FrameDataset carries the dts a real camera's frames would have."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

import numpy as np

from services.camera.sim.camera import SimCamera, SimCameraConfig
from services.camera.sim.world import SimWorld, SimWorldConfig
from services.worldmodel.config import TrainConfig
from services.worldmodel.data import FrameDataset
from shared.models import SurpriseConfig, WorldModelConfig
from shared.models.config import EnsembleConfig
from shared.pose import N_ACTIONS, NOOP, ActionScale, Pose, PoseRanges, apply_action, random_pose
from shared.scene import ZONE_KINDS

# Moves twice the original's degrees: its short moves (0.2 deg) are below one pixel of a 64 px
# wide view, so they would teach nothing; jumps become 20 deg of pan.
BENCH_SCALE = ActionScale(pan_tilt_deg=4.0, zoom_log_step=2.0)
# A camera watching a site rather than the sky: with the full tilt range (up to 90) and zoom up to
# 20x, most random views are featureless sky in which the pose is not observable at all.
BENCH_RANGES = PoseRanges(tilt_min=-20.0, tilt_max=30.0, zoom_min=1.0, zoom_max=8.0)
ROUND_GAP_S = 300.0  # simulated seconds between the end of one round and the start of the next
NO_ACTION = -1       # the first frame of a round: reached by an absolute move


@dataclass(frozen=True)
class Sweep:
    """A sweep's frames and, per frame, the action index that reached it (NO_ACTION for a round's
    first frame)."""

    data: FrameDataset
    actions: np.ndarray


def make_world(seed: int, panorama: str | None, **config) -> SimWorld:
    return SimWorld(SimWorldConfig(seed=seed, panorama_path=panorama, **config))


def simulate_sweep(world: SimWorld, rounds: int, moves: int, seed: int, size: int, t0: float = 0.0,
                   ranges: PoseRanges = BENCH_RANGES, scale: ActionScale = BENCH_SCALE,
                   starts: list[Pose] | None = None, hold_share: float = 0.0) -> Sweep:
    """`rounds` rounds of a random absolute pose (or of `starts`, one round each) then `moves`
    random actions, each frame a snapshot of a SimCamera whose clock starts at t0. Each move is
    the noop with probability `hold_share` instead (1: every move; the camera holds still while
    its clock runs, so the transition shows only what changed in time); at 0 no draw is spent on
    it, so the sweeps stay those of a plain random camera."""
    if not 0.0 <= hold_share <= 1.0:
        raise ValueError(f"hold_share must be within 0..1, got {hold_share}")
    rng = random.Random(seed)
    camera = SimCamera(world, SimCameraConfig(start_time_s=t0))
    frames, poses, ids, times, actions = [], [], [], [], []
    for r in range(len(starts) if starts is not None else rounds):
        if r:
            camera.clock.advance(ROUND_GAP_S)
        start = starts[r] if starts is not None else random_pose(rng, ranges)
        pose = camera.move_absolute(ranges.apply(start))
        for k in range(moves + 1):
            action = NO_ACTION
            if k:
                held = hold_share > 0.0 and rng.random() < hold_share
                action = NOOP if held else rng.randrange(N_ACTIONS)
                pose = camera.move_absolute(apply_action(pose, action, ranges, scale))
            image, pose, t = camera.snapshot(size, size)
            frames.append(image)
            poses.append(pose.as_tuple())
            ids.append(r)
            times.append(t)
            actions.append(action)
    data = FrameDataset(np.stack(frames), np.array(poses), np.array(ids), np.array(times, np.float64),
                        ranges)
    return Sweep(data, np.array(actions, dtype=np.int64))


def zone_starts(world: SimWorld, per_zone: int, seed: int,
                ranges: PoseRanges = BENCH_RANGES, kinds: tuple[str, ...] | None = None) -> list[Pose]:
    """`per_zone` poses near the centre of every zone of the site (of `kinds` only, if given; pan
    and tilt jittered by up to a tenth of the view, zoom log-uniform over the upper half of the
    range): rounds that start there cover every zone kind, which random views rarely show."""
    rng = random.Random(seed)
    lo = math.sqrt(ranges.zoom_min * ranges.zoom_max)
    out = []
    kind_of = world.zone_kinds()
    for name, centre in world.zone_poses().items():
        if kinds is not None and kind_of[name] not in kinds:
            continue
        for _ in range(per_zone):
            zoom = math.exp(rng.uniform(math.log(lo), math.log(ranges.zoom_max)))
            j = 0.1 * world.config.base_hfov_deg / zoom
            out.append(ranges.apply(Pose(centre.pan + rng.uniform(-j, j), centre.tilt + rng.uniform(-j, j),
                                         zoom)))
    return out


def concat_sweeps(a: Sweep, b: Sweep) -> Sweep:
    """One sweep of a's rounds then b's (b's round ids shifted past a's)."""
    da, db = a.data, b.data
    shift = int(da.round_ids.max()) + 1 - int(db.round_ids.min())
    ids = np.concatenate([da.round_ids, db.round_ids + shift])
    data = FrameDataset(np.concatenate([da.frames, db.frames]), np.concatenate([da.poses, db.poses]), ids,
                        np.concatenate([da.times, db.times]), da.ranges)
    return Sweep(data, np.concatenate([a.actions, b.actions]))


def recent_rounds(sweep: Sweep, max_rounds: int) -> Sweep:
    """The frames of the newest `max_rounds` rounds (rounds in order of first appearance), as the
    training phase loads them (`worldmodel.max_rounds`)."""
    ids = sweep.data.round_ids
    _, first = np.unique(ids, return_index=True)
    keep_ids = ids[np.sort(first)][-max_rounds:]
    keep = np.isin(ids, keep_ids)
    d = sweep.data
    data = FrameDataset(d.frames[keep], d.poses[keep], d.round_ids[keep], d.times[keep], d.ranges)
    return Sweep(data, sweep.actions[keep])


def frame_kinds(world: SimWorld, data: FrameDataset) -> dict[str, np.ndarray]:
    """{kind: (N,) fraction of each frame's view that shows the kind} (`SimWorld.kind_fractions`,
    keys `shared.scene.ZONE_KINDS`)."""
    per_frame = [world.kind_fractions(Pose(*p)) for p in np.asarray(data.poses, dtype=np.float64)]
    return {k: np.array([f[k] for f in per_frame], dtype=np.float64) for k in ZONE_KINDS}


def cell_kinds(world: SimWorld, data: FrameDataset, grid: int,
               px: int | None = None) -> dict[str, np.ndarray]:
    """{kind: (N, grid * grid) fraction of each state cell that shows the kind}, cells in the
    encoder's token order (row-major from the top left), from `SimWorld.kind_mask` at `px` px
    (default: the smallest multiple of the grid from 64 up, so that every cell has whole pixels)."""
    px = px if px is not None else grid * -(-64 // grid)
    if px % grid:
        raise ValueError(f"the mask size {px} must be a multiple of the grid {grid}")
    b = px // grid
    out = {k: np.empty((len(data), grid * grid)) for k in ZONE_KINDS}
    for i, p in enumerate(np.asarray(data.poses, dtype=np.float64)):
        mask = world.kind_mask(Pose(*p), px, px).reshape(grid, b, grid, b)
        for j, kind in enumerate(ZONE_KINDS):
            out[kind][i] = (mask == j).mean(axis=(1, 3)).ravel()
    return out


def bench_configs(all_surprise: bool = False,
                  hfov_deg: float = 60.0) -> tuple[WorldModelConfig, TrainConfig]:
    """The cpu presets, with the warp geometry of the simulated camera and the bench's ranges."""
    wm = WorldModelConfig.preset("cpu")
    r = BENCH_RANGES
    wm = wm.replace(predictor=dataclasses.replace(
        wm.predictor, warp_hfov_deg=hfov_deg, warp_tilt_span_deg=r.tilt_max - r.tilt_min,
        warp_zoom_span=r.zoom_max / r.zoom_min))
    if all_surprise:
        wm = wm.replace(surprise=SurpriseConfig(targets=("pred_error", "grad_norm"),
                                                primary="pred_error", hidden=wm.surprise.hidden),
                        ensemble=EnsembleConfig(heads=4, hidden=128))
    return wm, TrainConfig.preset("cpu")


def override_config(cfg: WorldModelConfig, assignments: list[str]) -> WorldModelConfig:
    """`cfg` with each "part.field=value" of `assignments` applied (part: encoder, predictor,
    surprise or ensemble), for capacity experiments such as "encoder.img_size=96"; the value is
    parsed as the field's current type, and the result is validated like any config."""
    for item in assignments:
        key, sep, raw = item.partition("=")
        part_name, dot, field_name = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"expected part.field=value, got {item!r}")
        part = getattr(cfg, part_name, None)
        if not dataclasses.is_dataclass(part) or isinstance(part, type):
            raise ValueError(f"unknown config part {part_name!r} in {item!r}")
        if field_name not in {f.name for f in dataclasses.fields(part)}:
            raise ValueError(f"{part_name} has no field {field_name!r}")
        current = getattr(part, field_name)
        value: object
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{key} takes true or false, got {raw!r}")
            value = raw.lower() in ("true", "1")
        elif isinstance(current, (int, float)):
            value = type(current)(raw)
        else:
            raise ValueError(f"{key} is not a number or a flag; it cannot be set here")
        cfg = cfg.replace(**{part_name: dataclasses.replace(part, **{field_name: value})})
    return cfg
