"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no
global state, no display). Each function writes one PNG and returns its file name, or None when
there is nothing to draw (the caller then says what is missing)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from shared.scene import Scene
from shared.schemas import FrameRecord

SOURCE_TITLES = {"sweep": "random sweep", "navigate": "agent (navigate)", "import": "imported (legacy)"}
SLOT_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
                "tab:pink", "tab:olive", "tab:cyan", "tab:grey")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, format="png")
    return name


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


# ---- losses ------------------------------------------------------------------------------------
def plot_losses(out_dir: Path, versions: list[dict], agents: list[dict], cycle_of_version: dict,
                cycle_of_agent: dict) -> str | None:
    if not versions and not agents:
        return None
    fig = _figure(10, 7)
    ax_wm, ax_ag = fig.subplots(2, 1)
    slots = sorted({m["slot"] for m in versions})
    x0, previous_cycle, labelled = 0, None, set()
    for meta in versions:
        losses = [float(v) for v in meta.get("epoch_losses") or []]
        if not losses:
            continue
        xs = np.arange(x0 + 1, x0 + len(losses) + 1)
        colour = SLOT_COLOURS[slots.index(meta["slot"]) % len(SLOT_COLOURS)]
        ax_wm.plot(xs, losses, marker=".", color=colour,
                   label=meta["slot"] if meta["slot"] not in labelled else None)
        labelled.add(meta["slot"])
        cycle = cycle_of_version.get(meta["version"])
        if x0 > 0:  # every version restarts training from its parent: the original's restart markers
            boundary = cycle != previous_cycle
            ax_wm.axvline(x0 + 0.5, color="k" if boundary else "0.6", ls="--" if boundary else ":",
                          lw=1.2 if boundary else 0.8)
        if cycle is not None and cycle != previous_cycle:
            ax_wm.annotate(f"cycle {cycle}", (x0 + 1, 1.0), xycoords=("data", "axes fraction"),
                           xytext=(2, -2), textcoords="offset points", va="top", fontsize=8)
        previous_cycle = cycle
        x0 += len(losses)
    if x0:
        ax_wm.set_xlabel("epoch (every version of this node in training order; dashed: cycle "
                         "boundary, dotted: restart)")
        ax_wm.set_ylabel("epoch loss (smooth L1)")
        from matplotlib.ticker import MaxNLocator

        ax_wm.xaxis.set_major_locator(MaxNLocator(integer=True))
        every = [float(v) for m in versions for v in m.get("epoch_losses") or []]
        if min(every) > 0 and max(every) / min(every) > 20:  # several decades: log scale
            ax_wm.set_yscale("log")
        ax_wm.legend(title="slot", fontsize=8)
        ax_wm.set_title("World-model training loss")
    else:
        _empty(ax_wm, "no world-model epoch losses recorded")
    scored = [(cycle_of_agent.get(a["sha256"]), a) for a in agents if a.get("final_loss") is not None]
    points = [(c, a) for c, a in scored if c is not None]
    if points:
        agent_cycles = [c for c, _ in points]
        ys = [float(a["final_loss"]) for _, a in points]
        ax_ag.plot(agent_cycles, ys, marker="o", color="tab:purple")
        for x, (_, a) in zip(agent_cycles, points, strict=True):
            ax_ag.annotate(f"{a.get('updates', '?')} upd", (x, float(a["final_loss"])),
                           textcoords="offset points", xytext=(4, 4), fontsize=7)
        for c in sorted(set(xs))[1:]:
            ax_ag.axvline(c - 0.5, color="k", ls="--", lw=0.8)
        ax_ag.set_xticks(sorted(set(xs)))
        ax_ag.set_xticklabels([f"c{c}" for c in sorted(set(xs))])
        ax_ag.set_xlabel("cycle")
        ax_ag.set_ylabel("final TD loss (Huber)")
        ax_ag.set_title("Agent training loss (the agent record keeps the final loss of each training)")
    else:
        _empty(ax_ag, "no agent losses recorded")
    return _save(fig, out_dir, "losses.png")


# ---- where the camera pointed -----------------------------------------------------------------------
def _scene_axes(ax, scene: Scene) -> None:
    r = scene.ranges
    if scene.background is not None and scene.extent is not None:
        ax.imshow(scene.background, extent=scene.extent, aspect="auto", alpha=0.75,
                  interpolation="bilinear")
        for name, (yaw0, span, lo, hi) in scene.zones.items():
            for shift in (0.0, -360.0):
                x = yaw0 + shift
                if x + span <= 0 or x >= 360:
                    continue
                from matplotlib.patches import Rectangle

                ax.add_patch(Rectangle((x, lo), span, hi - lo, fill=False, ec="white", lw=0.8, ls="--"))
                ax.text(max(x, 0) + 1, hi, name, color="white", fontsize=7, va="bottom")
        ax.set_xlim(scene.extent[0], scene.extent[1])
        ax.set_ylim(scene.extent[2], scene.extent[3])
    else:
        ax.set_xlim(r.pan_min, r.pan_max)
        ax.set_ylim(r.tilt_min, r.tilt_max)
        ax.grid(True, alpha=0.3)
    ax.set_xlabel("pan (deg)")
    ax.set_ylabel("tilt (deg)")


def plot_where(out_dir: Path, scene: Scene, frames: list[FrameRecord], error: dict[str, float]) -> str | None:
    if not frames:
        return None
    sources = [s for s in ("sweep", "navigate", "import") if any(f.source == s for f in frames)]
    for must in ("sweep", "navigate"):
        if must not in sources:
            sources.append(must)
    sources = [s for s in ("sweep", "navigate", "import") if s in sources]
    fig = _figure(5.2 * len(sources), 8)
    axes = fig.subplots(2, len(sources), squeeze=False)
    finite = [v for v in error.values() if math.isfinite(v)]
    vmin, vmax = (min(finite), max(finite)) if finite else (0.0, 1.0)
    zooms = [f.pose.zoom for f in frames]
    zmin, zmax = min(zooms), max(zooms) if max(zooms) > min(zooms) else min(zooms) + 1
    for col, source in enumerate(sources):
        chosen = [f for f in frames if f.source == source]
        for row, what in enumerate(("surprise", "zoom")):
            ax = axes[row][col]
            _scene_axes(ax, scene)
            title = f"{SOURCE_TITLES[source]}: {len(chosen)} frames"
            if not chosen:
                ax.set_title(title + " (none)")
                continue
            pans = np.array([f.pose.pan for f in chosen])
            tilts = np.array([f.pose.tilt for f in chosen])
            if what == "surprise":
                vals = np.array([error.get(f.frame_id, np.nan) for f in chosen])
                known = np.isfinite(vals)
                ax.scatter(pans[~known], tilts[~known], s=14, facecolors="none", edgecolors="0.5",
                           lw=0.8, label="round start (no move)")
                sc = ax.scatter(pans[known], tilts[known], c=vals[known], cmap="inferno", vmin=vmin,
                                vmax=vmax, s=22, edgecolors="k", linewidths=0.3)
                mean = float(np.nanmean(vals)) if known.any() else float("nan")
                ax.set_title(f"{title}\nmean world-model error {mean:.4g}", fontsize=9)
                fig.colorbar(sc, ax=ax, label="world-model error of the move (MSE)")
            else:
                sc = ax.scatter(pans, tilts, c=[f.pose.zoom for f in chosen], cmap="viridis",
                                vmin=zmin, vmax=zmax, s=22, edgecolors="k", linewidths=0.3)
                ax.set_title(f"{title}\ncoloured by zoom", fontsize=9)
                fig.colorbar(sc, ax=ax, label="zoom (x)")
    return _save(fig, out_dir, "where.png")


# ---- episodes ------------------------------------------------------------------------------------
def plot_episodes(out_dir: Path, scene: Scene, episodes: list[list[FrameRecord]],
                  error: dict[str, float], surprise: dict[str, float]) -> str | None:
    if not episodes:
        return None
    fig = _figure(12, 3.3 * len(episodes))
    axes = fig.subplots(len(episodes), 2, squeeze=False)
    for row, records in enumerate(episodes):
        ax_t, ax_s = axes[row]
        _scene_axes(ax_t, scene)
        pans = np.array([r.pose.pan for r in records])
        tilts = np.array([r.pose.tilt for r in records])
        steps = np.arange(len(records))
        ax_t.plot(pans, tilts, color="white", lw=2.2, alpha=0.7)
        ax_t.plot(pans, tilts, color="tab:cyan", lw=1.0)
        ax_t.scatter(pans, tilts, c=steps, cmap="plasma", s=26, edgecolors="k", linewidths=0.4, zorder=3)
        ax_t.scatter(pans[:1], tilts[:1], marker="*", s=140, color="yellow", edgecolors="k", zorder=4)
        ax_t.set_title(f"{records[0].round_id} ({records[0].source}): trajectory, star = start",
                       fontsize=9)
        xs = [r.step for r in records]
        ax_s.plot(xs, [error.get(r.frame_id, np.nan) for r in records], marker="o",
                  label="world-model error (this report's model)")
        recorded = [r.extra.get("observed_error", np.nan) for r in records]
        if any(isinstance(v, (int, float)) and math.isfinite(v) for v in recorded):
            ax_s.plot(xs, recorded, marker="x", ls="--", label="observed error (recorded)")
        pred = [r.extra.get("predicted_surprise", surprise.get(r.frame_id, np.nan)) for r in records]
        ax_s.plot(xs, pred, marker=".", ls=":", color="tab:red", label="predicted surprise")
        if any(r.dynamic_fraction is not None for r in records):
            ax_d = ax_s.twinx()
            ax_d.fill_between(xs, [r.dynamic_fraction or 0.0 for r in records], color="tab:green",
                              alpha=0.15, step="mid")
            ax_d.set_ylim(0, 1)
            ax_d.set_ylabel("moving fraction of view", fontsize=8, color="tab:green")
        ax_s.set_xlabel("step")
        ax_s.set_ylabel("per-move surprise")
        ax_s.legend(fontsize=7, loc="upper left")
        ax_s.set_title("surprise per step", fontsize=9)
    return _save(fig, out_dir, "episodes.png")


# ---- embeddings -------------------------------------------------------------------------------
def _scatter_embedding(ax, xy: np.ndarray, records: list[FrameRecord], values: np.ndarray, fig) -> None:
    markers = {"sweep": "o", "navigate": "^", "import": "s"}
    finite = values[np.isfinite(values)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
    sc = None
    for source, marker in markers.items():
        idx = np.array([i for i, r in enumerate(records) if r.source == source], int)
        if idx.size == 0:
            continue
        known = idx[np.isfinite(values[idx])]
        unknown = idx[~np.isfinite(values[idx])]
        if unknown.size:
            ax.scatter(xy[unknown, 0], xy[unknown, 1], marker=marker, facecolors="none",
                       edgecolors="0.6", s=22, lw=0.7)
        if known.size:
            sc = ax.scatter(xy[known, 0], xy[known, 1], c=values[known], cmap="inferno", vmin=vmin,
                            vmax=vmax, marker=marker, s=26, edgecolors="k", linewidths=0.3,
                            label=SOURCE_TITLES[source])
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="world-model error of the move into the frame")
        legend = ax.legend(fontsize=8)
        for handle in legend.legend_handles:
            handle.set_facecolor("0.7")
            handle.set_edgecolor("k")


def pca_2d(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0, keepdims=True)
    std = x.std(axis=0, keepdims=True)
    x = x / np.where(std > 1e-8, std, 1.0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    out = x @ vt[:2].T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def plot_embeddings(out_dir: Path, emb: np.ndarray, records: list[FrameRecord], values: np.ndarray,
                    method: str) -> str | None:
    if len(records) < 3:
        return None
    if method == "pca":
        xy = pca_2d(emb)
        title = "PCA of token-averaged target-encoder embeddings"
    else:
        from sklearn.decomposition import PCA  # type: ignore[import-untyped]
        from sklearn.manifold import TSNE  # type: ignore[import-untyped]

        n = len(records)
        x = emb - emb.mean(axis=0, keepdims=True)
        x = x / np.where(x.std(axis=0, keepdims=True) > 1e-8, x.std(axis=0, keepdims=True), 1.0)
        k = min(50, n - 1, x.shape[1])
        if k >= 2:
            x = PCA(n_components=k, random_state=0).fit_transform(x)
        perplexity = float(max(2.0, min(30.0, (n - 1) / 3.0)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0,
                    learning_rate="auto", n_jobs=1 if n < 500 else None)
        if n < 500:  # a thread pool costs more than it saves here (seconds on a busy machine)
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

            with threadpool_limits(limits=1):
                xy = tsne.fit_transform(x)
        else:
            xy = tsne.fit_transform(x)
        title = f"t-SNE (perplexity {perplexity:.0f}) of token-averaged target-encoder embeddings"
    fig = _figure(8, 6.5)
    ax = fig.subplots()
    _scatter_embedding(ax, xy, records, values, fig)
    ax.set_title(title + "\nhollow: round starts (no move, no error)", fontsize=10)
    return _save(fig, out_dir, f"embeddings_{method}.png")


# ---- errors per region ----------------------------------------------------------------------------
def plot_region_error(out_dir: Path, regions: list[str], labels: list[str], table: np.ndarray,
                      counts: np.ndarray, copy_table: np.ndarray) -> str | None:
    """table/copy_table/counts: (regions, evaluated cycles)."""
    if table.size == 0 or not np.isfinite(table).any():
        return None
    fig = _figure(max(9, 1.1 * len(labels) + 7), 0.45 * len(regions) + 3.5)
    ax_h, ax_l = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    im = ax_h.imshow(np.ma.masked_invalid(table), aspect="auto", cmap="magma")
    ax_h.set_xticks(range(len(labels)))
    ax_h.set_xticklabels(labels)
    ax_h.set_yticks(range(len(regions)))
    ax_h.set_yticklabels(regions)
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            if np.isfinite(table[i, j]):
                ax_h.text(j, i, f"{table[i, j]:.3g}\nn={int(counts[i, j])}", ha="center", va="center",
                          fontsize=7, color="w" if table[i, j] < np.nanmean(table) else "k")
    fig.colorbar(im, ax=ax_h, label="mean one-step error (MSE)")
    ax_h.set_title("World-model error per region (rows) after each cycle (columns)", fontsize=10)
    xs = np.arange(len(labels))
    for i, region in enumerate(regions):
        if np.isfinite(table[i]).any():
            ax_l.plot(xs, table[i], marker="o", label=region)
    copy = np.nanmean(np.where(counts > 0, copy_table, np.nan), axis=0)
    if np.isfinite(copy).any():
        ax_l.plot(xs, copy, color="k", ls="--", label="copy baseline (all regions)")
    ax_l.set_xticks(xs)
    ax_l.set_xticklabels(labels)
    ax_l.set_xlabel("world model of cycle")
    ax_l.set_ylabel("mean one-step error (MSE)")
    ax_l.legend(fontsize=7)
    ax_l.set_title("the same, as curves", fontsize=10)
    return _save(fig, out_dir, "region_error.png")


# ---- learning curves of the curiosity benchmark ---------------------------------------------------
def _curve(series: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in series], dtype=float)


def _curve_panel(ax, stratum: str, cycles: list[int], mean: dict[str, dict[str, list]],
                 seeds: list[dict[str, dict[str, list]]]) -> None:
    """One stratum: a line per arm (mean over seeds) and a thin one per seed; random dashed."""
    drawn = False
    for k, (arm, strata) in enumerate(mean.items()):
        random_arm = arm == "random"
        colour = "0.25" if random_arm else SLOT_COLOURS[k % len(SLOT_COLOURS)]
        ls = "--" if random_arm else "-"
        for seed in seeds if len(seeds) > 1 else []:
            ys = _curve(seed.get(arm, {}).get(stratum, []))
            if ys.size == len(cycles) and np.isfinite(ys).any():
                ax.plot(cycles, ys, color=colour, ls=ls, lw=0.7, alpha=0.35)
        ys = _curve(strata.get(stratum, [None] * len(cycles)))
        if np.isfinite(ys).any():
            ax.plot(cycles, ys, color=colour, ls=ls, lw=2.0, marker="o", ms=3, label=arm)
            drawn = True
    ax.set_title(stratum, fontsize=10)
    if not drawn:
        _empty(ax, "no held-out transition")
        return
    ax.axhline(1.0, color="0.6", ls=":", lw=0.8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_learning_curves(out_dir: Path, name: str, cycles: list[int], strata: list[str],
                         mean: dict[str, dict[str, list]], seeds: list[dict[str, dict[str, list]]]) -> str:
    """Small multiples, one panel per stratum: x cycle, y held-out ratio vs the copy baseline.
    `mean` and every item of `seeds`: arm -> stratum -> one value (or None) per cycle."""
    ncols = min(4, len(strata))
    nrows = math.ceil(len(strata) / ncols)
    fig = _figure(3.3 * ncols + 0.6, 2.7 * nrows + 0.4)
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    for i, ax in enumerate(axes.flat):
        if i >= len(strata):
            ax.set_axis_off()
            continue
        _curve_panel(ax, strata[i], cycles, mean, seeds)
        if i // ncols == nrows - 1 or i + ncols >= len(strata):
            ax.set_xlabel("cycle")
        if i % ncols == 0:
            ax.set_ylabel("held-out ratio vs copy")
    for ax in axes.flat:  # one legend, in the first panel that has lines
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, labels, fontsize=7, title="arm", title_fontsize=7)
            break
    return _save(fig, out_dir, name)
