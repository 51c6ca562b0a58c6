"""Semantic segmentation: a class id per pixel, cross-entropy with the ignore index, scored by a confusion matrix
(``SegmentationMetrics``: mIoU, pixel accuracy); the head is ``model.head`` (UperNet or linear)."""
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ....constants import IGNORE_INDEX
from ....heads import build_segmentation_model
from ...metrics import SegmentationMetrics
from ...visualize import colour_labels
from .base import DenseTask


class SemanticSegmentation(DenseTask):
    name = 'semseg'
    target_keys = ('semantic',)
    full_target = 'full_semantic'
    primary_metric, higher_is_better = 'miou', True
    class_word = 'classes'

    def build_model(self, backbone: nn.Module, cfg) -> nn.Module:
        m = cfg.model
        return build_segmentation_model(backbone, m.num_classes, head=m.head, channels=m.head_channels)

    def min_batch_size(self, cfg) -> int:
        """UperNet's pyramid pooling normalises 1x1 maps with BatchNorm, which needs two images or more."""
        return 2 if cfg.model.head == 'upernet' else 1

    def loss(self, model: nn.Module, batch: Dict[str, object], device, cfg) -> Dict[str, torch.Tensor]:
        logits = model(batch['rgb'])
        return {'loss': F.cross_entropy(logits.float(), batch['semantic'].to(device), ignore_index=IGNORE_INDEX)}

    def build_metrics(self, cfg) -> SegmentationMetrics:
        return SegmentationMetrics(cfg.model.num_classes, ignore_index=IGNORE_INDEX)

    def prediction_map(self, out: torch.Tensor) -> torch.Tensor:
        return out[0].argmax(0)

    def target_map(self, batch: Dict[str, object], i: int) -> torch.Tensor:
        return batch['semantic'][i]

    def keep_full_target(self, frame: Dict[str, object]) -> Dict[str, torch.Tensor]:
        return {self.full_target: torch.as_tensor(np.asarray(frame['semantic'], np.int64))}

    def finish_result(self, result: Dict[str, object], frames, cfg) -> Dict[str, object]:
        """The per-class IoU under the dataset's class names."""
        names = getattr(frames, 'class_names', None) or [str(i) for i in range(cfg.model.num_classes)]
        result['iou_per_class'] = {name: iou for name, iou in zip(names, result.pop('iou'))}
        return result

    def figure_panels(self, image: np.ndarray, gt: torch.Tensor, pred: torch.Tensor, class_names: Sequence[str],
                      palette: np.ndarray) -> List[dict]:
        return [dict(X=_resize_like(colour_labels(labels.numpy(), palette), image)) for labels in (gt, pred)]


def _resize_like(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """A label image at ``ref``'s size (nearest: colours stay class colours)."""
    if img.shape[:2] == ref.shape[:2]:
        return img
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    return F.interpolate(t, size=ref.shape[:2], mode='nearest')[0].permute(1, 2, 0).numpy()
