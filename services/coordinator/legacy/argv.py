"""The original's command line (`main.py` flags) translated into ptzjepa's configuration and
commands. A camera password on the command line is refused without being echoed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import yaml


class PasswordOnCommandLine(ValueError):
    """A camera password was given as a flag; the message never contains it."""


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


def _parse(argv: list[str]) -> argparse.Namespace:
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
    return args


def _camera(args: argparse.Namespace, notes: list[str]) -> dict[str, Any]:
    """-cb, -ip and -un: the camera section."""
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
    notes.append("the camera password: PTZJEPA_CAMERA__PASSWORD or PTZJEPA_CAMERA__PASSWORD_FILE "
                 "(never a flag, never in the config file)")
    return camera


def _distributed(args: argparse.Namespace, config: dict[str, Any], notes: list[str], todo: list[str]) -> None:
    """-dist and its -dist_* flags: one shared Redis and store instead of sshfs and a lock."""
    if not args.distributed:
        return
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


def _run_mode_commands(args: argparse.Namespace, notes: list[str]) -> list[str]:
    """-rm (and -si): the ptzjepa commands that do what the run mode did."""
    mode = args.run_mode
    sweep = ["ptzjepa collect"]
    if args.storedimages:
        sweep = ["ptzjepa import-legacy /persistence  # -si: train on the kept images"]
    running = "ptzjepa up    # the node's services (or docker compose up); then, from another shell:"
    if mode in ("train", "world_model_train"):
        notes.append(f"-rm {mode}: a sweep (unless -si) and one world-model phase; the original "
                     f"repeated until training reported completion, here the phase stops on its "
                     f"own bound (epochs, plateau, time budget)")
        return [running, *sweep, "ptzjepa phase worldmodel"]
    if mode == "dream":
        notes.append("-rm dream: the dreamer needs a published world model; dreams per job are "
                     "dreamer.dreams (the original ran the dreamer 10 times)")
        return [running, *sweep, "ptzjepa phase worldmodel", "ptzjepa phase dreamer"]
    if mode == "agent_train":
        return [running, "ptzjepa phase agent"]
    if mode == "env_interaction":
        return [running, f"ptzjepa phase navigate --iterations {args.iterations} "
                         f"--movements {max(1, args.movements)}"]
    notes.append("-rm lifelong: the first cycle sweeps (collect), later cycles navigate with the "
                 "agent; every cycle trains the world model, dreams and trains the agent, and "
                 "lifelong mode can be stopped (the original looped forever)")
    return [running, "ptzjepa lifelong start    # cycle after cycle; `ptzjepa lifelong stop` ends it"]


def _tracking_notes(args: argparse.Namespace, notes: list[str]) -> None:
    """-ki, -tp, --track_all, -pubmsg and -fn: where their outputs are in ptzjepa."""
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


def translate(argv: list[str]) -> Translation:
    """The ptzjepa configuration and commands equivalent to the original's `main.py ARGS`."""
    argv = list(argv)
    _check_no_password(argv)
    args = _parse(argv)
    notes: list[str] = []
    todo: list[str] = []
    config: dict[str, Any] = {"camera": _camera(args, notes)}
    config["collect"] = {"iterations": args.iterations, "movements": args.movements}
    config["agent"] = {"navigate_iterations": args.iterations,
                       "navigate_movements": max(1, args.movements)}
    if args.debug:
        config["log_level"] = "DEBUG"
    env: dict[str, str] = {"PTZJEPA_CONFIG": "ptzjepa.yaml"}
    _distributed(args, config, notes, todo)
    commands = _run_mode_commands(args, notes)
    _tracking_notes(args, notes)
    return Translation(config=config, commands=commands, notes=notes, env=env, todo=todo)
