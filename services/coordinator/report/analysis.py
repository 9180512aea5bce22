"""World-model measurements on recorded frames: embeddings, surprise and one-step errors.

Used by the report and by `ptzjepa export-embeddings`. A version is loaded from the store (its
resume file when present, which holds the context encoder too, else its sharing file), frames are
decoded and encoded round by round (memory stays bounded by one round), and every move inside a
round (frame i -> frame i+1, the transitions the world model learns) is predicted:

- `error`: mean squared error between the predicted state and the observed next state, the same
  measure navigation records as `observed_error`;
- `copy_error`: the same error of the "nothing moves" baseline (the next state = this state);
- `surprise`: the model's own predicted surprise for the move (its primary surprise head).

torch is imported here only; the coordinator API never loads this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from shared.frames import capture_seconds
from shared.pose import PoseRanges
from shared.schemas import FrameRecord
from shared.store import Store, StoreError

if TYPE_CHECKING:  # the model module loads torch, which importing this module must not
    from shared.models.world_model import WorldModel

log = logging.getLogger(__name__)


class ModelUnavailable(LookupError):
    pass


@dataclass
class LoadedVersion:
    slot: str
    version: str
    model: WorldModel
    kind: str  # "resume" (all encoders) or "share" (context encoder = target encoder)
    meta: dict


def load_version(store: Store, slot: str, version: str, prefer_resume: bool = True) -> LoadedVersion:
    from shared import versions
    from shared.models.checkpoint import CheckpointError, model_from_bytes

    try:
        meta = versions.read_meta(store, slot, version)
    except (StoreError, versions.VersionError) as exc:
        raise ModelUnavailable(f"world model {slot}/{version[:12]}: {exc}") from None
    errors = []
    order = ("resume", "share") if prefer_resume else ("share", "resume")
    for kind in order:
        try:
            data = versions.read_resume(store, slot, version) if kind == "resume" else \
                versions.read_share(store, slot, version)
            return LoadedVersion(slot, version, model_from_bytes(data), kind, meta)
        except (StoreError, CheckpointError, KeyError) as exc:
            errors.append(f"{kind}: {exc}")
    raise ModelUnavailable(f"world model {slot}/{version[:12]} cannot be loaded ({'; '.join(errors)})")


def find_version(store: Store, slot: str | None, version: str | None, metas: list[dict] | None = None,
                 redis_latest=None, redis_newest=None) -> tuple[str, str]:
    """Resolve (slot, version): as given; a slot's latest; or the newest version of any slot.

    `redis_latest(slot)` / `redis_newest()` (optional) answer from the published records in Redis;
    without them (or when they know nothing) the newest metadata file in the store is taken.
    """
    if version is not None and slot is not None:
        return slot, version
    if metas is None:
        from services.coordinator.report.data import read_versions
        metas = read_versions(store, [])
    if version is not None:
        hits = [m for m in metas if m["version"] == version]
        if not hits:
            raise ModelUnavailable(f"no world-model version {version[:12]} in the store")
        return hits[0]["slot"], version
    if slot is not None:
        if redis_latest is not None:
            rec = redis_latest(slot)
            if rec:
                return slot, rec["version"]
        hits = [m for m in metas if m["slot"] == slot]
        if not hits:
            raise ModelUnavailable(f"slot {slot} has no published version in the store")
        return slot, hits[-1]["version"]
    if redis_newest is not None:
        rec = redis_newest()
        if rec:
            return rec["slot"], rec["version"]
    if not metas:
        raise ModelUnavailable("no world-model version in the store yet: run the worldmodel phase")
    return metas[-1]["slot"], metas[-1]["version"]


# ---- frames ----------------------------------------------------------------------------------
class FrameCache:
    """Decoded frames resized to a model's input size, read once per size."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self.unreadable: dict[str, str] = {}

    def get(self, record: FrameRecord, size: int) -> np.ndarray | None:
        key = (record.path, size)
        if key not in self._cache:
            if record.path in self.unreadable:
                return None
            try:
                rgb = self.store.read_image(record.path)
            except StoreError as exc:
                self.unreadable[record.path] = str(exc)
                return None
            self._cache[key] = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        return self._cache[key]


@dataclass
class Measured:
    """Per-frame results of one version over a set of rounds, in the order of `records`."""

    records: list[FrameRecord] = field(default_factory=list)
    target: list[np.ndarray] = field(default_factory=list)  # token-mean target state (D,)
    context: list[np.ndarray] = field(default_factory=list)  # token-mean context state (D,)
    predicted: list[np.ndarray | None] = field(default_factory=list)  # token-mean prediction of this frame
    error: list[float] = field(default_factory=list)  # NaN for a round's first frame
    copy_error: list[float] = field(default_factory=list)
    surprise: list[float] = field(default_factory=list)
    tokens: dict[str, list[np.ndarray]] = field(default_factory=dict)  # full tokens when asked

    def arrays(self) -> dict[str, np.ndarray]:
        d = len(self.target[0]) if self.target else 0
        pred = np.stack([p if p is not None else np.full(d, np.nan, np.float32)
                         for p in self.predicted]) if self.predicted else np.zeros((0, d), np.float32)
        return {"target": np.stack(self.target) if self.target else np.zeros((0, d), np.float32),
                "context": np.stack(self.context) if self.context else np.zeros((0, d), np.float32),
                "predictor": pred,
                "error": np.asarray(self.error, np.float32),
                "copy_error": np.asarray(self.copy_error, np.float32),
                "surprise": np.asarray(self.surprise, np.float32)}


def measure(loaded: LoadedVersion, rounds: list[list[FrameRecord]], frames: FrameCache,
            ranges: PoseRanges, *, with_context: bool = False, keep_tokens: bool = False,
            batch: int = 64) -> Measured:
    """Encode every readable frame of `rounds` and predict every move inside each round."""
    import torch

    from shared.models.vit import prepare_frames

    model = loaded.model
    size = model.cfg.encoder.img_size
    out = Measured()
    if keep_tokens:
        out.tokens = {"context": [], "target": [], "predictor": []}
    with torch.no_grad():
        for records in rounds:
            usable = [(r, img) for r in records if (img := frames.get(r, size)) is not None]
            # a missing frame splits the chain: only consecutive steps are one move apart
            chains: list[list[tuple[FrameRecord, np.ndarray]]] = []
            for r, img in usable:
                if chains and chains[-1][-1][0].step == r.step - 1:
                    chains[-1].append((r, img))
                else:
                    chains.append([(r, img)])
            for chain in chains:
                for start in range(0, len(chain), batch):
                    # overlap one frame so that the move into the first frame of a batch is seen
                    lo = max(0, start - 1)
                    part = chain[lo:start + batch]
                    x = prepare_frames(np.stack([img for _, img in part]), size)
                    target = model.encode_target(x)
                    context = model.encode_context(x) if with_context else None
                    poses = [r.pose.to_pose().as_tuple() for r, _ in part]
                    if len(part) > 1:
                        # each move for the seconds between its frames, as the trainer pairs them
                        times = np.array([capture_seconds(r) for r, _ in part])
                        pred, surprise = model.predict(target[:-1], poses[:-1], poses[1:], ranges,
                                                       dt=np.diff(times))
                        err = ((pred - target[1:]) ** 2).mean(dim=(1, 2))
                        copy = ((target[:-1] - target[1:]) ** 2).mean(dim=(1, 2))
                    first_new = start - lo
                    for k in range(first_new, len(part)):
                        r = part[k][0]
                        out.records.append(r)
                        out.target.append(target[k].mean(0).float().numpy())
                        if context is not None:
                            out.context.append(context[k].mean(0).float().numpy())
                        if k == 0:
                            out.predicted.append(None)
                            out.error.append(float("nan"))
                            out.copy_error.append(float("nan"))
                            out.surprise.append(float("nan"))
                        else:
                            out.predicted.append(pred[k - 1].mean(0).float().numpy())
                            out.error.append(float(err[k - 1]))
                            out.copy_error.append(float(copy[k - 1]))
                            out.surprise.append(float(surprise[k - 1]))
                        if keep_tokens:
                            d = target.shape[1:]
                            out.tokens["target"].append(target[k].float().numpy())
                            out.tokens["context"].append(
                                (context if context is not None else target)[k].float().numpy())
                            out.tokens["predictor"].append(
                                pred[k - 1].float().numpy() if k > 0 else np.full(d, np.nan, np.float32))
    return out
