"""The action-conditioned predictor: from a state (tokens of one view) and a pose change, the tokens of
the view at the new pose.

The original's predictor appended identical "mask" tokens with no position, so every predicted token
came out the same. Here every query token is built from its own 2-D position *and* the conditioning
(pose from, pose to, their difference), mixed by an MLP so that the position-times-motion interaction
("the content at cell p now comes from cell p - shift") is available from the first block.

Queries cross-attend to the state instead of sharing one self-attention sequence with it: the state's
keys/values are computed once per source view and reused by every transition that starts there
(training uses many targets per source), and the cost grows with the number of queried cells, so
training can query a random subset of cells (I-JEPA style) and evaluation all of them.

Shapes: S source states, T transitions per source, K queried cells per transition, N cells per view.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shared.models.config import EncoderConfig, PredictorConfig
from shared.models.vit import Attention, Mlp, init_weights, sincos_2d


class PredictorBlock(nn.Module):
    def __init__(self, cfg: PredictorConfig):
        super().__init__()
        d = cfg.dim
        self.self_attn = None
        if cfg.query_self_attn:
            self.norm_self = nn.LayerNorm(d)
            self.self_attn = Attention(d, cfg.heads)
        self.norm_q = nn.LayerNorm(d)
        self.norm_mem = nn.LayerNorm(d)
        self.cross_attn = Attention(d, cfg.heads, cross=True)
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = Mlp(d, cfg.mlp_ratio)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, t: int) -> torch.Tensor:
        """x: (S*T, K, d) queries; memory: (S, N, d)."""
        st, k, d = x.shape
        if self.self_attn is not None:
            x = x + self.self_attn(self.norm_self(x))
        # All queries of the T transitions of one source attend to that source's memory together:
        # cross-attention has no query-query interaction, so this is exact and avoids copying memory.
        q = self.norm_q(x).reshape(st // t, t * k, d)
        x = x + self.cross_attn(q, self.norm_mem(memory)).reshape(st, k, d)
        return x + self.mlp(self.norm_mlp(x))


class ActionConditionedPredictor(nn.Module):
    query_pos: torch.Tensor
    memory_pos: torch.Tensor
    query_cells: torch.Tensor
    cell_order: torch.Tensor
    cell_xy: torch.Tensor

    def __init__(self, enc: EncoderConfig, cfg: PredictorConfig):
        super().__init__()
        cfg.validate()
        if enc.grid % cfg.query_stride or enc.grid % cfg.memory_stride:
            raise ValueError(f"query_stride {cfg.query_stride} and memory_stride "
                             f"{cfg.memory_stride} must divide the token grid {enc.grid}")
        self.cfg = cfg
        self.n_tokens = enc.n_tokens
        self.grid = enc.grid
        d = cfg.dim
        qs, ms = cfg.query_stride, cfg.memory_stride
        self.cells_per_query = qs * qs
        self.n_queries = (enc.grid // qs) ** 2
        self.in_proj = nn.Linear(enc.dim, d)
        self.register_buffer("query_pos", sincos_2d(d, enc.grid // qs, qs), persistent=False)
        self.register_buffer("memory_pos", sincos_2d(d, enc.grid // ms, ms), persistent=False)
        # The cells of each query's block, row-major inside the block: (n_queries, qs * qs).
        g = enc.grid
        cells = torch.arange(g * g).reshape(g // qs, qs, g // qs, qs).permute(0, 2, 1, 3)
        cells = cells.reshape(self.n_queries, qs * qs)
        self.register_buffer("query_cells", cells, persistent=False)
        # Full predictions come out block by block; this puts them back in row-major cell order.
        self.register_buffer("cell_order", cells.reshape(-1).argsort(), persistent=False)
        # Cell centres as (x, y) in [-1, 1] (grid_sample's convention), row-major like the tokens.
        c = (2.0 * torch.arange(enc.grid, dtype=torch.float32) + 1.0) / enc.grid - 1.0
        ys, xs = torch.meshgrid(c, c, indexing="ij")
        self.register_buffer("cell_xy", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1),
                             persistent=False)
        self.cond = nn.Sequential(nn.Linear(self.cond_dim, d), nn.GELU(), nn.Linear(d, d))
        self.query_mlp = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(PredictorBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, self.cells_per_query * enc.dim)
        self.apply(init_weights)

    def cells_of(self, query_index: torch.Tensor | None) -> torch.Tensor | None:
        """(S, T, K) query indices -> (S, T, K * cells_per_query) the cells their predictions
        cover, in the order `forward` returns them; None (all queries) stays None (row-major)."""
        if query_index is None:
            return None
        return self.query_cells[query_index].flatten(-2)

    def to_cells(self, out: torch.Tensor, full: bool) -> torch.Tensor:
        """(S, T, K, cells_per_query * D) head output -> (S, T, K * cells_per_query, D), put back
        in row-major cell order when every query was asked (`full`)."""
        s, t, k, _ = out.shape
        out = out.reshape(s, t, k * self.cells_per_query, -1)
        if full and self.cells_per_query > 1:
            out = out[:, :, self.cell_order]
        return out

    @property
    def cond_dim(self) -> int:
        return 3 * self.cfg.pose_dim + self.cfg.time_features

    def conditioning(self, pose_from: torch.Tensor, pose_to: torch.Tensor,
                     dt: torch.Tensor) -> torch.Tensor:
        """(..., 4) normalised poses and (...) signed seconds -> (..., cond_dim) features: from,
        to, the move itself, and the time features of dt."""
        if dt.shape != pose_from.shape[:-1]:
            raise ValueError(f"dt must have shape {tuple(pose_from.shape[:-1])}, got {tuple(dt.shape)}")
        parts = [pose_from, pose_to, pose_to - pose_from]
        if self.cfg.time_features:
            parts.append(time_features(dt.to(pose_from.dtype), self.cfg.time_scale_s,
                                       self.cfg.time_features))
        return torch.cat(parts, dim=-1)

    def warp_coords(self, pose_from: torch.Tensor, pose_to: torch.Tensor,
                    xy: torch.Tensor) -> torch.Tensor:
        """Where each target cell's content sits in the source view.

        pose_from, pose_to: (S, T, 4) normalised; xy: (S, T, K, 2) target cell centres in [-1, 1].
        Returns (S, T, K, 2) source coordinates (outside [-1, 1]: content new to the view). Pinhole
        small-angle model, square views: a pan of p degrees shifts the view by 2 p / hfov_from
        half-widths (tilt likewise, upwards is -y), a zoom ratio r scales about the centre.
        """
        c = self.cfg
        a_f = torch.atan2(pose_from[..., 0], pose_from[..., 1])
        a_t = torch.atan2(pose_to[..., 0], pose_to[..., 1])
        d_pan = torch.remainder(a_t - a_f + math.pi, 2 * math.pi) - math.pi
        d_pan_deg = d_pan * (180.0 / math.pi)
        d_tilt_deg = (pose_to[..., 2] - pose_from[..., 2]) * (c.warp_tilt_span_deg / 2.0)
        log_span = math.log(c.warp_zoom_span)
        zoom_f = torch.exp((pose_from[..., 3] + 1.0) * (log_span / 2.0))
        ratio = torch.exp((pose_to[..., 3] - pose_from[..., 3]) * (log_span / 2.0))
        hfov_f = c.warp_hfov_deg / zoom_f
        shift = torch.stack([2.0 * d_pan_deg / hfov_f, -2.0 * d_tilt_deg / hfov_f], dim=-1)
        return xy / ratio[..., None, None] + shift[..., None, :]

    N_WARP_FEATURES = 3

    def warp_features(self, pose_from: torch.Tensor, pose_to: torch.Tensor) -> torch.Tensor:
        """(S, T, 4) poses -> (S, T, 3): fraction of target cells whose content lies outside the
        source view, mean cell displacement (half-widths), |log zoom ratio|."""
        s, t, _ = pose_from.shape
        xy = self.cell_xy.expand(s, t, self.n_tokens, 2)
        src = self.warp_coords(pose_from.float(), pose_to.float(), xy)
        outside = (src.abs() > 1.0).any(dim=-1).float().mean(dim=-1)
        moved = (src - xy).norm(dim=-1).mean(dim=-1)
        log_ratio = (pose_to[..., 3] - pose_from[..., 3]).abs() * (
            math.log(self.cfg.warp_zoom_span) / 2.0)
        return torch.stack([outside, moved, log_ratio], dim=-1)

    def warp(self, state: torch.Tensor, pose_from: torch.Tensor, pose_to: torch.Tensor,
             cells: torch.Tensor | None) -> torch.Tensor:
        """Source tokens (S, N, D) resampled at the warped target cells (S, T, K) (None: all, in
        row-major order) -> (S, T, K, D) (bilinear, border padding: cells whose content is new to
        the view start from the nearest edge token)."""
        s, t, _ = pose_from.shape
        if cells is None:
            xy = self.cell_xy.expand(s, t, self.n_tokens, 2)
        else:
            xy = self.cell_xy[cells]
        src = self.warp_coords(pose_from.float(), pose_to.float(), xy)
        k, dim = xy.shape[2], state.shape[-1]
        grid_map = state.transpose(1, 2).reshape(s, dim, self.grid, self.grid)
        out = F.grid_sample(grid_map, src.reshape(s, t * k, 1, 2).to(state.dtype), mode="bilinear",
                            padding_mode="border", align_corners=False)
        return out[..., 0].transpose(1, 2).reshape(s, t, k, dim)

    def memory(self, state: torch.Tensor) -> torch.Tensor:
        """State tokens (S, N, enc_dim) -> memory (S, M, d): average-pooled by memory_stride,
        projected, positions re-added."""
        ms = self.cfg.memory_stride
        if ms > 1:
            s, _, dim = state.shape
            grid_map = state.transpose(1, 2).reshape(s, dim, self.grid, self.grid)
            state = F.avg_pool2d(grid_map, ms).flatten(2).transpose(1, 2)
        return self.in_proj(state) + self.memory_pos

    def forward(self, state: torch.Tensor, pose_from: torch.Tensor, pose_to: torch.Tensor,
                dt: torch.Tensor, query_index: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict target tokens.

        state: (S, N, enc_dim) source tokens; pose_from, pose_to: (S, T, 4) normalised; dt: (S, T)
        signed seconds from the source frame to the target frame;
        query_index: (S, T, K) query indices (0 .. n_queries - 1), or None for all queries.
        Returns (prediction (S, T, K * cells_per_query, enc_dim) at the cells `cells_of(query_index)`
        names - all N cells in row-major order when query_index is None -, trunk features
        (S, T, K, d)).

        The prediction is residual: a base token (the source token at the same cell, or the
        pose-aware warp of the source) plus a learned change, so an untrained predictor starts at
        the base and learns only the correction (without this skip the predictor first has to
        learn to copy through attention, and on small data it never got back to the baseline).
        """
        s, t, _ = pose_from.shape
        if state.shape[0] != s:
            raise ValueError(f"state has {state.shape[0]} sources but poses have {s}")
        d, dim = self.cfg.dim, state.shape[-1]
        full = query_index is None
        qi = (query_index if query_index is not None
              else torch.arange(self.n_queries, device=state.device).expand(s, t, self.n_queries))
        k, cpq = qi.shape[-1], self.cells_per_query
        # Cells in the order the output head emits them (block by block).
        cells = self.query_cells[qi].flatten(-2)
        if self.cfg.warp:
            base = self.warp(state, pose_from, pose_to, cells)
        else:
            flat = cells.reshape(s, -1)
            base = torch.gather(state, 1, flat[..., None].expand(*flat.shape, dim))
            base = base.reshape(s, t, -1, dim)
        block_base = base if cpq == 1 else base.reshape(s, t, k, cpq, dim).mean(dim=3)
        pos = self.query_pos[qi].reshape(s * t, k, d)
        here = self.in_proj(block_base).reshape(s * t, k, d) + pos
        memory = self.memory(state)
        cond = self.cond(self.conditioning(pose_from, pose_to, dt)).reshape(s * t, 1, d)
        x = here + self.query_mlp(torch.cat([pos, cond.expand(s * t, k, d)], dim=-1))
        for blk in self.blocks:
            x = blk(x, memory, t)
        h = self.norm(x)
        pred = base + self.out(h).reshape(s, t, k * cpq, dim)
        if full and cpq > 1:
            pred = pred[:, :, self.cell_order]
        return pred, h.reshape(s, t, k, d)

    @torch.no_grad()
    def residual_base(self, trunk: torch.Tensor, pred: torch.Tensor, full: bool) -> torch.Tensor:
        """The base tokens under a prediction: `pred` (S, T, cells, enc_dim) from `forward` less
        the output head's change at its trunk features (S, T, K, d); `full` as in `to_cells`.
        Without gradients: what is built on it must not train the output head."""
        return pred - self.to_cells(self.out(trunk), full)


def time_features(dt: torch.Tensor, scale_s: float, n: int) -> torch.Tensor:
    """(...) signed seconds -> (..., n): dt / scale, then asinh(dt / scale). Signed on purpose:
    the trainer uses every ordered pair of a window, so half of them look back in time; the sign
    tells the two directions apart (deterministic motion is as predictable backwards)."""
    x = dt / scale_s
    return torch.stack([x, torch.asinh(x)][:n], dim=-1)


def layer_norm_tokens(x: torch.Tensor) -> torch.Tensor:
    """The state space: encoder tokens normalised per token without learned scale (I-JEPA targets)."""
    return F.layer_norm(x, x.shape[-1:])
