"""The small parts on their own: the server side of digest auth, reply parsers, pan frames, the
fault plan. (Parsers get `httpx.Response` objects built here: they are functions of a reply.)"""

from __future__ import annotations

import hashlib

import cv2
import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from services.camera.drivers.base import CameraBadResponse
from services.camera.drivers.http import (
    ALWAYS,
    NEVER,
    CameraHttp,
    ConnectionOptions,
    check_text,
    decode_jpeg,
    parse_key_values,
)
from services.camera.drivers.ptz import from_device_pan, pan_distance, to_device_pan
from services.camera.emulators.core import FaultPlan
from services.camera.emulators.digest import BAD, MISSING, OK, STALE, DigestAuthority, parse_digest_header
from shared.pose import PoseRanges


def answer(challenge: str, method: str, uri: str, nc: int, password: str = "pw", user: str = "u",
           algorithm: str = "MD5") -> str:
    """What a client sends back (RFC 7616, qop=auth), computed independently of httpx."""
    f = parse_digest_header(challenge)
    h = lambda s: hashlib.new({"MD5": "md5", "SHA-256": "sha256"}[algorithm], s.encode()).hexdigest()  # noqa: E731
    ha1, ha2 = h(f"{user}:{f['realm']}:{password}"), h(f"{method}:{uri}")
    ncv = f"{nc:08x}"
    response = h(f"{ha1}:{f['nonce']}:{ncv}:abc123:auth:{ha2}")
    return (f'Digest username="{user}", realm="{f["realm"]}", nonce="{f["nonce"]}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm}, opaque="{f["opaque"]}", qop=auth, '
            f'nc={ncv}, cnonce="abc123"')


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_authority(algorithm):
    auth = DigestAuthority("u", SecretStr("pw"), "cams", algorithm=algorithm)
    challenge = auth.challenge()
    fields = parse_digest_header(challenge)
    assert fields["qop"] == "auth" and fields["realm"] == "cams" and fields["algorithm"] == algorithm
    assert auth.verify("GET", "/a?b=1", None) == MISSING
    assert auth.verify("GET", "/a?b=1", answer(challenge, "GET", "/a?b=1", 1, algorithm=algorithm)) == OK
    replayed = answer(challenge, "GET", "/a?b=1", 1, algorithm=algorithm)
    assert auth.verify("GET", "/a?b=1", replayed) == BAD
    assert auth.verify("GET", "/a?b=1", answer(challenge, "GET", "/a?b=1", 2, algorithm=algorithm)) == OK
    other_uri = answer(challenge, "GET", "/a?b=1", 3, algorithm=algorithm)
    assert auth.verify("GET", "/a?b=2", other_uri) == BAD
    assert auth.verify("POST", "/a?b=1", answer(challenge, "GET", "/a?b=1", 4, algorithm=algorithm)) == BAD
    wrong_password = answer(challenge, "GET", "/a", 5, password="no", algorithm=algorithm)
    assert auth.verify("GET", "/a", wrong_password) == BAD
    assert auth.verify("GET", "/a", answer(challenge, "GET", "/a", 6, user="v", algorithm=algorithm)) == BAD
    assert auth.verify("GET", "/a", "Basic dTpwdw==") == MISSING


def test_expired_and_unknown_nonces_are_stale_not_wrong():
    auth = DigestAuthority("u", SecretStr("pw"), nonce_ttl_s=0.0)
    challenge = auth.challenge()
    assert auth.verify("GET", "/", answer(challenge, "GET", "/", 1)) == STALE
    other = DigestAuthority("u", SecretStr("pw"))
    forged = challenge.replace(parse_digest_header(challenge)["opaque"], other._opaque)
    assert other.verify("GET", "/", answer(forged, "GET", "/", 1)) == STALE  # right answer, nonce not ours
    assert "stale=true" in auth.challenge(stale=True)


def _response(body: bytes, ctype: str = "text/plain", status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": ctype})


def test_text_replies():
    assert parse_key_values("Pan=10.5\r\nTilt=-3\r\nZoom=2\r\n", "q", ("pan", "tilt", "zoom")) == \
        {"pan": 10.5, "tilt": -3.0, "zoom": 2.0}
    assert parse_key_values("Channel.0.Pan=1\nChannel.0.Tilt=2\nChannel.0.Zoom=3\n", "q",
                            ("pan", "tilt", "zoom"))["zoom"] == 3
    with pytest.raises(CameraBadResponse, match=r"lacks tilt, zoom \(truncated"):
        parse_key_values("Pan=10.5\nTilt=", "q", ("pan", "tilt", "zoom"))
    with pytest.raises(CameraBadResponse, match="not a number"):
        parse_key_values("pan=abc\ntilt=1\nzoom=1", "q", ("pan", "tilt", "zoom"))
    with pytest.raises(CameraBadResponse) as busy:
        check_text(_response(b"Driver is initiating. Please try again later."), "q")
    assert busy.value.retry == ALWAYS
    with pytest.raises(CameraBadResponse, match="answered an error: 'NG Error Code: 600") as ng:
        check_text(_response(b"NG\r\nError Code: 600\r\nError Details: bad\r\n"), "q")
    assert ng.value.retry == NEVER
    with pytest.raises(CameraBadResponse, match="HTML page 'Login'"):
        check_text(_response(b"<!DOCTYPE html><html><head><title>Login</title>", "text/html"), "q")
    assert check_text(_response(b""), "q", allow_empty=True) == ""


def test_jpeg_replies():
    image = np.full((40, 60, 3), 128, np.uint8)
    image[10:20, 10:50] = 255
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    assert decode_jpeg(_response(jpeg, "image/jpeg"), "s").shape == (40, 60, 3)
    with pytest.raises(CameraBadResponse, match="truncated"):
        decode_jpeg(_response(jpeg[: len(jpeg) // 2], "image/jpeg"), "s")
    with pytest.raises(CameraBadResponse, match="busy"):
        decode_jpeg(_response(b"Driver is initiating. Please try again later."), "s")
    with pytest.raises(CameraBadResponse, match="do not decode"):
        decode_jpeg(_response(b"\xff\xd8" + b"\x00" * 100 + b"\xff\xd9", "image/jpeg"), "s")


def test_pan_frames():
    assert to_device_pan(350, -180) == -10 and to_device_pan(-10, 0) == 350 and to_device_pan(360, 0) == 0
    full = PoseRanges(0, 360, -30, 30, 1, 10)
    assert from_device_pan(-10, full) == 350 and from_device_pan(360, full) == 360
    limited = PoseRanges(-170, 170, -30, 30, 1, 10, pan_wraps=False)
    assert from_device_pan(350, limited) == -10 and from_device_pan(180, limited) == 180  # outside: as is
    assert pan_distance(359, 1) == 2 and pan_distance(-180, 180) == 0


def test_the_password_is_scrubbed_from_any_message():
    http = CameraHttp(ConnectionOptions("127.0.0.1", 1, "u", SecretStr("s3cret!")))
    try:
        assert http.scrub("camera said: bad password s3cret! for u") == "camera said: bad password *** for u"
        assert "s3cret" not in repr(http.options)
    finally:
        http.close()


def test_fault_plan():
    plan = FaultPlan()
    plan.inject("truncated", "position", times=2)
    plan.inject("timeout")
    assert plan.take("move") == "timeout"  # "any" operation; truncated cannot hit a move
    assert [plan.take("position") for _ in range(3)] == ["truncated", "truncated", None]
    with pytest.raises(ValueError, match="cannot hit 'move'"):
        plan.inject("garbage", "move")
    with pytest.raises(ValueError, match="unknown fault"):
        plan.inject("fire")
    a = FaultPlan(0.5, ("error_body", "garbage"), seed=3)
    b = FaultPlan(0.5, ("error_body", "garbage"), seed=3)
    seq = [a.take("snapshot") for _ in range(40)]
    assert seq == [b.take("snapshot") for _ in range(40)] and {"error_body", "garbage", None} == set(seq)
    assert all(FaultPlan(1.0, ("garbage",)).take("move") is None for _ in range(5))
