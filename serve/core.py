"""What every way of serving shares: the request schema and its checks, the batched forward, encoding.

Nothing here touches the network or the event loop.  A request is parsed into a :class:`Job` before any
model is known (:func:`parse_generate`, :func:`job_from_query`), checked against the model once it is
loaded (:func:`check_job`), run, possibly together with other jobs, in one forward (:func:`run_batch`,
called from a worker thread), and encoded (:func:`encode`).  Every refusal is a :class:`Problem`: an HTTP
status and a one-line message that names no server path and holds no stack trace.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from zoo.sample import MAX_SEED, parse_truncation
from zoo.widths import format_ch_mul, parse_ch_mul

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "npy": "application/octet-stream"}
NOISE_MODES = ("const", "none", "random")
MAX_ABS_Z = 1000.0          # latents are ~N(0, 1); beyond this they are nonsense (and 1e38 overflows)
MAX_Z_DIM = 4096
MAX_NAME_LENGTH = 200
MAX_JSON_DEPTH = 8
GENERATE_FIELDS = ("model", "ch_mul", "max_latency_ms", "version", "seeds", "z", "class", "truncation_psi",
                   "noise_mode", "format")


class Problem(Exception):
    """A request that cannot be served: HTTP ``status`` and a one-line ``message`` for the client.
    ``error_id`` is set for server faults (5xx), whose details go to the log only."""

    def __init__(self, status: int, message: str, error_id: str | None = None):
        super().__init__(message)
        self.status, self.message, self.error_id = status, message, error_id

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.error_id:
            out["error_id"] = self.error_id
        return out

    def __reduce__(self):  # picklable across processes (Ray)
        return (Problem, (self.status, self.message, self.error_id))


def short(value: Any, limit: int = 60) -> str:
    """A client-supplied value quoted for an error message, never longer than ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


@dataclass
class Job:
    """A validated generate request (model-independent part)."""

    seeds: list[int] | None = None
    z: list[list[float]] | None = None
    labels: list[int] | None = None   # one per image, or None (unconditional, or the default classes)
    label_given: bool = False
    psi: float = 1.0
    noise_mode: str = "const"
    format: str = "png"

    @property
    def n(self) -> int:
        return len(self.seeds) if self.seeds is not None else len(self.z)

    def provenance(self) -> dict[str, str]:
        out = {"truncation_psi": repr(self.psi), "noise_mode": self.noise_mode}
        if self.seeds is not None:
            out["seeds"] = json.dumps(self.seeds)
        else:
            digest = hashlib.sha256(json.dumps(self.z).encode()).hexdigest()
            out["z_sha256"] = digest  # the latents were given: their hash, not the values
        if self.labels is not None:
            out["class"] = json.dumps(self.labels)
        return out


@dataclass
class Request:
    """A parsed generate request: which model (by name, width or budget, version) and the job."""

    model: str
    ch_mul: str | None
    max_latency_ms: float | None
    version: str | None
    job: Job = field(default_factory=Job)


# -------------------------------------------------------------------------------------------- parsing

def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (the request must be strict JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} overflows a double")
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, without recursion beyond ``limit`` levels."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def parse_json(body: bytes) -> Any:
    """Strict JSON (no NaN/Infinity, no number that overflows a double, at most MAX_JSON_DEPTH levels)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "the request body is not UTF-8 text") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise Problem(400, "the request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, a huge float or an int of > 4300 digits
        raise Problem(400, f"the request body is not valid JSON: {str(exc)[:120]}") from None
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise Problem(400, f"the request body is nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Problem(400, f"{what} must be an integer, got {short(value)}")
    if not lo <= value <= hi:
        raise Problem(400, f"{what} must be in [{lo}, {hi}], got {short(value)}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Problem(400, f"{what} must be a number, got {short(value)}")
    try:
        f = float(value)
    except OverflowError:
        raise Problem(400, f"{what} must be a finite number, got {short(value)}") from None
    if not math.isfinite(f):
        raise Problem(400, f"{what} must be a finite number, got {short(value)}")
    return f


def parse_width(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise Problem(400, f"ch_mul must be a width such as 1, 0.5 or '1/2', got {short(value)}")
    try:
        return format_ch_mul(parse_ch_mul(value))
    except ValueError as exc:
        raise Problem(400, str(exc)) from None


def parse_budget(value: Any) -> float:
    ms = _number(value, "max_latency_ms")
    if not 0 < ms <= 1e7:
        raise Problem(400, f"max_latency_ms must be in (0, 1e7] milliseconds, got {short(value)}")
    return ms


def parse_version(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Problem(400, f"version must be a version number, an alias or 'latest', got {short(value)}")
    text = str(value).strip()
    if not text or len(text) > 64:
        raise Problem(400, f"version must be 1 to 64 characters, got {short(value)}")
    return text


def parse_model(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Problem(400, f"model must be the name of a served model (GET /v1/models), got {short(value)}")
    if len(value) > MAX_NAME_LENGTH:
        raise Problem(404, f"unknown model {short(value)}")
    return value


def parse_psi(value: Any) -> float:
    if isinstance(value, (dict, list)):
        raise Problem(400, f"truncation_psi must be a number, got {short(value)}")
    try:
        return parse_truncation(value)
    except ValueError as exc:
        raise Problem(400, str(exc)) from None


def parse_choice(value: Any, what: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise Problem(400, f"{what} must be one of {', '.join(choices)}, got {short(value)}")
    return value


def parse_labels(value: Any, n: int) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != n:
            raise Problem(400, f"class must be one integer, or a list of one per image ({n}), got {len(value)}")
        return [_int(v, "class", 0, 2**31 - 1) for v in value]
    return [_int(value, "class", 0, 2**31 - 1)] * n


def parse_generate(data: Any, max_images: int) -> Request:
    """A POST /v1/generate body (already parsed JSON) as a Request; Problem(400) for anything wrong."""
    if not isinstance(data, dict):
        raise Problem(400, "the request body must be a JSON object: {\"model\": ..., \"ch_mul\": ..., ...}")
    unknown = sorted(set(data) - set(GENERATE_FIELDS))
    if unknown:
        raise Problem(400, f"unknown field(s) {', '.join(short(k, 30) for k in unknown[:5])}; "
                           f"fields: {', '.join(GENERATE_FIELDS)}")
    if "model" not in data:
        raise Problem(400, "model is required (GET /v1/models lists them)")
    model = parse_model(data["model"])
    if data.get("ch_mul") is not None and data.get("max_latency_ms") is not None:
        raise Problem(400, "give either ch_mul or max_latency_ms, not both")
    ch_mul = parse_width(data["ch_mul"]) if data.get("ch_mul") is not None else None
    budget = parse_budget(data["max_latency_ms"]) if data.get("max_latency_ms") is not None else None
    if ch_mul is None and budget is None:
        ch_mul = "1"
    version = parse_version(data.get("version"))
    if data.get("seeds") is not None and data.get("z") is not None:
        raise Problem(400, "give either seeds or z, not both")
    job = Job(psi=parse_psi(data.get("truncation_psi", 1.0)),
              noise_mode=parse_choice(data.get("noise_mode", "const"), "noise_mode", NOISE_MODES),
              format=parse_choice("jpeg" if data.get("format") == "jpg" else data.get("format", "png"), "format",
                                  tuple(FORMATS)))
    if data.get("z") is not None:
        job.z = parse_z(data["z"], max_images)
    else:
        seeds = data.get("seeds", [0])
        seeds = [seeds] if not isinstance(seeds, list) else seeds
        if not 1 <= len(seeds) <= max_images:
            raise Problem(400, f"seeds must hold 1 to {max_images} seeds, got {len(seeds)}")
        job.seeds = [_int(s, "seed", 0, MAX_SEED) for s in seeds]
    job.labels = parse_labels(data.get("class"), job.n)
    job.label_given = job.labels is not None
    return Request(model, ch_mul, budget, version, job)


def parse_z(value: Any, max_images: int) -> list[list[float]]:
    if not isinstance(value, list) or not value or not all(isinstance(row, list) for row in value):
        raise Problem(400, "z must be a list of latent vectors (a list of lists of numbers, one per image)")
    if len(value) > max_images:
        raise Problem(400, f"z must hold 1 to {max_images} latent vectors, got {len(value)}")
    width = len(value[0])
    if not 1 <= width <= MAX_Z_DIM or any(len(row) != width for row in value):
        raise Problem(400, "z must be rectangular: every latent vector of the same length (the model's z_dim)")
    out = []
    for row in value:
        vals = [_number(v, "z") for v in row]
        if any(abs(v) > MAX_ABS_Z for v in vals):
            raise Problem(400, f"z values must be finite with |z| <= {MAX_ABS_Z:g}")
        out.append(vals)
    return out


def parse_seed_text(text: str, max_images: int) -> list[int]:
    """'0-3' or '1,5,9' (the GET form's seeds) -> seeds."""
    from zoo.errors import ZooError
    from zoo.sample import parse_seeds

    if len(text) > 2000:
        raise Problem(400, "seeds is too long")
    try:
        seeds = parse_seeds(text)
    except ZooError as exc:
        raise Problem(400, str(exc).replace("--seeds", "seeds")) from None
    if len(seeds) > max_images:
        raise Problem(400, f"seeds must hold 1 to {max_images} seeds, got {len(seeds)}")
    return seeds


# -------------------------------------------------------------------------------- against the model

@dataclass
class Facts:
    """What checking a job against a generator needs to know about it."""

    z_dim: int
    c_dim: int
    resolution: int
    channels: int
    family: str


def facts_of(G) -> Facts:
    return Facts(int(G.z_dim), int(getattr(G, "c_dim", 0) or 0), int(G.img_resolution), int(G.img_channels),
                 str(G.config.family))


def check_job(job: Job, facts: Facts) -> Job:
    """The job checked against the model: z shape, class range; the default classes filled in.

    An unconditional model refuses ``class``; a conditional one without it gets class ``seed % c_dim``
    (for given z: ``index % c_dim``), so the class of an image depends only on its seed."""
    if job.z is not None and len(job.z[0]) != facts.z_dim:
        raise Problem(400, f"z must be [{job.n}, {facts.z_dim}] for this model (z_dim {facts.z_dim}), "
                           f"got [{job.n}, {len(job.z[0])}]")
    if job.label_given:
        if not facts.c_dim:
            raise Problem(400, "class was given, but this model is unconditional (it takes no class)")
        bad = [c for c in job.labels if not 0 <= c < facts.c_dim]
        if bad:
            raise Problem(400, f"class must be in [0, {facts.c_dim - 1}] for this model, got {bad[0]}")
    elif facts.c_dim:
        keys = job.seeds if job.seeds is not None else range(job.n)
        job.labels = [k % facts.c_dim for k in keys]
    else:
        job.labels = None
    return job


_local = threading.local()


def latents(job: Job, z_dim: int):
    """The job's z: given, or one per seed exactly as ``zoo.images.seeded_latents`` draws it
    (``RandomState(seed).randn(z_dim)``; re-seeding one RandomState per thread gives the same numbers
    ~9x faster than building one per seed)."""
    import numpy as np
    import torch

    if job.z is not None:
        return torch.tensor(job.z, dtype=torch.float32)
    rs = getattr(_local, "rs", None)
    if rs is None:
        rs = _local.rs = np.random.RandomState(0)
    out = np.empty((len(job.seeds), z_dim))
    for i, s in enumerate(job.seeds):
        rs.seed(s)
        out[i] = rs.randn(z_dim)
    return torch.from_numpy(out).float()


def run_batch(G, jobs: list[Job], psi: float, noise_mode: str, device: str = "cpu") -> list:
    """One forward for jobs that share (model, psi, noise_mode); the images of each job, float NCHW on CPU.

    Runs in a worker thread, never on the event loop."""
    import torch

    from zoo.images import class_inputs

    z = torch.cat([latents(j, int(G.z_dim)) for j in jobs]).to(device)
    c = None
    if getattr(G, "c_dim", 0):
        c = class_inputs(G, [label for j in jobs for label in j.labels], device=device)
    with torch.inference_mode():
        images = G(z, c, truncation_psi=psi, noise_mode=noise_mode)
    images = images.float().cpu()
    return list(torch.split(images, [j.n for j in jobs]))


# -------------------------------------------------------------------------------------------- output

def provenance(variant: dict[str, Any], job: Job) -> dict[str, str]:
    from zoo import __version__

    return {"Software": f"ganzoo {__version__}", "ganzoo.model": str(variant["model"]),
            "ganzoo.ch_mul": str(variant["ch_mul"]), "ganzoo.version": str(variant.get("version") or "pinned"),
            **{f"ganzoo.{k}": v for k, v in job.provenance().items()}}


def encode(images, job: Job, variant: dict[str, Any]) -> tuple[bytes, str]:
    """(body, media type): a PNG or JPEG (a grid when several images) carrying its provenance, or an NPY
    uint8 NHWC array.  Deterministic: the same images and request give the same bytes."""
    import numpy as np

    from zoo.images import make_grid, to_uint8

    buffer = io.BytesIO()
    if job.format == "npy":
        np.save(buffer, to_uint8(images))
        return buffer.getvalue(), FORMATS["npy"]
    from PIL import Image, PngImagePlugin

    picture = Image.fromarray(make_grid(images))
    info = provenance(variant, job)
    if job.format == "png":
        text = PngImagePlugin.PngInfo()
        for key, value in info.items():
            text.add_text(key, value)
        picture.save(buffer, format="PNG", compress_level=1, pnginfo=text)
    else:
        picture.save(buffer, format="JPEG", quality=92, comment=json.dumps(info, sort_keys=True).encode())
    return buffer.getvalue(), FORMATS[job.format]


@dataclass
class Outcome:
    """A served response: body, media type and the X-Ganzoo-* headers."""

    body: bytes
    media_type: str
    headers: dict[str, str]


def ascii_header(value: Any, limit: int = 300) -> str:
    """A header value: printable ASCII (anything else becomes '?'), at most ``limit`` characters."""
    text = str(value)
    if text.isascii() and text.isprintable():
        return text[:limit]
    text = text.encode("ascii", "replace").decode("ascii")
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:limit]
