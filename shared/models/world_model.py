"""The JEPA world model and the two calls the dreamer and the agent make.

One state space for everything (the original dreamed in context-encoder space but acted on
target-encoder states at run time): a *state* is the target encoder's tokens, layer-normalised per
token, shape (B, N, D). `encode_state` makes one from camera frames; `predict` maps a state and a
pose change to the next state in the same space (so its output can be fed back for rollouts), plus a
per-transition surprise. Training (services/worldmodel) feeds the predictor both context-encoder
tokens (which is what teaches the encoder) and target-space states and its own rollouts (which is
what the dreamer and agent use).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from shared.models.config import WorldModelConfig
from shared.models.predictor import ActionConditionedPredictor, layer_norm_tokens
from shared.models.surprise import BootstrapEnsemble, SurpriseHeads, disagreement
from shared.models.vit import ViTEncoder, prepare_frames
from shared.pose import PoseRanges, normalise_batch


def normalise_poses(poses, ranges: PoseRanges | None = None) -> torch.Tensor:
    """(B, 3) raw (pan, tilt, zoom) -> (B, 4) normalised float tensor; (B, 4) passes through.

    Raw poses need the camera's ranges (Hanwha and Axis differ); the default is PoseRanges().
    """
    if isinstance(poses, torch.Tensor) and poses.shape[-1] == 4:
        return poses.float()
    arr = np.asarray(poses.cpu() if isinstance(poses, torch.Tensor) else poses, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (3, 4):
        raise ValueError(f"poses must be (B, 3) raw or (B, 4) normalised, got {arr.shape}")
    if arr.shape[1] == 4:
        return torch.from_numpy(arr.astype(np.float32))
    return torch.from_numpy(normalise_batch(arr, ranges or PoseRanges()))


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = ViTEncoder(cfg.encoder)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)
        self.predictor = ActionConditionedPredictor(cfg.encoder, cfg.predictor)
        # With the warp, the heads also see its geometry (how much of the target view is new
        # content, how far content moves, the zoom step): the main driver of prediction error.
        n_geo = self.predictor.N_WARP_FEATURES if cfg.predictor.warp else 0
        self.surprise = SurpriseHeads(cfg.surprise, cfg.predictor.dim,
                                      self.predictor.cond_dim + n_geo)
        # Built last, so that the other modules' initialisation (and with it every figure of the
        # world model) is the same whether the ensemble is on or off; None when off, so that a
        # model without it holds (and its files store) exactly the tensors they did before it.
        self.ensemble: BootstrapEnsemble | None = None
        if cfg.ensemble.heads:
            self.ensemble = BootstrapEnsemble(cfg.ensemble, cfg.predictor.dim,
                                              self.predictor.cells_per_query * cfg.encoder.dim)

    # ----- encoders -------------------------------------------------------------------------
    def encode_context(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared frames -> context tokens in state space (with gradients)."""
        return layer_norm_tokens(self.encoder(x))

    @torch.no_grad()
    def encode_target(self, x: torch.Tensor, return_penultimate: bool = False):
        """Prepared frames -> target tokens (the state), optionally with the last block's input."""
        out, pen = self.target_encoder(x, return_penultimate=True)
        state = layer_norm_tokens(out)
        return (state, pen) if return_penultimate else state

    @torch.no_grad()
    def encode_state(self, frames) -> torch.Tensor:
        """Camera frames (uint8 (B, H, W, 3), any size) -> states (B, N, D). Run-time entry point."""
        x = prepare_frames(frames, self.cfg.encoder.img_size).to(self._device())
        return self.encode_target(x)

    # ----- predictor ------------------------------------------------------------------------
    def forward_predictor(self, state: torch.Tensor, pose_from: torch.Tensor, pose_to: torch.Tensor,
                          dt: torch.Tensor, query_index: torch.Tensor | None = None):
        """Training-time call. state (S, N, D); poses (S, T, 4); dt (S, T) signed seconds;
        query_index (S, T, K) or None.

        Returns (prediction (S, T, K, D), trunk (S, T, K, d), log_surprise (S, T, n_targets)).
        """
        pred, trunk = self.predictor(state, pose_from, pose_to, dt, query_index)
        cond = self.predictor.conditioning(pose_from, pose_to, dt)
        if self.cfg.predictor.warp:
            cond = torch.cat([cond, self.predictor.warp_features(pose_from, pose_to)], dim=-1)
        return pred, trunk, self.surprise(trunk, cond)

    @torch.no_grad()
    def predict(self, state: torch.Tensor, pose_from, pose_to,
                ranges: PoseRanges | None = None, *, dt) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step for a batch: state (B, N, D), poses (B, 3) raw or (B, 4) normalised,
        dt the seconds the move takes (a float for the batch, or (B,)).

        Returns (next_state (B, N, D), surprise (B,)): the surprise is the primary target's
        prediction in its natural units (e.g. the expected prediction error of this transition).
        """
        self._check_state(state)
        pf, pt = self._poses(state, pose_from, ranges), self._poses(state, pose_to, ranges)
        pred, _, log_s = self.forward_predictor(state.to(self._device()).float(), pf, pt,
                                                self._dts(state, dt))
        return pred[:, 0], log_s[:, 0, self.surprise.primary].exp()

    @torch.no_grad()
    def predict_with_stay(self, state: torch.Tensor, pose_from, pose_to,
                          ranges: PoseRanges | None = None, *, dt, stay_dt
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`predict` plus the *view surprise* of the source: the primary surprise of holding the
        camera still at `pose_from` for `stay_dt` seconds (the same call: both transitions of a
        source share its keys and values). Returns (next_state (B, N, D), surprise (B,),
        stay_surprise (B,)).

        A move's surprise is dominated by its geometry (a jump brings new content into view);
        holding still leaves only what changes by itself, i.e. where the scene is dynamic.
        """
        self._check_state(state)
        pf, pt = self._poses(state, pose_from, ranges), self._poses(state, pose_to, ranges)
        dts = torch.cat([self._dts(state, dt), self._dts(state, stay_dt)], dim=1)
        pred, _, log_s = self.forward_predictor(state.to(self._device()).float(),
                                                torch.cat([pf, pf], dim=1),
                                                torch.cat([pt, pf], dim=1), dts)
        s = log_s[..., self.surprise.primary].exp()
        return pred[:, 0], s[:, 0], s[:, 1]

    @torch.no_grad()
    def stay_surprise(self, state: torch.Tensor, pose, ranges: PoseRanges | None = None, *, dt
                      ) -> torch.Tensor:
        """(B,) primary surprise of holding the camera still at `pose` in `state` for `dt`
        seconds (see `predict_with_stay`)."""
        self._check_state(state)
        p = self._poses(state, pose, ranges)
        _, _, log_s = self.forward_predictor(state.to(self._device()).float(), p, p,
                                             self._dts(state, dt))
        return log_s[:, 0, self.surprise.primary].exp()

    def _dts(self, state: torch.Tensor, dt) -> torch.Tensor:
        """A float or (B,) seconds -> (B, 1) float tensor on the model's device."""
        t = torch.as_tensor(np.asarray(dt.cpu() if isinstance(dt, torch.Tensor) else dt,
                                       dtype=np.float32))
        if t.ndim == 0:
            t = t.expand(state.shape[0])
        if t.shape != (state.shape[0],):
            raise ValueError(f"dt must be a number or ({state.shape[0]},), got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError("dt must be finite")
        return t.to(self._device())[:, None]

    def _check_state(self, state: torch.Tensor) -> None:
        if state.ndim != 3 or state.shape[1:] != (self.cfg.encoder.n_tokens, self.cfg.encoder.dim):
            raise ValueError(f"state must be (B, {self.cfg.encoder.n_tokens}, "
                             f"{self.cfg.encoder.dim}), got {tuple(state.shape)}")

    def _poses(self, state: torch.Tensor, poses, ranges: PoseRanges | None) -> torch.Tensor:
        """(B, 3) raw or (B, 4) normalised poses -> (B, 1, 4) on the model's device."""
        p = normalise_poses(poses, ranges).to(self._device())[:, None]
        if p.shape[0] != state.shape[0]:
            raise ValueError("state, pose_from and pose_to must have the same batch size")
        return p

    @torch.no_grad()
    def surprise_all(self, state: torch.Tensor, pose_from, pose_to,
                     ranges: PoseRanges | None = None, *, dt) -> dict[str, torch.Tensor]:
        """Every surprise head's prediction (B,) by target name, for evaluation and analysis."""
        dev = self._device()
        pf = normalise_poses(pose_from, ranges).to(dev)[:, None]
        pt = normalise_poses(pose_to, ranges).to(dev)[:, None]
        _, _, log_s = self.forward_predictor(state.to(dev).float(), pf, pt, self._dts(state, dt))
        return {name: log_s[:, 0, i].exp() for i, name in enumerate(self.surprise.targets)}

    def ensemble_predictions(self, trunk: torch.Tensor, pred: torch.Tensor,
                             full: bool) -> torch.Tensor:
        """The ensemble heads' predicted tokens (E, S, T, cells, D) for trunk features (S, T, K, d)
        and the main prediction `pred` (S, T, cells, D) of one predictor call; `full`: the call
        asked every query (cells in row-major order).

        Each head adds its own change to the main prediction's base token (the warp base), as the
        main output head does. Both inputs are detached: the heads learn on the world model's
        features but never bend them, so the world model trains (and measures) the same with the
        ensemble on or off.
        """
        ens = self._ensemble()
        h = trunk.detach()
        base = self.predictor.residual_base(h, pred.detach(), full)
        change = ens(h)
        e, s = change.shape[:2]
        cells = self.predictor.to_cells(change.flatten(0, 1), full)
        return base + cells.reshape(e, s, *cells.shape[1:])

    @torch.no_grad()
    def ensemble_disagreement(self, state: torch.Tensor, pose_from, pose_to,
                              ranges: PoseRanges | None = None, *, dt) -> torch.Tensor:
        """(B, N) per-cell disagreement of the ensemble about each transition (state (B, N, D),
        poses (B, 3) raw or (B, 4) normalised, dt a float or (B,) seconds): the variance across
        heads of the predicted tokens, mean over D; `.mean(-1)` is the transition's. One predictor
        call for the batch (the main prediction, for the base) plus the heads' two batched matmuls.
        """
        self._ensemble()
        self._check_state(state)
        pf, pt = self._poses(state, pose_from, ranges), self._poses(state, pose_to, ranges)
        pred, trunk = self.predictor(state.to(self._device()).float(), pf, pt, self._dts(state, dt))
        return disagreement(self.ensemble_predictions(trunk, pred, full=True))[:, 0]

    def _ensemble(self) -> BootstrapEnsemble:
        if self.ensemble is None:
            raise RuntimeError("this world model has no bootstrap ensemble (ensemble.heads == 0); "
                               "train one with ensemble.heads >= 2")
        return self.ensemble

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA: target <- m * target + (1 - m) * context."""
        tgt: list[torch.Tensor] = list(self.target_encoder.parameters())
        src = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_mul_(tgt, momentum)
        torch._foreach_add_(tgt, src, alpha=1.0 - momentum)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def build_world_model(cfg: WorldModelConfig | str) -> WorldModel:
    """A fresh world model from a config or a preset name ('cpu', 'paper')."""
    if isinstance(cfg, str):
        cfg = WorldModelConfig.preset(cfg)
    return WorldModel(cfg)
