"""What every camera emulator shares: motors that take time, faults on demand, auth, an ASGI app.

The emulators exist so that the real drivers are tested over real HTTP against servers that behave
like cameras (ROADMAP: never mock HTTP or camera protocols). They render frames with the simulated
world (`SimWorld` through a `SimCamera`, which also keeps the simulated clock), and add what a
driver must cope with: moves that take wall-clock time to settle (the position reports
intermediate values meanwhile, and frames taken while moving are blurred), latency, and faults
(`FAULT_KINDS`) injected on purpose, either by a test (`app.faults.inject(...)`) or at random
(`fault_rate`).

The app is plain ASGI rather than FastAPI because faults need what a framework hides: a reply whose
connection drops half-way, a body that contradicts its status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import cv2
import numpy as np
from pydantic import SecretStr

from services.camera.emulators.digest import OK, STALE, DigestAuthority
from services.camera.sim.camera import SimCamera, SimCameraConfig
from services.camera.sim.world import SimWorld
from shared.pose import Pose, PoseRanges

OPS = ("position", "move", "snapshot", "setup")
_BODY_OPS = frozenset({"position", "snapshot", "setup"})
FAULT_KINDS: dict[str, frozenset[str]] = {  # fault -> the operations it can hit
    "timeout": frozenset(OPS),       # no answer within the client's timeout (then a 503)
    "error_body": frozenset(OPS),    # 200 "Driver is initiating. Please try again later."
    "html_error": frozenset(OPS),    # 500 with an HTML error page
    "unauthorized": frozenset(OPS),  # 401 with a fresh challenge, whatever the credentials
    "truncated": _BODY_OPS,          # the reply stops half-way and the connection drops
    "empty": _BODY_OPS,              # 200 with an empty body
    "garbage": frozenset({"snapshot"}),  # 200 image/jpeg that is not a JPEG
    "blur": frozenset({"snapshot"}),     # a motion-blurred frame
}
BUSY_TEXT = "Driver is initiating. Please try again later."
_HTML = "<html><head><title>{0}</title></head><body><h1>{0}</h1><hr>camera web server</body></html>"


@dataclass(frozen=True)
class EmulatorConfig:
    user: str = "admin"
    password: SecretStr = field(default_factory=lambda: SecretStr(""))
    realm: str = "ptzjepa-emulator"
    latency_s: float = 0.0          # added to every request
    settle_s: float = 0.5           # wall-clock duration of every move
    width: int = 320
    height: int = 240
    jpeg_quality: int = 85
    fault_rate: float = 0.0         # random faults (per request), from fault_kinds
    fault_kinds: tuple[str, ...] = ()
    fault_seed: int = 0
    fault_timeout_s: float = 2.0    # how long a "timeout" fault stalls
    nonce_ttl_s: float = 300.0
    digest_algorithm: str = "MD5"
    max_optical_zoom: float | None = None  # Axis: magnification at unit 9999 (default zoom_max)
    clock_offset_s: float = 0.0     # ONVIF: how far the camera's clock is off

    def __post_init__(self) -> None:
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(FAULT_KINDS)}")
        if not self.password.get_secret_value():
            raise ValueError("the emulator needs a password (from a file or the environment)")


class Mechanics:
    """The motors. The `SimCamera` holds the commanded pose and the simulated clock; wall-clock
    interpolation between the last two commanded poses gives the position while moving."""

    def __init__(self, world: SimWorld, settle_s: float):
        self.sim = SimCamera(world, SimCameraConfig())
        self.settle_s = settle_s
        self._from = self._to = self.sim.position()
        self._t0, self._duration = 0.0, 0.0
        self._lock = threading.Lock()

    @property
    def ranges(self) -> PoseRanges:
        return self.sim.ranges

    def _fraction(self, now: float) -> float:
        return 1.0 if self._duration <= 0 else min(1.0, (now - self._t0) / self._duration)

    def pose(self) -> Pose:
        with self._lock:
            f = self._fraction(time.monotonic())
            a, b = self._from, self._to
        if f >= 1.0:
            return b
        d_pan = b.pan - a.pan
        if self.ranges.pan_wraps:  # the short way round, as a real pan motor goes
            span = self.ranges.pan_max - self.ranges.pan_min
            d_pan = (d_pan + span / 2) % span - span / 2
        return Pose(self.ranges.wrap_pan(a.pan + f * d_pan), a.tilt + f * (b.tilt - a.tilt),
                    a.zoom + f * (b.zoom - a.zoom))

    def moving(self) -> bool:
        with self._lock:
            return self._fraction(time.monotonic()) < 1.0

    def move_to(self, target: Pose) -> Pose:
        start = self.pose()
        target = self.ranges.apply(target)
        self.sim.move_absolute(target)  # advances the simulated clock by the move's settle time
        with self._lock:
            self._from, self._to = start, target
            self._t0 = time.monotonic()
            self._duration = self.settle_s if start != target else 0.0  # a no-op move is not a move
        return target

    def move_by(self, d_pan: float, d_tilt: float, d_zoom: float) -> Pose:
        return self.move_to(self.ranges.move(self.pose(), d_pan, d_tilt, d_zoom))

    def jpeg(self, width: int, height: int, quality: int, blur: bool = False) -> bytes:
        if self.moving() or blur:
            image = self.sim.world.render(self.pose(), self.sim.now(), width, height)
            self.sim.clock.advance(self.sim.config.snapshot_s)
            image = cv2.GaussianBlur(image, (0, 0), 3.0)
        else:
            image, _, _ = self.sim.snapshot(width, height)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        assert ok
        return buf.tobytes()


class FaultPlan:
    """Faults to inject: queued ones first (tests), then random ones at `rate` (demos, benches)."""

    def __init__(self, rate: float = 0.0, kinds: tuple[str, ...] = (), seed: int = 0):
        self.rate, self.kinds = rate, tuple(kinds)
        self._rng = random.Random(seed)
        self._queue: list[list] = []  # [kind, op, remaining]
        self._lock = threading.Lock()

    def inject(self, kind: str, op: str = "any", times: int = 1) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(FAULT_KINDS)}")
        if op != "any" and op not in FAULT_KINDS[kind]:
            raise ValueError(f"fault {kind!r} cannot hit {op!r}; it hits {sorted(FAULT_KINDS[kind])}")
        with self._lock:
            self._queue.append([kind, op, times])

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def set_random(self, rate: float, kinds: tuple[str, ...]) -> None:
        """Switch the random faults while the emulator serves (a fault window of a bench)."""
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown or not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad random faults: rate {rate}, unknown kinds {sorted(unknown)}")
        with self._lock:
            self.rate, self.kinds = rate, tuple(kinds)

    def take(self, op: str) -> str | None:
        with self._lock:
            for entry in self._queue:
                kind, target, _ = entry
                if (target == op or target == "any") and op in FAULT_KINDS[kind]:
                    entry[2] -= 1
                    if entry[2] <= 0:
                        self._queue.remove(entry)
                    return kind
            kinds = [k for k in self.kinds if op in FAULT_KINDS[k]]
            if kinds and self.rate > 0 and self._rng.random() < self.rate:
                return self._rng.choice(kinds)
        return None


@dataclass
class EmulatorStats:
    requests: Counter = field(default_factory=Counter)  # by operation, past the digest check
    challenges: int = 0                                  # 401s sent by the digest check
    auth_failures: int = 0                               # wrong credentials (digest or WS-Security)
    faults: Counter = field(default_factory=Counter)     # by kind
    targets: deque = field(default_factory=lambda: deque(maxlen=5000))  # request targets seen


@dataclass
class Request:
    method: str
    path: str
    target: str  # path?query exactly as sent (what digest's uri must match)
    args: dict[str, str]
    headers: dict[str, str]
    body: bytes
    fault: str | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Query parameter, case-insensitively (cameras are lenient about case)."""
        for key, value in self.args.items():
            if key.lower() == name.lower():
                return value
        return default


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(cls, status: int, text: str) -> Reply:
        return cls(status, text.encode(), "text/plain; charset=utf-8")

    @classmethod
    def html(cls, status: int, title: str, headers: list[tuple[str, str]] | None = None) -> Reply:
        return cls(status, _HTML.format(title).encode(), "text/html; charset=utf-8", headers or [])


Handler = Callable[[Request], Reply]
_DROP_MESSAGE = "ASGI callable returned without completing response."
_drops = {"pending": 0}
_drops_lock = threading.Lock()


class _DeliberateDropFilter(logging.Filter):
    """Hides uvicorn's error line for connections an emulator dropped on purpose (and only those)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == _DROP_MESSAGE:
            with _drops_lock:
                if _drops["pending"] > 0:
                    _drops["pending"] -= 1
                    return False
        return True


_uvicorn_error = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _DeliberateDropFilter) for f in _uvicorn_error.filters):
    _uvicorn_error.addFilter(_DeliberateDropFilter())


class EmulatorApp:
    """An ASGI camera. Subclasses route requests to (operation, handler)."""

    protocol = "base"

    def __init__(self, world: SimWorld, config: EmulatorConfig):
        self.config = config
        self.mechanics = Mechanics(world, config.settle_s)
        self.digest = DigestAuthority(config.user, config.password, config.realm,
                                      config.digest_algorithm, config.nonce_ttl_s)
        self.faults = FaultPlan(config.fault_rate, config.fault_kinds, config.fault_seed)
        self.stats = EmulatorStats()

    @property
    def ranges(self) -> PoseRanges:
        return self.mechanics.ranges

    # ---- what a protocol defines -------------------------------------------------------------
    def route(self, request: Request) -> tuple[str, Handler] | None:
        raise NotImplementedError

    def needs_http_auth(self, request: Request) -> bool:
        return True

    def fault_reply(self, kind: str, op: str) -> Reply:
        if kind == "error_body":
            return Reply.text(200, BUSY_TEXT)
        if kind == "html_error":
            return Reply.html(500, "500 Internal Server Error")
        if kind == "unauthorized":
            return Reply.html(401, "401 Unauthorized", [("WWW-Authenticate", self.digest.challenge())])
        if kind == "empty":
            return Reply(200, b"", "image/jpeg" if op == "snapshot" else "text/plain")
        if kind == "garbage":
            return Reply(200, b"\xff\xd8\xff\xe0" + random.randbytes(300), "image/jpeg")
        raise ValueError(kind)

    def snapshot_reply(self, request: Request) -> Reply:
        c = self.config
        return Reply(200, self.mechanics.jpeg(c.width, c.height, c.jpeg_quality, request.fault == "blur"),
                     "image/jpeg")

    # ---- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = await _read(scope, receive)
        self.stats.targets.append(request.target)
        if self.config.latency_s > 0:
            await asyncio.sleep(self.config.latency_s)
        routed = self.route(request)
        if routed is None:
            await _send(send, Reply.html(404, "404 Not Found"))
            return
        op, handler = routed
        if self.needs_http_auth(request):
            verdict = self.digest.verify(request.method, request.target, request.headers.get("authorization"))
            if verdict != OK:
                self.stats.challenges += 1
                if request.headers.get("authorization"):
                    self.stats.auth_failures += verdict != STALE
                challenge = self.digest.challenge(stale=verdict == STALE)
                await _send(send, Reply.html(401, "401 Unauthorized", [("WWW-Authenticate", challenge)]))
                return
        self.stats.requests[op] += 1  # authenticated requests only: challenges are counted apart
        fault = self.faults.take(op)
        if fault:
            self.stats.faults[fault] += 1
        if fault == "timeout":
            await asyncio.sleep(self.config.fault_timeout_s)
            await _send(send, Reply.text(503, "Service Unavailable"))  # the client has gone by now
            return
        if fault in ("error_body", "html_error", "unauthorized", "empty", "garbage"):
            await _send(send, self.fault_reply(fault, op))
            return
        request.fault = fault
        await _send(send, handler(request), truncate=fault == "truncated")


async def _read(scope, receive) -> Request:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    query = scope.get("query_string", b"").decode("latin-1")
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return Request(scope["method"], scope["path"], raw_path + (f"?{query}" if query else ""),
                   dict(parse_qsl(query, keep_blank_values=True)), headers, b"".join(chunks))


async def _send(send, reply: Reply, truncate: bool = False) -> None:
    headers = [(b"content-type", reply.content_type.encode())]
    if reply.status != 204:
        headers.append((b"content-length", str(len(reply.body)).encode()))
    headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    if truncate and reply.body:
        with _drops_lock:
            _drops["pending"] += 1
        await send({"type": "http.response.body", "body": reply.body[: len(reply.body) // 2],
                    "more_body": True})
        return  # uvicorn closes the connection: the client sees a reply cut off
    await send({"type": "http.response.body", "body": b"" if reply.status == 204 else reply.body})


def world_pan(device_pan: float, ranges: PoseRanges) -> float:
    """A pan from a device frame (0..360 or -180..180) in the world's frame."""
    for candidate in (device_pan, device_pan - 360.0, device_pan + 360.0):
        if ranges.pan_min <= candidate <= ranges.pan_max:
            return candidate
    return device_pan  # outside: the motor will clamp it (ranges.apply)


def device_pan(pan: float, device_min: float) -> float:
    return device_min + (pan - device_min) % 360.0


def number(value: str | None, name: str) -> float | None:
    """A query value as a finite float (None when absent); ValueError names the parameter."""
    if value is None or value == "":
        return None
    result = float(value)
    if not np.isfinite(result):
        raise ValueError(f"{name} must be finite")
    return result
