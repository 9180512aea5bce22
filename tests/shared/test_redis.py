import pytest

from shared import events
from shared.keys import Keys
from shared.redis import EmbeddedRedis, RedisUnavailable, connect, redacted


def test_redacted_hides_passwords():
    assert redacted("redis://:secret@h:6379/0") == "redis://:***@h:6379/0"
    assert "pw" not in redacted("redis://user:pw@h/1")
    assert redacted("unix:///tmp/s.sock?db=2") == "unix:///tmp/s.sock?db=2"


def test_unreachable_redis_is_a_clear_error(tmp_path):
    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1:1"):
        connect("redis://:pw@127.0.0.1:1/0")


def test_embedded_server_keeps_data_across_restart(tmp_path):
    server = EmbeddedRedis(tmp_path)
    connect(server.url, password=server.password).set("k", "v")
    server.close()
    server = EmbeddedRedis(tmp_path)
    try:
        assert connect(server.url, password=server.password).get("k") == b"v"
    finally:
        server.close()


def test_embedded_restart_keeps_url_password_and_data(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        url, password = server.url, server.password
        connect(url, password=password).set("k", "v")
        server.restart()
        assert (server.url, server.password) == (url, password)
        assert connect(url, password=password).get("k") == b"v"
        with pytest.raises(RedisUnavailable, match="refused the password"):
            connect(url)
        with pytest.raises(RedisUnavailable, match="refused the password"):
            connect(url, password="wrong")


def test_embedded_password_is_private_and_never_on_argv(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        folder = tmp_path / "redis"
        assert (folder / "password").read_text().strip() == server.password
        for name in ("password", "redis.conf"):
            assert (folder / name).stat().st_mode & 0o777 == 0o600
        pid = int((folder / "redis.pid").read_text())
        assert server.password.encode() not in open(f"/proc/{pid}/cmdline", "rb").read()
        assert server.password not in (folder / "redis.log").read_text()
    with EmbeddedRedis(tmp_path, password="given-pw") as server:
        assert connect(server.url, password="given-pw").ping()


def test_embedded_socket_falls_back_to_a_short_path(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        assert len(server.socket_path) <= 100
        url = server.url
        server.restart()
        assert server.url == url
        assert connect(url, password=server.password).ping()


def test_client_reconnects_after_its_connection_drops(redis_client):
    redis_client.set("a", "1")
    redis_client.client_kill_filter(_type="normal", skipme=False)
    assert redis_client.get("a") == b"1"


def test_events_stream_catch_up(redis_client):
    keys = Keys("t")
    first = events.emit(redis_client, keys, "phase.started", "n1", phase="collect")
    events.emit(redis_client, keys, "phase.finished", "n1", phase="collect", outcome="ok")
    all_events = events.read_since(redis_client, keys)
    assert [e.kind for e in all_events] == ["phase.started", "phase.finished"]
    missed = events.read_since(redis_client, keys, first)
    assert [e.data["outcome"] for e in missed] == ["ok"]


def test_keys_share_one_prefix():
    k = Keys("site7")
    names = [k.events(), k.slot_lease("wm_00_00"), k.stop_request("j"), k.cycle("c1")]
    assert all(n.startswith("site7:") for n in names)
    assert k.queue("camera", "n1") == "site7.n1.camera"
    assert k.queue("worldmodel") == "site7.worldmodel"
    with pytest.raises(ValueError, match="belongs to a node"):
        k.queue("agent")
    with pytest.raises(ValueError, match="unknown queue"):
        k.queue("nope")
