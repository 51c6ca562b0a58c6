"""ViTDet's simple feature pyramid as a torchvision detection backbone (Mask R-CNN / Faster R-CNN).

torchvision's ``MaskRCNN(backbone, num_classes)`` needs ``backbone.out_channels`` and a forward that returns an
ordered dict of maps; this wraps a ``features_only`` mask3d backbone without changing it.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class SimpleFeaturePyramid(nn.Module):
    def __init__(self, backbone: nn.Module, out_channels: int = 256):
        super().__init__()
        self.backbone = backbone  # features_only=True, one or more stride-16 levels; the last is used (ViTDet)
        ch = backbone.feature_info.channels()[-1]
        self.out_channels = out_channels

        self.p2 = nn.Sequential(nn.ConvTranspose2d(ch, ch // 2, 2, stride=2), nn.GroupNorm(1, ch // 2), nn.GELU(),
                                nn.ConvTranspose2d(ch // 2, out_channels, 2, stride=2),
                                nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(1, out_channels))
        self.p3 = nn.Sequential(nn.ConvTranspose2d(ch, out_channels, 2, stride=2),
                                nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(1, out_channels))
        self.p4 = nn.Sequential(nn.Conv2d(ch, out_channels, 1), nn.GroupNorm(1, out_channels),
                                nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(1, out_channels))
        self.p5 = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(ch, out_channels, 1),
                                nn.GroupNorm(1, out_channels), nn.Conv2d(out_channels, out_channels, 3, padding=1),
                                nn.GroupNorm(1, out_channels))

    def forward(self, x: torch.Tensor) -> 'OrderedDict[str, torch.Tensor]':
        f = self.backbone(x)[-1]
        p5 = self.p5(f)
        return OrderedDict([('0', self.p2(f)), ('1', self.p3(f)), ('2', self.p4(f)), ('3', p5),
                            ('pool', F.max_pool2d(p5, 1, 2))])
