"""The status page: plain HTML, a little CSS and vanilla JavaScript, served as they are (no build
step, no external resources). The script fetches the coordinator's JSON API (`/v1/status`,
`/v1/cycles`, `/v1/models`) and redraws the page every few seconds (`?refresh=SECONDS`, default 5).
Every value from the API is inserted with `textContent`, never as HTML."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ptzjepa status</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;
color:#1d2430}
header{background:#1d2430;color:#fff;padding:.7em 1.2em;display:flex;gap:1.5em;align-items:baseline;
flex-wrap:wrap}
header h1{font-size:1.25em;margin:0}header .meta{color:#b9c2d0;font-size:.85em}
main{padding:1em 1.2em;display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1em}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:.6em 1em;overflow:auto}
section.wide{grid-column:1/-1}
h2{font-size:1.05em;margin:.3em 0 .6em}
table{border-collapse:collapse;width:100%;font-size:.85em}
th,td{border-bottom:1px solid #edf0f4;padding:.3em .45em;text-align:left;vertical-align:top}
th{color:#5a6577;font-weight:600}
.badge{display:inline-block;border-radius:10px;padding:0 .55em;font-size:.8em;background:#e8ecf2}
.s-finished{background:#d9f2e0;color:#176f2c}.s-failed,.s-stopped,.s-canceled{background:#fde2e4;color:#b00020}
.s-gave_up,.s-restarting{background:#fde2e4;color:#b00020}
.s-started,.s-running{background:#dbe9fb;color:#0b5cad}.s-queued,.s-deferred,.s-scheduled{background:#fff1d6;color:#8a5a00}
.phase{display:inline-block;margin:.1em .3em .1em 0}
.bar{display:inline-block;width:90px;height:8px;background:#e8ecf2;border-radius:4px;vertical-align:middle;margin-left:.3em}
.bar>span{display:block;height:100%;background:#2f7de1;border-radius:4px}
.frames{display:flex;gap:1em;flex-wrap:wrap}
.frames figure{margin:0;text-align:center;font-size:.8em;color:#5a6577}
.frames img{width:224px;height:224px;object-fit:contain;background:#111;border-radius:4px;display:block}
.plots{display:flex;gap:.8em;flex-wrap:wrap}
.plots figure{margin:0;font-size:.8em;color:#5a6577}
.plots img{max-width:360px;max-height:260px;border:1px solid #dde2ea;border-radius:4px;display:block}
#error{display:none;background:#fde2e4;color:#b00020;padding:.5em 1.2em}
.muted{color:#8591a3}
code{font-size:.9em;word-break:break-all}
</style>
</head>
<body data-refresh-count="0">
<header>
  <h1>ptzjepa</h1>
  <span>coordinator of node <strong id="this-node">&hellip;</strong></span>
  <span class="meta">updated <span id="updated">never</span> &middot; every <span id="period"></span> s</span>
</header>
<div id="error"></div>
<main>
  <section class="wide" id="nodes-section"><h2>Nodes</h2>
    <table id="nodes"><thead><tr><th>node</th><th>lifelong</th><th>latest cycle</th>
      <th>running phases</th><th>agent</th><th>latest frame</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="cycles-section"><h2>Cycles of <span class="node-name"></span></h2>
    <table id="cycles"><thead><tr><th>cycle</th><th>status</th><th>started</th><th>phases</th></tr></thead>
      <tbody></tbody></table>
  </section>
  <section id="jobs-section"><h2>Running and recent phases</h2>
    <table id="jobs"><thead><tr><th>node</th><th>phase</th><th>status</th><th>progress</th><th>cycle</th>
      <th>job</th><th>ended</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="children-section"><h2>Processes (supervised by <code>ptzjepa up</code>)</h2>
    <table id="children"><thead><tr><th>node</th><th>process</th><th>state</th><th>pid</th>
      <th>restarts</th><th>last exit</th><th>since</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="leases-section"><h2>World-model slots and lease holders</h2>
    <table id="leases"><thead><tr><th>slot</th><th>lease holder</th><th>latest version</th></tr></thead>
      <tbody></tbody></table>
  </section>
  <section id="frames-section"><h2>Latest frame of each camera</h2>
    <div class="frames" id="frames"></div></section>
  <section class="wide" id="plots-section"><h2>Latest plots</h2><div id="plots"></div></section>
</main>
<script src="/ui/status.js"></script>
</body>
</html>
"""

SCRIPT = r"""
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const period = Math.max(1, Number(params.get("refresh")) || 5);
  document.getElementById("period").textContent = String(period);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, String(v));
      else node[k] = v;
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function time(t) {
    if (!t) return "";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function clock(t) { const s = time(t); return s ? s.slice(11) : ""; }
  function badge(status) { return el("span", {class: "badge s-" + status}, status); }
  function bar(progress) {
    if (!progress || !progress.total) return null;
    const ratio = Math.max(0, Math.min(1, (progress.done || 0) / progress.total));
    const b = el("span", {class: "bar", title: progress.done + "/" + progress.total});
    const fill = el("span"); fill.style.width = (100 * ratio).toFixed(1) + "%"; b.append(fill);
    return el("span", {class: "progress", "data-done": progress.done || 0, "data-total": progress.total},
              " " + (progress.done || 0) + "/" + progress.total, b);
  }
  function fill(id, rows) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren(...rows);
  }
  async function json(url) {
    const r = await fetch(url, {cache: "no-store"});
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  function renderNodes(status) {
    fill("nodes", status.nodes.map(n => {
      const life = n.lifelong && n.lifelong.enabled ? "on" : "off";
      const cyc = n.latest_cycle;
      const running = el("td", {class: "running"});
      if (!n.running.length) running.append(el("span", {class: "muted"}, "idle"));
      for (const j of n.running) running.append(el("div", {class: "phase", "data-phase": j.phase}, j.phase,
                                                   bar(j.progress)));
      const agent = n.agent ? el("code", {}, n.agent.sha256.slice(0, 12))
                            : el("span", {class: "muted"}, "none");
      const frame = n.latest_frame;
      return el("tr", {"data-node": n.node},
        el("td", {}, el("strong", {class: "node-id"}, n.node), n.this ? " (this)" : ""),
        el("td", {"data-lifelong": life}, life),
        el("td", {}, cyc ? badge(cyc.status) : el("span", {class: "muted"}, "none"),
           cyc ? " " + cyc.id + " (" + n.cycles_total + " total)" : ""),
        running, el("td", {}, agent),
        el("td", {}, frame ? frame.source + " " + time(frame.captured_at)
                           : el("span", {class: "muted"}, "none")));
    }));
  }
  function renderCycles(list) {
    fill("cycles", list.map(c => el("tr", {"data-cycle": c.id, "data-status": c.status},
      el("td", {}, el("code", {}, c.id)), el("td", {}, badge(c.status), c.reason ? " " + c.reason : ""),
      el("td", {}, time(c.created_at)),
      el("td", {}, ...c.phases.map(p => el("span", {class: "phase", "data-cycle": c.id, "data-phase": p.name,
                                                   "data-status": p.status},
                                           p.name + " ", badge(p.status), bar(p.progress)))))));
  }
  function renderJobs(status) {
    const rows = [];
    for (const n of status.nodes) for (const j of n.jobs) rows.push(el("tr",
      {"data-job": j.job_id, "data-status": j.status},
      el("td", {}, n.node), el("td", {}, j.phase),
      el("td", {}, badge(j.status), j.error ? " " + j.error : ""),
      el("td", {}, bar(j.progress) || ""), el("td", {}, j.cycle_id ? el("code", {}, j.cycle_id) : "-"),
      el("td", {}, el("code", {}, j.job_id)), el("td", {title: time(j.ended_at)}, clock(j.ended_at))));
    fill("jobs", rows.length ? rows
                 : [el("tr", {}, el("td", {colSpan: 7, class: "muted"}, "no phases yet"))]);
  }
  function renderChildren(status) {
    const rows = [];
    for (const n of status.nodes) for (const c of (n.children || [])) rows.push(el("tr",
      {"data-child": c.name, "data-state": c.state, "data-restarts": c.restarts},
      el("td", {}, n.node), el("td", {}, el("code", {}, c.name)), el("td", {}, badge(c.state)),
      el("td", {}, c.pid === null ? "-" : c.pid), el("td", {}, c.restarts),
      el("td", {}, c.last_exit || ""), el("td", {title: time(c.since)}, clock(c.since))));
    fill("children", rows.length ? rows
         : [el("tr", {}, el("td", {colSpan: 7, class: "muted"}, "no supervised processes"))]);
  }
  function renderLeases(models) {
    fill("leases", models.slots.map(s => el("tr",
      {"data-slot": s.slot, "data-holder": s.holder ? s.holder.node : ""},
      el("td", {}, el("code", {}, s.slot)),
      el("td", {}, s.holder ? s.holder.node + " (fence " + s.holder.fence + ", "
                              + Math.round(s.holder.ttl_ms / 1000) + " s left)"
                            : el("span", {class: "muted"}, "free")),
      el("td", {}, s.latest ? el("code", {}, s.latest.version.slice(0, 12))
                            : el("span", {class: "muted"}, "nothing published"),
         s.latest ? " fence " + s.latest.fence + " by " + s.latest.node + ", " + time(s.latest.time) : ""))));
  }
  function renderFrames(status) {
    const box = document.getElementById("frames");
    const figs = status.nodes.filter(n => n.latest_frame).map(n => {
      const f = n.latest_frame;
      return el("figure", {"data-node": n.node},
        el("img", {src: f.image_url, alt: "latest frame of " + n.node}),
        el("figcaption", {}, n.node + " / " + f.camera + ": pan " + f.pose.pan.toFixed(1) + ", tilt " +
           f.pose.tilt.toFixed(1) + ", zoom " + f.pose.zoom.toFixed(2) + "x", el("br"),
           f.source + " " + time(f.captured_at)));
    });
    box.replaceChildren(...(figs.length ? figs : [el("span", {class: "muted"}, "no frames yet")]));
  }
  function renderPlots(status) {
    const box = document.getElementById("plots");
    const parts = [];
    for (const n of status.nodes) {
      if (!n.report) continue;
      const row = el("div", {class: "plots", "data-node": n.node});
      for (const p of n.report.plots) row.append(el("figure", {},
        el("a", {href: p.url}, el("img", {src: p.url, alt: p.title})),
        el("figcaption", {}, p.title)));
      parts.push(el("p", {}, el("strong", {}, n.node), " report of " + time(n.report.generated_at) + " ",
                    el("a", {href: n.report.index_url}, "(full report)")), row);
    }
    box.replaceChildren(...(parts.length ? parts : [el("span", {class: "muted"},
      "no report yet: run `ptzjepa report` to publish one")]));
  }

  async function refresh() {
    const banner = document.getElementById("error");
    try {
      const [status, cycleList, models] = await Promise.all(
        [json("/v1/status"), json("/v1/cycles?limit=10"), json("/v1/models")]);
      document.getElementById("this-node").textContent = status.node;
      for (const s of document.querySelectorAll(".node-name")) s.textContent = status.node;
      renderNodes(status); renderCycles(cycleList); renderJobs(status); renderChildren(status);
      renderLeases(models); renderFrames(status); renderPlots(status);
      banner.style.display = status.problems.length ? "block" : "none";
      banner.textContent = status.problems.join("; ");
      document.getElementById("updated").textContent = time(status.generated_at);
      document.body.dataset.refreshCount = String(Number(document.body.dataset.refreshCount) + 1);
      document.body.dataset.state = "ok";
    } catch (err) {
      banner.style.display = "block";
      banner.textContent = "cannot reach the coordinator API: " + err.message;
      document.body.dataset.state = "error";
    }
  }
  refresh();
  setInterval(refresh, period * 1000);
})();
"""
