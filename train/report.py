"""``zoo compare ... --format html --out DIR``: one self-contained HTML page (``DIR/report.html``).

Everything is inline (CSS, and every image as a base64 PNG), so the file can be mailed or attached to an
issue.  Per configuration it shows the tables of :mod:`train.compare` and four figures:

* quality vs MACs of G (fvcore, log scale), mean +- std over seeds per method, each seed as a dot, the
  teacher marked with a star;
* speedup vs ch_mul: this configuration's ``zoo bench`` rows from the registry (per device / back-end /
  batch), the paper's V100 figures for StyleGAN2 FFHQ-1024 (Table 2, batch 48: 1.49 / 0.67 / 0.43 / 0.34 s,
  i.e. 2.22x / 3.47x / 4.38x at 1/2, 1/4, 1/8) and the MAC limit (MACs at width 1 / MACs at the width);
* training curves of h(x), h(G(z)), h-bar(x), h-bar(G(z)) per tick (the paper's Fig. 4);
* sample grids of the same latent seeds at every width, from each run's final checkpoint.

The plots need matplotlib (``pip install 'dglgan-zoo[report]'``), imported only here.
"""
from __future__ import annotations

import base64
import html
import io
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

from zoo.train.compare import (CONFIDENCE, METRICS, SCORES, RunRecord, curve_caption, curve_columns, group_label,
                           paired_columns, provenance_text, source_text, table_columns)
from zoo.errors import ZooError

# Paper, Table 2 and section 4.1: StyleGAN2 FFHQ-1024 on one Tesla V100, minibatch 48, mean of 200 runs.
PAPER_V100_SECONDS = {"1": 1.49, "1/2": 0.67, "1/4": 0.43, "1/8": 0.34}
PAPER_V100_SPEEDUP = {"1": 1.0, "1/2": 2.22, "1/4": 3.47, "1/8": 4.38}  # as printed in section 4.1
PAPER_FFHQ_MACS_G = {"1": 142.02, "1/2": 35.61, "1/4": 8.97, "1/8": 2.28}  # GMACs, paper convention
SAMPLE_SEEDS = list(range(8))
SCORE_STYLE = {"score/h_real": ("h(x)", "tab:blue", "-"), "score/h_fake": ("h(G(z))", "tab:orange", "-"),
               "score/hbar_real": ("h̄(x)", "tab:blue", "--"), "score/hbar_fake": ("h̄(G(z))", "tab:orange", "--")}
METHOD_STYLE = {"teacher": ("*", "gold"), "dgl": ("o", "tab:green"), "baseline": ("s", "tab:gray")}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222;
padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #ddd}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.note{color:#555;font-size:.9em}.refused{color:#a00;font-weight:bold}
.samples td.label{white-space:nowrap;font-size:.85em}
.samples img{image-rendering:pixelated;height:96px}
figure{margin:1em 0}figcaption{color:#555;font-size:.85em;max-width:60em}
.inconclusive{color:#666}
"""


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ZooError("the HTML report's plots need matplotlib: pip install 'dglgan-zoo[report]' "
                       "(or use --format md / csv / json)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _array_png(array) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str, cls: str = "") -> str:
    return f'<img{f" class={cls!r}" if cls else ""} alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _figure(b64: str, alt: str, caption: str) -> str:
    return f"<figure>{_img(b64, alt)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _table(header: list[str], body: list[list[str]], cls: str = "") -> str:
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for r in body:
        cells = []
        for c in r:
            klass = ' class="refused"' if c == "refused" else (' class="inconclusive"' if
                                                                 str(c).startswith("inconclusive") else "")
            cells.append(f"<td{klass}>{html.escape(str(c))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table{f" class={cls!r}" if cls else ""}>' + "".join(rows) + "</table>"


def _ch(ch: str) -> float:
    return float(Fraction(ch))


# ------------------------------------------------------------------------------------------ figures

def quality_vs_macs(plt, cfg: dict[str, Any]) -> Optional[str]:
    from matplotlib.ticker import FuncFormatter

    metrics = [m for m in cfg["metrics"] if m not in cfg["refused"]]
    rows = [r for r in cfg["rows"] if (r["macs_G_fvcore"] or r["macs_G_paper"])]
    if not metrics or not rows:
        return None
    cols = min(3, len(metrics))
    nrows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.8 * nrows), squeeze=False)
    use_fvcore = all(r["macs_G_fvcore"] for r in rows)
    top = max((r["macs_G_fvcore"] if use_fvcore else r["macs_G_paper"]) for r in rows)
    unit, unit_name = next(((u, n) for u, n in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if top >= u), (1.0, ""))
    for ax, m in zip(axes.flat, metrics):
        label, scale, direction = METRICS[m]
        by_label: dict[str, list] = {}
        for r in rows:
            cell = r["metrics"].get(m)
            if not cell:
                continue
            x = (r["macs_G_fvcore"] if use_fvcore else r["macs_G_paper"]) / unit
            by_label.setdefault(r["label"], []).append((x, r, cell))
        for name, points in by_label.items():
            points.sort(key=lambda p: p[0])
            method = points[0][1]["method"]
            marker, color = METHOD_STYLE.get(method, ("^", None))
            xs = [p[0] for p in points]
            ys = [p[2]["mean"] * scale for p in points]
            errs = [(p[2]["std"] or 0) * scale for p in points]
            if method == "teacher":
                ax.scatter(xs, ys, marker="*", s=260, color="gold", edgecolor="black", zorder=5, label=name)
            else:
                ax.errorbar(xs, ys, yerr=errs, marker=marker, color=color, capsize=3, label=name, alpha=.9)
            for x, r, cell in points:
                ax.scatter([x] * len(cell["values"]), [v * scale for v in cell["values"].values()], s=10,
                           color=color or "black", alpha=.35, zorder=4)
                ax.annotate(r["ch_mul"], (x, cell["mean"] * scale), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel(f"{unit_name}MACs of G per image ({'fvcore' if use_fvcore else 'paper convention'})")
        ax.set_ylabel(label)
        ax.set_title(f"{label} ({'lower' if direction < 0 else 'higher'} is better)", fontsize=10)
        ax.grid(alpha=.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{cfg['config']}: quality vs MACs (mean ± std over seeds; dots: single seeds)", fontsize=11)
    return _png(fig)


def speedup_vs_width(plt, cfg: dict[str, Any]) -> tuple[str, list[str]]:
    said = []
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    widths = sorted({r["ch_mul"] for r in cfg["rows"]} | set(PAPER_V100_SPEEDUP), key=lambda c: -_ch(c))
    xs_all = [_ch(c) for c in widths]
    paper = sorted(PAPER_V100_SPEEDUP.items(), key=lambda kv: -_ch(kv[0]))
    ax.plot([_ch(c) for c, _ in paper], [v for _, v in paper], "D-", color="tab:purple",
            label="paper: StyleGAN2 FFHQ-1024, V100, batch 48 (Table 2)")
    for c, v in paper:
        ax.annotate(f"{v:.2f}x", (_ch(c), v), textcoords="offset points", xytext=(5, -10), fontsize=7,
                    color="tab:purple")
    ffhq = sorted(PAPER_FFHQ_MACS_G.items(), key=lambda kv: -_ch(kv[0]))
    ax.plot([_ch(c) for c, _ in ffhq], [PAPER_FFHQ_MACS_G["1"] / v for _, v in ffhq], ":", color="tab:purple",
            alpha=.6, label="MAC limit, paper FFHQ (paper convention)")
    arch = cfg.get("arch") or {}
    if "1" in arch:
        for conv, style in (("macs_G_fvcore", "-"), ("macs_G_paper", "--")):
            pts = [(_ch(c), arch["1"][conv] / a[conv]) for c, a in arch.items() if a.get(conv)]
            if pts and arch["1"].get(conv):
                pts.sort(reverse=True)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color="black", alpha=.5,
                        label=f"MAC limit, {cfg['config']} "
                              f"({'fvcore' if conv.endswith('fvcore') else 'paper convention'})")
    else:
        said.append("no full-width run in this configuration, so no MAC limit of its own")
    measured = False
    for group in cfg["latency_groups"]:
        pts = []
        for r in cfg["rows"]:
            for lat in r["latency"]:
                if [lat["device"], lat["backend"], lat["dtype"], lat["batch"]] == list(group) \
                        and isinstance(lat.get("speedup"), (int, float)):
                    pts.append((_ch(r["ch_mul"]), lat["speedup"]))
        pts = sorted(set(pts), reverse=True)
        if pts:
            measured = True
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"measured: {group_label(group)}")
    if not measured:
        said.append(f"no `zoo bench` latency rows in the registry for {cfg['config']}: only the paper's figures and "
                    "the MAC limit are drawn (publish the widths and run `zoo bench ... --ch-mul 1,1/2,...`, "
                    "then record the table in the entries)")
        ax.text(0.02, 0.96, "no measured rows for this configuration", transform=ax.transAxes, fontsize=8,
                va="top", color="#a00")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(xs_all, widths)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.invert_xaxis()
    ax.set_xlabel("ch_mul")
    ax.set_ylabel("speedup vs width 1 (same device, back-end, batch)")
    ax.grid(alpha=.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.set_title(f"{cfg['config']}: speedup vs ch_mul", fontsize=11)
    return _png(fig), said


def score_curves(plt, cfg: dict[str, Any], runs: dict[str, RunRecord]) -> Optional[str]:
    """Fig. 4: student D logits h(x), h(G(z)) and teacher D-bar logits per tick, one panel per (width, method)."""
    students = [r for r in cfg["rows"] if r["method"] != "teacher"]
    widths = sorted({r["ch_mul"] for r in students}, key=lambda c: -_ch(c))
    labels = []
    for r in students:
        if r["label"] not in labels:
            labels.append(r["label"])
    if not widths:
        return None
    panels = []
    for ch in widths:
        for label in labels:
            row = next((r for r in students if r["ch_mul"] == ch and r["label"] == label), None)
            if row is None:
                continue
            seed_runs = sorted(zip(row["seeds"], row["runs"]), key=lambda x: (x[0] is None, x[0] or 0))
            seed, key = seed_runs[0]
            history = runs[key].history(SCORES)
            if history:
                panels.append((ch, label, seed, row.get("T_kimg"), history))
    if not panels:
        return None
    cols = min(len(labels), 3)
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.4 * nrows), squeeze=False, sharey=False)
    for ax, (ch, label, seed, T, history) in zip(axes.flat, panels):
        for key, (name, color, style) in SCORE_STYLE.items():
            pts = history.get(key)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, label=name, lw=1.3)
        if T:
            ax.axvline(T, color="black", alpha=.3, lw=1)
            ax.annotate("stage II", (T, 1), xycoords=("data", "axes fraction"), xytext=(3, -10),
                        textcoords="offset points", fontsize=7)
        ax.set_title(f"ch_mul {ch}, {label}, seed {seed}", fontsize=9)
        ax.set_xlabel("kimg")
        ax.grid(alpha=.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{cfg['config']}: discriminator scores on a fixed batch (solid: student D; dashed: teacher D̄)",
                 fontsize=11)
    return _png(fig)


def sample_rows(cfg: dict[str, Any], runs: dict[str, RunRecord], seeds: list[int] = SAMPLE_SEEDS
                ) -> list[tuple[str, str]]:
    """[(row label, base64 PNG)]: G_ema of each row's lowest-seed run on the same latent seeds."""
    import torch

    from zoo.checkpoint import WEIGHT_FILES, load_checkpoint
    from zoo.families import family_of
    from zoo.images import class_inputs, make_grid, seeded_latents

    out = []
    ordered = sorted(cfg["rows"], key=lambda r: (r["method"] != "teacher", -_ch(r["ch_mul"])))
    for row in ordered:
        seed_runs = sorted(zip(row["seeds"], row["runs"]), key=lambda x: (x[0] is None, x[0] or 0))
        seed, key = seed_runs[0]
        ckpt_dir = runs[key].checkpoint()
        if ckpt_dir is None or not (Path(ckpt_dir) / WEIGHT_FILES["G_ema"]).is_file():
            continue  # e.g. a record archived by `zoo sweep archive`: metrics and history, no weights
        G = load_checkpoint(ckpt_dir, load_D=False).G_ema
        G = family_of(G).prepare(G.eval())
        z = seeded_latents(G, seeds)
        c = class_inputs(G, [i % max(G.c_dim, 1) for i in range(len(seeds))])
        with torch.inference_mode():
            images = G(z, c, truncation_psi=1.0, noise_mode="const")
        out.append((f"{row['label']}, ch_mul {row['ch_mul']} (training seed {seed})",
                    _array_png(make_grid(images, cols=len(seeds)))))
    return out


# ------------------------------------------------------------------------------------------ the page

def render_html(report: dict[str, Any], runs: list[RunRecord]) -> str:
    plt = _matplotlib()
    by_key = {r.key: r for r in runs}
    parts = [f"<h1>ganzoo: DGL-GAN vs Baseline</h1>",
             f"<p>Source: {html.escape(source_text(report['source']))}. Generated "
             f"{html.escape(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}.</p>",
             "<p class=note>Quality metrics: mean ± std over seeds (sample std, n−1), then each seed's value. "
             f"Paired differences: variant − reference (the Baseline; for a lazy DGL variant also DGL with K = 1) of the same training seed, with a {CONFIDENCE:.0%} interval "
             "(Student t with n−1 degrees of freedom). Where the interval contains 0 the comparison is "
             "<b>inconclusive</b>: it does not show that either is better. KID is shown ×10³; SWD is ×10³ "
             "as computed. Metric columns whose runs were evaluated differently (real data, feature network, "
             "n, resolution) are refused, not shown.</p>"]
    for note in report["notes"]:
        parts.append(f"<p class=note>Note: {html.escape(note)}</p>")
    if report["refusals"]:
        parts.append("<ul>" + "".join(f"<li class=refused>{html.escape(m)}</li>" for m in report["refusals"])
                     + "</ul>")
    for cfg in report["configs"]:
        parts.append(f"<h2>{html.escape(cfg['config'])} ({html.escape(cfg['family'] or '?')})</h2>")
        parts.append("<h3>Size, speed and quality</h3>" + _table(*table_columns(cfg)))
        if cfg["paired"]:
            parts.append("<h3>Paired by seed: variant − reference</h3>" + _table(*paired_columns(cfg)))
        for curve in cfg.get("curves", []):
            parts.append(f"<p>{html.escape(curve_caption(curve))}</p>" + _table(*curve_columns(curve)))
        for msg in cfg["refused"].values():
            parts.append(f"<p class=refused>REFUSED {html.escape(msg)}</p>")
        prov = provenance_text(cfg)
        if prov:
            parts.append("<p class=note>How the metrics were computed (equal for every run in a column):</p><ul>"
                         + "".join(f"<li class=note>{html.escape(p)}</li>" for p in prov) + "</ul>")
        for note in cfg["notes"]:
            parts.append(f"<p class=note>Note: {html.escape(note)}</p>")

        parts.append("<h3>Quality vs MACs</h3>")
        fig = quality_vs_macs(plt, cfg)
        parts.append(_figure(fig, f"{cfg['config']} quality vs MACs",
                             "Each metric against the generator's MACs per image; the teacher is the star. "
                             "Error bars: std over seeds; dots: single seeds.") if fig else
                     "<p class=note>No metric to plot (none recorded, or every column refused).</p>")

        parts.append("<h3>Speedup vs ch_mul</h3>")
        fig, said = speedup_vs_width(plt, cfg)
        parts.append(_figure(fig, f"{cfg['config']} speedup vs ch_mul",
                             "Measured speedups are relative to the width-1 model timed in the same `zoo bench` "
                             "run. The paper's figures are for StyleGAN2 at 1024 px on a V100 GPU (1.49 / 0.67 / "
                             "0.43 / 0.34 s per batch of 48), a different model and device: they are context, "
                             "not a target for this configuration. The MAC limit is the speedup if time were "
                             "proportional to MACs."))
        for s in said:
            parts.append(f"<p class=note>{html.escape(s)}</p>")

        parts.append("<h3>Discriminator scores during training (paper Fig. 4)</h3>")
        fig = score_curves(plt, cfg, by_key)
        parts.append(_figure(fig, f"{cfg['config']} training curves",
                             "score/h_real, score/h_fake: the student D's logits on a fixed batch of real and "
                             "generated images; score/hbar_*: the teacher D̄'s logits on the same batch (logged "
                             "only when the run has a teacher). The vertical line is T, the start of stage II.")
                     if fig else "<p class=note>No per-tick score curves were logged for these runs.</p>")

        parts.append("<h3>Samples: the same latent seeds at every width</h3>")
        parts.append("<p class=note>Students are trained from scratch (stage I starts from random weights, not "
                     "from the teacher), so the same latent seed does <b>not</b> give the same image at different "
                     "widths or from different runs: compare quality and variety, not identity. A Baseline forked "
                     "from a DGL-GAN run shares its stage I, so those two are related. Seeds "
                     f"{SAMPLE_SEEDS[0]}–{SAMPLE_SEEDS[-1]} (class i mod classes for conditional models), "
                     "truncation ψ = 1, constant noise, EMA generator of each row's lowest-seed run.</p>")
        samples = sample_rows(cfg, by_key)
        if samples:
            parts.append("<table class=samples>" + "".join(
                f"<tr><td class=label>{html.escape(label)}</td><td>{_img(b64, label)}</td></tr>"
                for label, b64 in samples) + "</table>")
        else:
            parts.append("<p class=note>No final checkpoint could be read for these runs.</p>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>ganzoo compare</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_html(report: dict[str, Any], runs: list[RunRecord], out_dir: str | Path) -> Path:
    """Render and write ``out_dir/report.html`` (atomically); returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = render_html(report, runs)
    path = out_dir / "report.html"
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
