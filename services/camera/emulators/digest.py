"""The server side of HTTP Digest authentication (RFC 7616), as PTZ cameras implement it.

Why a real implementation rather than "any Authorization header will do": the drivers promise to
keep one digest session (one 401 per session, then pre-emptive answers with a growing nonce
count), and only a server that checks nonce, realm, opaque, uri, qop=auth and nc can hold them to
it. Supported: MD5 (what cameras use) and SHA-256, qop=auth. Nonces expire after `nonce_ttl_s`
(the next challenge then says stale=true, so a client re-answers without asking the user) and a
nonce count that does not grow is a replay and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict

from pydantic import SecretStr

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_FIELD = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')

OK, MISSING, BAD, STALE = "ok", "missing", "bad", "stale"


def parse_digest_header(header: str) -> dict[str, str] | None:
    """`Digest a="b", c=d` -> {"a": "b", "c": "d"}; None when the scheme is not Digest."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
            for m in _FIELD.finditer(rest)}


class DigestAuthority:
    """Issues challenges and verifies answers for one user. Thread-safe."""

    def __init__(self, user: str, password: SecretStr, realm: str = "ptzjepa-emulator",
                 algorithm: str = "MD5", nonce_ttl_s: float = 300.0, max_nonces: int = 4096):
        if algorithm not in _HASHES:
            raise ValueError(f"digest algorithm must be one of {sorted(_HASHES)}, got {algorithm!r}")
        self.user, self.realm, self.algorithm = user, realm, algorithm
        self._password = password
        self.nonce_ttl_s = nonce_ttl_s
        self._max = max_nonces
        self._opaque = secrets.token_hex(16)
        self._nonces: OrderedDict[str, list[float]] = OrderedDict()  # nonce -> [issued, last nc]
        self._lock = threading.Lock()

    def _h(self, text: str) -> str:
        return _HASHES[self.algorithm](text.encode()).hexdigest()

    def challenge(self, stale: bool = False) -> str:
        """A `WWW-Authenticate` value with a fresh nonce."""
        nonce = secrets.token_hex(16)
        with self._lock:
            self._nonces[nonce] = [time.monotonic(), 0]
            while len(self._nonces) > self._max:
                self._nonces.popitem(last=False)
        return (f'Digest realm="{self.realm}", qop="auth", algorithm={self.algorithm}, '
                f'nonce="{nonce}", opaque="{self._opaque}"' + (", stale=true" if stale else ""))

    def verify(self, method: str, uri: str, header: str | None) -> str:
        """OK, MISSING (no digest answer), BAD (wrong answer or replay) or STALE (right answer,
        expired or unknown nonce)."""
        fields = parse_digest_header(header) if header else None
        if not fields:
            return MISSING
        needed = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        if any(k not in fields for k in needed) or fields["qop"] != "auth":
            return BAD
        if fields.get("algorithm", "MD5").upper() != self.algorithm or fields.get("opaque") != self._opaque:
            return BAD
        if fields["realm"] != self.realm or fields["uri"] != uri:
            return BAD
        if not hmac.compare_digest(fields["username"].encode(), self.user.encode()):
            return BAD
        try:
            nc = int(fields["nc"], 16)
        except ValueError:
            return BAD
        ha1 = self._h(f"{self.user}:{self.realm}:{self._password.get_secret_value()}")
        ha2 = self._h(f"{method}:{uri}")
        expected = self._h(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
        if not hmac.compare_digest(expected.encode(), fields["response"].encode()):
            return BAD
        with self._lock:
            entry = self._nonces.get(fields["nonce"])
            if entry is None or time.monotonic() - entry[0] > self.nonce_ttl_s:
                self._nonces.pop(fields["nonce"], None)
                return STALE
            if nc <= entry[1]:
                return BAD  # a replayed (or reordered) answer
            entry[1] = nc
        return OK
