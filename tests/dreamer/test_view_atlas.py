"""The view atlas: token directions agree with the simulator's pinhole camera, visibility is
exact, and measured token errors become a map of the scene that any pose can read."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.camera.sim.projection import camera_rays, view_fractions
from services.dreamer.view_atlas import (
    RESOLUTION_DEG,
    fit_view_atlas,
    held_in_place,
    holds,
    view_coords,
    view_rays,
)

HFOV = 60.0


def yaw_pitch(rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.degrees(np.arctan2(rays[..., 0], rays[..., 2])) % 360.0,
            np.degrees(np.arcsin(np.clip(rays[..., 1], -1, 1))))


@pytest.mark.parametrize("pose", [(0.0, 0.0, 1.0), (123.0, -25.0, 3.0), (350.0, 28.0, 9.5)])
def test_rays_match_the_simulated_camera(pose):
    """Each token's direction is the direction of the simulator's pixel at that cell's centre."""
    grid = 8
    yaw, pitch = yaw_pitch(view_rays([pose], HFOV, grid)[0])
    u, v = view_fractions(camera_rays(grid, grid, HFOV / pose[2]), pose[0], pose[1])
    sim_yaw, sim_pitch = u * 360.0, 90.0 - v * 180.0
    dyaw = (yaw - sim_yaw + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(dyaw, 0.0, atol=1e-3)
    np.testing.assert_allclose(pitch, sim_pitch, atol=1e-3)


def in_view(rays, poses, hfov):
    return (np.abs(view_coords(rays, poses, hfov)) <= 1.0).all(-1)


def test_view_coordinates_are_exact():
    pose = np.array([[90.0, 0.0, 2.0]])  # hfov 30 deg
    rays = view_rays(pose, HFOV, 8)
    assert in_view(rays, pose, HFOV).all()
    assert not in_view(rays, [[270.0, 0.0, 2.0]], HFOV).any()  # behind the camera
    # Panned right by half the view: the left half of the old cells is now out of view.
    seen = in_view(rays, [[105.0, 0.0, 2.0]], HFOV).reshape(8, 8)
    assert seen[:, 4:].all() and not seen[:, :3].any()
    # Zoomed in 4x about the same axis: only the central cells stay in view.
    seen = in_view(rays, [[90.0, 0.0, 8.0]], HFOV).reshape(8, 8)
    assert seen[3:5, 3:5].all() and seen.sum() == 4


def test_held_in_place_keeps_what_stayed_within_a_cell():
    dest = np.array([[90.0, 0.0, 2.0]] * 3)  # hfov 30 deg, a cell is 3.75 deg
    src = np.array([[90.0, 0.0, 2.0],        # held still
                    [91.0, 0.0, 2.0],        # a short move: under a third of a cell
                    [97.5, 0.0, 2.0]])       # half the view: half of it still in view, slid
    held = held_in_place(src, dest, HFOV, 8)
    assert held[0].all() and held[1].all() and not held[2].any()
    zoomed = held_in_place(dest[:1], [[90.0, 0.0, 8.0]], HFOV, 8)[0].reshape(8, 8)  # 4x closer
    assert zoomed[3:5, 3:5].all() and zoomed.sum() == 4


def test_holds_are_views_held_still():
    dest = np.array([[90.0, 0.0, 2.0], [359.99, 0.0, 2.0], [90.0, 30.0, 10.0], [90.0, 0.0, 2.0],
                     [90.0, 0.0, 2.2]])
    src = np.array([[90.0, 0.0, 2.0],      # a no-op
                    [0.0, 0.0, 2.0],       # across the pan seam, 0.01 deg: pose jitter
                    [90.0, 30.0, 10.0],    # a zoom-in clamped at the limit: nothing moved
                    [91.0, 0.0, 2.0],      # a quarter of a cell: held in place, not a hold
                    [90.0, 0.0, 2.0]])     # zoomed in 10%: the edge cells moved
    assert holds(src, dest, HFOV, 8).tolist() == [True, True, True, False, False]
    assert held_in_place(src, dest, HFOV, 8)[3].all()


def hot(rays: np.ndarray, yaw0: float, yaw1: float) -> np.ndarray:
    """A dynamic zone: yaw in [yaw0, yaw1) (may wrap past 360), pitch -20..0."""
    yaw, pitch = yaw_pitch(rays)
    inside = ((yaw - yaw0) % 360.0 < (yaw1 - yaw0) % 360.0) & (pitch > -20) & (pitch < 0)
    return np.where(inside, 1.0, 0.1)


def random_poses(rng, n, zoom=(1.0, 10.0)):
    return np.stack([rng.uniform(0, 360, n), rng.uniform(-30, 30, n),
                     np.exp(rng.uniform(math.log(zoom[0]), math.log(zoom[1]), n))], 1)


def test_atlas_finds_a_zone_across_zooms_and_the_pan_seam():
    """Fitted on wide views only, it still rates zoomed-in views inside the zone high, views
    beside it low, and directions it never saw at the mean (no bonus)."""
    rng = np.random.default_rng(0)
    poses = random_poses(rng, 300, zoom=(1.0, 2.0))
    poses[:, 1] = rng.uniform(-30, 0, 300)  # nothing ever looked far up
    rays = view_rays(poses, HFOV, 8)
    atlas = fit_view_atlas(poses, hot(rays, 340.0, 20.0), np.ones((300, 64), bool), HFOV)
    inside = atlas.view([[0.0, -10.0, 8.0], [350.0, -10.0, 6.0], [15.0, -8.0, 10.0]])
    outside = atlas.view([[180.0, -10.0, 8.0], [90.0, -20.0, 4.0]])
    unseen = atlas.view([[180.0, 88.0, 10.0]])
    assert inside.min() > 0.7 and outside.max() < 0.15
    assert unseen[0] == pytest.approx(atlas.mean)
    assert atlas.tokens == 300 * 64 and 0.0 < atlas.observed_fraction() < 1.0


def test_only_masked_tokens_count():
    rng = np.random.default_rng(1)
    poses = random_poses(rng, 50)
    errors = np.full((50, 64), 0.1)
    errors[:, :8] = 5.0  # the top row: masked out below, as content new to the view is
    mask = np.ones((50, 64), bool)
    mask[:, :8] = False
    atlas = fit_view_atlas(poses, errors, mask, HFOV)
    assert atlas.mean == pytest.approx(0.1)
    np.testing.assert_allclose(atlas.view(poses), 0.1)


def test_bin_size_is_what_the_docs_say():
    assert 360.0 / RESOLUTION_DEG == int(360.0 / RESOLUTION_DEG)


def test_fit_rejects_bad_input():
    poses = np.array([[0.0, 0.0, 1.0], [10.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="no measured token"):
        fit_view_atlas(poses, np.ones((2, 64)), np.zeros((2, 64), bool), HFOV)
    with pytest.raises(ValueError, match="square grid"):
        fit_view_atlas(poses, np.ones((2, 10)), np.ones((2, 10), bool), HFOV)
    with pytest.raises(ValueError, match="finite"):
        fit_view_atlas(poses, np.full((2, 64), np.nan), np.ones((2, 64), bool), HFOV)
    with pytest.raises(ValueError, match=r"\(M, N\)"):
        fit_view_atlas(poses, np.ones((3, 64)), np.ones((3, 64), bool), HFOV)
