"""Dreams: the agent's observation function and the dream shard format (dreamer writes, agent reads).

The observation (one space for dreams, agent training and run time)
------------------------------------------------------------------
A world-model *state* is the target encoder's layer-normed tokens (B, N, D): `encode_state` makes
one from a camera frame at run time and `predict` makes the next one in a dream. The agent does not
need all N x D numbers (256 x 192 at the paper preset: 200 KB per step in fp32), so it observes

    observation = [ mean over all tokens (D) | mean over each cell of a g x g grid of tokens (g*g*D)
                    | normalised pose (sin pan, cos pan, tilt, log zoom) (4) ]

`observation_from_states` is that function, and it is the only one: the dreamer applies it to
imagined states, `services.agent.observe` applies it to `encode_state(frame)`. Because the world
model's states are one space (target-encoder space, in which the predictor is trained to roll out),
dream observations and run-time observations are the same space too. The pooling grid keeps
coarse spatial layout (where in the view something is), the global mean the overall content; the
pose tells the agent where it is pointing, which the original agent never saw.

Shard format
------------
A dream job writes a few safetensors shards (not a file per dream) through `Store.write_tensors`
(atomic, immutable), then one `index.json` listing them with their sha256, so a reader never sees a
half-written job (no index: the job did not finish). Each shard holds, for `count` dreams of
`length` steps:

    observations   float16 (count, length + 1, obs_dim)
    poses          float32 (count, length + 1, 3)      raw (pan, tilt, zoom), wrapped/clamped
    actions        int64   (count, length)             indices into shared.pose.ACTIONS
    surprise       float32 (count, length)             WM primary surprise of transition t
    surprise_delta float32 (count, length)             surprise[t] - surprise[t-1] (0 at t = 0)
    dt             float32 (count, length)             seconds step t takes: move_times of a_t
    view_surprise  float32 (count, length + 1)         WM surprise of holding still at state t
                                                       for the no-op's seconds
    measured_move  float32 (count, length)             measured error map's move term of a_t
    measured_view  float32 (count, length + 1)         its view term at pose t (both present or
                                                       both absent: the map needs real
                                                       transitions, services.dreamer.error_map)
    progress_move  float32 (count, length)             progress map's move term of a_t
    progress_view  float32 (count, length + 1)         its view term at pose t (both or neither:
                                                       services.dreamer.progress; format 5)

and JSON metadata: format, format_version, slot, version, node, length, count, obs_dim, the
observation spec, the action scale, the pose ranges and the move times the dream was made with
(`shared.move_times.MoveTimes`, also in the index). `read_shard` checks all of it (also that
every step's dt is its action's move time) and raises `DreamShardError` (a
`shared.store.CorruptFile`) naming the file when anything is off.

Dreams advance time: the world model predicts each step for the seconds its action takes on this
site (measured from the node's recorded rounds), as it predicts real transitions for the seconds
between their frames. Shards of formats 1 to 3 hold no dt: which seconds their world model was
asked about is unknown, so `read_shard` refuses them ("regenerate the dreams": a dream job is
cheap and the lifelong loop makes new ones every cycle) rather than guess.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.move_times import MoveTimes
from shared.pose import N_ACTIONS, ActionScale, PoseRanges, normalise_batch
from shared.store import CorruptFile, MissingFile

if TYPE_CHECKING:  # torch is heavy; only the model services load it
    import torch

    from shared.store import Store

FORMAT = "ptzjepa.dreams"
FORMAT_VERSION = "5"
READABLE_VERSIONS = ("4", "5")  # 4: without the progress pair, which 5 may hold
WITHOUT_DT = ("1", "2", "3")  # formats written before dreams advanced time: refused
INDEX_NAME = "index.json"
POSE_FEATURES = 4


class DreamShardError(CorruptFile):
    """A dream shard (or index) that cannot be used; the message names the file."""


# ----- observation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObservationSpec:
    """How a state (B, N, D) becomes the agent's observation vector (see the module docstring)."""

    pool_grid: int = 2          # g: the token grid is average-pooled to g x g cells
    include_mean: bool = True   # also the mean over all tokens

    def __post_init__(self) -> None:
        if self.pool_grid < 0:
            raise ValueError(f"pool_grid must be >= 0, got {self.pool_grid}")
        if self.pool_grid == 0 and not self.include_mean:
            raise ValueError("the observation would hold no state features")

    def feature_dim(self, token_dim: int) -> int:
        return (int(self.include_mean) + self.pool_grid ** 2) * token_dim

    def obs_dim(self, token_dim: int) -> int:
        return self.feature_dim(token_dim) + POSE_FEATURES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ObservationSpec:
        want = {f.name for f in dataclasses.fields(ObservationSpec)}
        if not isinstance(d, dict) or set(d) != want:
            raise ValueError(f"observation spec must have exactly the fields {sorted(want)}, got {d!r}")
        return ObservationSpec(pool_grid=int(d["pool_grid"]), include_mean=bool(d["include_mean"]))


def state_features(states: torch.Tensor, spec: ObservationSpec) -> torch.Tensor:
    """(B, N, D) state tokens on a square grid -> (B, feature_dim) float32 pooled features."""
    import torch
    import torch.nn.functional as F

    if states.ndim != 3:
        raise ValueError(f"states must be (B, N, D), got {tuple(states.shape)}")
    b, n, d = states.shape
    grid = math.isqrt(n)
    if grid * grid != n:
        raise ValueError(f"states must hold a square grid of tokens, got N = {n}")
    x = states.float()
    parts = []
    if spec.include_mean:
        parts.append(x.mean(dim=1))
    if spec.pool_grid:
        if spec.pool_grid > grid:
            raise ValueError(f"pool_grid {spec.pool_grid} is finer than the token grid {grid}")
        img = x.transpose(1, 2).reshape(b, d, grid, grid)
        parts.append(F.adaptive_avg_pool2d(img, spec.pool_grid).flatten(2).transpose(1, 2)
                     .reshape(b, -1))
    return torch.cat(parts, dim=1)


def observation_from_states(states: torch.Tensor, poses, ranges: PoseRanges,
                            spec: ObservationSpec = ObservationSpec()) -> torch.Tensor:
    """The agent's observation: pooled state features + normalised pose, (B, obs_dim) float32.

    states: (B, N, D) world-model states (target space); poses: (B, 3) raw (pan, tilt, zoom).
    """
    import torch

    feats = state_features(states, spec)
    p = poses.detach().cpu().numpy() if isinstance(poses, torch.Tensor) else np.asarray(poses)
    if p.shape != (feats.shape[0], 3):
        raise ValueError(f"poses must be ({feats.shape[0]}, 3) raw, got {p.shape}")
    pose_feats = torch.from_numpy(normalise_batch(p, ranges)).to(feats.device)
    return torch.cat([feats, pose_feats], dim=1)


# ----- pose helpers --------------------------------------------------------------------------------
def ranges_to_dict(ranges: PoseRanges) -> dict[str, Any]:
    return dataclasses.asdict(ranges)


def ranges_from_dict(d: dict[str, Any]) -> PoseRanges:
    return PoseRanges(**d)


def scale_to_dict(scale: ActionScale) -> dict[str, float]:
    return dataclasses.asdict(scale)


# ----- dreams --------------------------------------------------------------------------------------
TENSORS = {  # name -> (dtype name, shape as a function of (count, length, obs_dim))
    "observations": ("float16", lambda count, length, obs_dim: (count, length + 1, obs_dim)),
    "poses": ("float32", lambda count, length, obs_dim: (count, length + 1, 3)),
    "actions": ("int64", lambda count, length, obs_dim: (count, length)),
    "surprise": ("float32", lambda count, length, obs_dim: (count, length)),
    "surprise_delta": ("float32", lambda count, length, obs_dim: (count, length)),
    "dt": ("float32", lambda count, length, obs_dim: (count, length)),
    "view_surprise": ("float32", lambda count, length, obs_dim: (count, length + 1)),
    "measured_move": ("float32", lambda count, length, obs_dim: (count, length)),
    "measured_view": ("float32", lambda count, length, obs_dim: (count, length + 1)),
    "progress_move": ("float32", lambda count, length, obs_dim: (count, length)),
    "progress_view": ("float32", lambda count, length, obs_dim: (count, length + 1)),
}
PAIRS = (("measured_move", "measured_view"), ("progress_move", "progress_view"))
MEASURED = frozenset(name for pair in PAIRS for name in pair)
# None in memory when absent: dt and view_surprise from dreams built by hand (the written format
# always holds them), the measured pair from dreams made without an error map.
OPTIONAL = frozenset({"view_surprise", "dt"}) | MEASURED
# Rewards of transition t (state t -> state t+1), from the world model's predicted surprise:
#   surprise       the surprise of the move itself, s_t (dominated by the move's geometry: a jump
#                  brings new content into view, wherever the camera points);
#   delta          s_t - s_{t-1} (the original's reward);
#   view           v_{t+1}, the surprise of holding still at the view reached (what changes there
#                  by itself: the scene's dynamic parts);
#   surprise_view  s_t + v_{t+1}: getting there plus staying there.
# and from the world model's *measured* error on the site's real transitions (the error map of
# services.dreamer.error_map: no surprise head involved):
#   measured       move[a_t] + view(pose_{t+1}), the error the move is expected to have;
#   measured_view  view(pose_{t+1}) alone: where the model is weak, whatever the move;
# and from the *drop* of that measured error between the previous model and this one (the
# progress map of services.dreamer.progress: positive where the model learned, about zero
# where it cannot learn, a noise zone included, and where it has nothing left to learn):
#   progress       z(progress move) + view_weight x z(progress view), as measured_balanced;
#   progress_view  the progress map's view term alone;
#   measured_balanced  both terms standardised over the dreams, the view's times `view_weight`
#                  (AgentConfig.view_weight), and summed: a jump's move term dwarfs the spread of
#                  the view term (measured at 0.23 against about 0.01), so `measured` jumps everywhere;
#                  standardised, a view `view_weight` spreads weaker costs as much as a jump
#                  gains. `measured_view` is the limit of a large view_weight.
# The agent's default is chosen by measurement (services.agent.config, docs/agent.md).
REWARDS = ("surprise", "delta", "view", "surprise_view", "measured", "measured_view",
           "measured_balanced", "progress", "progress_view")
MEASURED_REWARDS = ("measured", "measured_view", "measured_balanced")
PROGRESS_REWARDS = ("progress", "progress_view")


def _standardised(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation over all its values (a constant stays at 0)."""
    return (x - x.mean()) / x.std().clamp_min(1e-12) if x.numel() > 1 else x - x.mean()


@dataclass(eq=False)
class Dreams:
    """A batch of imagined rollouts (shapes as in the module docstring; float32 observations in
    memory, float16 on disk). `meta` carries provenance (slot, version, node, ...)."""

    observations: torch.Tensor
    poses: torch.Tensor
    actions: torch.Tensor
    surprise: torch.Tensor
    surprise_delta: torch.Tensor
    dt: torch.Tensor | None = None
    view_surprise: torch.Tensor | None = None
    measured_move: torch.Tensor | None = None
    measured_view: torch.Tensor | None = None
    progress_move: torch.Tensor | None = None
    progress_view: torch.Tensor | None = None
    spec: ObservationSpec = field(default_factory=ObservationSpec)
    ranges: PoseRanges = field(default_factory=PoseRanges)
    scale: ActionScale = field(default_factory=ActionScale)
    move_times: MoveTimes | None = None  # the seconds per action behind `dt`
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c, l1, o = self.observations.shape
        _check_shapes(self._tensors(), c, l1 - 1, o, "dreams")
        for move, view in PAIRS:
            if (getattr(self, move) is None) != (getattr(self, view) is None):
                raise ValueError(f"dreams: {move} and {view} come together (one map)")

    @property
    def count(self) -> int:
        return int(self.observations.shape[0])

    @property
    def length(self) -> int:
        return int(self.actions.shape[1])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[2])

    def rewards(self, kind: str = "surprise", view_weight: float = 1.0) -> torch.Tensor:
        """(count, length) reward of each transition (see REWARDS); `view_weight` weighs the view
        term of `measured_balanced` against the move term."""
        if not math.isfinite(view_weight) or view_weight <= 0:
            raise ValueError(f"view_weight must be a positive number, got {view_weight!r}")
        if kind == "surprise":
            return self.surprise
        if kind == "delta":
            return self.surprise_delta
        if kind not in REWARDS:
            raise ValueError(f"unknown reward {kind!r}; choose from {REWARDS}")
        if kind in PROGRESS_REWARDS:
            if self.progress_view is None or self.progress_move is None:
                raise ValueError(f"reward {kind!r} needs the progress map, which these dreams lack "
                                 f"(dreamed without real transitions or by an older dreamer): "
                                 f"generate new dreams")
            pview = self.progress_view[:, 1:]
            if kind == "progress_view":
                return pview
            return _standardised(self.progress_move) + view_weight * _standardised(pview)
        if kind in MEASURED_REWARDS:
            if self.measured_view is None or self.measured_move is None:
                raise ValueError(f"reward {kind!r} needs the measured error map, which these dreams "
                                 f"lack (dreamed without real transitions): generate new dreams")
            view = self.measured_view[:, 1:]
            if kind == "measured_balanced":
                return _standardised(self.measured_move) + view_weight * _standardised(view)
            return view if kind == "measured_view" else self.measured_move + view
        if self.view_surprise is None:
            raise ValueError(f"reward {kind!r} needs the view surprise, which these dreams lack: "
                             f"generate dreams with services.dreamer.rollout")
        view = self.view_surprise[:, 1:]
        return view if kind == "view" else self.surprise + view

    def transitions(self, reward: str = "surprise",
                    view_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Flat (count * length, ...) transitions: obs, action, reward, next_obs."""
        o = self.observations.float()
        return {"obs": o[:, :-1].reshape(-1, self.obs_dim), "action": self.actions.reshape(-1),
                "reward": self.rewards(reward, view_weight).reshape(-1).float(),
                "next_obs": o[:, 1:].reshape(-1, self.obs_dim)}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in TENSORS if getattr(self, k) is not None}

    def select(self, index: Any) -> Dreams:
        selected: dict[str, Any] = {k: v[index] for k, v in self._tensors().items()}
        return dataclasses.replace(self, **selected)

    @staticmethod
    def concat(parts: list[Dreams]) -> Dreams:
        import torch

        if not parts:
            raise ValueError("no dreams to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.length != first.length or p.obs_dim != first.obs_dim or p.spec != first.spec:
                raise ValueError("dreams of different length, observation size or spec")
            if p.move_times != first.move_times:
                raise ValueError("dreams made with different move times")
        # A tensor some part lacks is absent from the whole.
        joined: dict[str, Any] = {
            k: None if any(getattr(p, k) is None for p in parts)
            else torch.cat([getattr(p, k) for p in parts]) for k in TENSORS}
        return dataclasses.replace(first, **joined)


def _check_shapes(tensors: dict, count: int, length: int, obs_dim: int, where: str,
                  dtypes: bool = False, optional: frozenset = OPTIONAL) -> None:
    for name, (dtype, shape_fn) in TENSORS.items():
        if name not in tensors:
            if name in optional:
                continue
            raise ValueError(f"{where}: tensor {name!r} is missing")
        t = tensors[name]
        want = shape_fn(count, length, obs_dim)
        if tuple(t.shape) != want:
            raise ValueError(f"{where}: tensor {name!r} has shape {tuple(t.shape)}, expected {want}")
        if dtypes and str(t.dtype).replace("torch.", "") != dtype:
            raise ValueError(f"{where}: tensor {name!r} has dtype {t.dtype}, expected {dtype}")


def write_shards(store: Store, folder: str, dreams: Dreams, *, slot: str = "", version: str = "",
                 node: str = "", shard_size: int = 256, extra: dict[str, Any] | None = None) -> dict:
    """Write `dreams` as shards of at most `shard_size` dreams under `folder`, then `index.json`.

    Returns the index: {"format", "format_version", "count", "length", "obs_dim", "shards":
    [{"path", "sha256", "count"}], ...provenance}. Files are immutable: a folder is written once.
    """
    import torch

    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    if dreams.view_surprise is None or dreams.dt is None or dreams.move_times is None:
        raise ValueError("these dreams lack the view surprise, dt or their move times: only "
                         "complete dreams (services.dreamer.rollout) are written")
    folder = folder.rstrip("/")
    move_times = dreams.move_times.to_dict()
    common = {"format": FORMAT, "format_version": FORMAT_VERSION, "slot": slot, "version": version,
              "node": node, "length": str(dreams.length), "obs_dim": str(dreams.obs_dim),
              "observation_spec": json.dumps(dreams.spec.to_dict(), sort_keys=True),
              "ranges": json.dumps(ranges_to_dict(dreams.ranges), sort_keys=True),
              "action_scale": json.dumps(scale_to_dict(dreams.scale), sort_keys=True),
              "move_times": json.dumps(move_times, sort_keys=True),
              **{k: str(v) for k, v in (extra or {}).items()}}
    shards = []
    for i, start in enumerate(range(0, dreams.count, shard_size)):
        part = dreams.select(slice(start, start + shard_size))
        tensors = {k: v.to(getattr(torch, TENSORS[k][0])) for k, v in part._tensors().items()}
        rel = f"{folder}/shard-{i:05d}.safetensors"
        sha = store.write_tensors(rel, tensors, {**common, "count": str(part.count),
                                                 "shard": str(i)})
        shards.append({"path": rel, "sha256": sha, "count": part.count})
    index = {"format": FORMAT, "format_version": FORMAT_VERSION, "slot": slot, "version": version,
             "node": node, "count": dreams.count, "length": dreams.length,
             "obs_dim": dreams.obs_dim, "observation_spec": dreams.spec.to_dict(),
             "ranges": ranges_to_dict(dreams.ranges), "action_scale": scale_to_dict(dreams.scale),
             "move_times": move_times, "shards": shards, **(extra or {})}
    store.write_json(f"{folder}/{INDEX_NAME}", index)
    return index


def read_shard(store: Store, rel: str, expected_sha256: str | None = None) -> Dreams:
    """One shard, validated (format, metadata, tensor names, shapes, dtypes, finite values)."""
    import torch

    try:
        tensors, meta = store.read_tensors(rel, expected_sha256)
    except DreamShardError:
        raise
    except CorruptFile as e:  # unreadable, truncated or hash mismatch; the message names the file
        raise DreamShardError(str(e)) from None
    if meta.get("format") != FORMAT:
        raise DreamShardError(f"{rel}: not a dream shard (format {meta.get('format')!r}, "
                              f"expected {FORMAT!r})")
    version = meta.get("format_version")
    if version in WITHOUT_DT:
        raise DreamShardError(f"{rel}: dream shard format {version} lacks dt (the seconds each "
                              f"dreamed step takes, which the world model is conditioned on); "
                              f"regenerate the dreams (run the dreamer phase)")
    if version not in READABLE_VERSIONS:
        raise DreamShardError(f"{rel}: unsupported dream format version {version!r} (this code "
                              f"reads {', '.join(READABLE_VERSIONS)})")
    try:
        count, length, obs_dim = int(meta["count"]), int(meta["length"]), int(meta["obs_dim"])
        spec = ObservationSpec.from_dict(json.loads(meta["observation_spec"]))
        ranges = ranges_from_dict(json.loads(meta["ranges"]))
        scale = ActionScale(**json.loads(meta["action_scale"]))
        move_times = MoveTimes.from_dict(json.loads(meta["move_times"]))
    except (KeyError, ValueError, TypeError) as e:
        raise DreamShardError(f"{rel}: bad dream metadata: {e}") from None
    extra = sorted(set(tensors) - set(TENSORS))
    if extra:
        raise DreamShardError(f"{rel}: unexpected tensors {extra}")
    try:
        _check_shapes(tensors, count, length, obs_dim, rel, dtypes=True, optional=MEASURED)
    except ValueError as e:
        raise DreamShardError(str(e)) from None
    for move, view in PAIRS:
        if (move in tensors) != (view in tensors):
            raise DreamShardError(f"{rel}: holds one of {move} / {view} without the other (they "
                                  f"come from one map)")
    if version == "4" and "progress_move" in tensors:
        raise DreamShardError(f"{rel}: format 4 holds no progress terms")
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise DreamShardError(f"{rel}: tensor {name!r} holds NaN or infinite values")
    a = tensors["actions"]
    if a.numel() and (int(a.min()) < 0 or int(a.max()) >= N_ACTIONS):
        raise DreamShardError(f"{rel}: actions outside 0..{N_ACTIONS - 1}")
    if not torch.equal(tensors["dt"], torch.from_numpy(move_times.of(a))):
        raise DreamShardError(f"{rel}: dt does not match the move times of the dreamed actions")
    meta_out = {k: v for k, v in meta.items()
                if k not in ("observation_spec", "ranges", "action_scale", "move_times")}
    return Dreams(observations=tensors["observations"].float(), poses=tensors["poses"],
                  actions=tensors["actions"], surprise=tensors["surprise"],
                  surprise_delta=tensors["surprise_delta"], dt=tensors["dt"],
                  view_surprise=tensors["view_surprise"],
                  measured_move=tensors.get("measured_move"),
                  measured_view=tensors.get("measured_view"),
                  progress_move=tensors.get("progress_move"),
                  progress_view=tensors.get("progress_view"), spec=spec, ranges=ranges,
                  scale=scale, move_times=move_times, meta=meta_out)


def read_index(store: Store, folder: str) -> dict:
    rel = f"{folder.rstrip('/')}/{INDEX_NAME}"
    try:
        index = store.read_json(rel)
    except MissingFile:
        raise MissingFile(f"{rel} is not in the store: the dream job that writes {folder} has not "
                          f"finished (the index is written last)") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or \
            not isinstance(index.get("shards"), list):
        raise DreamShardError(f"{rel}: not a dream index")
    return index


def read_dreams(store: Store, folder: str) -> Dreams:
    """Every shard listed in `folder`'s index, hash-checked and validated, concatenated."""
    index = read_index(store, folder)
    parts = []
    for entry in index["shards"]:
        try:
            path, sha = entry["path"], entry["sha256"]
        except (TypeError, KeyError):
            raise DreamShardError(f"{folder}/{INDEX_NAME}: bad shard entry {entry!r}") from None
        parts.append(read_shard(store, path, sha))
    if not parts:
        raise DreamShardError(f"{folder}/{INDEX_NAME}: lists no shards")
    dreams = Dreams.concat(parts)
    dreams.meta = {k: index.get(k) for k in ("slot", "version", "node", "count", "length")}
    return dreams
