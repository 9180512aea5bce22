"""Agent files: safetensors (no pickle) with the config embedded as JSON metadata.

The file alone rebuilds the Q-network: metadata holds the format name and version, the AgentConfig,
the observation size and spec (the agent must observe the world the way its dreams did) and the
reward scale. Anything unexpected (not safetensors, truncated, padded, another format, a config
this version cannot build, missing/extra tensors, wrong shapes, NaN) raises AgentCheckpointError.
"""

from __future__ import annotations

import json

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from services.agent.config import AgentConfig
from services.agent.qnet import QNetwork
from shared.dreams import ObservationSpec
from shared.models.checkpoint import read_metadata
from shared.tensorfile import canonical_header

FORMAT = "ptzjepa.agent"
FORMAT_VERSION = "1"


class AgentCheckpointError(ValueError):
    """An agent file that cannot be used, with the reason."""


def to_bytes(q_net: QNetwork, cfg: AgentConfig, spec: ObservationSpec = ObservationSpec(),
             reward_scale: float = 1.0, extra: dict[str, str] | None = None) -> bytes:
    if tuple(q_net.hidden) != tuple(cfg.hidden):
        raise ValueError(f"network widths {q_net.hidden} differ from the config's {cfg.hidden}")
    meta = {**{k: str(v) for k, v in (extra or {}).items()}, "format": FORMAT,
            "format_version": FORMAT_VERSION, "config": cfg.to_json(), "obs_dim": str(q_net.obs_dim),
            "n_actions": str(q_net.n_actions), "observation_spec": json.dumps(spec.to_dict()),
            "reward_scale": repr(float(reward_scale))}
    tensors = {k: v.detach().cpu().contiguous() for k, v in q_net.state_dict().items()}
    return canonical_header(st_save(tensors, metadata=meta))


def from_bytes(data: bytes) -> tuple[QNetwork, AgentConfig, dict]:
    """(q_net in eval mode, config, metadata) from an agent file's bytes, all checked.

    metadata["observation_spec"] is an ObservationSpec, metadata["reward_scale"] a float.
    """
    meta = read_metadata(data, FORMAT, FORMAT_VERSION, "agent", AgentCheckpointError)
    try:
        cfg = AgentConfig.from_dict(json.loads(meta["config"]))
        obs_dim, n_actions = int(meta["obs_dim"]), int(meta["n_actions"])
        spec = ObservationSpec.from_dict(json.loads(meta["observation_spec"]))
        reward_scale = float(meta["reward_scale"])
    except (KeyError, ValueError, TypeError) as e:
        raise AgentCheckpointError(f"bad agent metadata: {e}") from None
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error type for malformed data
        raise AgentCheckpointError(f"cannot read tensors: {e}") from None
    net = QNetwork(obs_dim, cfg.hidden, n_actions)
    expected = net.state_dict()
    missing, extra = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
    if missing or extra:
        raise AgentCheckpointError(f"tensors do not match the config: missing {missing[:5]}, "
                                   f"unexpected {extra[:5]}")
    for k, ref in expected.items():
        if tensors[k].shape != ref.shape:
            raise AgentCheckpointError(f"tensor {k} has shape {tuple(tensors[k].shape)}, the config "
                                       f"needs {tuple(ref.shape)}")
        if not torch.isfinite(tensors[k]).all():
            raise AgentCheckpointError(f"tensor {k} holds NaN or infinite values")
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    meta["observation_spec"] = spec
    meta["reward_scale"] = reward_scale
    return net.eval(), cfg, meta
