"""Task models: a ``features_only`` mask3d (or timm ViT) backbone plus a head; the backbone is not modified."""
from typing import Optional, Sequence

import torch
from torch import nn

from ...factory import create_model
from .heads import DPTDepthHead, LinearSegHead, SimpleFeaturePyramid, UPerNetHead


def default_out_indices(depth: int) -> Sequence[int]:
    """Four evenly spaced blocks ending with the last: (2, 5, 8, 11) for 12 blocks, (5, 11, 17, 23) for 24."""
    if depth < 4:
        raise ValueError(f'dense heads need a backbone with at least 4 blocks, got {depth}')
    return (depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1)


def build_backbone(name: str, out_indices: Optional[Sequence[int]] = None, pretrained: bool = False,
                   checkpoint_path: Optional[str] = None, **kwargs) -> nn.Module:
    """``features_only`` backbone from any ``mask3d.create_model`` name, Hub id, ``local-dir:`` or checkpoint."""
    if out_indices is None:
        with torch.device('meta'):  # only the block count is needed: no memory, no initialisation
            out_indices = default_out_indices(len(create_model(name, pretrained=False, **kwargs).blocks))
    indices = tuple(out_indices)
    return create_model(name, pretrained=pretrained, checkpoint_path=checkpoint_path, features_only=True,
                        out_indices=indices, **kwargs)


class DenseModel(nn.Module):
    """backbone -> list of maps -> head(maps, input size) -> [B, C, H, W] (logits or depth)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x), x.shape[-2:])


def build_segmentation_model(backbone: nn.Module, num_classes: int, head: str = 'upernet',
                             channels: int = 256) -> DenseModel:
    chs = backbone.feature_info.channels()
    if head == 'upernet':
        return DenseModel(backbone, UPerNetHead(chs, num_classes, channels=channels))
    if head == 'linear':
        return DenseModel(backbone, LinearSegHead(chs, num_classes))
    raise ValueError(f"segmentation head must be 'upernet' or 'linear', got {head!r}")


def build_depth_model(backbone: nn.Module, max_depth: float = 10.0, channels: int = 256) -> DenseModel:
    return DenseModel(backbone, DPTDepthHead(backbone.feature_info.channels(), channels=channels, max_depth=max_depth))


def build_instance_model(backbone: nn.Module, num_classes: int, min_size: int = 240, max_size: int = 320,
                         mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
    """torchvision Mask R-CNN on a ViTDet simple feature pyramid; ``num_classes`` excludes the background."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign
    anchors = AnchorGenerator(sizes=((16,), (32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    return MaskRCNN(SimpleFeaturePyramid(backbone), num_classes=num_classes + 1, min_size=min_size,
                    max_size=max_size, image_mean=list(mean), image_std=list(std), rpn_anchor_generator=anchors,
                    box_roi_pool=MultiScaleRoIAlign(['0', '1', '2', '3'], 7, 2),
                    mask_roi_pool=MultiScaleRoIAlign(['0', '1', '2', '3'], 14, 2))
