"""Coming from the original: importing its persistence folder (made here, in its formats) and
translating its command line."""

from __future__ import annotations

import datetime as dt
import pickle

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ptzjepa.cli import app
from services.coordinator.legacy import (
    LegacyImportError,
    PasswordOnCommandLine,
    action_of,
    import_legacy,
    parse_frame_name,
    scan,
    translate,
)
from shared.config import load_settings
from shared.pose import ACTIONS
from shared.store import Store

T0 = dt.datetime(2024, 5, 17, 14, 3, 7, 250_000)
FMT = "%Y-%m-%d_%H:%M:%S.%f"


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (64, 48),
                     interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _name(pose, when: dt.datetime) -> str:
    return f"{pose[0]},{pose[1]},{pose[2]}_{when.strftime(FMT)}.jpg"


def make_legacy_folder(root, *, sweep_rounds=2, movements=3, agent_rounds=1):
    """The original's /persistence: a random sweep (-ki), then agent rounds with positions and
    commands files (-tp / --track_all), and a pickled checkpoint that must never be loaded."""
    imgs = root / "collected_imgs"
    imgs.mkdir(parents=True)
    frames = []  # (name, pose, time)
    t = T0
    seed = 0
    for r in range(sweep_rounds):
        pose = [float(37 + 120 * r), float(12 - 20 * r), 1.0]
        for step in range(movements + 1):
            if step:
                pose = [pose[0] + 2.0, pose[1] - 0.2, round(pose[2] + 0.1, 2)]
            t += dt.timedelta(seconds=1.3)
            name = _name(pose, t)
            (imgs / name).write_bytes(_jpeg(seed))
            seed += 1
            frames.append((name, tuple(pose), t))
    commands_per_round = []
    for _ in range(agent_rounds):
        pose = [200.5, 30.0, 2.0]
        positions, commands = [], []
        moves = [ACTIONS[12], ACTIONS[4], ACTIONS[15]]  # long right, down, long zoom in
        for step in range(len(moves) + 1):
            if step:
                a = moves[step - 1]
                commands.append((2 * a.d_pan, 2 * a.d_tilt, a.d_zoom))
                pose = [pose[0] + 2 * a.d_pan, round(pose[1] + 2 * a.d_tilt, 2), round(pose[2] + a.d_zoom, 2)]
            t += dt.timedelta(seconds=1.1)
            name = _name(pose, t)
            (imgs / name).write_bytes(_jpeg(seed))
            seed += 1
            frames.append((name, tuple(pose), t))
            positions.append(",".join(str(v) for v in pose))
        t += dt.timedelta(seconds=0.5)
        stamp = t.strftime(FMT)
        (root / "collected_positions").mkdir(exist_ok=True)
        (root / "collected_positions" / f"positions_at_{stamp}.txt").write_text("\n".join(positions))
        (root / "collected_commands").mkdir(exist_ok=True)
        (root / "collected_commands" / f"commands_at_{stamp}.txt").write_text(
            "\n".join(f"{p:.2f},{q:.2f},{z:.2f}" for p, q, z in commands))
        commands_per_round.append(moves)
    (root / "world_models" / "wm_00_00").mkdir(parents=True)
    (root / "world_models" / "wm_00_00" / "jepa-latest.pt").write_bytes(pickle.dumps({"not": "loaded"}))
    return frames, commands_per_round


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


def _records(store, node="node0"):
    out = []
    for rel in store.list(f"manifests/{node}", ".jsonl"):
        out += store.read_manifest(rel)
    return sorted(out, key=lambda r: (r.captured_at, r.step))


def test_import_keeps_poses_and_times_and_makes_rounds(tmp_path, store):
    frames, moves = make_legacy_folder(tmp_path / "persistence")
    result = import_legacy(store, tmp_path / "persistence", node="node0", camera="cam0", movements=3)
    records = _records(store)
    assert result["frames"] == len(records) == len(frames) == 12
    assert result["sweep_rounds"] == 2 and result["agent_rounds"] == 1 and result["rounds"] == 3
    for (name, pose, when), rec in zip(frames, records, strict=True):
        assert (rec.pose.pan, rec.pose.tilt, rec.pose.zoom) == pose
        assert rec.captured_at == when.replace(tzinfo=dt.UTC)
        assert rec.source == "import" and rec.extra["legacy_name"] == name
        original = tmp_path / "persistence" / "collected_imgs" / name
        assert store.read_bytes(rec.path) == original.read_bytes()
    rounds = {}
    for rec in records:
        rounds.setdefault(rec.round_id, []).append(rec)
    assert sorted(len(r) for r in rounds.values()) == [4, 4, 4]
    agent = next(r for r in rounds.values() if r[0].extra["legacy_kind"] == "navigate")
    assert [r.action for r in agent] == [None, *[ACTIONS.index(a) for a in moves[0]]]
    assert agent[1].extra["legacy_command"] == [2.0, 0.0, 0.0]
    sweeps = [rs for rs in rounds.values() if rs[0].extra["legacy_kind"] == "sweep"]
    assert all(r.action is None for rs in sweeps for r in rs)
    assert store.exists(f"imports/node0/{result['import_id']}.json")
    assert any("pickles" in n for n in result["notes"]) and result["skipped"]
    # the same folder again is refused, and changes nothing
    with pytest.raises(LegacyImportError, match="already imported"):
        import_legacy(store, tmp_path / "persistence", node="node0", camera="cam0", movements=3)
    assert len(_records(store)) == 12


def test_sweep_rounds_are_found_without_movements(tmp_path, store):
    make_legacy_folder(tmp_path / "p", sweep_rounds=3, agent_rounds=0)
    plan = scan(tmp_path / "p")
    assert [len(r.frames) for r in plan.rounds] == [4, 4, 4]
    assert any("--movements" in n for n in plan.notes)


@pytest.mark.parametrize("damage, fragment", [
    (lambda imgs: (imgs / "snapshot.jpg").write_bytes(_jpeg(99)), "snapshot.jpg"),
    (lambda imgs: (imgs / "10,20_2024-05-17_14:00:00.000000.jpg").write_bytes(_jpeg(99)), "10,20_"),
    (lambda imgs: (imgs / "10,20,1_2024-13-45_14:00:00.000000.jpg").write_bytes(_jpeg(99)), "invalid date"),
    (lambda imgs: (imgs / "10,nan,1_2024-05-17_14:00:00.000000.jpg").write_bytes(_jpeg(99)), "nan"),
    (lambda imgs: (imgs / "10,20,1_2024-05-17_14:00:00.000000.jpg").write_bytes(_jpeg(99)[:-200]),
     "truncated"),
    (lambda imgs: (imgs / "10,20,1_2024-05-17_14:00:00.000000.jpg").write_bytes(b"not an image"),
     "not a JPEG"),
])
def test_bad_names_and_corrupt_images_import_nothing(tmp_path, store, damage, fragment):
    make_legacy_folder(tmp_path / "p")
    damage(tmp_path / "p" / "collected_imgs")
    with pytest.raises(LegacyImportError, match="nothing was imported") as err:
        import_legacy(store, tmp_path / "p", node="node0", camera="cam0")
    assert fragment in str(err.value)
    assert store.list("") == []


def test_positions_that_do_not_match_the_frames_import_nothing(tmp_path, store):
    make_legacy_folder(tmp_path / "p")
    pos = next((tmp_path / "p" / "collected_positions").iterdir())
    lines = pos.read_text().splitlines()
    lines[1] = "5,5,1"
    pos.write_text("\n".join(lines))
    with pytest.raises(LegacyImportError, match="line 2"):
        import_legacy(store, tmp_path / "p", node="node0", camera="cam0")
    assert store.list("") == []
    # the frames alone can still be imported, on request
    result = import_legacy(store, tmp_path / "p", node="node0", camera="cam0", ignore_positions=True)
    assert result["frames"] == 12 and result["agent_rounds"] == 0


def test_pickled_positions_are_never_loaded(tmp_path, store):
    make_legacy_folder(tmp_path / "p")
    pos = next((tmp_path / "p" / "collected_positions").iterdir())
    pos.write_bytes(pickle.dumps(["1,2,3"]))
    with pytest.raises(LegacyImportError, match="pickle"):
        import_legacy(store, tmp_path / "p", node="node0", camera="cam0")


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, store):
    make_legacy_folder(tmp_path / "p")
    plan = scan(tmp_path / "p", movements=3)
    # a file already in the way of the third round's first frame: the write fails half-way
    store.write_bytes(f"frames/node0/{plan.import_id}-r002/{plan.import_id}-r002-000.jpg", b"x")
    with pytest.raises(LegacyImportError, match="was removed"):
        import_legacy(store, tmp_path / "p", node="node0", camera="cam0", movements=3)
    assert store.list("manifests") == [] and store.list("imports") == []
    assert store.list("frames") == [f"frames/node0/{plan.import_id}-r002/{plan.import_id}-r002-000.jpg"]


def test_axis_zoom_units_become_magnification(tmp_path, store):
    imgs = tmp_path / "p" / "collected_imgs"
    imgs.mkdir(parents=True)
    (imgs / _name((-120.5, 10.0, 5000.0), T0)).write_bytes(_jpeg(1))
    (imgs / _name((-118.5, 10.0, 5000.0), T0 + dt.timedelta(seconds=1))).write_bytes(_jpeg(2))
    import_legacy(store, tmp_path / "p", node="n1", camera="axis0", camera_brand="axis", axis_max_zoom=12.0)
    rec = _records(store, "n1")[0]
    assert rec.pose.pan == -120.5 and rec.pose.zoom == pytest.approx(1 + 4999 * 11 / 9998)
    assert rec.extra["legacy_pose"] == [-120.5, 10.0, 5000.0]


def test_frame_names_of_every_version_of_the_original():
    when = dt.datetime(2024, 5, 17, 14, 3, 7, 250_000, tzinfo=dt.UTC)
    assert parse_frame_name("10.5,-3,1.2_2024-05-17_14:03:07.250000.jpg") == (10.5, -3.0, 1.2, when)
    # early versions: str(datetime) after a space (no microseconds when they were 0)
    assert parse_frame_name("10.5,-3,1.2 2024-05-17 14:03:07.250000.jpg")[3] == when
    assert parse_frame_name("1,2,3 2024-05-17 14:03:07.jpg")[3] == when.replace(microsecond=0)
    assert action_of((10.0, 0.0, 0.0)) == 18 and action_of((0.0, 0.0, 20.0)) == 15  # Axis zoom x100
    assert action_of((4.0, 0.0, 0.0)) is None


def test_import_legacy_command(tmp_path):
    make_legacy_folder(tmp_path / "p")
    env = {"PTZJEPA_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    dry = runner.invoke(app, ["import-legacy", str(tmp_path / "p"), "--dry-run", "-mv", "3"], env=env)
    assert dry.exit_code == 0 and "would import 12 frames in 3 rounds" in dry.output
    assert not (tmp_path / "data" / "store" / "manifests").exists()
    ok = runner.invoke(app, ["import-legacy", str(tmp_path / "p"), "-mv", "3"], env=env)
    assert ok.exit_code == 0 and "imported 12 frames" in " ".join(ok.output.split())
    again = runner.invoke(app, ["import-legacy", str(tmp_path / "p"), "-mv", "3"], env=env)
    assert again.exit_code == 1 and "already imported" in again.output


# ---- the original's command line ---------------------------------------------------------
ORIGINAL = ["-rm", "lifelong", "-it", "20", "-mv", "20", "-cb", "0", "-ki", "-tp", "--track_all",
            "-ip", "10.31.81.4", "-un", "admin", "-dist", "-dist_ip", "10.31.81.1"]


def test_the_original_lifelong_command_line_maps_to_config_and_commands(tmp_path):
    t = translate(ORIGINAL)
    assert t.config["collect"] == {"iterations": 20, "movements": 20}
    assert t.config["agent"] == {"navigate_iterations": 20, "navigate_movements": 20}
    assert t.config["camera"]["driver"] == "hanwha" and t.config["camera"]["host"] == "10.31.81.4"
    assert t.config["redis_url"] == "redis://10.31.81.1:6379/0"
    assert any("lifelong start" in c for c in t.commands)
    assert any("export-embeddings" in n for n in t.notes)
    # the configuration it prints is one that ptzjepa loads
    path = tmp_path / "ptzjepa.yaml"
    path.write_text(t.config_yaml())
    settings = load_settings(path, environ={})
    assert settings.camera.driver == "hanwha" and settings.collect.movements == 20
    assert settings.agent.navigate_iterations == 20 and settings.camera.tilt_max == 90.0


@pytest.mark.parametrize("argv, command", [
    (["-rm", "train"], "ptzjepa phase worldmodel"),
    (["-rm", "train", "-si"], "ptzjepa import-legacy /persistence"),
    (["-rm", "dream"], "ptzjepa phase dreamer"),
    (["-rm", "agent_train"], "ptzjepa phase agent"),
    (["-rm", "env_interaction", "-it", "3", "-mv", "5"],
     "ptzjepa phase navigate --iterations 3 --movements 5"),
])
def test_run_modes(argv, command):
    assert any(c.startswith(command) for c in translate(argv).commands)


@pytest.mark.parametrize("flag", [["-pw", "hunter2"], ["--password", "hunter2"], ["--password=hunter2"],
                                  ["-pwhunter2"]])
def test_a_password_flag_is_refused_and_never_echoed(flag):
    with pytest.raises(PasswordOnCommandLine) as err:
        translate(["-rm", "lifelong", *flag])
    assert "hunter2" not in str(err.value) and "PTZJEPA_CAMERA__PASSWORD_FILE" in str(err.value)
    result = CliRunner().invoke(app, ["legacy", "-rm", "lifelong", *flag])
    assert result.exit_code == 2 and "refused" in result.output and "hunter2" not in result.output


def test_legacy_command_prints_config_and_commands():
    result = CliRunner().invoke(app, ["legacy", *ORIGINAL])
    assert result.exit_code == 0, result.output
    assert "driver: hanwha" in result.output and "ptzjepa lifelong start" in result.output
    bad = CliRunner().invoke(app, ["legacy", "-rm", "lifelong", "--pasword", "hunter2"])
    assert bad.exit_code == 2 and "--pasword" in bad.output and "hunter2" not in bad.output
    bad = CliRunner().invoke(app, ["legacy", "-rm", "sometimes"])
    assert bad.exit_code == 2 and "cannot translate" in bad.output
