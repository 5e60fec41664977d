"""``GET /``: one self-contained page (no external script, style, font or image) for people.

Choose a model, seeds, class and truncation; the page asks ``/v1/models`` what exists and shows the
teacher and every width side by side for the same seeds, each row with its params, MACs, latency and
speedup measured on this machine, and quality (KID).  Every image is one ``POST /v1/generate`` request,
all sent at once (so the server batches them).  When every image has decoded, ``#status`` gets
``data-state="done"`` (``"error"`` if any failed), which the browser test waits for.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ganzoo serve</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.4em; margin: 0 0 .5em; }
  form { display: flex; flex-wrap: wrap; gap: .8em 1.2em; align-items: end; margin-bottom: .8em; }
  label { display: flex; flex-direction: column; font-size: .85em; color: #555; }
  input, select, button { font: inherit; padding: .25em .4em; }
  input { width: 8em; }
  button { cursor: pointer; }
  .note { background: #fff7e0; border-left: 4px solid #e0b000; padding: .5em .8em; max-width: 60em; }
  table { border-collapse: collapse; margin-top: .8em; }
  th, td { border-bottom: 1px solid #ddd; padding: .35em .6em; text-align: left; vertical-align: middle; }
  th { font-size: .85em; color: #555; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .images { display: flex; gap: 6px; }
  .images figure { margin: 0; text-align: center; font-size: .75em; color: #777; }
  .images img { width: 96px; height: 96px; image-rendering: pixelated; background: #eee; display: block; }
  #status[data-state=error] { color: #b00; }
</style>
</head>
<body>
<h1>ganzoo &mdash; DGL-GAN compressed generators</h1>
<form id="controls">
  <label>Model <select id="model"></select></label>
  <label>Version <input id="version" placeholder="latest"></label>
  <label>Seeds <input id="seeds" value="0-3" title="e.g. 0-3 or 1,5,9 (at most 8)"></label>
  <label>Class <input id="class" type="number" min="0" step="1" placeholder="default"></label>
  <label>Truncation &psi; <input id="psi" type="number" step="0.05" min="-10" max="10" value="1"></label>
  <button id="generate" type="submit">Generate</button>
</form>
<p class="note">Students are trained from scratch with DGL-GAN (they do not start from the teacher's weights),
so the same seed is <b>not</b> the same image at different widths: compare quality and speed, not pixels.
Latency and speedup are measured figures for this machine (<span id="fingerprint">?</span>), or marked when
they come from another one.</p>
<p id="status" data-state="loading">Loading the list of models&hellip;</p>
<table id="grid">
  <thead><tr><th>variant</th><th>params G</th><th>MACs G</th><th>latency (batch 1)</th><th>speedup</th>
  <th>KID</th><th>images</th></tr></thead>
  <tbody></tbody>
</table>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let MODELS = [];
let LIMITS = {max_images: 8};

function fraction(text) {
  const [a, b] = String(text).split("/");
  return b === undefined ? Number(a) : Number(a) / Number(b);
}
function compact(n, unit) {
  if (n === null || n === undefined) return "-";
  const units = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [v, s] of units) if (n >= v) return (n / v).toFixed(n >= 10 * v ? 1 : 2) + " " + s + (unit || "");
  return String(n) + (unit ? " " + unit : "");
}
function parseSeeds(text) {
  const seeds = [];
  for (const part of text.split(",")) {
    const t = part.trim();
    if (!t) continue;
    const m = t.match(/^(\\d+)(?:-(\\d+))?$/);
    if (!m) throw new Error("seeds: use e.g. 0-3 or 1,5,9");
    const lo = Number(m[1]), hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi - lo > 64) throw new Error("seeds: bad range " + t);
    for (let s = lo; s <= hi; s++) seeds.push(s);
  }
  if (!seeds.length || seeds.length > 8) throw new Error("seeds: give 1 to 8 seeds");
  return seeds;
}
function widthsOf(name, version) {
  const rows = MODELS.filter((m) => m.model === name);
  const best = new Map();
  for (const m of rows) {
    const wanted = version ? (m.version === version || (m.aliases || []).includes(version))
                           : (m.version === null || (m.aliases || []).includes("latest"));
    if (wanted) best.set(m.ch_mul, m);
  }
  return [...best.values()].sort((a, b) => fraction(b.ch_mul) - fraction(a.ch_mul));
}
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

async function init() {
  try {
    const r = await fetch("/v1/models");
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || r.statusText);
    MODELS = data.models;
    LIMITS = data.limits || LIMITS;
    $("fingerprint").textContent = data.fingerprint;
    const names = [...new Set(MODELS.map((m) => m.model))];
    for (const n of names) {
      const o = document.createElement("option");
      o.value = o.textContent = n;
      $("model").appendChild(o);
    }
    setStatus("ready", names.length ? "Choose a model and press Generate." : "No models are served.");
  } catch (e) {
    setStatus("error", "Could not list the models: " + e.message);
  }
}

async function one(variant, seed, figure, img) {
  const body = {model: variant.model, ch_mul: variant.ch_mul, seeds: [seed], format: "png",
                truncation_psi: Number($("psi").value || 1)};
  if (variant.version) body.version = variant.version;
  if ($("class").value !== "") body["class"] = Number($("class").value);
  const r = await fetch("/v1/generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify(body)});
  if (!r.ok) {
    let message = r.statusText;
    try { message = (await r.json()).error; } catch (e) {}
    throw new Error(variant.ch_mul + ", seed " + seed + ": " + message);
  }
  const blob = await r.blob();
  img.src = URL.createObjectURL(blob);
  await img.decode();
  img.dataset.ok = "1";
  figure.title = "batch " + r.headers.get("X-Ganzoo-Batch-Size") + ", " + r.headers.get("X-Ganzoo-Compute-Ms") +
                 " ms compute";
}

async function generate(event) {
  event.preventDefault();
  const tbody = document.querySelector("#grid tbody");
  tbody.textContent = "";
  let seeds;
  try { seeds = parseSeeds($("seeds").value); } catch (e) { setStatus("error", e.message); return; }
  const variants = widthsOf($("model").value, $("version").value.trim());
  if (!variants.length) { setStatus("error", "No width of this model has that version."); return; }
  setStatus("running", "Generating " + variants.length * seeds.length + " images\\u2026");
  const jobs = [];
  for (const v of variants) {
    const row = document.createElement("tr");
    const teacher = v.ch_mul === "1" ? " (teacher)" : "";
    cell(row, v.model + " ch_mul=" + v.ch_mul + teacher + (v.version ? " v" + v.version : " (pinned)"));
    cell(row, compact(v.params_G), "num");
    cell(row, compact(v.macs_G_fvcore || v.macs_G_paper), "num");
    const here = v.here || {};
    cell(row, here.ms_batch1 ? here.ms_batch1.toFixed(2) + " ms" + (here.batch > 1 ? " (batch " + here.batch + ")" : "")
                             : "not measured here", "num");
    cell(row, here.speedup ? here.speedup.toFixed(2) + "\\u00d7" + (here.speedup_measured_here ? "" : " (other machine)")
                           : "-", "num");
    const kid = (v.quality && v.quality.kid !== null) ? v.quality.kid : (v.metrics || {}).kid;
    cell(row, kid === undefined || kid === null ? "-" : (kid * 1000).toFixed(2) + " \\u00d710\\u207b\\u00b3", "num");
    const td = cell(row, "");
    const box = document.createElement("div");
    box.className = "images";
    td.appendChild(box);
    for (const seed of seeds) {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.alt = v.model + " ch_mul=" + v.ch_mul + " seed " + seed;
      img.dataset.resolution = v.resolution;
      const caption = document.createElement("figcaption");
      caption.textContent = "seed " + seed;
      figure.append(img, caption);
      box.appendChild(figure);
      jobs.push(one(v, seed, figure, img));
    }
    tbody.appendChild(row);
  }
  const results = await Promise.allSettled(jobs);
  const failed = results.filter((r) => r.status === "rejected");
  if (failed.length) setStatus("error", failed.length + " image(s) failed: " + failed[0].reason.message);
  else setStatus("done", "Done: " + results.length + " images.");
}

$("controls").addEventListener("submit", generate);
init();
</script>
</body>
</html>
"""
