"""The probe's dense tasks, one small class each: the target a split provides, the head trained on the frozen
features, its loss and its metric; ``run_probe`` trains and scores them in the order of :data:`DENSE_TASKS`.

They are not fine-tuning's tasks (``finetune/tasks/``), though three share names: a probe head reads features
cached once from a frozen backbone ([N, blocks, C, h, w]) and a whole split's targets as tensors in memory, and
normals exist only here; a fine-tuning task builds a full model around a live backbone, reads transformed batches
from a dataset and reduces its metrics across DDP ranks. What both need is shared one level down: the metrics
(``training/metrics.py``, wrapped in ``probe/metrics.py``) and the depth loss (``training/depth_loss.py``).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..depth_loss import silog_loss
from .data import ProbeSplit
from .heads import DenseProbe, DepthProbe, LinearProbe, angular_loss
from .metrics import NormalMetrics, ProbeDepthMetrics, ProbeSegmentationMetrics
from .normals import normals_from_depth

Targets = Tuple[torch.Tensor, ...]


class ProbeTask:
    """One dense probe: ``targets(split)`` are what ``loss(prediction, *targets)`` compares a head's output with."""
    name = ''

    def missing(self, train: ProbeSplit, test: ProbeSplit) -> Optional[str]:
        """Why the task cannot be probed on this source (None: it can)."""
        return None

    def targets(self, split: ProbeSplit) -> Targets:
        raise NotImplementedError

    def head(self, n_blocks: int, channels: int, cfg, train: ProbeSplit) -> nn.Module:
        raise NotImplementedError

    def loss(self, pred: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        """What the head's output [N, C, H, W] predicts."""
        return out

    def score(self, pred: torch.Tensor, targets: Targets, cfg, train: ProbeSplit) -> Dict[str, object]:
        raise NotImplementedError

    def panel(self, pred: torch.Tensor, targets: Targets, shown: Sequence[int], train: ProbeSplit) -> tuple:
        """The frames ``shown`` as ``probe/figures.py`` draws this task."""
        raise NotImplementedError


class DepthProbeTask(ProbeTask):
    """Metric depth through a sigmoid in (0, ``data.max_depth``], the scale-invariant log loss (scale 1)."""
    name = 'depth'

    def targets(self, split: ProbeSplit) -> Targets:
        return (split.depth,)

    def head(self, n_blocks: int, channels: int, cfg, train: ProbeSplit) -> nn.Module:
        init = float(train.depth[train.depth > 0].median()) if (train.depth > 0).any() else 3.0
        return DepthProbe(n_blocks, channels, cfg.train.hidden, cfg.data.max_depth, init)

    def loss(self, pred: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return silog_loss(pred, depth)

    def score(self, pred: torch.Tensor, targets: Targets, cfg, train: ProbeSplit) -> Dict[str, object]:
        metrics = ProbeDepthMetrics(max_depth=cfg.data.max_depth)
        metrics.update(pred, targets[0])
        return metrics.compute()

    def panel(self, pred: torch.Tensor, targets: Targets, shown: Sequence[int], train: ProbeSplit) -> tuple:
        return targets[0][shown, 0], pred[shown, 0]


class NormalsProbeTask(ProbeTask):
    """Surface normals (ground truth from depth + intrinsics), the mean angle as the loss."""
    name = 'normals'

    def missing(self, train: ProbeSplit, test: ProbeSplit) -> Optional[str]:
        if train.intrinsics is None or test.intrinsics is None:
            return 'the source has no intrinsics (normals are computed from depth + intrinsics)'
        return None

    def targets(self, split: ProbeSplit) -> Targets:
        return ground_truth_normals(split)

    def head(self, n_blocks: int, channels: int, cfg, train: ProbeSplit) -> nn.Module:
        return DenseProbe(n_blocks, channels, 3, cfg.train.hidden)

    def loss(self, pred: torch.Tensor, normals: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return angular_loss(pred, normals, valid)

    def score(self, pred: torch.Tensor, targets: Targets, cfg, train: ProbeSplit) -> Dict[str, object]:
        metrics = NormalMetrics()
        metrics.update(pred, *targets)
        return metrics.compute()

    def panel(self, pred: torch.Tensor, targets: Targets, shown: Sequence[int], train: ProbeSplit) -> tuple:
        normals, valid = targets
        return normals[shown], F.normalize(pred[shown], dim=1), valid[shown]


class SemsegProbeTask(ProbeTask):
    """A linear probe over the training split's classes, cross-entropy with 255 ignored."""
    name = 'semseg'

    def missing(self, train: ProbeSplit, test: ProbeSplit) -> Optional[str]:
        if train.semantic is None or test.semantic is None or not train.class_names:
            return 'the source has no semantic labels (or no class list: classes.json)'
        return None

    def targets(self, split: ProbeSplit) -> Targets:
        return (split.semantic,)

    def head(self, n_blocks: int, channels: int, cfg, train: ProbeSplit) -> nn.Module:
        return LinearProbe(n_blocks * channels, len(train.class_names))

    def loss(self, pred: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(pred, semantic, ignore_index=255)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        return out.argmax(1)

    def score(self, pred: torch.Tensor, targets: Targets, cfg, train: ProbeSplit) -> Dict[str, object]:
        metrics = ProbeSegmentationMetrics(train.class_names)
        metrics.update(pred, targets[0])
        return metrics.compute()

    def panel(self, pred: torch.Tensor, targets: Targets, shown: Sequence[int], train: ProbeSplit) -> tuple:
        return targets[0][shown], pred[shown], train.class_names


# in this order: each head's initialisation draws from the seeded global RNG
DENSE_TASKS = (DepthProbeTask(), NormalsProbeTask(), SemsegProbeTask())


def ground_truth_normals(split: ProbeSplit) -> Targets:
    """(unit normals [N, 3, H, W], valid [N, H, W]), from the noise-free depth where the source has it (synthetic
    rooms)."""
    depth = split.depth_clean if split.depth_clean is not None else split.depth
    pairs = [normals_from_depth(d[0], K) for d, K in zip(depth, split.intrinsics)]
    return torch.stack([n for n, _ in pairs]), torch.stack([v for _, v in pairs])
