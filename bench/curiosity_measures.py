"""What bench/curiosity.py measures about a policy's camera steps and about a world model.

Ground truth comes from the simulator: `SimWorld.dynamic_zone_fraction(pose)` says how much of a
view lies in the known dynamic zones, and re-rendering a view one no-op move later gives the
frame a camera holding still would see, so the world model's TRUE error (not its predicted
surprise) can be measured at any visited view.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from services.camera.sim.camera import SimCamera, SimCameraConfig
from services.camera.sim.world import SimWorld
from services.dreamer.rollout import encode_frames
from services.worldmodel.data import FrameDataset
from services.worldmodel.evaluate import spearman
from shared.models.surprise import per_transition_error
from shared.models.world_model import normalise_poses
from shared.pose import Pose, PoseRanges, random_pose

DYNAMIC = 0.5  # a view is "mostly dynamic" when more than half of it lies in a dynamic zone



# A camera that holds still grabs its next frame one no-op move later (SimCamera's timing).
HOLD_S = SimCameraConfig().settle_base_s + SimCameraConfig().snapshot_s


@torch.no_grad()
def transition_stats(model, ep, world: SimWorld) -> dict:
    """Per move in `ep`: the WM's true error at the view reached (`view_error`: its error for
    holding still there, against the same view rendered one no-op move later: what the WM
    cannot predict about that view, whatever move led there), the true error of the move itself
    (`error`), the predicted surprises, and the dynamic fraction of the view."""
    states = encode_frames(model, np.stack(ep.frames))
    poses = np.array(ep.poses)
    src = [i for i in range(1, len(ep.frames)) if ep.actions[i] >= 0]
    src_i = torch.tensor([i - 1 for i in src])
    dst_i = torch.tensor(src)
    size = ep.frames[0].shape[0]
    later = encode_frames(model, np.stack([world.render(Pose(*poses[i]), ep.times[i] + HOLD_S,
                                                        size, size) for i in src]))
    pf = normalise_poses(poses[src_i.numpy()], world.ranges)
    pt = normalise_poses(poses[dst_i.numpy()], world.ranges)
    times = np.array(ep.times, dtype=np.float64)
    pred, surprise = model.predict(states[src_i], pf, pt,
                                   dt=times[dst_i.numpy()] - times[src_i.numpy()])
    # holding still (for as long as the later render is ahead): the view surprise
    stay, view = model.predict(states[dst_i], pt, pt, dt=HOLD_S)
    err = per_transition_error(pred[:, None], states[dst_i][:, None])[:, 0]
    view_err = per_transition_error(stay[:, None], later[:, None])[:, 0]
    dyn = np.array([world.dynamic_zone_fraction(Pose(*poses[i])) for i in src])
    return {"error": err.numpy(), "view_error": view_err.numpy(), "surprise": surprise.numpy(),
            "view_surprise": view.numpy(), "dynamic": dyn,
            "actions": np.array([ep.actions[i] for i in src]),
            "tilt": poses[dst_i.numpy(), 1], "zoom": poses[dst_i.numpy(), 2],
            "poses": poses[dst_i.numpy()]}


@torch.no_grad()
def held_out_error(model, held: FrameDataset, dynamic: np.ndarray | None = None) -> dict:
    """One-step error on the held-out rounds against the copy baseline (mean squared error per
    transition, as services.worldmodel.evaluate.rollout_errors at horizon 1). With `dynamic`
    (each held-out frame's dynamic fraction) also per region: the transitions that end on a
    mostly dynamic view and those that end on a static one (a WM that learned the zones its
    agent watched shows it there even when its average over the whole scene does not move)."""
    states = encode_frames(model, held.frames)
    poses = normalise_poses(np.asarray(held.poses, dtype=np.float64), held.ranges)
    pairs = [(r[k], r[k + 1]) for r in held.rounds() for k in range(len(r) - 1)]
    src, dst = (torch.tensor(ix) for ix in zip(*pairs, strict=True))
    times = np.asarray(held.times, dtype=np.float64)
    pred, _ = model.predict(states[src], poses[src], poses[dst],
                            dt=times[dst.numpy()] - times[src.numpy()])
    err = (pred - states[dst]).pow(2).flatten(1).mean(1).numpy()
    base = (states[src] - states[dst]).pow(2).flatten(1).mean(1).numpy()
    out = {"error": float(err.mean()), "copy_error": float(base.mean()),
           "ratio": float(err.mean() / base.mean())}
    if dynamic is not None:
        for name, mask in (("dynamic", dynamic[dst] > DYNAMIC), ("static", dynamic[dst] < 0.1)):
            out[f"{name}_transitions"] = int(mask.sum())
            out[f"{name}_ratio"] = (float(err[mask].mean() / base[mask].mean()) if mask.any()
                                    else None)
    return out


def region_gain(agent: dict, random_arm: dict, region: str) -> float | None:
    a, r = agent.get(f"{region}_ratio"), random_arm.get(f"{region}_ratio")
    return a / r if a is not None and r else None


def stay_pairs(world: SimWorld, rng: random.Random, n: int, t0: float, size: int) -> dict:
    """`n` random views, each grabbed twice by a camera that holds still in between (one move's
    time apart: `dt`, seconds), with each view's dynamic fraction: the ground truth of the view
    surprise."""
    cam = SimCamera(world, SimCameraConfig(start_time_s=t0))
    first, second, poses, dt = [], [], [], []
    for _ in range(n):
        pose = cam.move_absolute(world.ranges.apply(random_pose(rng, world.ranges)))
        image, _, t = cam.snapshot(size, size)
        first.append(image)
        cam.move_absolute(pose)
        image, _, t_later = cam.snapshot(size, size)
        second.append(image)
        poses.append(pose.as_tuple())
        dt.append(t_later - t)
    return {"first": np.stack(first), "second": np.stack(second), "poses": np.array(poses),
            "dt": np.array(dt), "dynamic": np.array([world.dynamic_zone_fraction(Pose(*p)) for p in poses])}


@torch.no_grad()
def view_check(model, pairs: dict, ranges: PoseRanges, emap=None) -> dict:
    """Does the WM's predicted view surprise (holding still) rank the views as its true error
    for holding still does, and does it see the dynamic zones? With `emap`, the same for the
    measured error map's view term."""
    a, b = encode_frames(model, pairs["first"]), encode_frames(model, pairs["second"])
    p = normalise_poses(pairs["poses"], ranges)
    # a stay transition: its surprise is the view surprise
    pred, view = model.predict(a, p, p, dt=pairs["dt"])
    err = per_transition_error(pred[:, None], b[:, None])[:, 0].numpy()
    view = view.numpy()
    dyn = pairs["dynamic"]
    out = {}
    if emap is not None:
        mapped = emap.view(pairs["poses"])
        top = mapped >= np.quantile(mapped, 0.9)
        out = {"spearman_map_view_vs_true_stay_error": spearman(mapped, err),
               "spearman_map_view_vs_dynamic_fraction": spearman(mapped, dyn),
               # What an agent that climbs the map finds: the views it rates highest.
               "map_top_decile_dynamic_fraction": float(dyn[top].mean()),
               "map_top_decile_true_stay_error": float(err[top].mean()),
               "dynamic_fraction_mean": float(dyn.mean()), "true_stay_error_mean": float(err.mean()),
               "map_view_dynamic_views": masked_mean(mapped, dyn > DYNAMIC),
               "map_view_static_views": masked_mean(mapped, dyn < 0.1)}
    return {**out, "spearman_view_surprise_vs_true_stay_error": spearman(view, err),
            "spearman_view_surprise_vs_dynamic_fraction": spearman(view, dyn),
            "spearman_true_stay_error_vs_dynamic_fraction": spearman(err, dyn),
            "true_stay_error_dynamic_views": masked_mean(err, dyn > DYNAMIC),
            "true_stay_error_static_views": masked_mean(err, dyn < 0.1),
            "view_surprise_dynamic_views": masked_mean(view, dyn > DYNAMIC),
            "view_surprise_static_views": masked_mean(view, dyn < 0.1)}


def summarise(stats: dict) -> dict:
    return {"map_view": float(np.mean(stats["map_view"])),
            "true_view_error": float(np.mean(stats["view_error"])),
            "true_error": float(np.mean(stats["error"])),
            "predicted_surprise": float(np.mean(stats["surprise"])),
            "predicted_view_surprise": float(np.mean(stats["view_surprise"])),
            "mean_tilt": float(np.mean(stats["tilt"])),
            "mean_log_zoom": float(np.mean(np.log(stats["zoom"]))),
            "dwell": float(np.mean(stats["dynamic"] > DYNAMIC)),
            "mean_dynamic_fraction": float(np.mean(stats["dynamic"])),
            "jump_share": float(np.mean(stats["actions"] >= 17)),
            "zoom_in_share": float(np.mean(np.isin(stats["actions"], (9, 15))))}


def vs_random(summary: dict, policy: str) -> dict:
    """A policy's seeking ratios (the WM's true error of the moves to the views it reached; and
    for holding still at them) and dwell ratio against the random policy's (None when random
    never dwelt)."""
    rnd, pol = summary["random"], summary[policy]
    return {"seeking_ratio": pol["true_error"] / rnd["true_error"],
            "seeking_ratio_view": pol["true_view_error"] / rnd["true_view_error"],
            "dwell_ratio": pol["dwell"] / rnd["dwell"] if rnd["dwell"] > 0 else None}


def masked_mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def merge(stats_list: list[dict]) -> dict:
    return {k: np.concatenate([s[k] for s in stats_list]) for k in stats_list[0]}


def diagnostics(every: dict) -> dict:
    """Over every measured transition (merged stats of all policies): does the WM's predicted
    surprise follow the dynamic zones and rank its true error, and where is the true error high."""
    dyn_mask, static_mask = every["dynamic"] > DYNAMIC, every["dynamic"] < 0.1
    return {
        "spearman_predicted_surprise_vs_dynamic_fraction": spearman(every["surprise"], every["dynamic"]),
        "spearman_true_error_vs_dynamic_fraction": spearman(every["error"], every["dynamic"]),
        "spearman_predicted_surprise_vs_true_error": spearman(every["surprise"], every["error"]),
        "spearman_view_surprise_vs_dynamic_fraction": spearman(every["view_surprise"],
                                                               every["dynamic"]),
        "spearman_true_view_error_vs_dynamic_fraction": spearman(every["view_error"],
                                                                 every["dynamic"]),
        "true_view_error_dynamic_views": masked_mean(every["view_error"], dyn_mask),
        "true_view_error_static_views": masked_mean(every["view_error"], static_mask),
        "predicted_surprise_dynamic_views": masked_mean(every["surprise"], dyn_mask),
        "predicted_surprise_static_views": masked_mean(every["surprise"], static_mask),
        "true_error_dynamic_views": masked_mean(every["error"], dyn_mask),
        "true_error_static_views": masked_mean(every["error"], static_mask),
        "true_error_jumps": float(every["error"][every["actions"] >= 17].mean()),
        "true_error_non_jumps": float(every["error"][every["actions"] < 17].mean()),
    }
