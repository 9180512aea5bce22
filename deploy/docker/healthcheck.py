"""Container health check: exit 0 when a URL answers 200, 1 otherwise (standard library only).

    python /usr/local/bin/ptzjepa-healthcheck [URL]

The URL defaults to $PTZJEPA_HEALTHCHECK_URL. HTTP services are checked on /healthz (the process
serves requests; /readyz, which also checks Redis or the camera, is for readiness, not liveness);
workers on their /metrics port (the worker process is alive and its metrics server answers).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def check(url: str, timeout_s: float = 4.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {getattr(exc, 'reason', exc)}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else os.environ.get("PTZJEPA_HEALTHCHECK_URL")
    if not url:
        print("usage: ptzjepa-healthcheck URL (or set PTZJEPA_HEALTHCHECK_URL)", file=sys.stderr)
        return 2
    ok, message = check(url)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
