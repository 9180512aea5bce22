"""How long each camera action takes on this site, measured from its recorded rounds.

The world model is conditioned on dt, the seconds between the capture times of a transition's two
frames (docs/worldmodel.md). A dream or the run-time agent asks it about a move that has not
happened yet, so it needs the seconds that move will take: `MoveTimes` holds them per action,
measured as the median gap between consecutive frames of a round where the later frame was
reached by that action (the gap includes the move's settling and the snapshot, which is what the
trainer's dt between those frames holds too). Hold frames (`extra.hold`, the same view grabbed
again) are no-op moves; a frame reached by an absolute move (action None) after another frame of
its round gives the jump time (a round's first frame has no frame before it).

An action measured fewer than `min_samples` times gets the median over the measured moves of all
21 actions (a camera's actions differ by their travel, but an estimate from one or two gaps is
noisier than that difference; absolute moves are left out of it, their travel is anything), the
jump likewise, and with nothing measured at all every action takes `default_s`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.pose import N_ACTIONS, NOOP

if TYPE_CHECKING:  # shared.frames pulls in OpenCV; shared.dreams reads MoveTimes without it
    from shared.schemas import FrameRecord
    from shared.store import Store

DEFAULT_MOVE_S = 1.0
MIN_SAMPLES = 3


class MoveTimesError(ValueError):
    """Move times that cannot be used (negative, not finite, wrong shape) or recorded frames whose
    capture times go backwards inside a round."""


def _seconds(value: Any, what: str) -> float:
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise MoveTimesError(f"{what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(s) or s < 0:
        raise MoveTimesError(f"{what} must be finite and >= 0 seconds, got {value!r}")
    return s


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise MoveTimesError(f"{what} must be a count >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class MoveTimes:
    """Seconds per action (indices into shared.pose.ACTIONS), the seconds of an absolute move,
    and how many recorded gaps measured each (0: the fallback of the module docstring)."""

    seconds: tuple[float, ...]
    jump_s: float
    samples: tuple[int, ...] = (0,) * N_ACTIONS
    jump_samples: int = 0

    def __post_init__(self) -> None:
        if len(self.seconds) != N_ACTIONS or len(self.samples) != N_ACTIONS:
            raise MoveTimesError(f"move times need {N_ACTIONS} seconds and {N_ACTIONS} sample "
                                 f"counts, got {len(self.seconds)} and {len(self.samples)}")
        object.__setattr__(self, "seconds", tuple(_seconds(s, f"seconds[{i}]")
                                                  for i, s in enumerate(self.seconds)))
        object.__setattr__(self, "samples", tuple(_count(n, f"samples[{i}]")
                                                  for i, n in enumerate(self.samples)))
        object.__setattr__(self, "jump_s", _seconds(self.jump_s, "jump_s"))
        object.__setattr__(self, "jump_samples", _count(self.jump_samples, "jump_samples"))

    @staticmethod
    def uniform(seconds: float = DEFAULT_MOVE_S) -> MoveTimes:
        """Every action and the jump take `seconds` (nothing measured)."""
        return MoveTimes(seconds=(seconds,) * N_ACTIONS, jump_s=seconds)

    @property
    def noop_s(self) -> float:
        """Seconds of the no-op: how long the camera holds still between two frames of a view."""
        return self.seconds[NOOP]

    def of(self, actions) -> np.ndarray:
        """Action indices (any shape, numpy or torch) -> float32 seconds of the same shape."""
        a = np.asarray(actions.cpu() if hasattr(actions, "cpu") else actions, dtype=np.int64)
        return np.asarray(self.seconds, dtype=np.float32)[a]

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": list(self.seconds), "jump_s": self.jump_s, "samples": list(self.samples),
                "jump_samples": self.jump_samples}

    @staticmethod
    def from_dict(d: Any) -> MoveTimes:
        want = {"seconds", "jump_s", "samples", "jump_samples"}
        if not isinstance(d, dict) or set(d) != want:
            raise MoveTimesError(f"move times must have exactly the fields {sorted(want)}, got {d!r}")
        if not isinstance(d["seconds"], list) or not isinstance(d["samples"], list):
            raise MoveTimesError("move times: seconds and samples must be lists")
        return MoveTimes(seconds=tuple(d["seconds"]), jump_s=d["jump_s"],
                         samples=tuple(d["samples"]), jump_samples=d["jump_samples"])

    def summary(self) -> dict[str, Any]:
        return {"noop_s": round(self.noop_s, 4), "min_s": round(min(self.seconds), 4),
                "max_s": round(max(self.seconds), 4), "jump_s": round(self.jump_s, 4),
                "measured_gaps": sum(self.samples) + self.jump_samples}


def move_times_from_steps(rounds: Iterable[Sequence[tuple[int | None, float]]], *,
                          default_s: float = DEFAULT_MOVE_S,
                          min_samples: int = MIN_SAMPLES) -> MoveTimes:
    """`measure_move_times` on plain rounds: per round, its frames in capture order as (the
    action that reached the frame, None for an absolute move; capture seconds)."""
    default_s = _seconds(default_s, "default_s")
    if min_samples < 1:
        raise MoveTimesError(f"min_samples must be >= 1, got {min_samples}")
    gaps: list[list[float]] = [[] for _ in range(N_ACTIONS)]
    jumps: list[float] = []
    for r, steps in enumerate(rounds):
        for k in range(1, len(steps)):
            action, t = steps[k]
            dt = float(t) - float(steps[k - 1][1])
            if not math.isfinite(dt) or dt < 0:
                raise MoveTimesError(f"round {r}: frame {k} is {dt} s after the frame before it: "
                                     f"capture times must be finite and in order")
            if action is None:
                jumps.append(dt)
            elif 0 <= action < N_ACTIONS:
                gaps[action].append(dt)
            else:
                raise MoveTimesError(f"round {r}: frame {k} has action {action}, outside "
                                     f"0..{N_ACTIONS - 1}")
    measured = [g for per_action in gaps for g in per_action]
    pooled = float(np.median(measured)) if measured else default_s
    seconds = tuple(float(np.median(g)) if len(g) >= min_samples else pooled for g in gaps)
    jump_s = float(np.median(jumps)) if len(jumps) >= min_samples else pooled
    return MoveTimes(seconds=seconds, jump_s=jump_s, samples=tuple(len(g) for g in gaps),
                     jump_samples=len(jumps))


def record_steps(records: Sequence[FrameRecord]) -> list[tuple[int | None, float]]:
    """A round's manifest lines -> (action, capture seconds) per frame, a hold frame as the no-op."""
    from shared.frames import capture_seconds

    return [(NOOP if r.extra.get("hold") else r.action, capture_seconds(r)) for r in records]


def measure_move_times(rounds: Iterable[list[FrameRecord]], default_s: float = DEFAULT_MOVE_S,
                       min_samples: int = MIN_SAMPLES) -> MoveTimes:
    """Per action, the median seconds between consecutive frames of a round where the later frame
    was reached by that action (see the module docstring for hold frames and the fallbacks).
    Raises MoveTimesError when capture times go backwards inside a round."""
    return move_times_from_steps((record_steps(r) for r in rounds), default_s=default_s,
                                 min_samples=min_samples)


def node_move_times(store: Store, node: str, max_rounds: int,
                    default_s: float = DEFAULT_MOVE_S) -> MoveTimes:
    """MoveTimes of this node's newest `max_rounds` rounds (the rounds its dreamer dreams from)."""
    from shared.frames import recent_manifests

    rounds = recent_manifests(store, node, include_other_nodes=False, max_rounds=max_rounds)
    return measure_move_times((records for _, records in rounds), default_s=default_s)
