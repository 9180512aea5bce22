"""The photographic backdrop: built from the sample photos on disk, and usable as `--panorama`."""

from __future__ import annotations

import numpy as np

from bench.photo_scene import main, photo_panorama, photo_panorama_file, photo_paths
from services.camera.sim import SimWorld, SimWorldConfig
from shared.pose import Pose


def test_the_photos_are_installed_files() -> None:
    paths = photo_paths()
    assert paths and all(p.is_file() for p in paths)


def test_photo_panorama_is_a_2_to_1_uint8_image() -> None:
    pano = photo_panorama(1024, 512)
    assert pano.shape == (512, 1024, 3) and pano.dtype == np.uint8
    band = pano[200:312].astype(np.float32)
    assert band.std() > 20  # photographs, not a flat fill
    # no seam at pan 0/360: the last and first columns are as alike as neighbours elsewhere
    seam = np.abs(band[:, -1] - band[:, 0]).mean()
    inside = np.abs(np.diff(band, axis=1)).mean()
    assert seam < 4.0 * inside + 2.0


def test_the_file_renders_through_the_simulator_with_its_zones(tmp_path) -> None:
    path = photo_panorama_file(tmp_path / "cache", width=1024)
    assert path.is_file() and photo_panorama_file(tmp_path / "cache", width=1024) == path
    written = path.stat().st_mtime_ns
    assert photo_panorama_file(tmp_path / "cache", width=1024).stat().st_mtime_ns == written  # once
    world = SimWorld(SimWorldConfig(seed=0, panorama_path=str(path)))
    assert world.info()["panorama_size"] == [1024, 512]
    screen = world.zone_poses(12.0)["screen"]
    assert not np.array_equal(world.render(screen, 1.0), world.render(screen, 2.0))
    view = world.render(Pose(90.0, 0.0, 1.0), 0.0)
    assert view.shape == (224, 224, 3) and view.std() > 10


def test_cli_writes_an_image(tmp_path) -> None:
    out = tmp_path / "photo.jpg"
    assert main(["--out", str(out), "--width", "512"]) == 0
    world = SimWorld(SimWorldConfig(panorama_path=str(out)))
    assert world.pano_width == 512 and world.pano_height == 256
