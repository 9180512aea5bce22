"""Per-transition surprise: the heads that predict it and the targets they learn.

The original regressed one scalar per *batch* (the mean absolute gradient of the target encoder),
so every transition in a batch got the same reward target. Every target here is per transition:

- "pred_error": the predictor's own error on that transition (mean smooth-L1 over its tokens);
- "grad_norm": the original's signal made per transition: the mean absolute gradient of that
  transition's prediction loss with respect to the target encoder's last block (per-sample gradients
  via torch.func, so no extra full backward pass through the target encoder).

Heads regress log(target): the signals span orders of magnitude and only their order matters to a
curious agent, so the log keeps the regression well conditioned.

`BootstrapEnsemble` is a second kind of candidate: small predictor heads, each trained on its own
bootstrap resample of the transitions, whose disagreement (variance across heads of the predicted
tokens) is high where the data leave the prediction open.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from shared.models.config import EnsembleConfig, SurpriseConfig
from shared.models.vit import ViTEncoder

EPS = 1e-8


class SurpriseHeads(nn.Module):
    """(pooled trunk features, conditioning) -> one log-surprise per target, per transition."""

    log_offset: torch.Tensor
    offset_ready: torch.Tensor

    def __init__(self, cfg: SurpriseConfig, trunk_dim: int, cond_dim: int):
        super().__init__()
        self.targets = tuple(cfg.targets)
        self.primary = self.targets.index(cfg.primary)
        self.net = nn.Sequential(
            nn.Linear(2 * trunk_dim + cond_dim, cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, len(self.targets)))
        # Running mean of each log-target, added to the net's output: gradient magnitudes sit near
        # log(1e-5) = -11.5, errors near log(0.3); the net then only learns the deviations.
        # A buffer, not a parameter: it is saved in checkpoints but not optimised.
        self.register_buffer("log_offset", torch.zeros(len(self.targets)))
        self.register_buffer("offset_ready", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def track(self, i: int, log_target: torch.Tensor, rate: float = 0.05) -> None:
        """Move target i's offset towards this batch's mean log-target (first batch: jump)."""
        m = log_target.float().mean()
        if not bool(self.offset_ready):
            self.log_offset[i] = m
        else:
            self.log_offset[i] += rate * (m - self.log_offset[i])

    def mark_ready(self) -> None:
        self.offset_ready.fill_(True)

    def forward(self, trunk: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """trunk: (S, T, K, d) predictor features (detached here: surprise must not bend the
        predictor); cond: (S, T, c). Returns (S, T, n_targets) predicted log-surprise."""
        h = trunk.detach()
        feats = torch.cat([h.mean(dim=2), h.std(dim=2, unbiased=False), cond], dim=-1)
        return self.net(feats) + self.log_offset


def per_transition_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(S, T, K, D) x2 -> (S, T) mean smooth-L1, the loss each transition contributes."""
    return F.smooth_l1_loss(pred, target, reduction="none").mean(dim=(-1, -2))


def grad_norm_targets(encoder: ViTEncoder, penultimate: torch.Tensor, pred: torch.Tensor,
                      query_index: torch.Tensor | None) -> torch.Tensor:
    """Mean |d loss_p / d theta| over the encoder's last block and final norm, per transition.

    encoder: a ViTEncoder (the target encoder); penultimate: (P, N, D) activations entering its last
    block for each transition's *target* view; pred: (P, K, D) the predictions (detached);
    query_index: (P, K) predicted cells or None (all). Returns (P,) non-negative values.
    """
    block, norm = encoder.blocks[-1], encoder.norm
    params = {("b." + k): v.detach() for k, v in block.named_parameters()}
    params.update({("n." + k): v.detach() for k, v in norm.named_parameters()})
    n_params = sum(v.numel() for v in params.values())

    def loss_fn(p, h, pr, qi):
        bp = {k[2:]: v for k, v in p.items() if k.startswith("b.")}
        npar = {k[2:]: v for k, v in p.items() if k.startswith("n.")}
        out = functional_call(norm, npar, (functional_call(block, bp, (h[None],)),))[0]
        tgt = F.layer_norm(out, out.shape[-1:])
        if qi is not None:
            tgt = tgt[qi]
        return F.smooth_l1_loss(pr, tgt)

    in_q = None if query_index is None else 0
    # The fused CPU attention kernel has no vmap rule (a slow per-sample fallback); the math
    # kernel is made of batchable ops and is ~15x faster here.
    with sdpa_kernel(SDPBackend.MATH):
        grads = vmap(grad(loss_fn), in_dims=(None, 0, 0, in_q))(params, penultimate.detach(),
                                                                 pred.detach(), query_index)
    total = sum(g.abs().flatten(1).sum(dim=1) for g in grads.values())
    return total / n_params


class BootstrapEnsemble(nn.Module):
    """`heads` small MLPs, (S, T, K, d) trunk features -> (E, S, T, K, out_dim) token changes.

    The heads' weights are stacked, so all heads run as two batched matmuls (the ensemble is
    evaluated on thousands of transitions). Initialised like the rest of the model (truncated
    normal, std 0.02, zero biases), each head from its own draw.
    """

    def __init__(self, cfg: EnsembleConfig, trunk_dim: int, out_dim: int):
        super().__init__()
        e, h = cfg.heads, cfg.hidden
        self.sample_rate = cfg.sample_rate
        self.w1 = nn.Parameter(nn.init.trunc_normal_(torch.empty(e, trunk_dim, h), std=0.02))
        self.b1 = nn.Parameter(torch.zeros(e, 1, h))
        self.w2 = nn.Parameter(nn.init.trunc_normal_(torch.empty(e, h, out_dim), std=0.02))
        self.b2 = nn.Parameter(torch.zeros(e, 1, out_dim))

    @property
    def heads(self) -> int:
        return self.w1.shape[0]

    def forward(self, trunk: torch.Tensor) -> torch.Tensor:
        lead = trunk.shape[:-1]
        x = trunk.reshape(1, -1, trunk.shape[-1])
        x = F.gelu(torch.baddbmm(self.b1, x.expand(self.heads, -1, -1), self.w1))
        out = torch.baddbmm(self.b2, x, self.w2)
        return out.reshape(self.heads, *lead, out.shape[-1])

    def bootstrap_weights(self, keys: torch.Tensor, seed: int) -> torch.Tensor:
        """(heads, *keys.shape) Poisson(sample_rate) weights, one per head and transition, each
        a function of the seed, the head and the transition's key alone (`transition_keys`): a
        head's resample is fixed per transition, so a transition it skipped is skipped on every
        step it is drawn, as in a bootstrap of the data rather than of the steps."""
        flat = keys.detach().cpu().numpy().astype(np.uint64).reshape(-1)
        heads = np.arange(self.heads, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            mixed = _splitmix(_splitmix(flat[None, :] ^ _splitmix(heads + np.uint64(seed) *
                                                                 np.uint64(0x9E3779B1))))
        uniform = (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        counts = np.searchsorted(_poisson_cdf(self.sample_rate), uniform, side="right")
        out = torch.from_numpy(counts.astype(np.float32)).to(keys.device)
        return out.reshape(self.heads, *keys.shape)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 (wrapping): a cheap, well-mixed hash of each element."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _poisson_cdf(rate: float) -> np.ndarray:
    """P(X <= k) for k = 0..K-1 of Poisson(rate), up to where the tail is below 1e-12 (K is
    then the largest count a weight can take)."""
    pmf, cdf, k = np.exp(-rate), [], 0
    total = 0.0
    while total < 1.0 - 1e-12 and k < 1000:
        total += pmf
        cdf.append(total)
        k += 1
        pmf *= rate / k
    return np.asarray(cdf)


def transition_keys(times: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """int64 keys naming transitions by their frames' capture times (POSIX seconds, to the
    microsecond): the same two frames give the same key in every batch they are drawn into."""
    us = torch.round(times.double() * 1e6).to(torch.int64).cpu().numpy().astype(np.uint64)
    src, tgt = us[source.cpu().numpy()], us[target.cpu().numpy()]
    with np.errstate(over="ignore"):
        key = _splitmix(src) ^ (_splitmix(tgt) * np.uint64(3))
    return torch.from_numpy(key.view(np.int64).copy()).to(source.device)


def disagreement(ens: torch.Tensor) -> torch.Tensor:
    """(E, ..., K, D) heads' predicted tokens -> (..., K) per-token variance across heads (mean
    over D); average it over K for a transition's disagreement."""
    return ens.var(dim=0, unbiased=False).mean(dim=-1)

