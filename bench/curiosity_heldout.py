"""The curiosity bench's held-out set and its scores: what each arm's world model learned, per
zone kind, judged on transitions neither arm ever saw.

The set is fixed per seed before any cycle runs and lies later in simulated time than every
frame an arm trains on. Half of its rounds start at random poses over the whole scene, half at a
pose near a zone, cycling through the zones, so that the small zones of every kind hold enough
transitions to score (stratified; a random sample alone puts only a few percent of its views on
the noise screen or the dial). Rounds are short random walks, so they stay near where they start.

Scores use the system's own evaluation (services.worldmodel.evaluate.kind_figures and
services.worldmodel.probes.action_recognition), per kind against each model's own copy baseline
(fraction-weighted: a transition counts for every kind in its target view, in proportion), plus
`learnable` (periodic + movers + detail weighted together); and again per state cell
(`ratio_cells`: each cell's error with the share of that cell the kind covers, so a stratum holds
the kind's own cells, not the static scenery around a small zone). Action recognition per stratum (the
kind that covers most of the target view) is a check that a change of representation cannot fake:
a model that merely shrank its copy baseline does not recognise moves better.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from bench.curiosity_drive import drive, random_policy
from bench.worldmodel_sim import cell_kinds
from services.camera.sim.world import SimWorld
from services.worldmodel.data import FrameDataset
from services.worldmodel.evaluate import encode_dataset, kind_figures, transitions
from services.worldmodel.probes import action_recognition
from shared.models import WorldModelConfig
from shared.pose import ActionScale, Pose, PoseRanges, random_pose
from shared.scene import LEARNABLE_KINDS, ZONE_KINDS

LEARNABLE = LEARNABLE_KINDS
STRATA = ("overall", "learnable", *ZONE_KINDS)


@dataclass(frozen=True)
class HeldOut:
    data: FrameDataset
    kinds: dict[str, np.ndarray]  # per frame, the share of its view covered by each kind
    cells: dict[str, np.ndarray] | None = None  # per frame and state cell, the same

    def strata_counts(self) -> dict[str, int]:
        """Transitions per stratum (the kind covering most of the target view)."""
        _, dst = transitions(self.data)
        top = dominant_kind(self.kinds)[dst]
        return {k: int((top == i).sum()) for i, k in enumerate(ZONE_KINDS)}


def dominant_kind(kinds: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) index into ZONE_KINDS of the kind that covers most of each view."""
    return np.stack([kinds[k] for k in ZONE_KINDS]).argmax(axis=0)


def frame_kinds(world: SimWorld, poses) -> dict[str, np.ndarray]:
    shares = [world.kind_fractions(Pose(*p)) for p in np.asarray(poses, dtype=np.float64)]
    return {k: np.array([s[k] for s in shares]) for k in ZONE_KINDS}


def make_held_out(world: SimWorld, ranges: PoseRanges, scale: ActionScale, *, seed: int,
                  rounds: int, moves: int, t0: float, size: int) -> HeldOut:
    """`rounds` random rounds of `moves` random moves, starting at t0 (simulated seconds); every
    other round starts near a zone (the zones in turn, a random zoom and a few degrees off)."""
    rng = random.Random(9000 + seed)
    zones = sorted(world.zone_poses().items())
    starts = []
    for r in range(rounds):
        pose = random_pose(rng, ranges)
        if r % 2 and zones:
            _, centre = zones[(r // 2) % len(zones)]
            pose = Pose(centre.pan + rng.uniform(-6, 6), centre.tilt + rng.uniform(-4, 4),
                        rng.uniform(ranges.zoom_min, min(ranges.zoom_max, 6.0)))
        starts.append(world.ranges.apply(ranges.apply(pose)))
    ep = drive(world, t0, starts, moves, random_policy(rng), size, scale)
    data = ep.dataset(ranges)
    enc = WorldModelConfig.preset("cpu").encoder
    return HeldOut(data, frame_kinds(world, data.poses),
                   cell_kinds(world, data, enc.img_size // enc.patch_size))


def score(model, held: HeldOut, *, scale: ActionScale | None = None) -> dict:
    """The model's held-out one-step ratio vs its copy baseline, overall, learnable and per kind;
    with `scale` also action-recognition top-1 per stratum (21 predictions per transition)."""
    states = encode_dataset(model, held.data)
    fig = kind_figures(model, held.data, with_learnable(held.kinds), states=states)
    ratios = {"overall": fig["one_step_ratio"], **fig["ratio_by_kind"]}
    out: dict = {"ratio": {k: ratios.get(k) for k in STRATA}}
    if held.cells is not None:
        by_cell = kind_figures(model, held.data, with_learnable(held.cells), states=states)
        out["ratio_cells"] = {k: by_cell["ratio_by_kind"][k] for k in STRATA if k != "overall"}
    if scale is not None:
        src, dst = transitions(held.data)
        poses = np.asarray(held.data.poses, dtype=np.float64)
        dts = np.asarray(held.data.times, dtype=np.float64)
        top = dominant_kind(held.kinds)[dst]
        acc: dict[str, float | None] = {}
        hits = action_recognition(model, states, poses, dts[dst] - dts[src], src, dst,
                                  held.data.ranges, scale, per_pair=True)["hits"]
        acc["overall"] = float(np.mean(hits))
        for i, k in enumerate(ZONE_KINDS):
            acc[k] = float(np.mean(hits[top == i])) if (top == i).any() else None
        mask = np.isin(top, [ZONE_KINDS.index(k) for k in LEARNABLE])
        acc["learnable"] = float(np.mean(hits[mask])) if mask.any() else None
        out["action_top1"] = acc
    return out


def with_learnable(kinds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The kinds' fractions plus `learnable`, the learnable kinds' together (views or cells)."""
    return {**kinds, "learnable": sum(kinds[k] for k in LEARNABLE)}


def dwell_by_kind(world: SimWorld, episodes: list) -> dict[str, float]:
    """Mean share of the view each kind covers over a policy's moves (the frames its own moves
    reached: not a round's start, not a hold frame), plus `learnable` (periodic + movers +
    detail) and `<kind>_mostly`, the share of moves whose view that kind covers for the most part."""
    poses = [p for ep in episodes for p, a in zip(ep.poses, ep.actions, strict=True) if a >= 0]
    kinds = frame_kinds(world, poses)
    out = {k: float(v.mean()) for k, v in kinds.items()}
    out["learnable"] = float(sum(kinds[k] for k in LEARNABLE).mean())
    for k, v in kinds.items():
        out[f"{k}_mostly"] = float((v > 0.5).mean())
    out["moves"] = len(poses)
    return out


def dwell_ratios(policy: dict[str, float], random_dwell: dict[str, float]) -> dict[str, float | None]:
    """A policy's dwell per kind against the random policy's (None where random never looked)."""
    return {k: (v / random_dwell[k] if random_dwell.get(k) else None)
            for k, v in policy.items() if k != "moves"}
