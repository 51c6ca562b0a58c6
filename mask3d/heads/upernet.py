"""UPerNet (Xiao et al. 2018) over a ViT: multi-level features -> pyramid -> PPM + FPN -> fused -> classes.

The standard ViT semantic-segmentation protocol (BEiT, MAE, mmseg): features from 4 blocks (e.g. 3, 5, 7, 11
of ViT-B), rescaled to strides 4/8/16/32, a pyramid pooling module on the coarsest level, a top-down FPN, and
the fused levels classified at stride 4, then upsampled to the input.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .pyramid import SimpleFeaturePyramid


def _conv(i: int, o: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class UPerNetHead(nn.Module):
    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 256,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1):
        super().__init__()
        self.pyramid = SimpleFeaturePyramid(in_channels, channels)
        self.ppm = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(s), _conv(channels, channels, 1))
                                  for s in pool_scales])
        self.ppm_bottleneck = _conv(channels * (len(pool_scales) + 1), channels)
        self.lateral = nn.ModuleList([_conv(channels, channels, 1) for _ in range(3)])
        self.fpn = nn.ModuleList([_conv(channels, channels) for _ in range(3)])
        self.fuse = _conv(channels * 4, channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor], size) -> torch.Tensor:
        levels = self.pyramid(feats)
        top = levels[-1]
        pooled = [top] + [F.interpolate(p(top), size=top.shape[-2:], mode='bilinear', align_corners=False)
                          for p in self.ppm]
        laterals = [lat(x) for lat, x in zip(self.lateral, levels[:-1])] + [self.ppm_bottleneck(torch.cat(pooled, 1))]
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:],
                                                              mode='bilinear', align_corners=False)
        outs = [conv(x) for conv, x in zip(self.fpn, laterals[:-1])] + [laterals[-1]]
        outs = [outs[0]] + [F.interpolate(x, size=outs[0].shape[-2:], mode='bilinear', align_corners=False)
                            for x in outs[1:]]
        logits = self.classifier(self.dropout(self.fuse(torch.cat(outs, 1))))
        return F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
