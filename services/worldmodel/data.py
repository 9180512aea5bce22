"""In-memory training data: frames with their poses, grouped into sweep rounds, and the batches
(windows of consecutive frames within one round) that training draws from them.

A round is what one camera captured in one go: a random absolute pose, then relative moves. Pairs
are only formed inside a round (frames of different rounds may be hours apart, and the pose change
between them says nothing about how the view changed). Batches are windows of `window_len`
consecutive frames so that pairs are mostly a few moves apart (what the dreamer imagines) and each
window doubles as a rollout chain along the real trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from shared.models.vit import prepare_frames
from shared.models.world_model import normalise_poses
from shared.pose import PoseRanges


class DataError(ValueError):
    """Training data that cannot be trained on (empty, mismatched lengths, no pairs)."""


@dataclass(frozen=True, eq=False)
class FrameDataset:
    """frames: uint8 (N, H, W, 3); poses: (N, 3) raw (pan, tilt, zoom); round_ids: (N,) ints;
    times: (N,) capture times in seconds (any origin: only differences inside a round are used).

    Frames of one round must appear in capture order (the order of moves).
    """

    frames: np.ndarray
    poses: np.ndarray
    round_ids: np.ndarray
    times: np.ndarray
    ranges: PoseRanges = field(default_factory=PoseRanges)

    def __post_init__(self) -> None:
        n = len(self.frames)
        if n == 0:
            raise DataError("the data set is empty: nothing to train on")
        if np.asarray(self.frames).dtype != np.uint8 or np.asarray(self.frames).ndim != 4:
            raise DataError("frames must be a uint8 array (N, H, W, 3)")
        if np.asarray(self.poses).shape != (n, 3):
            raise DataError(f"poses must be ({n}, 3), got {np.asarray(self.poses).shape}")
        if np.asarray(self.round_ids).shape != (n,):
            raise DataError(f"round_ids must be ({n},), got {np.asarray(self.round_ids).shape}")
        if not np.isfinite(np.asarray(self.poses, dtype=np.float64)).all():
            raise DataError("poses contain non-finite values")
        if not isinstance(self.times, np.ndarray) or self.times.shape != (n,):
            raise DataError(f"times must be an ({n},) array of capture seconds, got "
                            f"{getattr(self.times, 'shape', type(self.times).__name__)}")
        times = self.times.astype(np.float64)
        if not np.isfinite(times).all():
            raise DataError("times contain non-finite values")
        for r in self.rounds():
            if (np.diff(times[r]) < 0).any():
                raise DataError("times go backwards inside a round: frames must be in capture order")

    def __len__(self) -> int:
        return len(self.frames)

    def rounds(self) -> list[np.ndarray]:
        """Frame indices of each round (capture order kept), rounds in order of first appearance."""
        ids = np.asarray(self.round_ids)
        _, first = np.unique(ids, return_index=True)
        return [np.flatnonzero(ids == ids[i]) for i in sorted(first)]


class WindowSampler:
    """Prepared tensors of a FrameDataset and random windows of consecutive frames."""

    def __init__(self, data: FrameDataset, img_size: int, window_len: int,
                 windows_per_batch: int, chunk: int = 64):
        if window_len < 2:
            raise DataError("window_len must be at least 2 (a window must hold a pair)")
        usable = [r for r in data.rounds() if len(r) >= 2]
        if not usable:
            raise DataError("no round has two frames: there are no transitions to learn from")
        self.window_len = min(window_len, min(len(r) for r in usable))
        self.windows_per_batch = windows_per_batch
        # Windows as (start frame index list); every start position of every usable round.
        self.windows = np.array([r[s:s + self.window_len] for r in usable
                                 for s in range(len(r) - self.window_len + 1)])
        # Resize once and keep uint8 (4x smaller than float); normalise per batch.
        frames = []
        for i in range(0, len(data), chunk):
            x = torch.as_tensor(np.ascontiguousarray(data.frames[i:i + chunk]))
            x = x.permute(0, 3, 1, 2).float()
            if x.shape[-2:] != (img_size, img_size):
                x = F.interpolate(x, size=(img_size, img_size), mode="bilinear",
                                  align_corners=False, antialias=True)
            frames.append(x.round().clamp(0, 255).to(torch.uint8))
        self.frames = torch.cat(frames)
        self.poses = normalise_poses(np.asarray(data.poses, dtype=np.float64), data.ranges)
        # float64: capture times are POSIX seconds, which float32 would round to minutes.
        self.times = torch.from_numpy(np.asarray(data.times, dtype=np.float64))
        self.img_size = img_size
        self.n_frames = len(data)

    @property
    def frames_per_batch(self) -> int:
        return self.window_len * self.windows_per_batch

    def steps_per_epoch(self) -> int:
        """One epoch sees about as many frames as the data set holds (at least one step)."""
        return max(1, -(-self.n_frames // self.frames_per_batch))

    def sample(self, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """A batch: x (W*w, 3, S, S) prepared frames, poses (W, w, 4), times (W, w) float64
        seconds, frame_index (W, w)."""
        pick = torch.randint(len(self.windows), (self.windows_per_batch,), generator=gen)
        idx = torch.from_numpy(self.windows[pick.numpy()])
        return self.batch(idx)

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = idx.reshape(-1)
        x = prepare_frames(self.frames[flat].permute(0, 2, 3, 1), self.img_size)
        return {"x": x, "poses": self.poses[flat].reshape(*idx.shape, 4),
                "times": self.times[flat].reshape(idx.shape), "frame_index": idx}
