"""The store on S3, against a real S3-compatible server on loopback (moto's server mode)."""

import hashlib
import json

import pytest

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a test dependency")
pytest.importorskip("s3fs", reason="s3fs is needed for s3:// stores")

from services.camera.app import create_app  # noqa: E402
from services.camera.jobs import collect_sweep  # noqa: E402
from services.worldmodel.jobs import train_world_model  # noqa: E402
from shared import versions  # noqa: E402
from shared.config import child_environment  # noqa: E402
from shared.store import AlreadyExists, CorruptFile, MissingFile, Store  # noqa: E402
from tests.coordinator.test_full_cycle import TINY  # noqa: E402
from tests.support.servers import ThreadedServer, free_port  # noqa: E402
from tests.support.settings import make_settings  # noqa: E402


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket="ptz")
    yield endpoint
    server.stop()


def _options(endpoint: str) -> dict:
    # test-only credentials for the local fake; real deployments use AWS_* variables or roles
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint,
                                                                      "region_name": "us-east-1"}}


def test_files_round_trip_and_are_immutable(s3):
    store = Store("s3://ptz/unit", **_options(s3))
    store.write_bytes("a/b.bin", b"hello")
    assert store.read_bytes("a/b.bin") == b"hello"
    with pytest.raises(AlreadyExists):
        store.write_bytes("a/b.bin", b"other")
    assert store.read_bytes("a/b.bin") == b"hello"
    assert store.list("a") == ["a/b.bin"]
    with pytest.raises(MissingFile, match="nope"):
        store.read_bytes("nope")
    store.write_json("x.json", {"k": 1})
    assert store.read_json("x.json") == {"k": 1}


def test_tampered_and_truncated_objects_are_rejected(s3):
    import torch

    store = Store("s3://ptz/tamper", **_options(s3))
    digest = store.write_tensors("m.safetensors", {"w": torch.ones(4)})
    data = store.read_bytes("m.safetensors")
    store.fs.pipe_file(store.full("m.safetensors"), data[:-3])  # someone truncates it behind our back
    with pytest.raises(CorruptFile, match="does not match"):
        store.read_tensors("m.safetensors", expected_sha256=digest)
    with pytest.raises(CorruptFile, match="not a valid safetensors"):
        store.read_tensors("m.safetensors")


def test_collect_and_train_with_an_s3_store(s3, tmp_path, redis_url, monkeypatch):
    config = json.loads(json.dumps(TINY))
    settings = make_settings(tmp_path, redis_url, store_url="s3://ptz/node-store",
                             store_options=_options(s3), worldmodel=config["worldmodel"],
                             camera=config["camera"])
    for key, value in child_environment(settings, tmp_path / "run").items():
        if key.startswith("PTZJEPA_"):
            monkeypatch.setenv(key, value)
    with ThreadedServer(create_app(settings), port=settings.services.camera_port):
        sweep = collect_sweep(iterations=2, movements=3, seed=2)
    result = train_world_model()
    store = Store("s3://ptz/node-store", **_options(s3))
    assert len(store.list("frames", ".jpg")) == sweep["frames"] == 16  # 2 x 4 views, each with its hold frame
    share = versions.read_share(store, result["slot"], result["version"])
    assert hashlib.sha256(share).hexdigest() == result["version"]
