"""The pre-training figure: what the model sees (masked RGB, masked depth) and what it predicts, per sample."""
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..visualize import _to_image, label_axes, save_figure
from .patches import upsample_patch_mask


def _aligned(pred: np.ndarray, true: np.ndarray, valid: np.ndarray) -> np.ndarray:
    a, b = np.polyfit(pred[valid], true[valid], 1)
    return a * pred + b


def save_reconstruction_figure(path: Union[str, os.PathLike], rgb: torch.Tensor, depth: torch.Tensor,
                               pred_depth: torch.Tensor, rgb_mask: torch.Tensor, depth_mask: torch.Tensor, *,
                               patch_size: int, mean: Sequence[float], std: Sequence[float],
                               max_samples: int = 4, title: str = '',
                               pred_depth_normalized: Optional[torch.Tensor] = None) -> Path:
    """One row per sample: RGB | masked RGB | masked depth input | predicted depth | true depth | |error|.

    Depth panels share one colour scale per row; invalid (0) depth is drawn black; masked patches grey.
    ``pred_depth`` is in metres from the visible depth only; a sample with no visible depth (NaN) is drawn from
    ``pred_depth_normalized`` fitted to the true depth, and labelled so.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    n = min(max_samples, rgb.shape[0])
    grid = (rgb.shape[-2] // patch_size, rgb.shape[-1] // patch_size)
    rgb_hidden = upsample_patch_mask(rgb_mask[:n].float(), patch_size, grid)[:, 0].cpu().numpy() > 0
    depth_hidden = upsample_patch_mask(depth_mask[:n].float(), patch_size, grid)[:, 0].cpu().numpy() > 0
    cmap = matplotlib.colormaps['turbo'].with_extremes(bad='black')
    err_cmap = matplotlib.colormaps['magma'].with_extremes(bad='black')
    cols = ['RGB input', 'masked RGB', 'masked depth input', 'predicted depth', 'true depth', '|error| (m)']
    fig, axes = plt.subplots(n, 6, figsize=(18, 2.6 * n + 0.4), squeeze=False)
    for i in range(n):
        img = _to_image(rgb[i], mean, std)
        masked = img.copy()
        masked[rgb_hidden[i]] = 0.5
        true = depth[i, 0].float().cpu().numpy()
        valid = true > 0
        pred = pred_depth[i, 0].float().cpu().numpy()
        if pred_depth_normalized is not None and not np.isfinite(pred).any() and valid.any():
            # no depth visible, so no scale to de-normalise with: show it fitted (scale and shift) to the truth
            pred = _aligned(pred_depth_normalized[i, 0].float().cpu().numpy(), true, valid)
            axes[i, 3].set_ylabel('aligned: no depth visible', fontsize=8)
        vmin, vmax = (np.percentile(true[valid], [2, 98]) if valid.any() else (0.0, 1.0))
        d_in = np.where(valid, true, np.nan)
        d_in_rgb = cmap((np.clip(d_in, vmin, vmax) - vmin) / max(vmax - vmin, 1e-6))
        d_in_rgb[~valid] = (0, 0, 0, 1)
        d_in_rgb[depth_hidden[i]] = (0.5, 0.5, 0.5, 1)
        panels = [img, masked, d_in_rgb[..., :3]]
        for j, panel in enumerate(panels):
            axes[i, j].imshow(panel)
        axes[i, 3].imshow(pred, cmap=cmap, vmin=vmin, vmax=vmax)
        axes[i, 4].imshow(np.where(valid, true, np.nan), cmap=cmap, vmin=vmin, vmax=vmax)
        err = np.where(valid, np.abs(pred - true), np.nan)
        im = axes[i, 5].imshow(err, cmap=err_cmap, vmin=0, vmax=max(np.nanpercentile(err, 98), 1e-3)
                               if valid.any() else 1)
        fig.colorbar(im, ax=axes[i, 5], fraction=0.046)
        for j in range(6):
            label_axes(axes, i, j, cols[j])
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
