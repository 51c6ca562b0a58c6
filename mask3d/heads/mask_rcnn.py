"""torchvision's Mask R-CNN on the ViTDet simple feature pyramid of a ``features_only`` backbone.

torchvision is imported inside ``build_mask_rcnn`` only: the rest of ``mask3d.heads`` needs nothing but torch, so
UPerNet, DPT and the linear head work with the slim install (``pip install mask3d``, no ``train`` extra).
"""
import functools
from collections import OrderedDict
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from .backbone import BackboneLayerDecay
from .pyramid import SimpleFeaturePyramid


class PyramidBackbone(nn.Module):
    """A torchvision detection backbone: ``out_channels`` and an ordered dict of maps ('0'-'3' strides 4-32, 'pool').

    ViTDet: every scale comes from the last feature map; the wrapped backbone is not changed.
    """

    def __init__(self, backbone: nn.Module, out_channels: int = 256):
        super().__init__()
        self.backbone = backbone  # features_only=True, one or more stride-16 levels; the last is used
        self.out_channels = out_channels
        self.pyramid = SimpleFeaturePyramid([backbone.feature_info.channels()[-1]] * 4, out_channels)

    def forward(self, x: torch.Tensor) -> 'OrderedDict[str, torch.Tensor]':
        last = self.backbone(x)[-1]
        levels = self.pyramid([last] * 4)
        return OrderedDict([*((str(i), m) for i, m in enumerate(levels)),
                            ('pool', F.max_pool2d(levels[-1], 1, 2))])


@functools.lru_cache(maxsize=None)
def _instance_model_class() -> type:
    from torchvision.models.detection import MaskRCNN

    class InstanceModel(BackboneLayerDecay, MaskRCNN):
        """torchvision's Mask R-CNN whose backbone is a PyramidBackbone over the ViT."""
        _vit_path = 'backbone.backbone'
    InstanceModel.__qualname__ = 'InstanceModel'
    return InstanceModel


def build_mask_rcnn(backbone: nn.Module, num_classes: int, min_size: int = 240, max_size: int = 320,
                    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD,
                    channels: int = 256, **detector_args: Any) -> nn.Module:
    """torchvision Mask R-CNN on a ViTDet simple feature pyramid; ``num_classes`` excludes the background.
    Inputs are [0, 1] images normalised with ``mean``/``std`` inside (pass mean 0, std 1 for normalised ones).
    ``detector_args`` go to torchvision's MaskRCNN (e.g. rpn_post_nms_top_n_train, box_batch_size_per_image)."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    anchors = AnchorGenerator(sizes=((16,), (32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    levels = ['0', '1', '2', '3']
    return _instance_model_class()(
        PyramidBackbone(backbone, channels), num_classes=num_classes + 1, min_size=min_size, max_size=max_size,
        image_mean=list(mean), image_std=list(std), rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(levels, 7, 2), mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2),
        **detector_args)
