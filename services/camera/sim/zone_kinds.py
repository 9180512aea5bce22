"""The zones whose kind is not "movers": the clock dial (periodic), the screen of static (noise) and
the notice board (detail), plus the static faces that every backdrop gets painted with.

`paint_overlays` paints the static part of these zones (the dial's face, the switched-off screen,
the board, the unlit sign) into any panorama, procedural or a user's file, when a `SimWorld` is
built, so the zones look the same over every backdrop and the mip levels of the panorama carry the
board's fine structure (averaged away in wide views, resolved in zoomed ones). The time-dependent
part (the hand, the random blocks) is drawn per instant into the zone canvases by `SceneDynamics`.
Drawing is in panorama pixels, so a zone's angular size is the same at every panorama resolution.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .layout import SiteLayout, angle_rect_px

_SHIFT = 4  # cv2 sub-pixel bits: the hand turns smoothly rather than in whole-pixel steps
_ONE = 1 << _SHIFT
_HAND = (200, 24, 24)
_HOUSING = (46, 44, 40)
_SCREEN_OFF = (18, 20, 24)


def sign_bulbs(width: int, height: int) -> list[tuple[int, int]]:
    """Centres of the sign's bulbs, in chase order: along the top row left to right, then along
    the bottom row right to left (around the panel)."""
    step = max(4, height // 6)
    xs = list(range(step // 2, width, step))
    return [(x, step // 3) for x in xs] + [(x, height - 1 - step // 3) for x in reversed(xs)]


def sign_face(width: int, height: int, lit: bool, chase: float | None = None) -> np.ndarray:
    """The sign's panel, uint8 RGB (height, width, 3): unlit tubes when off, bright text when on.

    With `chase` (the phase of the sign's period, 0..1) one bulb glows cyan, the one that far round
    the panel, so the sign's phase shows in a single frame whether the text is lit or not.
    """
    bg = (70, 12, 16) if lit else (38, 38, 42)
    fg = (255, 226, 70) if lit else (74, 72, 70)
    face = np.empty((height, width, 3), np.uint8)
    face[:] = bg
    text, font = "OPEN", cv2.FONT_HERSHEY_DUPLEX
    thick = max(1, height // 12)
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thick)
    scale = min(0.8 * width / tw, 0.6 * height / th)
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    cv2.putText(face, text, ((width - tw) // 2, (height + th) // 2), font, scale, fg, thick, cv2.LINE_AA)
    bulbs = sign_bulbs(width, height)
    radius = max(1, max(4, height // 6) // 4)
    bulb = (255, 250, 235) if lit else (90, 88, 84)
    lead = None if chase is None else min(int(chase * len(bulbs)), len(bulbs) - 1)
    for k, (x, y) in enumerate(bulbs):
        cv2.circle(face, (x, y), radius, (40, 230, 255) if k == lead else bulb, -1, cv2.LINE_AA)
    return face


def noise_blocks(seed: int, t: float, height: int, width: int, cell: int) -> np.ndarray:
    """Random RGB blocks of `cell` pixels, uint8 (height, width, 3): a pure function of (seed, t),
    independent across different t (the time's bits seed the generator)."""
    bits = int(np.float64(t).view(np.uint64))
    ss = np.random.SeedSequence([abs(int(seed)), int(seed < 0), 0x5E2EE4, bits >> 32, bits & 0xFFFFFFFF])
    rng = np.random.default_rng(ss)
    cells = rng.integers(0, 256, (-(-height // cell), -(-width // cell), 3), dtype=np.uint8)
    return np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]


def dial_geometry(width: int, height: int) -> tuple[float, float, float]:
    """Centre (x, y) and radius of the dial's face inside its box, in box pixels."""
    return width / 2.0, height / 2.0, 0.46 * min(width, height)


def dial_face(width: int, height: int) -> np.ndarray:
    """The clock's static face, uint8 RGB (height, width, 3): a white disk with twelve ticks and a
    hub, on a dark housing; the hand is drawn over it per instant (`draw_dial_hand`)."""
    face = np.empty((height, width, 3), np.uint8)
    face[:] = _HOUSING
    cx, cy, r = dial_geometry(width, height)
    cv2.circle(face, _pt(cx, cy), round(r * _ONE), (236, 234, 226), -1, cv2.LINE_AA, _SHIFT)
    for k in range(12):
        a = 2.0 * math.pi * k / 12.0
        inner = 0.72 if k % 3 == 0 else 0.82
        p0 = (cx + inner * r * math.sin(a), cy - inner * r * math.cos(a))
        p1 = (cx + 0.94 * r * math.sin(a), cy - 0.94 * r * math.cos(a))
        cv2.line(face, _pt(*p0), _pt(*p1), (30, 30, 34), max(1, round(r / 14)), cv2.LINE_AA, _SHIFT)
    return face


def draw_dial_hand(img: np.ndarray, x0: float, y0: float, width: int, height: int, phase: float) -> None:
    """The hand at `phase` (0..1, clockwise from twelve o'clock) on the dial whose box starts at
    (x0, y0) of `img`: a long red pointer and a short dark tail, so the angle reads unambiguously."""
    cx, cy, r = dial_geometry(width, height)
    cx, cy = cx + x0, cy + y0
    a = 2.0 * math.pi * phase
    sx, sy = math.sin(a), -math.cos(a)
    thick = max(1, round(r / 8))
    cv2.line(img, _pt(cx - 0.25 * r * sx, cy - 0.25 * r * sy), _pt(cx, cy), (30, 30, 34), thick,
             cv2.LINE_AA, _SHIFT)
    cv2.line(img, _pt(cx, cy), _pt(cx + 0.85 * r * sx, cy + 0.85 * r * sy), _HAND, thick, cv2.LINE_AA,
             _SHIFT)
    cv2.circle(img, _pt(cx, cy), max(1, round(0.09 * r * _ONE)), (30, 30, 34), -1, cv2.LINE_AA, _SHIFT)


def notice_board(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """The board's static face, uint8 RGB (height, width, 3): lines of small print on the left, a
    one-pixel wire mesh and two-pixel tiles on the right. Its structure is one to three panorama
    pixels fine, so a wide view (a coarser mip level) shows it as a flat tone."""
    board = np.empty((height, width, 3), np.uint8)
    board[:] = (226, 220, 196)
    split = width // 2
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "))
    line_h = 6
    for y in range(line_h, height - 1, line_h):
        text = "".join(rng.choice(letters, max(1, split // 3)))
        cv2.putText(board, text, (1, y), cv2.FONT_HERSHEY_PLAIN, 0.42, (20, 20, 30), 1, cv2.LINE_8)
    yy, xx = np.mgrid[0:height, 0:width - split]
    mesh = ((xx + yy) % 3 == 0) | ((xx - yy) % 3 == 0)
    tiles = ((xx // 2 + yy // 2) % 2 == 0)
    right = np.where(mesh[..., None], np.array((60, 64, 70), np.uint8),
                     np.where(tiles[..., None], np.array((180, 60, 50), np.uint8),
                              np.array((235, 235, 230), np.uint8)))
    right[:, : (width - split) // 2] = np.where(mesh[:, : (width - split) // 2, None],
                                                np.array((60, 64, 70), np.uint8),
                                                np.array((235, 235, 230), np.uint8))
    board[:, split:] = right
    board[:, split - 1: split + 1] = (90, 80, 60)
    return board


def paint_overlays(pano: np.ndarray, layout: SiteLayout, seed: int) -> np.ndarray:
    """A copy of `pano` with the static faces of the sign, dial, screen and board painted in."""
    out = pano.copy()
    rng = np.random.default_rng(np.random.SeedSequence([abs(int(seed)), int(seed < 0), 0xB0A2D]))
    h, w = pano.shape[:2]
    for rect, paint in ((layout.sign, lambda bw, bh: sign_face(bw, bh, lit=False)),
                        (layout.dial, dial_face),
                        (layout.screen, lambda bw, bh: np.full((bh, bw, 3), _SCREEN_OFF, np.uint8)),
                        (layout.board, lambda bw, bh: notice_board(bw, bh, rng))):
        x0, x1, y0, y1 = angle_rect_px(rect, w, h)
        _blit(out, x0, y0, paint(x1 - x0, y1 - y0))
    return out


def _blit(img: np.ndarray, x0: int, y0: int, patch: np.ndarray) -> None:
    """Copy `patch` into `img` at (x0, y0), columns wrapping around the panorama, rows clipped."""
    h = img.shape[0]
    r0, r1 = max(0, y0), min(h, y0 + patch.shape[0])
    if r1 <= r0:
        return
    cols = (x0 + np.arange(patch.shape[1])) % img.shape[1]
    img[r0:r1, cols] = patch[r0 - y0:r1 - y0]


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x * _ONE), round(y * _ONE)
