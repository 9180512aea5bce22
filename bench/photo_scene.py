"""A photographic backdrop for the simulator: real photographs tiled around 360 degrees of pan.

`photo_panorama()` builds an equirectangular RGB image from the photographs that installed packages
ship (scikit-learn's sample images china.jpg and flower.jpg, when scikit-learn is installed, and
matplotlib's grace_hopper.jpg), nothing downloaded. The photos, some mirrored, stand side by side in
the band of tilt -32..32 degrees that the camera sees most, cross-faded where they meet (the seam at
pan 0/360 included); above and below, the band is mirrored and fades, ever more blurred, into the
mean colour of its top (sky) and bottom (ground) rows, so the poles carry no seam. `SimWorld` paints
its zones (movers, dial, screen, board) over it as over any panorama:
`python bench/photo_scene.py --out photo.png`, then `--panorama photo.png` (or
`SimWorldConfig(panorama_path=...)`). Benches call `photo_panorama_file(cache_dir)`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

BAND_DEG = 64.0  # the photos fill tilt -32..32 degrees
PHOTO_SCENE_VERSION = 1  # part of the cache file name: bump when the image changes


def photo_paths() -> list[Path]:
    """The sample photographs on disk: scikit-learn's (if installed) and matplotlib's."""
    from matplotlib import cbook

    paths = []
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        images = Path(spec.origin).parent / "datasets" / "images"
        paths += [images / name for name in ("china.jpg", "flower.jpg") if (images / name).is_file()]
    paths.append(Path(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))))
    return paths


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read sample photo {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _tiles(photos: list[np.ndarray]) -> list[np.ndarray]:
    """At least five tiles: the photos, then mirrored copies of them, in turn."""
    tiles = list(photos)
    k = 0
    while len(tiles) < 5:
        tiles.append(photos[k % len(photos)][:, ::-1])
        k += 1
    return tiles


def _ring(tiles: list[np.ndarray], width: int, band_h: int) -> np.ndarray:
    """The tiles side by side around the full circle, float32 (band_h, width, 3), each fading in
    over the previous one across `overlap` columns (wrapping at the right edge)."""
    n = len(tiles)
    tile_w = width // n
    overlap = max(2, tile_w // 12)
    ring = np.zeros((band_h, width, 3), np.float32)
    ramp = np.linspace(0.0, 1.0, overlap, dtype=np.float32)[None, :, None]
    first = np.zeros((band_h, overlap, 3), np.float32)
    for i, tile in enumerate(tiles):
        w = (width - tile_w * (n - 1) if i == n - 1 else tile_w) + overlap
        img = cv2.resize(tile, (w, band_h), interpolation=cv2.INTER_AREA).astype(np.float32)
        cols = (i * tile_w - overlap + np.arange(w)) % width
        if i == 0:
            first = img[:, :overlap].copy()
        else:
            img[:, :overlap] = ring[:, cols[:overlap]] * (1.0 - ramp) + img[:, :overlap] * ramp
        ring[:, cols] = img
    # the first tile fades in over the end of the last one: no seam at pan 0/360
    cols = np.arange(width - overlap, width)
    ring[:, cols] = ring[:, cols] * (1.0 - ramp) + first * ramp
    return ring


def _extend(band: np.ndarray, rows: int) -> np.ndarray:
    """`rows` rows continuing the band away from its first row (index 0 = next to the band): the
    band mirrored, blurred more and more, fading into the mean colour of its edge rows."""
    if rows <= 0:
        return np.zeros((0, band.shape[1], 3), np.float32)
    reps = -(-rows // band.shape[0])
    mirrored = np.concatenate([band[::-1] if k % 2 else band for k in range(reps)], axis=0)[:rows]
    blurred = cv2.GaussianBlur(mirrored, (0, 0), sigmaX=max(2.0, band.shape[1] / 100.0),
                               sigmaY=max(2.0, rows / 15.0))
    edge = band[: max(1, band.shape[0] // 20)].mean(axis=(0, 1))
    d = (np.arange(rows, dtype=np.float32) / rows)[:, None, None]
    sharp = np.clip(1.0 - 8.0 * d, 0.0, 1.0)
    flat = np.clip((d - 0.05) / 0.45, 0.0, 1.0)
    out = mirrored * sharp + blurred * (1.0 - sharp)
    return out * (1.0 - flat) + edge[None, None, :] * flat


def photo_panorama(width: int = 4096, height: int = 2048) -> np.ndarray:
    """The photographic backdrop, RGB uint8 (height, width, 3), 2:1 equirectangular."""
    if width != 2 * height or height < 64:
        raise ValueError(f"a panorama must be 2:1 and at least 128x64, got {width}x{height}")
    band_h = round(height * BAND_DEG / 180.0)
    top = (height - band_h) // 2
    bottom = height - band_h - top
    ring = _ring(_tiles([_read(p) for p in photo_paths()]), width, band_h)
    sky = _extend(ring, top)[::-1]  # row 0 of the extension touches the band
    ground = _extend(ring[::-1], bottom)
    pano = np.concatenate([sky, ring, ground], axis=0)
    return np.clip(pano + 0.5, 0, 255).astype(np.uint8)


def photo_panorama_file(cache_dir: Path, width: int = 4096) -> Path:
    """A PNG of `photo_panorama(width, width // 2)` under `cache_dir`, written once (atomically,
    so concurrent benches never read half a file); returns its path."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"photo_panorama_v{PHOTO_SCENE_VERSION}_{width}x{width // 2}.png"
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_panorama(path, photo_panorama(width, width // 2), cache_dir)
    return path


def write_panorama(path: Path, pano: np.ndarray, tmp_dir: Path | None = None) -> None:
    """Write `pano` (RGB) to `path` in the format its suffix names (.png, .jpg), atomically."""
    ok, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(pano, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode a panorama as {path.suffix!r}")
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.tobytes())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the photographic backdrop for --panorama")
    parser.add_argument("--out", type=Path, required=True, help="image file to write (.png or .jpg)")
    parser.add_argument("--width", type=int, default=4096, help="width in pixels (height is half)")
    args = parser.parse_args(argv)
    if args.width % 2:
        parser.error("--width must be even")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_panorama(args.out, photo_panorama(args.width, args.width // 2))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
