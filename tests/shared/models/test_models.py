"""Shapes, spatially varying predictions, pose normalisation and per-transition surprise."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

from shared.models import (
    ConfigError,
    EncoderConfig,
    PredictorConfig,
    SurpriseConfig,
    WorldModelConfig,
    build_world_model,
    normalise_poses,
)
from shared.models.config import EnsembleConfig
from shared.models.surprise import disagreement, grad_norm_targets, per_transition_error
from shared.models.vit import ViTEncoder, sincos_2d
from shared.pose import PoseRanges
from tests.support.tiny_models import tiny_config

tiny = functools.partial(tiny_config, encoder_depth=2, predictor_depth=2)


def test_encoder_shapes_and_positions():
    cfg = tiny().encoder
    enc = ViTEncoder(cfg)
    out, pen = enc(torch.randn(3, 3, 32, 32), return_penultimate=True)
    assert out.shape == (3, 16, 32) and pen.shape == (3, 16, 32)
    pos = sincos_2d(32, 4)
    assert pos.shape == (16, 32)
    assert len({tuple(r.round(decimals=5).tolist()) for r in pos}) == 16  # every cell distinct


@pytest.mark.parametrize("self_attn", [True, False])
def test_world_model_shapes(self_attn):
    torch.manual_seed(0)
    m = build_world_model(tiny(query_self_attn=self_attn))
    frames = np.random.default_rng(0).integers(0, 255, (2, 48, 40, 3), dtype=np.uint8)
    state = m.encode_state(frames)
    assert state.shape == (2, 16, 32)
    # States are layer-normalised tokens: zero mean, unit variance per token.
    assert torch.allclose(state.mean(-1), torch.zeros(2, 16), atol=1e-4)
    nxt, surprise = m.predict(state, [[0, 0, 1], [90, 10, 2]], [[10, 0, 1], [90, 10, 4]], dt=1.0)
    assert nxt.shape == (2, 16, 32) and surprise.shape == (2,)
    assert (surprise > 0).all()
    # Training call with T targets per source and a subset of K queried cells.
    pf, pt = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    qi = torch.randint(0, 16, (2, 3, 5))
    pred, trunk, log_s = m.forward_predictor(state, pf, pt, torch.ones(pf.shape[:2]), qi)
    assert pred.shape == (2, 3, 5, 32) and trunk.shape == (2, 3, 5, 32) and log_s.shape == (2, 3, 1)


def test_predictions_vary_across_positions():
    """The original's defect: query tokens without position gave identical predicted tokens."""
    torch.manual_seed(0)
    m = build_world_model(tiny())
    state = m.encode_state(torch.randint(0, 255, (1, 32, 32, 3), dtype=torch.uint8))
    # Even from a constant state, positions alone must make the predicted tokens differ.
    for s in (state, torch.ones_like(state)):
        nxt, _ = m.predict(s, [[0, 0, 1]], [[20, 0, 1]], dt=1.0)
        spread = (nxt[0] - nxt[0].mean(0, keepdim=True)).norm(dim=-1)
        assert (spread > 1e-3).all()
        assert torch.cdist(nxt[0], nxt[0]).fill_diagonal_(1.0).min() > 1e-3


def test_prediction_depends_on_pose():
    torch.manual_seed(0)
    m = build_world_model(tiny())
    state = m.encode_state(torch.randint(0, 255, (1, 32, 32, 3), dtype=torch.uint8))
    a, _ = m.predict(state, [[0, 0, 1]], [[20, 0, 1]], dt=1.0)
    b, _ = m.predict(state, [[0, 0, 1]], [[0, 30, 5]], dt=1.0)
    # Small at initialisation (weights are std 0.02), but a real dependence, not exactly zero.
    assert (a - b).abs().mean() > 1e-6


def test_pose_normalisation_wraps():
    r = PoseRanges()
    p = normalise_poses([[0, 0, 1], [360, 0, 1], [359, 0, 1], [1, 0, 1], [180, 90, 20]], r)
    assert p.shape == (5, 4)
    assert torch.allclose(p[0], p[1], atol=1e-6)  # pan 0 == 360
    assert (p[2] - p[3]).norm() < 0.05  # 359 and 1 are neighbours
    assert (p[0] - p[4]).norm() > 1.0
    assert p.abs().max() <= 1.0 + 1e-6
    assert torch.equal(normalise_poses(p), p)  # normalised poses pass through


def test_surprise_is_per_transition():
    torch.manual_seed(0)
    m = build_world_model(tiny(targets=("pred_error", "grad_norm"), ensemble=3))
    x = torch.randn(2, 3, 32, 32)
    state, pen = m.encode_target(x, return_penultimate=True)
    pf, pt = torch.randn(2, 1, 4), torch.randn(2, 1, 4)
    pred, trunk, log_s = m.forward_predictor(state, pf, pt, torch.ones(pf.shape[:2]))
    tgt = state.flip(0)[:, None]
    err = per_transition_error(pred, tgt)
    dis = disagreement(m.ensemble_predictions(trunk, pred, full=True)).mean(-1)
    gn = grad_norm_targets(m.target_encoder, pen.flip(0), pred[:, 0], None)
    for v in (err.flatten(), dis.flatten(), gn, log_s[..., 0].flatten()):
        assert v.shape == (2,)
        assert (v[0] - v[1]).abs() > 1e-9, "each transition gets its own value"
    # Per-sample gradients agree with an ordinary backward pass on one transition.
    enc = m.target_encoder
    blk = enc.blocks[-1]
    blk.requires_grad_(True)
    enc.norm.requires_grad_(True)
    out = enc.norm(blk(pen.flip(0)[:1]))
    loss = torch.nn.functional.smooth_l1_loss(pred[0, 0], torch.nn.functional.layer_norm(out, (32,))[0])
    grads = torch.autograd.grad(loss, list(blk.parameters()) + list(enc.norm.parameters()))
    manual = sum(g.abs().sum() for g in grads) / sum(g.numel() for g in grads)
    assert torch.allclose(manual, gn[0], rtol=1e-4)


def test_config_validation_and_json_round_trip():
    for name in ("cpu", "paper"):
        cfg = WorldModelConfig.preset(name)
        assert WorldModelConfig.from_json(cfg.to_json()) == cfg
    paper = WorldModelConfig.preset("paper").encoder
    assert (paper.dim, paper.depth, paper.heads, paper.img_size, paper.patch_size, paper.n_tokens) \
        == (192, 12, 3, 224, 14, 256)
    with pytest.raises(ConfigError):
        WorldModelConfig.preset("huge")
    with pytest.raises(ConfigError):
        EncoderConfig(img_size=30, patch_size=8).validate()
    with pytest.raises(ConfigError):
        WorldModelConfig(surprise=SurpriseConfig(targets=("disagreement",), primary="disagreement"))
    with pytest.raises(ConfigError):
        WorldModelConfig.from_json('{"encoder": {}}')
    with pytest.raises(ConfigError):
        WorldModelConfig.from_json("not json")


def test_configs_written_before_the_strides_read_as_stride_one():
    """Files written before the stride fields existed have none; their code behaved as stride 1 does."""
    d = WorldModelConfig.preset("cpu").to_dict()
    for name in ("query_stride", "memory_stride"):
        del d["predictor"][name]
    old = WorldModelConfig.from_dict(d)
    assert (old.predictor.query_stride, old.predictor.memory_stride) == (1, 1)
    assert old == WorldModelConfig.preset("cpu")
    d["predictor"]["warp_speed"] = 3  # any other unknown or missing field still fails loudly
    with pytest.raises(ConfigError, match="unknown"):
        WorldModelConfig.from_dict(d)


def test_configs_written_before_time_read_as_a_model_that_ignores_dt():
    """Files written before the time fields have none: they are read as time_features 0, which is
    what their code computed (a predictor without a time input), never as a time-aware model."""
    d = WorldModelConfig.preset("cpu").to_dict()
    del d["predictor"]["time_features"], d["predictor"]["time_scale_s"]
    old = WorldModelConfig.from_dict(d)
    assert old.predictor.time_features == 0
    assert WorldModelConfig.preset("cpu").predictor.time_features == 2
    m = build_world_model(tiny().replace(predictor=dataclasses.replace(
        tiny().predictor, time_features=0))).eval()
    assert m.predictor.cond[0].in_features == 12
    state = m.encode_state(np.zeros((1, 32, 32, 3), np.uint8))
    a, sa = m.predict(state, [[0, 0, 1]], [[10, 0, 1]], dt=0.0)
    b, sb = m.predict(state, [[0, 0, 1]], [[10, 0, 1]], dt=5.0)
    assert torch.equal(a, b) and torch.equal(sa, sb)


def test_prediction_depends_on_dt():
    """The same move with another dt is another transition: the predictor and the surprise heads
    see the time features (signed: looking back differs from looking ahead)."""
    torch.manual_seed(0)
    m = build_world_model(tiny()).eval()
    assert m.predictor.cond[0].in_features == 12 + 2
    state = torch.nn.functional.layer_norm(torch.randn(1, 16, 32), (32,))
    outs = [m.predict(state, [[0, 0, 1]], [[10, 0, 1]], dt=dt) for dt in (0.0, 1.0, -1.0)]
    for i, j in ((0, 1), (1, 2), (0, 2)):
        assert not torch.equal(outs[i][0], outs[j][0])  # an untrained head: small but real
        assert not torch.equal(outs[i][1], outs[j][1])
    with pytest.raises(ValueError, match="dt must be"):
        m.predict(state, [[0, 0, 1]], [[10, 0, 1]], dt=[1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        m.predict(state, [[0, 0, 1]], [[10, 0, 1]], dt=float("nan"))
    with pytest.raises(TypeError):
        m.predict(state, [[0, 0, 1]], [[10, 0, 1]])  # dt is required: no silent "no time"
    with pytest.raises(ConfigError, match="time_features"):
        PredictorConfig(time_features=3).validate()


def test_warp_moves_content_with_the_camera():
    """The warp base: a pan by one cell's worth of degrees moves every token one cell left, a
    tilt up moves them down, zoom x2 magnifies about the centre; zero move is the identity."""
    cfg = tiny().replace(predictor=PredictorConfig(dim=32, depth=1, heads=2, warp=True,
                                                   warp_hfov_deg=40.0, warp_tilt_span_deg=100.0,
                                                   warp_zoom_span=4.0))
    m = build_world_model(cfg)
    pred = m.predictor
    g = cfg.encoder.grid  # 4 cells across: one cell is 10 degrees at zoom 1
    state = torch.arange(16, dtype=torch.float32).view(1, 16, 1).expand(1, 16, 32).contiguous()
    ranges = PoseRanges(tilt_min=-50.0, tilt_max=50.0, zoom_min=1.0, zoom_max=4.0)
    pf = normalise_poses(np.array([[100.0, 0.0, 1.0]]), ranges)[:, None]

    def warped(pose_to, qi=None):
        pt = normalise_poses(np.array([pose_to]), ranges)[:, None]
        return pred.warp(state, pf, pt, qi)[0, 0, :, 0].view(-1)

    assert torch.allclose(warped([100.0, 0.0, 1.0]), state[0, :, 0], atol=1e-4)
    right = warped([110.0, 0.0, 1.0]).view(g, g)  # pan right: target cell c shows source c + 1
    src = state[0, :, 0].view(g, g)
    assert torch.allclose(right[:, :-1], src[:, 1:], atol=1e-3)
    up = warped([100.0, 10.0, 1.0]).view(g, g)  # tilt up: target row r shows source row r - 1
    assert torch.allclose(up[1:], src[:-1], atol=1e-3)
    zoomed = warped([100.0, 0.0, 2.0]).view(g, g)  # x2: the centre 2x2 cells spread over 4x4
    assert torch.allclose(zoomed[1:3, 1:3].mean(), src[1:3, 1:3].mean(), atol=1e-3)
    assert zoomed.std() < src.std()
    # Queried subsets read the same values as the full grid.
    qi = torch.tensor([[[0, 5, 15]]])
    assert torch.allclose(warped([110.0, 0.0, 1.0], qi), right.view(-1)[[0, 5, 15]], atol=1e-5)
    # The predictor with the warp still starts near its base and keeps output shapes.
    nxt, _ = m.predict(m.encode_state(np.zeros((1, 32, 32, 3), np.uint8)), [[0, 0, 1]],
                       [[10, 0, 1]], ranges, dt=1.0)
    assert nxt.shape == (1, 16, 32)


@pytest.mark.parametrize("query_stride,memory_stride", [(2, 1), (2, 2), (4, 2)])
def test_coarse_queries_cover_every_cell(query_stride, memory_stride):
    """A coarse query predicts its whole block of cells; a subset of queries gives exactly the
    cells `cells_of` names, equal to the full prediction there, and the full prediction comes back
    in row-major cell order and varies across the cells of one block."""
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        encoder=EncoderConfig(img_size=64, patch_size=8, dim=32, depth=1, heads=2),
        predictor=PredictorConfig(dim=32, depth=2, heads=2, query_self_attn=False, warp=True,
                                  query_stride=query_stride, memory_stride=memory_stride),
        surprise=SurpriseConfig(targets=("pred_error",), primary="pred_error", hidden=16),
        ensemble=EnsembleConfig(heads=2, hidden=16), name="strided")
    m = build_world_model(cfg).eval()
    pred_mod = m.predictor
    assert pred_mod.n_queries == (8 // query_stride) ** 2
    assert sorted(pred_mod.query_cells.flatten().tolist()) == list(range(64))
    state = torch.nn.functional.layer_norm(torch.randn(2, 64, 32), (32,))
    pf, pt = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    with torch.no_grad():
        dt = torch.rand(2, 3)
        full, trunk = pred_mod(state, pf, pt, dt)
        qi = torch.stack([torch.randperm(pred_mod.n_queries)[:2] for _ in range(6)]).reshape(2, 3, 2)
        part, _ = pred_mod(state, pf, pt, dt, qi)
    assert full.shape == (2, 3, 64, 32) and trunk.shape == (2, 3, pred_mod.n_queries, 32)
    cells = pred_mod.cells_of(qi)
    assert part.shape == (2, 3, 2 * query_stride ** 2, 32)
    assert torch.allclose(part, torch.gather(full, 2, cells[..., None].expand(*cells.shape, 32)),
                          atol=1e-5)
    # Cells of one block get different predictions (the head emits one token per cell).
    block = pred_mod.query_cells[0]
    assert (full[0, 0, block[0]] - full[0, 0, block[1]]).abs().max() > 1e-4
    ens = m.ensemble_predictions(trunk, full, full=True)
    assert ens.shape == (2, 2, 3, 64, 32)
    # The heads' predictions cover the same cells as a queried subset's, in the same order.
    with torch.no_grad():
        part_trunk = pred_mod(state, pf, pt, dt, qi)[1]
        ens_part = m.ensemble_predictions(part_trunk, part, full=False)
    assert torch.allclose(ens_part, torch.gather(
        ens, 3, cells[None, ..., None].expand(2, *cells.shape, 32)), atol=1e-5)
    nxt, surprise = m.predict(state, [[0, 0, 1], [90, 10, 2]], [[10, 0, 1], [90, 10, 4]], dt=1.0)
    assert nxt.shape == (2, 64, 32) and surprise.shape == (2,)


def test_strides_must_divide_the_grid():
    with pytest.raises(ConfigError, match="query_stride 3 must divide the token grid 4"):
        WorldModelConfig(encoder=EncoderConfig(img_size=32, patch_size=8, dim=32, depth=1, heads=2),
                         predictor=PredictorConfig(dim=32, depth=1, heads=2, query_stride=3))
    with pytest.raises(ConfigError, match="must be >= 1"):
        PredictorConfig(memory_stride=0).validate()
