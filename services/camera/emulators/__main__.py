"""`python -m services.camera.emulators hanwha|axis|onvif --port 8081`: serve an emulated camera.

The emulated camera takes its ranges, world (seed, panorama) and default user from the ptzjepa
settings (`--config` or PTZJEPA_CONFIG, and PTZJEPA_* variables), so a node configured for a real
camera can be pointed at its emulator unchanged. The password comes from `--password-file` or from
the settings' camera password (PTZJEPA_CAMERA__PASSWORD or PTZJEPA_CAMERA__PASSWORD_FILE); never
from the command line, where every user of the machine could read it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import SecretStr

from services.camera.emulators import FAULT_KINDS, PROTOCOLS, EmulatorConfig, build_emulator
from services.camera.sim.world import SimWorld, SimWorldConfig
from shared.config import ConfigError, Settings, load_settings
from shared.logs import setup_logging

log = logging.getLogger("services.camera.emulators")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # No abbreviations: `--password SECRET` must be an error, not `--password-file SECRET` whose
    # "cannot read SECRET" message would print the secret.
    p = argparse.ArgumentParser(prog="python -m services.camera.emulators", allow_abbrev=False,
                                description="Serve an emulated PTZ camera backed by the simulated world.")
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--config", type=Path, default=None, help="ptzjepa YAML config (ranges, sim world)")
    p.add_argument("--user", default=None, help="digest user (default: camera.user)")
    p.add_argument("--password-file", type=Path, default=None,
                   help="file holding the password (default: the settings' camera password)")
    p.add_argument("--latency", type=float, default=0.02, help="seconds added to every request")
    p.add_argument("--settle", type=float, default=1.0, help="seconds every move takes")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per request")
    p.add_argument("--faults", default="timeout,error_body,truncated,empty,html_error",
                   help="comma-separated fault kinds for --fault-rate, from: "
                        f"{', '.join(sorted(FAULT_KINDS))}")
    p.add_argument("--fault-timeout", type=float, default=10.0, help="how long a 'timeout' fault stalls")
    p.add_argument("--max-optical-zoom", type=float, default=None, help="Axis: magnification at unit 9999")
    p.add_argument("--seed", type=int, default=None, help="world seed (default: camera.sim.seed)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


def _password(args: argparse.Namespace, settings: Settings) -> SecretStr:
    if args.password_file is not None:
        try:
            text = args.password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"--password-file: cannot read {args.password_file}: {exc.strerror}") from None
        if text:
            return SecretStr(text)
        raise ConfigError(f"--password-file: {args.password_file} is empty")
    if settings.camera.password is not None and settings.camera.password.get_secret_value():
        return settings.camera.password
    raise ConfigError("no password: pass --password-file FILE or set PTZJEPA_CAMERA__PASSWORD "
                      "(or PTZJEPA_CAMERA__PASSWORD_FILE)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        settings = load_settings(args.config)
        kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
        config = EmulatorConfig(user=args.user or settings.camera.user, password=_password(args, settings),
                                latency_s=args.latency, settle_s=args.settle, width=args.width,
                                height=args.height, fault_rate=args.fault_rate, fault_kinds=kinds,
                                fault_timeout_s=args.fault_timeout,
                                max_optical_zoom=args.max_optical_zoom or getattr(settings.camera,
                                                                                  "max_optical_zoom", None))
    except (ConfigError, ValueError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    sim = settings.camera.sim
    world = SimWorld(SimWorldConfig(
        seed=sim.seed if args.seed is None else args.seed,
        panorama_path=str(sim.panorama_path) if sim.panorama_path else None,
        base_hfov_deg=sim.base_hfov_deg, ranges=settings.camera.ranges(),
        cache_dir=str(Path(settings.data_dir) / "cache" / "panoramas")))
    app = build_emulator(args.protocol, world, config)
    import uvicorn

    log.info("emulated %s camera on http://%s:%d (user '%s', ranges %s)", args.protocol, args.host,
             args.port, config.user, settings.camera.ranges())
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(), access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
