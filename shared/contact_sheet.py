"""A contact sheet: many frames as labelled thumbnails on one PNG, to see a collection at a glance."""

from __future__ import annotations

import math

import cv2
import numpy as np


def contact_sheet(frames: list[tuple[np.ndarray, str]], columns: int = 8, thumb: int = 128,
                  max_frames: int = 64) -> np.ndarray:
    """RGB uint8 grid of `frames` (RGB images with a caption each), evenly sampled to `max_frames`."""
    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    if len(frames) > max_frames:
        picks = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
        frames = [frames[i] for i in picks]
    columns = min(columns, len(frames))
    rows = math.ceil(len(frames) / columns)
    caption_h = 16
    cell_h = thumb + caption_h
    sheet = np.full((rows * cell_h, columns * thumb, 3), 24, np.uint8)
    for i, (image, caption) in enumerate(frames):
        r, c = divmod(i, columns)
        y, x = r * cell_h, c * thumb
        sheet[y:y + thumb, x:x + thumb] = cv2.resize(image, (thumb, thumb), interpolation=cv2.INTER_AREA)
        cv2.putText(sheet, caption[:24], (x + 3, y + thumb + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                    (230, 230, 230), 1, cv2.LINE_AA)
    return sheet
