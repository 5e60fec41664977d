"""Runtime wrappers that give exported artifacts the generator's call signature ``G(z, c)``."""
from __future__ import annotations

from pathlib import Path

from zoo.checkpoint import read_json
from zoo.errors import require


class OnnxGenerator:
    """An ONNX Runtime session behind ``G(z, c=None, truncation_psi=1.0, ...)`` -> torch images.

    Inputs are fed by name, as ``zoo export`` names them (export/artifact.py): ``z`` (float32 [N, z_dim]),
    ``c`` (class indices int64 [N] or one-hot float32 [N, c_dim], whatever the graph declares) and, if the
    graph takes it, ``psi`` (float32 [N]; ``truncation_psi`` is accepted as a name too).  Noise is
    constant (the export bakes it); ``truncation_cutoff`` and ``noise_mode`` other than 'const' are not supported.
    """

    def __init__(self, model_path: Path, config_path: Path, device: str = "cpu"):
        ort = require("onnxruntime", "onnx", "backend='onnx'")
        arch = read_json(Path(config_path))["arch"]
        self.z_dim = arch.get("z_dim", arch.get("dim_z"))
        self.c_dim = arch.get("c_dim", arch.get("n_classes", 0)) or 0
        self.img_resolution = arch["resolution"]
        self.img_channels = arch.get("img_channels", 3)
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(model_path), providers=providers)
        self.inputs = {i.name: i for i in self.session.get_inputs()}

    def eval(self):
        return self

    def __call__(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff=None, noise_mode: str = "const"):
        import numpy as np
        import torch

        if truncation_cutoff is not None or noise_mode != "const":
            raise ValueError("the ONNX generator supports truncation_cutoff=None and noise_mode='const' only")
        z = torch.as_tensor(z).detach().cpu().float()
        n = z.shape[0]
        feeds = {"z": z.numpy()}
        if "c" in self.inputs:
            if c is None:
                raise ValueError("this generator is conditional: pass c")
            c = torch.as_tensor(c).detach().cpu()
            if "int64" in self.inputs["c"].type:
                feeds["c"] = (c.argmax(dim=1) if c.ndim == 2 else c).long().reshape(n).numpy()
            else:
                c = torch.nn.functional.one_hot(c.long(), self.c_dim) if c.ndim == 1 else c
                feeds["c"] = c.float().reshape(n, self.c_dim).numpy()
        psi_name = next((k for k in ("psi", "truncation_psi") if k in self.inputs), None)
        if psi_name is not None:
            shape = [n if not isinstance(d, int) or i == 0 else d for i, d in enumerate(self.inputs[psi_name].shape)]
            feeds[psi_name] = np.full(shape, truncation_psi, dtype=np.float32)
        elif truncation_psi != 1.0:
            raise ValueError("this ONNX export has no truncation_psi input (it was baked at export time)")
        return torch.from_numpy(self.session.run(None, feeds)[0])
