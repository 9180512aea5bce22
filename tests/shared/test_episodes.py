"""shared.episodes.run_round against a real camera service (the simulator behind HTTP): the order
of moves and grabs, hold frames, StopRequested keeping what was grabbed, poses wrapped/clamped
before they are sent; and the sweep, navigation and the curiosity bench all drive their rounds
through it."""

from __future__ import annotations

import ast
import itertools
import random
from pathlib import Path

import pytest

import bench.curiosity_drive as curiosity_drive
import shared.episodes as episodes
from services.camera.app import create_app
from services.camera.sim.world import SimWorld, SimWorldConfig
from shared.camera_client import CameraClient, ClientSnapshot
from shared.episodes import RandomPolicy, run_round
from shared.pose import NOOP, ActionScale, Pose, PoseRanges, apply_action
from shared.progress import StopRequested
from tests.support.servers import ThreadedServer
from tests.support.settings import make_settings

ROOT = Path(__file__).resolve().parents[2]


class Logged:
    """The camera service's client, every call written down (poses as sent and as seen)."""

    def __init__(self, client: CameraClient) -> None:
        self.client = client
        self.log: list[tuple[str, Pose]] = []

    def move(self, mode: str, pan: float, tilt: float, zoom: float) -> Pose:
        assert mode == "absolute"
        self.log.append(("move", Pose(pan, tilt, zoom)))
        return self.client.move(mode, pan, tilt, zoom)

    def snapshot(self) -> ClientSnapshot:
        snap = self.client.snapshot()
        self.log.append(("snap", snap.pose))
        return snap


class Scripted:
    """Makes the given actions in turn; writes down what it was shown and returns `extra`."""

    def __init__(self, actions: list[int], extra: dict | None = None) -> None:
        self.actions = actions
        self.extra = extra
        self.chosen_at: list[tuple[int, Pose]] = []
        self.seen_log: list[tuple[int | None, bool]] = []

    def choose(self, snap: ClientSnapshot, step: int) -> int:
        self.chosen_at.append((step, snap.pose))
        return self.actions[step]

    def seen(self, snap: ClientSnapshot, action: int | None, hold: bool) -> dict | None:
        self.seen_log.append((action, hold))
        return self.extra


@pytest.fixture
def camera(tmp_path):
    settings = make_settings(tmp_path, camera={"sim": {"width": 32, "height": 32},
                                               "pan_min": -170.0, "pan_max": 170.0,
                                               "pan_wraps": False})
    with ThreadedServer(create_app(settings), port=settings.services.camera_port), \
            CameraClient(settings.services.camera_base_url()) as client:
        yield Logged(client), client.info().ranges.to_ranges()


def test_moves_and_grabs_in_order_with_hold_frames(camera):
    cam, ranges = camera
    policy = Scripted([1, 9, 17], extra={"x": 1})
    grabbed: list = []
    start = Pose(10.0, 5.0, 2.0)
    frames = run_round(cam, policy, start=start, movements=3, hold_frames=True, ranges=ranges,
                       on_grab=lambda s, a, h, e: grabbed.append((s.pose, a, h, e)))
    assert frames == len(grabbed) == 8
    assert [(a, h) for _, a, h, _ in grabbed] == [(None, False), (NOOP, True), (1, False),
                                                  (NOOP, True), (9, False), (NOOP, True),
                                                  (17, False), (NOOP, True)]
    assert policy.seen_log == [(a, h) for _, a, h, _ in grabbed]
    assert [e for *_, e in grabbed] == [{"x": 1}, {"hold": True, "x": 1}] * 4
    # every grab follows one move; each move starts from the pose of the view before it
    kinds = [kind for kind, _ in cam.log]
    assert kinds == ["move", "snap"] * 8
    moves, snaps = [p for k, p in cam.log if k == "move"], [p for k, p in cam.log if k == "snap"]
    assert moves[0] == start
    expected = [NOOP, 1, NOOP, 9, NOOP, 17, NOOP]
    for before, sent, action in zip(snaps[:-1], moves[1:], expected, strict=True):
        assert sent == apply_action(before, action, ranges)
    # the policy chooses from the later (hold) frame of each view
    assert policy.chosen_at == [(0, snaps[1]), (1, snaps[3]), (2, snaps[5])]


def test_without_hold_frames_each_view_is_grabbed_once(camera):
    cam, ranges = camera
    grabbed: list = []
    run_round(cam, Scripted([2, 2]), start=Pose(0.0, 0.0, 1.0), movements=2, hold_frames=False,
              ranges=ranges, on_grab=lambda s, a, h, e: grabbed.append((a, h, e)))
    assert grabbed == [(None, False, None), (2, False, None), (2, False, None)]
    assert [kind for kind, _ in cam.log] == ["move", "snap"] * 3


def test_stop_requested_keeps_the_frames_grabbed_and_moves_no_further(camera):
    cam, ranges = camera
    kept: list = []

    def on_grab(snap, action, hold, extra):
        kept.append(action)
        if len(kept) == 3:
            raise StopRequested("stop")

    with pytest.raises(StopRequested):
        run_round(cam, RandomPolicy(random.Random(0), 21), start=Pose(0.0, 0.0, 1.0),
                  movements=10, hold_frames=True, ranges=ranges, on_grab=on_grab)
    assert len(kept) == 3 and kept[:2] == [None, NOOP]
    assert [kind for kind, _ in cam.log] == ["move", "snap"] * 3  # nothing after the stop


def test_no_out_of_range_pose_is_ever_sent(camera):
    cam, ranges = camera
    assert not ranges.pan_wraps
    # far outside every range at the start, then jumps and zooms that push past the edges
    actions = [18] * 40 + [19] * 20 + [15] * 10 + [17] * 80 + [20] * 30 + [16] * 10
    grabbed: list = []
    run_round(cam, Scripted(actions), start=Pose(400.0, -90.0, 99.0), movements=len(actions),
              hold_frames=False, ranges=ranges, on_grab=lambda s, a, h, e: grabbed.append(s.pose))
    sent = [p for kind, p in cam.log if kind == "move"]
    assert all(ranges.check(p) == [] for p in sent)
    assert sent[0] == ranges.apply(Pose(400.0, -90.0, 99.0))
    poses = set(sent)
    assert any(p.pan == ranges.pan_max for p in poses) and any(p.pan == ranges.pan_min for p in poses)
    assert any(p.tilt == ranges.tilt_max for p in poses) and any(p.tilt == ranges.tilt_min for p in poses)
    assert any(p.zoom == ranges.zoom_max for p in poses) and any(p.zoom == ranges.zoom_min for p in poses)


def test_pan_wraps_on_a_wrapping_camera(tmp_path):
    settings = make_settings(tmp_path, camera={"sim": {"width": 32, "height": 32}})
    with ThreadedServer(create_app(settings), port=settings.services.camera_port), \
            CameraClient(settings.services.camera_base_url()) as client:
        cam, ranges = Logged(client), client.info().ranges.to_ranges()
        assert ranges.pan_wraps
        run_round(cam, Scripted([18] * 3), start=Pose(ranges.pan_max - 15.0, 0.0, 1.0),
                  movements=3, hold_frames=False, ranges=ranges, on_grab=lambda *a: None)
    pans = [p.pan for kind, p in cam.log if kind == "move"]
    assert pans[-1] == pytest.approx(ranges.pan_min + 15.0)
    assert all(ranges.check(p) == [] for kind, p in cam.log if kind == "move")


def _loops_over_movements(path: Path) -> list[int]:
    """Lines of `for ... in range(...)` loops over a round's moves (a second runner)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Call) and \
                getattr(node.iter.func, "id", None) == "range":
            names = {n.id for a in node.iter.args for n in ast.walk(a) if isinstance(n, ast.Name)}
            if names & {"movements", "moves"}:
                out.append(node.lineno)
    return out


@pytest.mark.parametrize("path", ["services/camera/sweep.py", "services/agent/navigation.py",
                                  "bench/curiosity_drive.py"])
def test_the_sweep_navigation_and_bench_drive_rounds_through_the_one_runner(path):
    source = ROOT / path
    tree = ast.parse(source.read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               and n.module == "shared.episodes" and any(a.name == "run_round" for a in n.names)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "run_round"]
    assert imports and calls, f"{path} does not drive its rounds with shared.episodes.run_round"
    assert _loops_over_movements(source) == [], f"{path} has a round loop of its own"
    assert _loops_over_movements(ROOT / "shared/episodes.py")  # the check finds the runner's


def test_the_bench_drive_is_the_runner_over_the_camera_services_driver(monkeypatch):
    calls: list[int] = []

    def counting(*args, **kwargs):
        calls.append(kwargs["movements"])
        return episodes.run_round(*args, **kwargs)

    monkeypatch.setattr(curiosity_drive, "run_round", counting)
    world = SimWorld(SimWorldConfig(seed=1, ranges=PoseRanges(tilt_min=-30, tilt_max=30,
                                                              zoom_max=10)))
    starts = [Pose(10.0, 0.0, 2.0), Pose(200.0, 5.0, 1.0)]
    ep = curiosity_drive.drive(world, 3.0, starts, 4, curiosity_drive.random_policy(random.Random(1)),
                               32, ActionScale(), round_offset=7, holds=True)
    assert calls == [4, 4]
    assert len(ep.frames) == len(ep.kinds) == 2 * 10 and ep.rounds == [7] * 10 + [8] * 10
    assert ep.actions[:3] == [-1, curiosity_drive.HOLD, ep.actions[2]] and ep.actions[2] >= 0
    assert ep.frames[0].shape == (32, 32, 3)
    assert 3.0 < ep.times[0] and all(a < b for a, b in itertools.pairwise(ep.times))  # one clock
    assert all(sum(k.values()) == pytest.approx(1.0) for k in ep.kinds)
