"""PNG figures of the probes: predictions next to ground truth, and a PCA picture of the frozen features."""
from typing import Any, Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..visualize import _to_image, colour_labels, label_axes, label_palette, save_figure, show_row


def _normals_rgb(n: torch.Tensor, valid=None) -> np.ndarray:
    img = ((n.float() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
    if valid is not None:
        img[~valid.numpy()] = 0
    return img


def save_probe_figure(path, rgb: torch.Tensor, panels: Dict[str, Any], mean: Sequence[float], std: Sequence[float],
                      title: str = ''):
    """One row per test frame: RGB, then ground truth | prediction for each task probed (depth, normals, semseg)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = ['RGB']
    for task in ('depth', 'normals', 'semseg'):
        if task in panels:
            cols += [f'{task} truth', f'{task} probe']
    n = len(rgb)
    fig, axes = plt.subplots(n, len(cols), figsize=(2.6 * len(cols), 2.2 * n + 0.5), squeeze=False)
    cmap = matplotlib.colormaps['turbo'].with_extremes(bad='black')
    for i in range(n):
        images = [dict(X=_to_image(rgb[i], mean, std))]
        if 'depth' in panels:
            g, p = panels['depth'][0][i].numpy(), panels['depth'][1][i].numpy()
            valid = g > 0
            lo, hi = np.percentile(g[valid], [2, 98]) if valid.any() else (0.0, 1.0)
            images += [dict(X=np.where(valid, g, np.nan), cmap=cmap, vmin=lo, vmax=hi),
                       dict(X=p, cmap=cmap, vmin=lo, vmax=hi)]
        if 'normals' in panels:
            g, p, v = panels['normals']
            images += [dict(X=_normals_rgb(g[i], v[i])), dict(X=_normals_rgb(p[i]))]
        if 'semseg' in panels:
            g, p, names = panels['semseg']
            pal = label_palette(len(names))
            images += [dict(X=colour_labels(g[i].numpy(), pal)), dict(X=colour_labels(p[i].numpy(), pal))]
        show_row(axes, i, images, cols)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def pca_rgb(features: torch.Tensor, size) -> torch.Tensor:
    """[N, C, h, w] features -> [N, 3, H, W] in [0, 1]: the first 3 principal components over all pixels of the
    N frames (one basis, so colours compare across frames), each min-max scaled, upsampled to ``size``."""
    n, c, h, w = features.shape
    x = features.float().permute(0, 2, 3, 1).reshape(-1, c)
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    pcs = x @ v[:3].T
    lo, hi = pcs.quantile(0.01, dim=0), pcs.quantile(0.99, dim=0)
    pcs = ((pcs - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    img = pcs.reshape(n, h, w, 3).permute(0, 3, 1, 2)
    return F.interpolate(img, size=size, mode='nearest')


def save_pca_figure(path, rgb: torch.Tensor, features: torch.Tensor, mean, std, title: str = ''):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    pcs = pca_rgb(features, rgb.shape[-2:])
    n = len(rgb)
    fig, axes = plt.subplots(n, 2, figsize=(5.2, 2.2 * n + 0.5), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(_to_image(rgb[i], mean, std))
        axes[i, 1].imshow(pcs[i].permute(1, 2, 0).numpy())
        label_axes(axes, i, 0, 'RGB')
        label_axes(axes, i, 1, 'features: PCs 1-3 as RGB')
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
