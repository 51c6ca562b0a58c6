"""Monocular depth in metres: the scale-invariant log loss (Eigen et al. 2014, BTS's lambda=0.85, times 10) on
valid pixels, scored by ``DepthMetrics`` (AbsRel, RMSE, delta < 1.25^k; optionally in the Eigen crop); the head
is ``mask3d.heads``' DPT depth head, its output range ``model.max_depth``."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ....heads import build_depth_model
from ...depth_loss import silog_loss
from ...metrics import DepthMetrics
from .base import DenseTask


class DepthEstimation(DenseTask):
    name = 'depth'
    target_keys = ('depth',)
    full_target = 'full_depth'
    primary_metric, higher_is_better = 'abs_rel', False
    figure_columns = DenseTask.figure_columns + ('|error| (m)',)

    def build_model(self, backbone: nn.Module, cfg) -> nn.Module:
        return build_depth_model(backbone, max_depth=cfg.model.max_depth, channels=cfg.model.head_channels)

    def loss(self, model: nn.Module, batch: Dict[str, object], device, cfg) -> Dict[str, torch.Tensor]:
        pred = model(batch['rgb'])
        return {'loss': silog_loss(pred, batch['depth'].to(device), scale=10.0, min_depth=cfg.eval.min_depth)}

    def build_metrics(self, cfg) -> DepthMetrics:
        e = cfg.eval
        return DepthMetrics(min_depth=e.min_depth, max_depth=e.max_depth, eigen_crop=e.eigen_crop)

    def prediction_map(self, out: torch.Tensor) -> torch.Tensor:
        return out[0, 0]

    def target_map(self, batch: Dict[str, object], i: int) -> torch.Tensor:
        return batch['depth'][i, 0]

    def keep_full_target(self, frame: Dict[str, object]) -> Dict[str, torch.Tensor]:
        depth = np.asarray(frame['depth'])
        return {self.full_target: torch.as_tensor(np.asarray(depth, np.float32)).reshape(depth.shape[-2:])}

    def plausible_max_depth(self, cfg) -> Optional[float]:
        """The evaluation range: depth beyond ``eval.max_depth`` is not scored, so it points at a wrong unit."""
        return cfg.eval.max_depth

    def figure_panels(self, image: np.ndarray, gt: torch.Tensor, pred: torch.Tensor, class_names: Sequence[str],
                      palette: np.ndarray) -> List[dict]:
        """Ground truth and prediction on one colour scale (missing depth black), then the absolute error."""
        import matplotlib
        g, p = gt.numpy(), pred.numpy()
        valid = g > 0
        vmin, vmax = np.percentile(g[valid], [2, 98]) if valid.any() else (0.0, 1.0)
        cmap = matplotlib.colormaps['turbo'].with_extremes(bad='black')
        err = np.where(valid, np.abs(p - g), np.nan)
        return [dict(X=np.where(valid, g, np.nan), cmap=cmap, vmin=vmin, vmax=vmax),
                dict(X=p, cmap=cmap, vmin=vmin, vmax=vmax),
                dict(X=err, cmap='magma', vmin=0, vmax=max(float(np.nanpercentile(err, 98)), 1e-3)
                     if valid.any() else 1)]
