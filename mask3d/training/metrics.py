"""Downstream metrics, accumulated over a whole split (and across DDP ranks).

Semantic segmentation: one confusion matrix over all images (``conf[gt, pred]``); pixels whose ground truth is
``ignore_index`` do not count. IoU_c = TP / (TP + FP + FN); a class absent from both ground truth and prediction
is NaN and left out of the mean (as the ScanNet and Cityscapes benchmark scripts do). Pixel accuracy = trace / sum.

Depth (BTS/AdaBins/ZoeDepth protocol): per image, over pixels with ``min_depth < gt < max_depth`` (optionally inside
the Eigen crop), the prediction clipped to [min_depth, max_depth]: AbsRel, SqRel, RMSE, RMSE-log, delta < 1.25^k;
then the mean over images.
"""
import logging
from typing import Dict

import torch
import torch.distributed as dist

DEPTH_KEYS = ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'delta1', 'delta2', 'delta3')


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over DDP ranks (through the GPU under NCCL, which reduces only CUDA tensors)."""
    if dist.is_available() and dist.is_initialized():
        on = torch.device('cuda', torch.cuda.current_device()) if dist.get_backend() == 'nccl' else t.device
        r = t.to(on).clone()
        dist.all_reduce(r)
        return r.to(t.device)
    return t


class SegmentationMetrics:
    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``: class ids [B, H, W] (or logits [B, C, H, W]); ``target``: ids with ``ignore_index``."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f'prediction {list(pred.shape)} and target {list(target.shape)} differ in shape')
        keep = target != self.ignore_index
        t, p = target[keep].long().cpu(), pred[keep].long().cpu()
        if t.numel() and (t.min() < 0 or t.max() >= self.num_classes):
            raise ValueError(f'target class id {int(t.max())} outside 0..{self.num_classes - 1} (ignore index '
                             f'{self.ignore_index})')
        if p.numel() and (p.min() < 0 or p.max() >= self.num_classes):
            raise ValueError(f'predicted class id {int(p.max())} outside 0..{self.num_classes - 1}')
        self.confusion += torch.bincount(t * self.num_classes + p, minlength=self.num_classes ** 2).view(
            self.num_classes, self.num_classes)

    def compute(self) -> Dict[str, object]:
        conf = _all_reduce(self.confusion).double()
        tp = conf.diag()
        union = conf.sum(0) + conf.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float('nan')))
        total = conf.sum()
        return {'miou': float(torch.nanmean(iou)) if (union > 0).any() else float('nan'),
                'iou': iou.tolist(), 'pixel_acc': float(tp.sum() / total) if total > 0 else float('nan')}


class DepthMetrics:
    def __init__(self, min_depth: float = 1e-3, max_depth: float = 10.0, eigen_crop: bool = False):
        self.min_depth, self.max_depth, self.eigen_crop = min_depth, max_depth, eigen_crop
        self.sums = torch.zeros(len(DEPTH_KEYS), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    def _mask(self, gt: torch.Tensor) -> torch.Tensor:
        valid = (gt > self.min_depth) & (gt < self.max_depth)
        if self.eigen_crop:
            h, w = gt.shape[-2:]
            if (h, w) != (480, 640):
                raise ValueError(f'the Eigen crop is defined on 480x640 NYU frames, got {h}x{w}')
            crop = torch.zeros_like(valid)
            crop[..., 45:471, 41:601] = True
            valid &= crop
        return valid

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """``pred``, ``gt``: metres, [B, 1, H, W] or [B, H, W]; invalid ground truth is 0."""
        pred, gt = pred.reshape(-1, *gt.shape[-2:]).double(), gt.reshape(-1, *gt.shape[-2:]).double()
        if pred.shape != gt.shape:
            raise ValueError(f'prediction {list(pred.shape)} and ground truth {list(gt.shape)} differ in shape')
        pred = torch.nan_to_num(pred, nan=self.min_depth, posinf=self.max_depth).clamp(self.min_depth, self.max_depth)
        for p_img, g_img in zip(pred, gt):
            m = self._mask(g_img)
            if not m.any():
                continue  # an image without valid ground truth has no error to report
            p, g = p_img[m], g_img[m]
            ratio = torch.maximum(p / g, g / p)
            self.sums += torch.stack([
                ((p - g).abs() / g).mean(), ((p - g) ** 2 / g).mean(), ((p - g) ** 2).mean().sqrt(),
                ((p.log() - g.log()) ** 2).mean().sqrt(), (ratio < 1.25).double().mean(),
                (ratio < 1.25 ** 2).double().mean(), (ratio < 1.25 ** 3).double().mean()])
            self.count += 1

    def compute(self) -> Dict[str, float]:
        sums, count = _all_reduce(self.sums), _all_reduce(self.count)
        if count == 0:  # NaN metrics, never silently: the usual cause is a wrong depth unit
            logging.getLogger(__name__).warning(
                'depth metrics are NaN: no evaluated image has ground-truth depth between min_depth %g and max_depth '
                '%g m; check the depth unit (data.depth_scale) and eval.min_depth / eval.max_depth',
                self.min_depth, self.max_depth)
            return {k: float('nan') for k in DEPTH_KEYS}
        return {k: float(v) for k, v in zip(DEPTH_KEYS, sums / count)}


class InstanceMetrics:
    """COCO AP, AP50, AP75 for boxes and masks, computed by pycocotools through torchmetrics (no home-made AP).

    ``update(preds, targets)`` takes torchvision detection outputs (``boxes`` xyxy, ``scores``, ``labels``, and
    ``masks`` [N, 1, H, W] probabilities or [N, H, W] bool) and targets (``boxes``, ``labels``, ``masks``).
    """

    def __init__(self, mask_threshold: float = 0.5):
        from torchmetrics.detection import MeanAveragePrecision
        self.mask_threshold = mask_threshold
        self._box = MeanAveragePrecision(iou_type='bbox', backend='pycocotools')
        self._segm = MeanAveragePrecision(iou_type='segm', backend='pycocotools')
        self.counts = torch.zeros(2, dtype=torch.float64)  # predictions, ground-truth instances

    @torch.no_grad()
    def update(self, preds, targets) -> None:
        def masks(m: torch.Tensor) -> torch.Tensor:
            if m.dim() == 4:
                m = m[:, 0]
            return (m > self.mask_threshold if m.is_floating_point() else m.bool()).cpu()

        p = [{'boxes': d['boxes'].cpu(), 'scores': d['scores'].cpu(), 'labels': d['labels'].cpu()} for d in preds]
        t = [{'boxes': d['boxes'].cpu(), 'labels': d['labels'].cpu()} for d in targets]
        self.counts += torch.tensor([sum(len(d['labels']) for d in p), sum(len(d['labels']) for d in t)],
                                    dtype=torch.float64)
        self._box.update(p, t)
        self._segm.update([dict(x, masks=masks(d['masks'])) for x, d in zip(p, preds)],
                          [dict(x, masks=masks(d['masks'])) for x, d in zip(t, targets)])

    def compute(self) -> Dict[str, float]:
        box, segm = self._box.compute(), self._segm.compute()
        n_pred, n_gt = _all_reduce(self.counts).tolist()
        out = {}
        for prefix, r in (('bbox', box), ('segm', segm)):
            for key, name in (('map', 'AP'), ('map_50', 'AP50'), ('map_75', 'AP75')):
                value = float(r[key])
                if n_pred == 0 and n_gt > 0:
                    value = 0.0  # nothing detected: AP is 0 (torchmetrics' segm path reports -1, "no data")
                out[f'{prefix}_{name}'] = value
        return out
