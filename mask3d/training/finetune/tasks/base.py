"""What every fine-tuning task provides (:class:`Task`), and what the two dense tasks share (:class:`DenseTask`)."""
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ....errors import ConfigError
from ...visualize import label_palette, save_figure, show_row


class Task:
    """One fine-tuning task; a subclass sets the attributes and implements the methods that raise here.

    ``target_keys``: the frame keys the task trains on (a frame without them is refused; only they, ``rgb`` and
    ``intrinsics`` go through the transform). ``full_target``: the batch key of the untransformed ground truth kept
    for scoring at the dataset's own size (None: scored at the training size). ``primary_metric`` and
    ``higher_is_better``: the number runs are compared by. ``class_word``: what ``model.num_classes`` counts for
    this task (None: the task has no classes, so no count is checked). ``figure_columns``: the prediction figure's.
    """
    name: str = ''
    target_keys: Tuple[str, ...] = ()
    full_target: Optional[str] = None
    primary_metric: str = ''
    higher_is_better: bool = True
    class_word: Optional[str] = None
    figure_columns: Tuple[str, ...] = ('RGB', 'ground truth', 'prediction')

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r})'

    @property
    def has_classes(self) -> bool:
        """Whether ``model.num_classes`` counts this task's classes (checked against the dataset and checkpoint)."""
        return self.class_word is not None

    def build_model(self, backbone: nn.Module, cfg) -> nn.Module:
        """The task model around ``backbone`` (a ``mask3d.heads.build_backbone`` multi-block ViT)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Dict[str, object], device, cfg) -> Dict[str, torch.Tensor]:
        """{'loss': total, ...parts} for one batch already holding ``rgb`` on ``device``."""
        raise NotImplementedError

    def build_metrics(self, cfg):
        """A fresh metrics object (``update``, ``compute``; reduced across DDP ranks in ``compute``)."""
        raise NotImplementedError

    def predict(self, model: nn.Module, batch: Dict[str, object], full_resolution: bool) -> List[object]:
        """Per-image predictions on the CPU, at the ground truth's own size with ``full_resolution``."""
        raise NotImplementedError

    def ground_truth(self, batch: Dict[str, object], full_resolution: bool) -> List[object]:
        """Per-image ground truth, matching :meth:`predict`."""
        raise NotImplementedError

    def update_metrics(self, metrics, preds: List[object], gts: List[object]) -> None:
        for p, g in zip(preds, gts):
            metrics.update(p[None], g[None])

    def figure_panels(self, image: np.ndarray, gt, pred, class_names: Sequence[str], palette: np.ndarray
                      ) -> List[dict]:
        """The ``imshow`` arguments of one figure row after the RGB panel."""
        raise NotImplementedError

    def min_batch_size(self, cfg) -> int:
        """The fewest images per batch the task's model trains on (a config rule)."""
        return 1

    def wrap_frames(self, frames, source: str, cfg):
        """The dataset's frames as the task reads them (``source``: the dataset's canonical name)."""
        return frames

    def check_classes(self, frames, source: str, cfg):
        """``model.num_classes`` against the dataset's class list; the reader then checks each label id it reads."""
        names = getattr(frames, 'class_names', None)
        if not self.has_classes:
            return frames
        if names is not None and len(names) != cfg.model.num_classes:
            raise ConfigError(f'model.num_classes={cfg.model.num_classes} but {source} has {len(names)} '
                              f'{self.class_word} for {self.name} ({", ".join(names)}); '
                              f'set model.num_classes={len(names)}')
        if hasattr(frames, 'num_classes'):
            frames.num_classes = cfg.model.num_classes
        return frames

    def keep_full_target(self, frame: Dict[str, object]) -> Dict[str, torch.Tensor]:
        """The untransformed ground truth of a frame, under :attr:`full_target` (nothing when there is none)."""
        return {}

    def plausible_max_depth(self, cfg) -> Optional[float]:
        """The largest depth (metres) the data's depth unit check expects (None: its default)."""
        return None

    def finish_result(self, result: Dict[str, object], frames, cfg) -> Dict[str, object]:
        """The computed metrics as the run records them."""
        return result

    def save_prediction_figure(self, path: Union[str, os.PathLike], images: List[np.ndarray], gts: List[object],
                               preds: List[object], class_names: Sequence[str] = (), title: str = ''):
        """One row per frame: RGB | ground truth | prediction (and what :attr:`figure_columns` adds)."""
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        n, cols = len(images), self.figure_columns
        fig, axes = plt.subplots(n, len(cols), figsize=(4 * len(cols), 3 * n + 0.4), squeeze=False)
        palette = label_palette(max(len(class_names), 1))
        for i in range(n):
            panels = [dict(X=images[i])] + self.figure_panels(images[i], gts[i], preds[i], class_names, palette)
            show_row(axes, i, panels, cols)
        if title:
            fig.suptitle(title)
        return save_figure(fig, path)


class DenseTask(Task):
    """A task predicting one map per image with a ``mask3d.heads.DenseModel`` (semseg, depth): predictions and
    ground truth can be scored at the dataset's own size (``full_target``)."""

    def prediction_map(self, out: torch.Tensor) -> torch.Tensor:
        """The map one image's model output [1, C, H, W] stands for."""
        raise NotImplementedError

    def target_map(self, batch: Dict[str, object], i: int) -> torch.Tensor:
        """Image ``i``'s ground truth at the training size."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Dict[str, object], full_resolution: bool) -> List[torch.Tensor]:
        out = model(batch['rgb']).float()
        preds = []
        for i in range(out.shape[0]):
            o = out[i:i + 1]
            if full_resolution and self.full_target in batch:
                o = F.interpolate(o, size=tuple(batch[self.full_target][i].shape[-2:]), mode='bilinear',
                                  align_corners=False)
            preds.append(self.prediction_map(o).cpu())
        return preds

    def ground_truth(self, batch: Dict[str, object], full_resolution: bool) -> List[torch.Tensor]:
        full = full_resolution and self.full_target in batch
        return [(batch[self.full_target][i] if full else self.target_map(batch, i)).cpu()
                for i in range(len(batch['rgb']))]
