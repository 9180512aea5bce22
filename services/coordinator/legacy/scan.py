"""Reading the original's persistence folder: frame names, positions and commands files, and the
grouping of its frames into rounds (`scan`). Writes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.pose import ACTIONS
from shared.store import StoreError, decode_image

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
        raise ValueError(f"'{name}' is not named "
                         f"{{pan}},{{tilt}},{{zoom}}_{{YYYY-mm-dd_HH:MM:SS.ffffff}}.jpg")
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
            raise LegacyImportError(f"{path} line {number}: expected 'pan,tilt,zoom', "
                                    f"got {line.strip()[:60]!r}")
        out.append(values)
    return out


def action_of(command: tuple[float, float, float]) -> int | None:
    """The index in shared.pose.ACTIONS of an original relative command, or None (e.g. the random
    sweep's moves, which are not the agent's 21 actions)."""
    pan, tilt, zoom = command
    for factor in ZOOM_FACTORS:  # commands are written with 2 decimals: compare to 0.011
        for index, a in enumerate(ACTIONS):
            if (abs(pan - PAN_TILT_FACTOR * a.d_pan) <= 0.011
                    and abs(tilt - PAN_TILT_FACTOR * a.d_tilt) <= 0.011
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
        pickle_dirs = ", ".join(d for d in PICKLE_DIRS if (folder / d).is_dir())
        notes.append(f"{len(skipped)} file(s) under {pickle_dirs} "
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
    rounds: list[LegacyRound] = []
    taken: set[int] = set()
    previous: dt.datetime | None = None
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
        for number, (frame, pos) in enumerate(zip(chosen, positions, strict=True), 1):
            if any(abs(a - b) > tolerance * (1 if i < 2 else max(1.0, abs(b) * 0.02))
                   for i, (a, b) in enumerate(zip(frame.raw_pose, pos, strict=True))):
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

