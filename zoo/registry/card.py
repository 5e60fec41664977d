"""Model cards, one implementation: :func:`entry_card` (an entry's ``MODEL_CARD.md``) and :func:`model_card`
(a Hub repo's ``README.md``, a table of every entry).  Both read only an entry's metadata, as publish and
``zoo sweep bundle`` record it; facts about the data (its licence) come from the dataset's own record
(``metadata["bundle"]["data"]``, copied from the dataset builder's ``dataset.json``), never from here.
Nothing here imports torch.
"""
from __future__ import annotations

from typing import Any, Iterable

from zoo.registry.model import headline, iter_entries

# what each metric measures (docs/metrics.md has the details); the values' basis comes from the metadata
METRIC_TEXT = {
    "kid": "KID: unbiased MMD² with the cubic polynomial kernel between generated and real features, mean over "
           "random subsets (unscaled; lower is better)",
    "kid_std": "spread of KID over its subsets",
    "fd": "Fréchet distance between Gaussians fitted to generated and real features (lower is better)",
    "precision": "k-NN precision (Kynkäänniemi et al. 2019): share of generated images inside the real manifold",
    "recall": "k-NN recall (Kynkäänniemi et al. 2019): share of real images inside the generated manifold",
    "swd": "sliced Wasserstein distance of 7×7 Laplacian-pyramid patches, pixel space, no network (×10³ in reports)",
    "cc": "class consistency: accuracy of a classifier trained on the real labelled data on generated images",
    "cc_real": "the class-consistency classifier's accuracy on held-out real images (the ceiling of cc)",
    "fid": "FID in the standard TF Inception-v3 features", "is": "Inception Score (TF Inception-v3)",
}


def _front_matter(metadatas: Iterable[dict[str, Any]]) -> list[str]:
    """YAML front matter the Hub reads: licence (one id, else 'other') and tags."""
    from zoo.families import families

    metadatas = list(metadatas)
    licences = sorted({str(m.get("license")) for m in metadatas if m.get("license")})
    conditional = any(getattr(families().get(m.get("family")), "class_conditional", False) for m in metadatas)
    return (["---", "library_name: ganzoo", f"license: {licences[0] if len(licences) == 1 else 'other'}",
             "pipeline_tag: unconditional-image-generation", "tags:", "- gan", "- dgl-gan", "- model-compression",
             "- safetensors"] + (["- class-conditional"] if conditional else []) + ["---", ""])


SUMMARY_HEADER = ["| name | ch_mul | version | aliases | params G | MACs G (paper) | method | metrics |",
                  "|---|---|---|---|---|---|---|---|"]


def _summary_row(name: str, ch_mul: str, version: str, aliases: Iterable[str], metadata: dict[str, Any]) -> str:
    h = headline(metadata)
    params = f"{h['params_G'] / 1e6:.2f} M" if h["params_G"] else "-"
    macs = f"{h['macs_G_paper'] / 1e9:.2f} G" if h["macs_G_paper"] else "-"
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(h["metrics"].items())) or "-"
    return (f"| {name} | {ch_mul} | {version} | {', '.join(aliases)} | {params} | {macs} | "
            f"{h['method'] or '-'} | {metrics} |")


def model_card(index: dict[str, Any], repo_id: str) -> str:
    """README.md for the Hub: YAML front matter plus a table of every entry and how to load it."""
    refs = list(iter_entries(index))
    lines = [f"# {repo_id}", "", "GAN generators compressed with DGL-GAN, published by "
             "ganzoo as a versioned, checksummed registry (`index.json` holds the sha256 "
             "of every file; `zoo.load` verifies them).", ""] + SUMMARY_HEADER
    lines += [_summary_row(r.name, r.ch_mul, r.version, r.aliases, r.metadata) for r in refs]
    example = refs[-1] if refs else None
    if example is not None:
        lines += ["", "## Use", "", "```python", "import zoo", "",
                  f'G = zoo.load("{example.name}", ch_mul="{example.ch_mul}", registry="hf://{repo_id}")', "```",
                  "", "Pin a commit for reproducibility: `registry=\"hf://" + repo_id + "@<commit sha>\"`."]
    return "\n".join(_front_matter(r.metadata for r in refs) + lines) + "\n"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _metric_lines(metadata: dict[str, Any]) -> list[str]:
    from zoo.metrics import basis_text, metric_values

    training = _dict(metadata.get("training"))
    info = metadata.get("metrics_info") or training.get("metrics_info")
    values = metric_values(_dict(metadata.get("metrics")), info if isinstance(info, dict) else None)
    if not values:
        return ["No metric was recorded for this entry."]
    lines = ["Computed by `zoo train` at the end of training on the EMA generator (`zoo eval` computes the same "
             "numbers). Values compare only between entries whose basis below is equal.", ""]
    for name, mv in sorted(values.items()):
        base = "swd" if name.startswith("swd_") else name
        lines.append(f"- **{name}** = {mv.value:.6g}: {METRIC_TEXT.get(base, 'see docs/metrics.md')}.")
        facts = [f"{label} {basis_text(v)}" for label, v in mv.basis().items() if v is not None]
        lines.append(f"  Basis: {'; '.join(facts) or 'not recorded'}.")
    return lines


def _latency_lines(metadata: dict[str, Any]) -> list[str]:
    from zoo.latency import parse_rows

    rows = parse_rows(metadata.get("latency"))
    if not rows:
        return ["Not measured for this entry; `zoo bench NAME --ch-mul W --calibrate` measures it on your machine."]
    lines = ["Measured by `zoo bench` (median ms per call; latency depends on the CPU: compare only rows of the same "
             "fingerprint).", "", "| backend | dtype | batch | median ms | vs full width | hardware |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        speed = f"{r.speedup:.2f}x" if r.speedup else "-"
        lines.append(f"| {r.backend} | {r.dtype} | {r.batch} | {r.ms:.2f} | {speed} | {r.fingerprint or '-'} |")
    return lines


def entry_card(metadata: dict[str, Any]) -> str:
    """MODEL_CARD.md of one entry: what it is, its data and licence, its teacher, how each metric was
    computed, latency, training, known limits and how to load it."""
    reg, bundle, training = (_dict(metadata.get(k)) for k in ("registry", "bundle", "training"))
    name, ch, version = reg.get("name"), reg.get("ch_mul"), reg.get("version")
    data, teacher = _dict(bundle.get("data")), _dict(bundle.get("teacher"))
    role = bundle.get("role") or ("teacher" if training.get("method") == "teacher" else training.get("method"))
    student = role == "student"
    lines = [f"# {name} (ch_mul {ch}, version {version})", ""]
    if student:
        lines.append(f"A DGL-GAN student: a {metadata.get('family')} generator at ch_mul {ch}, trained from scratch "
                     "with the frozen discriminator of its teacher (below) as an extra critic. Only the EMA "
                     "generator is shipped.")
    else:
        lines.append(f"A full-width {metadata.get('family')} teacher. The EMA generator and the discriminator "
                     "are shipped: the discriminator is the frozen critic D̄ that DGL-GAN compresses with "
                     "(`zoo train --teacher` this entry).")
    lines += ["", *SUMMARY_HEADER, _summary_row(str(name), str(ch), str(version), (), metadata)]
    licence = data.get("licence") or "not recorded"
    lines += ["", "## Data and licence", "",
              f"Trained on `{data.get('name')}` ({data.get('count')} images, {data.get('resolution')} px; content "
              f"sha256 `{data.get('sha256')}`).", "", f"Data licence: {licence}.", "",
              f"Weights licence: {metadata.get('license') or 'not recorded'} (the model's own terms; the data's "
              "terms above still apply to the data)."]
    if student:
        lines += ["", "This student inherits its teacher's and its data's terms."]
    lines += ["", "## Teacher", ""]
    if student:
        lines.append(f"Compressed from `{teacher.get('name')}` ch_mul {teacher.get('ch_mul')} version "
                     f"{teacher.get('version')} (generator sha256 `{teacher.get('generator_sha256')}`), with "
                     f"λ = {training.get('lambda')}, stage I {training.get('T_kimg')} kimg then stage II "
                     f"{training.get('S_kimg')} kimg.")
        selection = _dict(bundle.get("selection"))
        if selection:
            seeds = ", ".join(f"seed {s}: {v:.6g}" for s, v in sorted(_dict(selection.get("candidates")).items()))
            lines += ["", f"Seed {selection.get('chosen_seed')} of {len(_dict(selection.get('candidates')))} was "
                      f"shipped: {selection.get('rule')} ({selection.get('metric')}: {seeds})."]
    else:
        lines.append("This entry is the teacher (trained from scratch, no teacher of its own).")
    lines += ["", "## Metrics", ""] + _metric_lines(metadata)
    lines += ["", "## Latency", ""] + _latency_lines(metadata)
    env = _dict(training.get("environment"))
    hw = _dict(env.get("hardware"))
    cpu_h = training.get("cpu_seconds")
    lines += ["", "## Training", "",
              f"- {training.get('kimg')} kimg, {cpu_h / 3600:.2f} CPU-hours" if isinstance(cpu_h, (int, float))
              else f"- {training.get('kimg')} kimg",
              f"- hardware: {hw.get('fingerprint') or training.get('device') or 'not recorded'}; "
              f"torch {env.get('torch')}",
              f"- git commit: {training.get('git_commit') or 'not recorded'}",  # '-dirty' marks a modified tree
              f"- MLflow run id: {bundle.get('mlflow_run_id') or 'not recorded'}",
              f"- study: {bundle.get('study') or '-'}, run `{bundle.get('run') or '-'}`"]
    lines += ["", "## Known limits", "",
              f"- Small and briefly trained: {metadata.get('resolution')} px, a CPU budget (see Training); far from "
              "the state of the art. Look at samples before relying on it (`zoo sample`).",
              "- Metrics use EfficientNet-Lite0 features, not the standard Inception-v3: they are not comparable to "
              "published FID/KID numbers, only to other entries with the same basis.",
              "- Latency depends on the CPU, the thread count and the allocator: measure on your machine "
              "(`zoo bench`).",
              "- Students are trained from scratch (DGL-GAN does not distil outputs): the same z gives a different "
              "image at each width."]
    lines += ["", "## Use", "", "```python", "import zoo", "",
              f'G = zoo.load("{name}", ch_mul="{ch}", version="{version}")', "```"]
    if not student:
        lines += ["", f"The discriminator: `zoo.load_entry(\"{name}\", ch_mul=\"{ch}\").D`."]
    return "\n".join(_front_matter([metadata]) + lines) + "\n"
