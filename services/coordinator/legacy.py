"""Coming from the original PTZJEPA: import its persistence folder, translate its command line.

See docs/migrating.md for the formats and the mapping. Two tools:

`import_legacy(store, folder, ...)` (`ptzjepa import-legacy PATH`) reads the original's persistence
folder (the `/persistence` volume of its container):

    collected_imgs/{pan},{tilt},{zoom}_{YYYY-mm-dd_HH:MM:SS.ffffff}.jpg   frames (kept with -ki)
    collected_positions/positions_at_{YYYY-mm-dd_HH:MM:SS.ffffff}.txt     one agent round: a
        "pan,tilt,zoom" line per frame (-tp / --track_all)
    collected_commands/commands_at_{same time}.txt                        that round's relative
        moves, a "pan,tilt,zoom" line per move (--track_all)
    collected_embeds/*.pt, world_models/, agents/                          pickles: never loaded

and writes its frames into the store as `source: import` rounds with manifests, exactly like the
rounds a sweep or a navigation writes, plus an import record `imports/<node>/<import id>.json`.
It is strict: every name is parsed and every image decoded *before* anything is written, and any
bad name, corrupt or truncated image, unreadable positions/commands file or pose that does not
match its positions line stops the import with a message naming the files; a failure while writing
removes what this import wrote, so an import is all or nothing. Importing the same folder twice is
refused (the import id is a hash of its files).

`translate(argv)` (`ptzjepa legacy ARGS`) accepts the original's `main.py` flags and answers with
the equivalent ptzjepa configuration and commands. A camera password on the command line is
refused without being echoed: it belongs in the environment or a secret file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from shared.pose import ACTIONS
from shared.schemas import FrameRecord, PoseModel
from shared.store import Store, StoreError, decode_image, frame_path, manifest_path

IMAGES_DIR = "collected_imgs"
POSITIONS_DIR = "collected_positions"
COMMANDS_DIR = "collected_commands"
PICKLE_DIRS = ("collected_embeds", "world_models", "agents")
MAX_LISTED = 10

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TIME = r"(\d{4}-\d{2}-\d{2})[_ ](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)"
FRAME_NAME = re.compile(rf"^({_NUM}),({_NUM}),({_NUM})\s?[_ ]{_TIME}\.(?:jpg|jpeg|JPG|JPEG)$")
POSITIONS_NAME = re.compile(rf"^positions_at_{_TIME}(?:\.txt)?$")
COMMANDS_NAME = re.compile(rf"^commands_at_{_TIME}(?:\.txt)?$")

# The original's relative moves: pan/tilt raw units x 2 (degrees); zoom raw units x a brand factor.
PAN_TILT_FACTOR = 2.0
ZOOM_FACTORS = (1.0, 100.0, 1000.0)  # Hanwha; Axis (two versions of the original)
# The largest relative move of the original's random sweep (5 x 2 degrees), plus slack.
SWEEP_MAX_STEP_DEG = 10.5


class LegacyImportError(ValueError):
    """The folder cannot be imported; the message names every offending file (up to a few)."""


class PasswordOnCommandLine(ValueError):
    """A camera password was given as a flag; the message never contains it."""


def _listing(items: list[str], what: str) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    more = f" (and {len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return f"{len(items)} {what}: {shown}{more}"


def _time(date: str, clock: str, tz: dt.tzinfo) -> dt.datetime:
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in clock else "%Y-%m-%d %H:%M:%S"
    return dt.datetime.strptime(f"{date} {clock}", fmt).replace(tzinfo=tz)


def parse_frame_name(name: str, tz: dt.tzinfo = dt.UTC) -> tuple[float, float, float, dt.datetime]:
    """(pan, tilt, zoom, capture time) from an original frame name; ValueError when it is not one."""
    m = FRAME_NAME.match(name)
    if not m:
        raise ValueError(f"'{name}' is not named {{pan}},{{tilt}},{{zoom}}_{{YYYY-mm-dd_HH:MM:SS.ffffff}}.jpg")
    pan, tilt, zoom = (float(m.group(i)) for i in (1, 2, 3))
    if not all(math.isfinite(v) for v in (pan, tilt, zoom)):
        raise ValueError(f"'{name}': pose values must be finite numbers")
    try:
        when = _time(m.group(4), m.group(5), tz)
    except ValueError as exc:
        raise ValueError(f"'{name}': invalid date/time ({exc})") from None
    return pan, tilt, zoom, when


def _parse_triples(path: Path, what: str) -> list[tuple[float, float, float]]:
    raw = path.read_bytes()
    if raw[:1] == b"\x80":  # a pickle (an early version of the original pickled its positions)
        raise LegacyImportError(f"{path} is a Python pickle (an early version of the original); "
                                f"pickles are never loaded: remove it or use --ignore-positions")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LegacyImportError(f"{path} is not a text {what} file") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.strip().split(",")]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise LegacyImportError(f"{path} line {number}: expected 'pan,tilt,zoom', got {line.strip()[:60]!r}")
        out.append(values)
    return out


def action_of(command: tuple[float, float, float]) -> int | None:
    """The index in shared.pose.ACTIONS of an original relative command, or None (e.g. the random
    sweep's moves, which are not the agent's 21 actions)."""
    pan, tilt, zoom = command
    for factor in ZOOM_FACTORS:  # commands are written with 2 decimals: compare to 0.011
        for index, a in enumerate(ACTIONS):
            if (abs(pan - PAN_TILT_FACTOR * a.d_pan) <= 0.011 and abs(tilt - PAN_TILT_FACTOR * a.d_tilt) <= 0.011
                    and abs(zoom - factor * a.d_zoom) <= 0.011):
                return index
    return None


@dataclass
class LegacyFrame:
    path: Path
    name: str
    raw_pose: tuple[float, float, float]
    pose: tuple[float, float, float]  # zoom as magnification
    captured_at: dt.datetime
    data: bytes = b""


@dataclass
class LegacyRound:
    frames: list[LegacyFrame]
    kind: str  # "navigate" (listed in a positions file) or "sweep"
    commands: list[tuple[float, float, float]] | None = None
    positions_file: str | None = None


@dataclass
class LegacyPlan:
    folder: Path
    import_id: str
    rounds: list[LegacyRound]
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(len(r.frames) for r in self.rounds)


def _images_folder(folder: Path) -> Path:
    if (folder / IMAGES_DIR).is_dir():
        return folder / IMAGES_DIR
    if any(p.suffix.lower() in (".jpg", ".jpeg") for p in folder.iterdir() if p.is_file()):
        return folder
    raise LegacyImportError(f"{folder} holds no {IMAGES_DIR}/ folder and no .jpg frames: is it the "
                            f"original's persistence folder (the /persistence volume)?")


def _check_jpeg(data: bytes, name: str) -> None:
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise ValueError(f"{name}: not a JPEG file")
    if data.rstrip(b"\x00\r\n ")[-2:] != b"\xff\xd9":
        raise ValueError(f"{name}: truncated JPEG (no end-of-image marker)")
    decode_image(data, name)


def scan(folder: str | Path, *, camera_brand: str = "hanwha", axis_max_zoom: float = 10.0,
         movements: int | None = None, timezone: str = "UTC", max_gap_s: float = 60.0,
         ignore_positions: bool = False, pose_tolerance: float = 0.5) -> LegacyPlan:
    """Read and check the whole folder; returns what would be imported. Writes nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LegacyImportError(f"{folder} is not a folder")
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise LegacyImportError(f"--timezone '{timezone}' is not a time zone name (e.g. UTC, "
                                f"America/Chicago)") from None
    if camera_brand not in ("hanwha", "axis"):
        raise LegacyImportError(f"camera brand '{camera_brand}': expected hanwha (-cb 0) or axis (-cb 1)")
    if movements is not None and movements < 0:
        raise LegacyImportError("--movements must be 0 or more")
    images = _images_folder(folder)
    frames, bad_names, bad_images = [], [], []
    for path in sorted(images.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        try:
            pan, tilt, zoom, when = parse_frame_name(path.name, tz)
        except ValueError as exc:
            bad_names.append(str(exc))
            continue
        if camera_brand == "axis":  # VAPIX zoom units 1..9999 -> magnification, as the Axis driver
            if not 1.0 <= zoom <= 9999.0:
                bad_names.append(f"'{path.name}': Axis zoom {zoom:g} is outside the units 1..9999")
                continue
            magnification = 1.0 + (zoom - 1.0) * (axis_max_zoom - 1.0) / 9998.0
        else:
            magnification = zoom
        if magnification <= 0:
            bad_names.append(f"'{path.name}': zoom {zoom:g} is not a magnification (must be > 0)")
            continue
        data = path.read_bytes()
        try:
            _check_jpeg(data, path.name)
        except (ValueError, StoreError) as exc:
            bad_images.append(str(exc))
            continue
        frames.append(LegacyFrame(path, path.name, (pan, tilt, zoom), (pan, tilt, magnification), when, data))
    problems = []
    if bad_names:
        problems.append(_listing(bad_names, "file(s) with names that are not original frame names"))
    if bad_images:
        problems.append(_listing(bad_images, "corrupt or truncated image(s)"))
    if problems:
        raise LegacyImportError(f"nothing was imported from {folder}: " + "; ".join(problems))
    if not frames:
        raise LegacyImportError(f"nothing to import: {images} holds no frames")
    frames.sort(key=lambda f: (f.captured_at, f.name))
    notes: list[str] = []
    skipped = [str(p.relative_to(folder)) for d in PICKLE_DIRS if (folder / d).is_dir()
               for p in sorted((folder / d).rglob("*")) if p.is_file()]
    if skipped:
        notes.append(f"{len(skipped)} file(s) under {', '.join(d for d in PICKLE_DIRS if (folder / d).is_dir())} "
                     f"were not imported: the original's checkpoints and embeddings are pickles, which "
                     f"are never loaded (retrain, or export embeddings with ptzjepa export-embeddings)")
    rounds = [] if ignore_positions else _agent_rounds(folder, frames, tz, pose_tolerance, notes)
    assigned = {id(f) for r in rounds for f in r.frames}
    rest = [f for f in frames if id(f) not in assigned]
    rounds += _sweep_rounds(rest, rounds, movements, max_gap_s, camera_brand, notes)
    rounds.sort(key=lambda r: (r.frames[0].captured_at, r.frames[0].name))
    digest = hashlib.sha256()
    for f in frames:
        digest.update(f"{f.name}\0{len(f.data)}\0".encode())
        digest.update(hashlib.sha256(f.data).digest())
    return LegacyPlan(folder, f"legacy-{digest.hexdigest()[:10]}", rounds, notes, skipped)


def _agent_rounds(folder: Path, frames: list[LegacyFrame], tz, tolerance: float,
                  notes: list[str]) -> list[LegacyRound]:
    pos_dir, cmd_dir = folder / POSITIONS_DIR, folder / COMMANDS_DIR
    if not pos_dir.is_dir():
        return []
    files, bad = [], []
    for path in sorted(pos_dir.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        m = POSITIONS_NAME.match(path.name)
        if not m:
            bad.append(path.name)
            continue
        files.append((_time(m.group(1), m.group(2), tz), path, m.group(1) + "_" + m.group(2)))
    if bad:
        raise LegacyImportError("nothing was imported: " + _listing(
            bad, f"file(s) in {POSITIONS_DIR}/ not named positions_at_YYYY-mm-dd_HH:MM:SS.ffffff.txt"))
    commands: dict[str, Path] = {}
    if cmd_dir.is_dir():
        for path in sorted(cmd_dir.iterdir()):
            m = COMMANDS_NAME.match(path.name)
            if m:
                commands[m.group(1) + "_" + m.group(2)] = path
            elif not path.name.startswith("."):
                raise LegacyImportError(f"nothing was imported: {cmd_dir / path.name} is not named "
                                        f"commands_at_YYYY-mm-dd_HH:MM:SS.ffffff.txt")
    files.sort()
    rounds, taken, previous = [], set(), None
    unmatched_commands = set(commands)
    for when, path, stamp in files:
        positions = _parse_triples(path, "positions")
        if not positions:
            notes.append(f"{path.name} is empty: skipped")
            continue
        window = [f for f in frames if id(f) not in taken and f.captured_at <= when
                  and (previous is None or f.captured_at > previous)]
        if len(window) < len(positions):
            raise LegacyImportError(
                f"nothing was imported: {POSITIONS_DIR}/{path.name} lists {len(positions)} positions "
                f"but only {len(window)} frame(s) were captured in its round (kept images are missing? "
                f"use --ignore-positions to import the frames without it)")
        chosen = window[-len(positions):]
        for number, (frame, pos) in enumerate(zip(chosen, positions), 1):
            if any(abs(a - b) > tolerance * (1 if i < 2 else max(1.0, abs(b) * 0.02))
                   for i, (a, b) in enumerate(zip(frame.raw_pose, pos))):
                raise LegacyImportError(
                    f"nothing was imported: {POSITIONS_DIR}/{path.name} line {number} "
                    f"({','.join(f'{v:g}' for v in pos)}) does not match frame {frame.name}; the "
                    f"frames and positions do not belong together (use --ignore-positions to import "
                    f"the frames alone)")
        cmd = None
        if stamp in commands:
            unmatched_commands.discard(stamp)
            cmd = _parse_triples(commands[stamp], "commands")
            if len(cmd) != len(positions) - 1:
                raise LegacyImportError(
                    f"nothing was imported: {COMMANDS_DIR}/{commands[stamp].name} has {len(cmd)} "
                    f"command(s) for {len(positions)} positions (expected {len(positions) - 1})")
        taken.update(id(f) for f in chosen)
        rounds.append(LegacyRound(chosen, "navigate", cmd, path.name))
        previous = when
    if unmatched_commands:
        notes.append(f"{len(unmatched_commands)} commands file(s) have no positions file of the "
                     f"same time and were not used")
    return rounds


def _sweep_rounds(frames: list[LegacyFrame], agent_rounds: list[LegacyRound], movements: int | None,
                  max_gap_s: float, brand: str, notes: list[str]) -> list[LegacyRound]:
    """Group the frames that no positions file lists into sweep rounds: consecutive frames, split
    where an agent round lies between them, where `movements + 1` frames are reached (when the
    original's -mv is given), or else where the camera jumped (a random absolute pose: a pan or tilt
    change larger than any relative move) or paused longer than `max_gap_s`."""
    if not frames:
        return []
    bounds = sorted((r.frames[0].captured_at, r.frames[-1].captured_at) for r in agent_rounds)
    zoom_step = 0.25 if brand == "hanwha" else 0.25 * 1000
    rounds: list[list[LegacyFrame]] = []
    for f in frames:
        split = not rounds
        if rounds:
            prev = rounds[-1][-1]
            between = any(prev.captured_at < a <= f.captured_at for a, _ in bounds)
            if movements is not None:
                split = between or len(rounds[-1]) >= movements + 1
            else:
                d_pan = abs((f.raw_pose[0] - prev.raw_pose[0] + 180.0) % 360.0 - 180.0)
                d_tilt = abs(f.raw_pose[1] - prev.raw_pose[1])
                d_zoom = abs(f.raw_pose[2] - prev.raw_pose[2])
                gap = (f.captured_at - prev.captured_at).total_seconds()
                split = (between or d_pan > SWEEP_MAX_STEP_DEG or d_tilt > SWEEP_MAX_STEP_DEG
                         or d_zoom > zoom_step or gap > max_gap_s)
        if split:
            rounds.append([f])
        else:
            rounds[-1].append(f)
    if movements is None and len(rounds) > 0:
        notes.append(f"{len(frames)} frame(s) outside agent rounds were grouped into {len(rounds)} "
                     f"sweep round(s) at camera jumps and pauses; pass --movements (the original's "
                     f"-mv) to group them exactly")
    elif movements is not None and any(len(r) != movements + 1 for r in rounds):
        short = sum(1 for r in rounds if len(r) != movements + 1)
        notes.append(f"{short} sweep round(s) do not hold movements + 1 = {movements + 1} frames "
                     f"(frames missing in the original folder)")
    return [LegacyRound(r, "sweep") for r in rounds]


def import_plan(store: Store, plan: LegacyPlan, *, node: str, camera: str) -> dict[str, Any]:
    """Write the plan's frames, then its manifests, then the import record; all or nothing."""
    round_ids = [f"{plan.import_id}-r{i:03d}" for i in range(len(plan.rounds))]
    record_path = f"imports/{node}/{plan.import_id}.json"
    if store.exists(record_path) or (round_ids and store.exists(manifest_path(node, round_ids[0]))):
        raise LegacyImportError(f"{plan.folder} was already imported into node {node} as "
                                f"{plan.import_id}; nothing was written")
    manifests_data = []
    for round_id, rnd in zip(round_ids, plan.rounds):
        records = []
        for step, f in enumerate(rnd.frames):
            frame_id = f"{round_id}-{step:03d}"
            extra: dict[str, Any] = {"legacy_name": f.name, "legacy_kind": rnd.kind}
            if f.raw_pose != f.pose:
                extra["legacy_pose"] = list(f.raw_pose)
            action = None
            if step > 0 and rnd.commands is not None:
                extra["legacy_command"] = list(rnd.commands[step - 1])
                action = action_of(rnd.commands[step - 1])
            records.append(FrameRecord(
                frame_id=frame_id, path=frame_path(node, round_id, frame_id),
                pose=PoseModel(pan=f.pose[0], tilt=f.pose[1], zoom=f.pose[2]),
                captured_at=f.captured_at, node=node, camera=camera, source="import",
                round_id=round_id, step=step, action=action, extra=extra))
        manifests_data.append((round_id, rnd, records))
    written: list[str] = []
    try:
        for round_id, rnd, records in manifests_data:
            for f, rec in zip(rnd.frames, records):
                written.append(store.write_bytes(rec.path, f.data))
        manifests = []
        for round_id, _rnd, records in manifests_data:
            written.append(store.write_manifest(manifest_path(node, round_id), records))
            manifests.append(written[-1])
        summary = {"import_id": plan.import_id, "folder": str(plan.folder), "node": node,
                   "camera": camera, "frames": plan.frames, "rounds": len(plan.rounds),
                   "agent_rounds": sum(1 for r in plan.rounds if r.kind == "navigate"),
                   "sweep_rounds": sum(1 for r in plan.rounds if r.kind == "sweep"),
                   "manifests": manifests, "notes": plan.notes, "skipped": plan.skipped,
                   "first_frame": plan.rounds[0].frames[0].captured_at.isoformat(),
                   "last_frame": max(f.captured_at for r in plan.rounds for f in r.frames).isoformat(),
                   "imported_at": time.time()}
        written.append(store.write_json(record_path, summary))
    except BaseException as exc:
        _roll_back(store, written)
        if isinstance(exc, StoreError):
            raise LegacyImportError(f"the import failed while writing ({exc}); what it had written "
                                    f"was removed") from None
        raise
    return summary


def _roll_back(store: Store, written: list[str]) -> None:
    # manifests first (they are what readers follow), then the frames
    for rel in sorted(written, key=lambda r: not r.startswith("manifests/")):
        try:
            store.fs.rm(store.full(rel))
        except (OSError, StoreError):
            pass


def import_legacy(store: Store, folder: str | Path, *, node: str, camera: str, **options) -> dict:
    return import_plan(store, scan(folder, **options), node=node, camera=camera)


# ---- the original's command line ------------------------------------------------------------
PASSWORD_FLAGS = ("-pw", "--password")
RUN_MODES = ("train", "world_model_train", "dream", "agent_train", "env_interaction", "lifelong")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # never print usage with values; raise instead
        raise ValueError(message)


def _legacy_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="main.py", add_help=False, allow_abbrev=False)
    p.add_argument("-ki", "--keepimages", action="store_true")
    p.add_argument("-tp", "--trackpositions", action="store_true")
    p.add_argument("--track_all", action="store_true")
    p.add_argument("-si", "--storedimages", action="store_true")
    p.add_argument("-cb", "--camerabrand", type=int, default=0, choices=(0, 1))
    p.add_argument("-it", "--iterations", type=int, default=10)
    p.add_argument("-mv", "--movements", type=int, default=10)
    p.add_argument("-un", "--username", type=str, default="")
    p.add_argument("-ip", "--cameraip", type=str, default="")
    p.add_argument("-rm", "--run_mode", choices=RUN_MODES, default="train")
    p.add_argument("-fn", "--fname", type=str, default=None)
    p.add_argument("--debug", action="store_true")
    p.add_argument("-pubmsg", "--publish_msgs", action="store_true")
    p.add_argument("-dist", "--distributed", action="store_true")
    p.add_argument("-dist_ip", "--distributed_ip", type=str, default=None)
    p.add_argument("-dist_username", "--distributed_username", type=str, default=None)
    p.add_argument("-dist_host_directory", "--distributed_host_directory", type=str, default=None)
    return p


@dataclass
class Translation:
    config: dict[str, Any]
    commands: list[str]
    notes: list[str]
    env: dict[str, str] = field(default_factory=dict)
    todo: list[str] = field(default_factory=list)  # settings to fill in by hand (YAML comments)

    def config_yaml(self) -> str:
        text = yaml.safe_dump(self.config, sort_keys=False) if self.config else "{}\n"
        return text + "".join(f"# {line}\n" for line in self.todo)


def _check_no_password(argv: list[str]) -> None:
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in PASSWORD_FLAGS or (arg.startswith("-pw") and not arg.startswith("--")) or \
                (flag.startswith("--pass") and len(flag) > 6):
            raise PasswordOnCommandLine(
                "a camera password on the command line is refused: command lines are visible to "
                "every user of the machine and end up in logs (the original published it). Set "
                "PTZJEPA_CAMERA__PASSWORD in the environment, or put it in a file readable only by "
                "the service and set PTZJEPA_CAMERA__PASSWORD_FILE=/path/to/file. Nothing was done.")


def translate(argv: list[str]) -> Translation:
    """The ptzjepa configuration and commands equivalent to the original's `main.py ARGS`."""
    argv = list(argv)
    _check_no_password(argv)
    try:
        args = _legacy_parser().parse_args(argv)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("unrecognized arguments"):
            flags = [a.split("=", 1)[0] for a in argv if a.startswith("-")]
            known = {o for a in _legacy_parser()._actions for o in a.option_strings}
            unknown = [f for f in flags if f not in known]
            message = (f"unknown flag(s) of the original: {' '.join(unknown)}" if unknown else
                       "unexpected positional argument(s): the original takes flags only")
        raise ValueError(f"cannot translate: {message}") from None
    if args.iterations < 1 or args.movements < 0:
        raise ValueError("cannot translate: -it must be at least 1 and -mv at least 0")
    config: dict[str, Any] = {}
    notes: list[str] = []
    todo: list[str] = []
    camera: dict[str, Any] = {"driver": "axis" if args.camerabrand == 1 else "hanwha"}
    if args.cameraip:
        camera["host"] = args.cameraip
    if args.username:
        camera["user"] = args.username
    if args.camerabrand == 1:
        camera.update({"pan_min": -180.0, "pan_max": 180.0, "tilt_min": -180.0, "tilt_max": 180.0})
        notes.append("-cb 1 (Axis): pan/tilt -180..180 degrees; zoom is a magnification here "
                     "(VAPIX units 1..9999 map linearly to 1x..camera.max_optical_zoom); set "
                     "camera.zoom_max and max_optical_zoom from the camera's datasheet")
    else:
        camera.update({"pan_min": 0.0, "pan_max": 360.0, "tilt_min": -20.0, "tilt_max": 90.0,
                       "zoom_min": 1.0, "zoom_max": 40.0})
        notes.append("-cb 0 (Hanwha): the original's ranges pan 0..360, tilt -20..90, zoom 1..40x")
    config["camera"] = camera
    notes.append("the camera password: PTZJEPA_CAMERA__PASSWORD or PTZJEPA_CAMERA__PASSWORD_FILE "
                 "(never a flag, never in the config file)")
    config["collect"] = {"iterations": args.iterations, "movements": args.movements}
    config["agent"] = {"navigate_iterations": args.iterations,
                       "navigate_movements": max(1, args.movements)}
    if args.debug:
        config["log_level"] = "DEBUG"
    env: dict[str, str] = {"PTZJEPA_CONFIG": "ptzjepa.yaml"}
    if args.distributed:
        ip = args.distributed_ip or "SERVER"
        if args.distributed_ip:
            config["redis_url"] = f"redis://{ip}:6379/0"
        else:
            todo.append("redis_url: redis://SERVER:6379/0   # fill in: the Redis every node shares")
        todo.append("store_url: s3://bucket/ptzjepa   # fill in: the store every node shares (an "
                    "fsspec URL, or a folder mounted on every node)")
        notes.append(f"-dist: nodes share one Redis (redis_url) and one store (store_url) instead of "
                     f"an sshfs mount of {args.distributed_username or 'waggle'}@{ip}:"
                     f"{args.distributed_host_directory or '/home/waggle/world_models'} and a Redis "
                     f"lock; world-model slots are leased with fencing (docs/leases.md). The Redis "
                     f"password goes in PTZJEPA_REDIS_PASSWORD(_FILE). Give every node its own "
                     f"`node:` name.")
    mode = args.run_mode
    sweep = ["ptzjepa collect"]
    if args.storedimages:
        sweep = ["ptzjepa import-legacy /persistence  # -si: train on the kept images"]
    running = "ptzjepa up    # the node's services (or docker compose up); then, from another shell:"
    if mode in ("train", "world_model_train"):
        commands = [running, *sweep, "ptzjepa phase worldmodel"]
        notes.append(f"-rm {mode}: a sweep (unless -si) and one world-model phase; the original "
                     f"repeated until training reported completion, here the phase stops on its "
                     f"own bound (epochs, plateau, time budget)")
    elif mode == "dream":
        commands = [running, *sweep, "ptzjepa phase worldmodel", "ptzjepa phase dreamer"]
        notes.append("-rm dream: the dreamer needs a published world model; dreams per job are "
                     "dreamer.dreams (the original ran the dreamer 10 times)")
    elif mode == "agent_train":
        commands = [running, "ptzjepa phase agent"]
    elif mode == "env_interaction":
        commands = [running, f"ptzjepa phase navigate --iterations {args.iterations} "
                             f"--movements {max(1, args.movements)}"]
    else:  # lifelong
        commands = [running, "ptzjepa lifelong start    # cycle after cycle; `ptzjepa lifelong stop` ends it"]
        notes.append("-rm lifelong: the first cycle sweeps (collect), later cycles navigate with the "
                     "agent; every cycle trains the world model, dreams and trains the agent, and "
                     "lifelong mode can be stopped (the original looped forever)")
    if args.keepimages:
        notes.append("-ki: frames are always kept in the store with their manifests")
    if args.trackpositions or args.track_all:
        notes.append("-tp/--track_all: every frame's pose, time, action (command) and, while "
                     "navigating, Q-values and surprise are in the round manifests")
    if args.track_all:
        notes.append("--track_all embeddings: `ptzjepa export-embeddings --out FILE` writes the "
                     "context, target and predictor embeddings of the frames")
    if args.publish_msgs:
        notes.append("-pubmsg: phase and model events are on the Redis event stream "
                     "(GET /v1/events) and in Prometheus metrics (/metrics)")
    if args.fname:
        notes.append(f"-fn {args.fname}: the original's YAML config does not carry over; model "
                     f"sizes are presets (PTZJEPA_PRESET=cpu|paper) with overrides under "
                     f"worldmodel.model / worldmodel.train / agent.config (docs/configuration.md)")
    return Translation(config=config, commands=commands, notes=notes, env=env, todo=todo)
