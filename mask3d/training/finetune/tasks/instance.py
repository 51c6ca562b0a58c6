"""Instance segmentation: torchvision's Mask R-CNN on a simple feature pyramid of the backbone, trained with its own
losses and scored by COCO AP (``InstanceMetrics``: pycocotools through torchmetrics); thing classes only
(``things.py``), 0-based here and shifted by one for Mask R-CNN, whose class 0 is the background."""
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from ....heads import build_mask_rcnn
from ...metrics import InstanceMetrics
from .base import Task
from .things import ThingInstances, thing_classes


class InstanceSegmentation(Task):
    name = 'instance'
    target_keys = ('instance_masks', 'instance_labels')
    primary_metric, higher_is_better = 'segm_AP50', True
    class_word = 'thing classes'

    def build_model(self, backbone: nn.Module, cfg) -> nn.Module:
        m, (h, w) = cfg.model, cfg.data.image_size
        # samples arrive normalised by the backbone's mean/std already, and at the training size
        return build_mask_rcnn(backbone, m.num_classes, min_size=min(h, w), max_size=max(h, w), mean=(0.0,) * 3,
                               std=(1.0,) * 3, channels=m.head_channels, **m.detector_args)

    def loss(self, model: nn.Module, batch: Dict[str, object], device, cfg) -> Dict[str, torch.Tensor]:
        losses = model(list(batch['rgb']), detection_targets(batch, device))
        parts = {k: v.float() for k, v in losses.items()}
        return {'loss': sum(parts.values()), **parts}

    def build_metrics(self, cfg) -> InstanceMetrics:
        return InstanceMetrics()

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Dict[str, object], full_resolution: bool) -> List[dict]:
        """Detection dicts with 0-based labels (Mask R-CNN predicts at the input size)."""
        outs = model(list(batch['rgb']))
        return [dict({k: v.cpu() for k, v in o.items()}, labels=o['labels'].cpu() - 1) for o in outs]

    def ground_truth(self, batch: Dict[str, object], full_resolution: bool) -> List[dict]:
        return [{'boxes': b, 'labels': lab, 'masks': m}
                for b, lab, m in zip(batch['instance_boxes'], batch['instance_labels'], batch['instance_masks'])]

    def update_metrics(self, metrics: InstanceMetrics, preds: List[dict], gts: List[dict]) -> None:
        metrics.update(preds, gts)

    def wrap_frames(self, frames, source: str, cfg) -> ThingInstances:
        ids, names = thing_classes(source, cfg.data.nyu_classes)
        return ThingInstances(frames, ids, names, cfg.data.min_instance_pixels)

    def figure_panels(self, image: np.ndarray, gt: dict, pred: dict, class_names: Sequence[str],
                      palette: np.ndarray) -> List[dict]:
        return [dict(X=draw_instances(image, gt, class_names)), dict(X=draw_instances(image, pred, class_names))]


def detection_targets(batch: Dict[str, object], device) -> List[Dict[str, torch.Tensor]]:
    """torchvision detection targets; class ids shift by one because 0 is Mask R-CNN's background."""
    return [{'boxes': b.to(device), 'labels': (lab + 1).to(device), 'masks': m.to(device, torch.uint8)}
            for b, lab, m in zip(batch['instance_boxes'], batch['instance_labels'], batch['instance_masks'])]


def draw_instances(img: np.ndarray, det: Dict[str, torch.Tensor], names: Sequence[str], score: float = 0.5):
    """Masks and labelled boxes over ``img`` (predictions: those scoring at least ``score``)."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks
    keep = det['scores'] >= score if 'scores' in det else torch.ones(len(det['labels']), dtype=torch.bool)
    canvas = torch.from_numpy((img * 255).astype(np.uint8)).permute(2, 0, 1)
    masks = det['masks'][keep]
    if masks.dim() == 4:
        masks = masks[:, 0]
    masks = masks > 0.5 if masks.is_floating_point() else masks.bool()
    if len(masks):
        canvas = draw_segmentation_masks(canvas, masks, alpha=0.5)
        labels = [names[int(c)] if 0 <= int(c) < len(names) else str(int(c)) for c in det['labels'][keep]]
        canvas = draw_bounding_boxes(canvas, det['boxes'][keep], labels=labels, colors='yellow')
    return canvas.permute(1, 2, 0).numpy()
