"""The coordinator's status page (`GET /`) in a real headless browser (Debian's chromium), over the
shared two-cycle run: the nodes, cycles, phases and lease holders it shows are the API's, it
refreshes itself, and its screenshot is a real picture."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from services.coordinator.app import create_app
from services.coordinator.report import build_report
from services.coordinator.status.data import latest_report
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.queues import job_queue
from shared.redis import connect
from tests.support.servers import ThreadedServer

CHROMIUM = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH: the status "
                                   "page is tested in a real browser (apt-get install -y chromium)")


class Dom(HTMLParser):
    """Elements carrying data-* attributes, as (tag, attrs) in document order."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if any(k.startswith("data-") for k in attrs) or tag in ("img", "body"):
            self.elements.append((tag, attrs))

    def find(self, tag: str, attr: str) -> list[dict]:
        return [a for t, a in self.elements if t == tag and attr in a]


def chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=90)


@pytest.fixture
def coordinator(two_cycles, tmp_path):
    """The coordinator over the run, with a published report, a lease held by node0 and a phase
    waiting in its queue (no worker runs now)."""
    client = connect(two_cycles.redis_url)
    if latest_report(two_cycles.store, "node0") is None:  # the report tests may have published one
        build_report(two_cycles.settings, tmp_path / "report", redis_client=client, tsne=False,
                     publish=True)
    keys = Keys(two_cycles.settings.redis_prefix)
    lease = LeaseManager(client, keys, "node0").acquire("wm_01", ttl_ms=120_000, wait_s=0, heartbeat=False)
    # a second site sharing this Redis, in lifelong mode (it left no frames or cycles here)
    client.hset(keys.lifelong("node1"), mapping={"enabled": "1", "cycles_started": 3})
    try:
        with ThreadedServer(create_app(two_cycles.settings)) as server, \
                httpx.Client(base_url=server.url, timeout=10) as http:
            queued = http.post("/v1/phases/agent", json={"updates": 5})
            assert queued.status_code == 202
            yield server, http, queued.json()["job_id"]
            http.post(f"/v1/jobs/{queued.json()['job_id']}/stop")
    finally:
        lease.release()
        client.delete(keys.lifelong("node1"))
        job_queue(Keys(two_cycles.settings.redis_prefix).queue("agent", "node0"), client).empty()
        client.close()


def test_status_endpoints(coordinator, two_cycles):
    _server, http, queued = coordinator
    page = http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/ui/status.js">' in page.text and "http" not in page.text.split("<body")[1]
    assert http.get("/ui/status.js").headers["content-type"].startswith("text/javascript")
    status = http.get("/v1/status").json()
    assert [n["node"] for n in status["nodes"]] == ["node0", "node1"]
    assert [(n["this"], n["lifelong"]["enabled"]) for n in status["nodes"]] == [(True, False), (False, True)]
    assert status["nodes"][1]["latest_frame"] is None and status["nodes"][1]["jobs"] == []
    node = status["nodes"][0]
    assert node["cycles_total"] == 2 and node["latest_cycle"]["id"] == two_cycles.cycle_ids[-1]
    assert node["jobs"][0]["job_id"] == queued and node["jobs"][0]["status"] == "queued"
    assert {j["phase"] for j in node["jobs"]} >= {"collect", "navigate", "worldmodel", "dreamer", "agent"}
    # the newest frame: the last frame the agent recorded in cycle 2
    records = [r for rel in two_cycles.store.list("manifests/node0", ".jsonl")
               for r in two_cycles.store.read_manifest(rel)]
    newest = max(records, key=lambda r: r.captured_at)
    latest_id = http.get("/v1/frames/latest").json()["frame_id"]
    assert latest_id == newest.frame_id == node["latest_frame"]["frame_id"]
    jpeg = http.get("/v1/frames/latest.jpg", params={"node": "node0"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content == two_cycles.store.read_bytes(newest.path)
    assert http.get("/v1/frames/latest", params={"node": "nobody"}).status_code == 404
    assert http.get("/v1/frames/latest", params={"node": "../etc"}).status_code == 422
    plots = node["report"]["plots"]
    assert {p["title"] for p in plots} >= {"Loss curves", "Where the camera pointed"}
    png = http.get(plots[0]["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    assert http.get("/ui/reports/node0/analysis-x/..%2Fsecret.png").status_code == 404
    assert http.get("/ui/reports/node0/other/index.html").status_code == 404


@needs_browser
def test_status_page_in_a_headless_browser_shows_what_the_api_says(coordinator, tmp_path):
    server, http, queued = coordinator
    dump = chromium(["--virtual-time-budget=7000", "--dump-dom", f"{server.url}/?refresh=1"], tmp_path)
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = Dom(dump.stdout)
    body = dom.find("body", "data-refresh-count")[0]
    assert body.get("data-state") == "ok"
    assert int(body["data-refresh-count"]) >= 2, "the page did not refresh itself"
    status = http.get("/v1/status").json()
    cycles = http.get("/v1/cycles", params={"limit": 10}).json()
    models = http.get("/v1/models").json()
    # nodes, and whether each is in lifelong mode
    assert [a["data-node"] for a in dom.find("tr", "data-node")] == [n["node"] for n in status["nodes"]]
    assert [a["data-lifelong"] for a in dom.find("td", "data-lifelong")] == \
        ["on" if n["lifelong"]["enabled"] else "off" for n in status["nodes"]] == ["off", "on"]
    # cycles and their phases, with each phase's status
    assert [a["data-cycle"] for a in dom.find("tr", "data-cycle")] == [c["id"] for c in cycles]
    shown = [(a["data-cycle"], a["data-phase"], a["data-status"]) for a in dom.find("span", "data-phase")]
    assert shown == [(c["id"], p["name"], p["status"]) for c in cycles for p in c["phases"]]
    assert len(shown) == 8 and all(s == "finished" for _, _, s in shown)
    # running and recent phases (rq jobs), including the one waiting in the queue
    jobs = [(a["data-job"], a["data-status"]) for a in dom.find("tr", "data-job")]
    assert jobs == [(j["job_id"], j["status"]) for n in status["nodes"] for j in n["jobs"]]
    assert (queued, "queued") in jobs
    # world-model slots and who holds their lease
    slots = [(a["data-slot"], a["data-holder"]) for a in dom.find("tr", "data-slot")]
    assert slots == [(s["slot"], s["holder"]["node"] if s["holder"] else "") for s in models["slots"]]
    assert ("wm_01", "node0") in slots and ("wm_00", "") in slots
    # the newest frame of the camera and the newest plots
    srcs = [a.get("src", "") for t, a in dom.elements if t == "img"]
    assert any(s.startswith("/v1/frames/latest.jpg?node=node0") for s in srcs)
    assert any(s.startswith("/ui/reports/node0/analysis-") and s.endswith(".png") for s in srcs)


@needs_browser
def test_status_page_screenshot_is_a_real_picture(coordinator, tmp_path):
    server, _http, _queued = coordinator
    shot = tmp_path / "status.png"
    result = chromium(["--virtual-time-budget=5000", "--window-size=1280,1400",
                       f"--screenshot={shot}", f"{server.url}/"], tmp_path)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.size == (1280, 1400)
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.std() > 20, "the screenshot is (nearly) blank"
    # the dark header bar, and the camera's frame (a colourful photo-like patch) were drawn
    assert (rgb[:40].mean(axis=(0, 1)) < 80).all()
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    assert (hsv[..., 1] > 60).mean() > 0.02, "nothing colourful (frame, plots) on the page"
