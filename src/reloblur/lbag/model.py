"""The LBAG network: MIMO-UNet+ with one extra output channel per scale used as a gate.

Module names, parameter order and arithmetic follow the original implementation exactly,
so that official checkpoints load without edits and give the same outputs (checked
against a parity fixture to 1e-5). Input: ``(N, 3, H, W)`` in [0, 1] with ``H`` and ``W``
multiples of 4 (see :func:`pad_to_multiple`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BASE_CHANNELS = 32
LBAG_NUM_RES = 20  # MIMO-UNet+ depth; plain MIMO-UNet uses 8
SIZE_MULTIPLE = 4
GATE_FLOOR = 0.1


class BasicConv(nn.Sequential):
    """Conv (or transposed conv) with bias and optional ReLU, in a ``main`` Sequential."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, relu: bool = True,
                 transpose: bool = False):
        super().__init__()
        if transpose:
            conv: nn.Module = nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2 - 1)
        else:
            conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        layers = [conv, nn.ReLU(inplace=True)] if relu else [conv]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        return self.main(x)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a ReLU between, added to the input."""
    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(BasicConv(channels, channels, 3), BasicConv(channels, channels, 3, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        return self.main(x) + x


class ResStack(nn.Module):
    """``num_res`` residual blocks (the original's EBlock and DBlock)."""

    def __init__(self, channels: int, num_res: int):
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(channels) for _ in range(num_res)])

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        return self.layers(x)


class ShallowConvModule(nn.Module):
    """SCM: features of a downscaled input, concatenated with the input itself."""

    def __init__(self, planes: int):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(3, planes // 4, 3),
            BasicConv(planes // 4, planes // 2, 1),
            BasicConv(planes // 2, planes // 2, 3),
            BasicConv(planes // 2, planes - 3, 1),
        )
        self.conv = BasicConv(planes, planes, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        return self.conv(torch.cat([x, self.main(x)], dim=1))


class FeatureAttention(nn.Module):
    """FAM: ``x1 + merge(x1 * x2)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.merge = BasicConv(channels, channels, 3, relu=False)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        """Fuse the two inputs."""
        return x1 + self.merge(x1 * x2)


class AsymmetricFusion(nn.Module):
    """AFF: fuse three scales' features."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(BasicConv(cin, cout, 1), BasicConv(cout, cout, 3, relu=False))

    def forward(self, x1: Tensor, x2: Tensor, x4: Tensor) -> Tensor:
        """Fuse the three scales' features."""
        return self.conv(torch.cat([x1, x2, x4], dim=1))


def _gated(raw: Tensor, base: Tensor) -> tuple[Tensor, Tensor]:
    gate = torch.clamp(torch.sigmoid(raw[:, :1]), min=GATE_FLOOR)
    return raw[:, 1:] * gate + base, gate


class LBAG(nn.Module):
    """Local blur-aware gated network.

    Parameters
    ----------
    num_res
        Residual blocks per encoder/decoder stage: 20 for LBAG (MIMO-UNet+), 8 for the
        lighter MIMO-UNet variant. Use :func:`infer_num_res` for a checkpoint.

    ``forward(x)`` returns ``(images, gates)``: three images (1/4, 1/2, full scale,
    ``(N, 3, h, w)``) and three gates (``(N, 1, h, w)`` in [0.1, 1]). The last image is
    the deblurred output; the last gate is the blur-region map.
    """

    def __init__(self, num_res: int = LBAG_NUM_RES, *, dropout: float = 0.1):
        super().__init__()
        c = BASE_CHANNELS
        self.num_res = num_res
        # Registration order matters: it fixes parameters() order, which the optimizer
        # state in official checkpoints is indexed by.
        self.Encoder = nn.ModuleList([ResStack(c, num_res), ResStack(2 * c, num_res), ResStack(4 * c, num_res)])
        self.feat_extract = nn.ModuleList(
            [
                BasicConv(3, c, 3),
                BasicConv(c, 2 * c, 3, stride=2),
                BasicConv(2 * c, 4 * c, 3, stride=2),
                BasicConv(4 * c, 2 * c, 4, stride=2, transpose=True),
                BasicConv(2 * c, c, 4, stride=2, transpose=True),
                BasicConv(c, 4, 3, relu=False),
            ]
        )
        self.Decoder = nn.ModuleList([ResStack(4 * c, num_res), ResStack(2 * c, num_res), ResStack(c, num_res)])
        self.Convs = nn.ModuleList([BasicConv(4 * c, 2 * c, 1), BasicConv(2 * c, c, 1)])
        self.ConvsOut = nn.ModuleList([BasicConv(4 * c, 4, 3, relu=False), BasicConv(2 * c, 4, 3, relu=False)])
        self.AFFs = nn.ModuleList([AsymmetricFusion(7 * c, c), AsymmetricFusion(7 * c, 2 * c)])
        self.FAM1 = FeatureAttention(4 * c)
        self.SCM1 = ShallowConvModule(4 * c)
        self.FAM2 = FeatureAttention(2 * c)
        self.SCM2 = ShallowConvModule(2 * c)
        self.drop1 = nn.Dropout2d(dropout)  # 0.1 in MIMO-UNet+ and the original LBAG
        self.drop2 = nn.Dropout2d(dropout)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Outputs at 1/4, 1/2 and full scale, and the gate maps of each."""
        x_2 = F.interpolate(x, scale_factor=0.5)
        x_4 = F.interpolate(x_2, scale_factor=0.5)
        z2 = self.SCM2(x_2)
        z4 = self.SCM1(x_4)

        res1 = self.Encoder[0](self.feat_extract[0](x))
        z = self.FAM2(self.feat_extract[1](res1), z2)
        res2 = self.Encoder[1](z)
        z = self.Encoder[2](self.FAM1(self.feat_extract[2](res2), z4))

        z12 = F.interpolate(res1, scale_factor=0.5)
        z21 = F.interpolate(res2, scale_factor=2)
        z42 = F.interpolate(z, scale_factor=2)
        z41 = F.interpolate(z42, scale_factor=2)
        res2 = self.drop2(self.AFFs[1](z12, res2, z42))
        res1 = self.drop1(self.AFFs[0](res1, z21, z41))

        images, gates = [], []
        z = self.Decoder[0](z)
        image, gate = _gated(self.ConvsOut[0](z), x_4)
        images.append(image)
        gates.append(gate)
        z = self.feat_extract[3](z)

        z = self.Decoder[1](self.Convs[0](torch.cat([z, res2], dim=1)))
        image, gate = _gated(self.ConvsOut[1](z), x_2)
        images.append(image)
        gates.append(gate)
        z = self.feat_extract[4](z)

        z = self.Decoder[2](self.Convs[1](torch.cat([z, res1], dim=1)))
        image, gate = _gated(self.feat_extract[5](z), x)
        images.append(image)
        gates.append(gate)
        return images, gates


def infer_num_res(state_dict: Mapping[str, Tensor]) -> int:
    """Residual blocks per stage, counted from ``Encoder.0.layers.<i>`` keys."""
    indices = {
        int(key.split(".")[3])
        for key in state_dict
        if key.startswith("Encoder.0.layers.") and key.split(".")[3].isdigit()
    }
    if not indices:
        raise KeyError("no 'Encoder.0.layers.<i>' keys: not an LBAG / MIMO-UNet state dict")
    return max(indices) + 1


def pad_to_multiple(x: Tensor, multiple: int = SIZE_MULTIPLE) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right to a multiple of ``multiple``; returns the original (H, W).

    Falls back to replicate padding when the image is too small to reflect.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
