"""A plain-torch Vision Transformer: patch embedding, fixed 2-D sin-cos positions, pre-norm blocks.

Positions are fixed (not learned) so that the predictor can use the very same position code for its
query tokens: a query "knows" which image cell it stands for in exactly the encoder's terms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shared.models.config import EncoderConfig

# Per-channel statistics used to centre uint8 frames (ImageNet's; any fixed values would do, the
# point is that the encoder sees inputs of unit scale).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
POS_SCALE = 0.1


def sincos_2d(dim: int, grid: int, stride: int = 1) -> torch.Tensor:
    """(grid*grid, dim) fixed 2-D sin-cos position code, row-major like the patch order.

    With `stride` > 1, the code of a coarse grid whose cell (i, j) covers a stride x stride block of
    a fine grid of grid * stride cells, placed at the block's centre in fine-cell units (so coarse
    and fine positions share one coordinate system)."""
    if dim % 4:
        raise ValueError(f"dim {dim} must be divisible by 4")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    coord = torch.arange(grid, dtype=torch.float64) * stride + (stride - 1) / 2.0
    ys, xs = torch.meshgrid(coord, coord, indexing="ij")
    parts = []
    for c in (ys.reshape(-1), xs.reshape(-1)):
        ang = c[:, None] * omega[None, :]
        parts += [torch.sin(ang), torch.cos(ang)]
    return torch.cat(parts, dim=1).float()


def prepare_frames(frames, img_size: int) -> torch.Tensor:
    """Frames -> float (B, 3, img_size, img_size), centred and scaled.

    Accepts uint8 (B, H, W, 3) arrays/tensors as cameras deliver them, or float (B, 3, H, W) tensors
    already prepared (returned resized only). Resizing uses antialiasing so a 224 px frame shrunk to
    64 px is not aliased.
    """
    x = torch.as_tensor(frames)
    if x.dtype == torch.uint8:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"uint8 frames must be (B, H, W, 3), got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
    elif x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"float frames must be (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-2:] != (img_size, img_size):
        x = F.interpolate(x.float(), size=(img_size, img_size), mode="bilinear",
                          align_corners=False, antialias=True)
    return x.contiguous()


class Attention(nn.Module):
    """Multi-head attention; queries and keys/values may come from different sequences."""

    def __init__(self, dim: int, heads: int, cross: bool = False):
        super().__init__()
        self.heads = heads
        self.cross = cross
        if cross:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, d = t.shape
        return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        if self.cross:
            q = self._split(self.q(x))
            k, v = (self._split(t) for t in self.kv(context).chunk(2, dim=-1))
        else:
            q, k, v = (self._split(t) for t in self.qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (norm -> attention -> residual, norm -> MLP -> residual)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """Frames (B, 3, H, W) -> tokens (B, N, dim), N = (H / patch)^2, no class token.

    No class token: the world model predicts per-position tokens, and pooled features for probes are
    plain token means.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.dim, kernel_size=cfg.patch_size,
                                     stride=cfg.patch_size)
        # Positions at 0.1 amplitude: at 1.0 they made up ~85% of every token's variance, so the
        # layer-normed states of different views were nearly identical (measured on the sim).
        self.register_buffer("pos", POS_SCALE * sincos_2d(cfg.dim, cfg.grid)[None],
                             persistent=False)
        blocks = [Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)]
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(cfg.dim)
        self.apply(init_weights)
        # Scale each residual branch's output layer by depth (as in GPT-2 / I-JEPA) so deep
        # stacks start near identity and train stably at the paper's 12 blocks.
        for i, blk in enumerate(blocks):
            blk.attn.proj.weight.data.div_(math.sqrt(2.0 * (i + 1)))
            blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * (i + 1)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos

    def forward(self, x: torch.Tensor, return_penultimate: bool = False):
        """Tokens (B, N, dim); with `return_penultimate` also the activations entering the last
        block (the per-transition gradient-magnitude surprise re-runs only that block)."""
        h = self.embed(x)
        for blk in self.blocks[:-1]:
            h = blk(h)
        penultimate = h
        out = self.norm(self.blocks[-1](h))
        return (out, penultimate) if return_penultimate else out


def init_weights(m: nn.Module) -> None:
    """Truncated-normal linear weights, zero biases, unit LayerNorms (the ViT/I-JEPA recipe)."""
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
