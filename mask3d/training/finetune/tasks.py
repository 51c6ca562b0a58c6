"""What differs between the three tasks: the loss, how a batch is scored, and the picture of predictions.

semseg: cross-entropy with the ignore index; scored by SegmentationMetrics (confusion matrix).
depth: scale-invariant log loss (Eigen et al. 2014, BTS's lambda=0.85) on valid pixels; scored by DepthMetrics.
instance: torchvision Mask R-CNN's own losses; scored by InstanceMetrics (pycocotools through torchmetrics).
"""
import os
from typing import Dict, List, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ...constants import IGNORE_INDEX
from ..depth_loss import silog_loss
from ..metrics import DepthMetrics, InstanceMetrics, SegmentationMetrics
from ..visualize import colour_labels, label_palette, save_figure, show_row

PRIMARY_METRIC = {'semseg': ('miou', 'max'), 'depth': ('abs_rel', 'min'), 'instance': ('segm_AP50', 'max')}


def instance_targets(batch: Dict[str, object], device) -> List[Dict[str, torch.Tensor]]:
    """torchvision detection targets; class ids shift by one because 0 is Mask R-CNN's background."""
    return [{'boxes': b.to(device), 'labels': (lab + 1).to(device), 'masks': m.to(device, torch.uint8)}
            for b, lab, m in zip(batch['instance_boxes'], batch['instance_labels'], batch['instance_masks'])]


def training_loss(task: str, model, batch: Dict[str, object], device, min_depth: float = 1e-3) -> Dict[str, torch.Tensor]:
    """{'loss': total, ...parts} for one batch already holding ``rgb`` on ``device``."""
    rgb = batch['rgb']
    if task == 'semseg':
        logits = model(rgb)
        return {'loss': F.cross_entropy(logits.float(), batch['semantic'].to(device), ignore_index=IGNORE_INDEX)}
    if task == 'depth':
        pred = model(rgb)
        return {'loss': silog_loss(pred, batch['depth'].to(device), scale=10.0, min_depth=min_depth)}
    losses = model(list(rgb), instance_targets(batch, device))
    parts = {k: v.float() for k, v in losses.items()}
    return {'loss': sum(parts.values()), **parts}


def build_metrics(task: str, cfg):
    if task == 'semseg':
        return SegmentationMetrics(cfg.model.num_classes, ignore_index=IGNORE_INDEX)
    if task == 'depth':
        return DepthMetrics(min_depth=cfg.eval.min_depth, max_depth=cfg.eval.max_depth, eigen_crop=cfg.eval.eigen_crop)
    return InstanceMetrics()


@torch.no_grad()
def predict(task: str, model, batch: Dict[str, object], full_resolution: bool) -> List[object]:
    """Per-image predictions: class-id maps, depth maps (metres) or detection dicts (0-based labels), on CPU and,
    for semseg/depth with ``full_resolution``, at the ground truth's own size."""
    rgb = batch['rgb']
    if task == 'instance':
        outs = model(list(rgb))
        return [dict({k: v.cpu() for k, v in o.items()}, labels=o['labels'].cpu() - 1) for o in outs]
    out = model(rgb).float()
    key = 'full_semantic' if task == 'semseg' else 'full_depth'
    preds = []
    for i in range(out.shape[0]):
        o = out[i:i + 1]
        if full_resolution and key in batch:
            o = F.interpolate(o, size=tuple(batch[key][i].shape[-2:]), mode='bilinear', align_corners=False)
        preds.append(o[0].argmax(0).cpu() if task == 'semseg' else o[0, 0].cpu())
    return preds


def ground_truth(task: str, batch: Dict[str, object], full_resolution: bool) -> List[object]:
    n = len(batch['rgb'])
    if task == 'semseg':
        full = full_resolution and 'full_semantic' in batch
        return [(batch['full_semantic'][i] if full else batch['semantic'][i]).cpu() for i in range(n)]
    if task == 'depth':
        full = full_resolution and 'full_depth' in batch
        return [(batch['full_depth'][i] if full else batch['depth'][i, 0]).cpu() for i in range(n)]
    return [{'boxes': b, 'labels': lab, 'masks': m}
            for b, lab, m in zip(batch['instance_boxes'], batch['instance_labels'], batch['instance_masks'])]


def update_metrics(task: str, metrics, preds: List[object], gts: List[object]) -> None:
    if task == 'instance':
        metrics.update(preds, gts)
        return
    for p, g in zip(preds, gts):
        metrics.update(p[None], g[None])


def _draw_instances(img: np.ndarray, det: Dict[str, torch.Tensor], names: Sequence[str], score: float = 0.5):
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


def save_prediction_figure(path: Union[str, os.PathLike], task: str, images: List[np.ndarray], gts: List[object],
                           preds: List[object], class_names: Sequence[str] = (), title: str = ''):
    """One row per frame: RGB | ground truth | prediction (| |error| for depth)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(images)
    cols = ['RGB', 'ground truth', 'prediction'] + (['|error| (m)'] if task == 'depth' else [])
    fig, axes = plt.subplots(n, len(cols), figsize=(4 * len(cols), 3 * n + 0.4), squeeze=False)
    palette = label_palette(max(len(class_names), 1))
    for i in range(n):
        img, g, p = images[i], gts[i], preds[i]
        panels = [dict(X=img)]
        if task == 'semseg':
            g, p = g.numpy(), p.numpy()
            g_img = colour_labels(g, palette)
            panels += [dict(X=_resize_like(g_img, img)), dict(X=_resize_like(colour_labels(p, palette), img))]
        elif task == 'depth':
            g, p = g.numpy(), p.numpy()
            valid = g > 0
            vmin, vmax = np.percentile(g[valid], [2, 98]) if valid.any() else (0.0, 1.0)
            cmap = matplotlib.colormaps['turbo'].with_extremes(bad='black')
            err = np.where(valid, np.abs(p - g), np.nan)
            panels += [dict(X=np.where(valid, g, np.nan), cmap=cmap, vmin=vmin, vmax=vmax),
                       dict(X=p, cmap=cmap, vmin=vmin, vmax=vmax),
                       dict(X=err, cmap='magma', vmin=0, vmax=max(float(np.nanpercentile(err, 98)), 1e-3)
                            if valid.any() else 1)]
        else:
            panels += [dict(X=_draw_instances(img, g, class_names)), dict(X=_draw_instances(img, p, class_names))]
        show_row(axes, i, panels, cols)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _resize_like(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    if img.shape[:2] == ref.shape[:2]:
        return img
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    return F.interpolate(t, size=ref.shape[:2], mode='nearest')[0].permute(1, 2, 0).numpy()
