"""Probe metrics over a test split.

Depth: fine-tuning's ``DepthMetrics`` (AbsRel, SqRel, RMSE, RMSE-log, delta1-3; per image over valid pixels, then
the mean), on three versions of each prediction, each under its own name:
- unaligned: the metric prediction as it is (``abs_rel``, ``delta1``, ``rmse``, ...);
- ``scale_aligned``: times the least-squares scale s = <p, g> / <p, p> of that image (scale-invariant);
- ``scale_shift_aligned``: s * p + t with (s, t) least squares per image (affine-invariant, as MiDaS).
Normals: angle between predicted and ground-truth unit normals over all valid pixels of the split (pooled, as
the NYU normal benchmarks): mean and median in degrees, % within 11.25, 22.5, 30 degrees.
Segmentation: fine-tuning's ``SegmentationMetrics`` plus ``object_miou``: the mean IoU without wall, floor and
ceiling (the layout classes that any depth-aware feature separates easily).
"""
import math
from typing import Dict, Sequence

import torch

from ..metrics import DepthMetrics, SegmentationMetrics

LAYOUT_CLASSES = ('wall', 'floor', 'ceiling')


def align_depth(pred: torch.Tensor, gt: torch.Tensor, shift: bool) -> torch.Tensor:
    """Least-squares scale (and shift) of ``pred`` onto ``gt`` over gt > 0, per image; [B, 1, H, W]."""
    out = pred.clone().double()
    for i in range(pred.shape[0]):
        m = gt[i] > 0
        if m.sum() < 2:
            continue
        p, g = out[i][m], gt[i][m].double()
        if shift:
            A = torch.stack([p, torch.ones_like(p)], 1)
            s, t = torch.linalg.lstsq(A, g[:, None]).solution[:, 0]
        else:
            s, t = (p * g).sum() / (p * p).sum().clamp_min(1e-12), 0.0
        out[i] = out[i] * s + t
    return out.to(pred.dtype)


class ProbeDepthMetrics:
    def __init__(self, max_depth: float = 10.0):
        self.variants = {k: DepthMetrics(max_depth=max_depth) for k in ('unaligned', 'scale_aligned',
                                                                          'scale_shift_aligned')}

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.variants['unaligned'].update(pred, gt)
        self.variants['scale_aligned'].update(align_depth(pred, gt, shift=False), gt)
        self.variants['scale_shift_aligned'].update(align_depth(pred, gt, shift=True), gt)

    def compute(self) -> Dict[str, object]:
        out: Dict[str, object] = dict(self.variants['unaligned'].compute())
        for name in ('scale_aligned', 'scale_shift_aligned'):
            out[name] = self.variants[name].compute()
        return out


class NormalMetrics:
    def __init__(self):
        self.angles = []

    def update(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> None:
        """pred, gt [B, 3, H, W] (pred need not be unit length), valid [B, H, W]."""
        cos = (torch.nn.functional.normalize(pred.double(), dim=1) * gt.double()).sum(1).clamp(-1, 1)
        self.angles.append(torch.rad2deg(torch.acos(cos))[valid].float())

    def compute(self) -> Dict[str, float]:
        a = torch.cat(self.angles) if self.angles else torch.zeros(0)
        if not a.numel():
            return {k: float('nan') for k in ('mean_angle_deg', 'median_angle_deg', 'within_11_25', 'within_22_5',
                                             'within_30')}
        return {'mean_angle_deg': float(a.mean()), 'median_angle_deg': float(a.median()),
                'within_11_25': 100 * float((a < 11.25).float().mean()),
                'within_22_5': 100 * float((a < 22.5).float().mean()),
                'within_30': 100 * float((a < 30).float().mean())}


class ProbeSegmentationMetrics(SegmentationMetrics):
    def __init__(self, class_names: Sequence[str], ignore_index: int = 255):
        super().__init__(len(class_names), ignore_index)
        self.class_names = tuple(class_names)

    def compute(self) -> Dict[str, object]:
        out = super().compute()
        objects = [iou for name, iou in zip(self.class_names, out['iou']) if name not in LAYOUT_CLASSES
                   and not math.isnan(iou)]
        out['object_miou'] = sum(objects) / len(objects) if objects else float('nan')
        out['class_names'] = list(self.class_names)
        return out
