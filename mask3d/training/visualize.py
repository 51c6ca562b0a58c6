"""What every PNG figure of mask3d shares: writing it, the grid layout, tensors as images, class-label colours.
The figures themselves live with what they show (``pretrain/figures.py``, ``finetune/tasks/``, ``probe/figures.py``,
``data/inspect.py``)."""
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from ..constants import IGNORE_INDEX


def save_figure(fig, path: Union[str, os.PathLike], dpi: int = 80) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; every PNG mask3d makes goes through here."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def label_axes(axes, row: int, col: int, title: str) -> None:
    """No ticks; the column title on the first row (the grid layout of every figure here)."""
    axes[row, col].set_xticks([])
    axes[row, col].set_yticks([])
    if row == 0:
        axes[row, col].set_title(title, fontsize=10)


def show_row(axes, row: int, panels: Sequence[dict], titles: Sequence[str]) -> None:
    """One grid row: ``imshow(**panel)`` per column, labelled like every figure here."""
    for col, kw in enumerate(panels):
        axes[row, col].imshow(**kw)
        label_axes(axes, row, col, titles[col])


def _to_image(rgb: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    img = rgb.float().cpu() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def label_palette(n: int) -> np.ndarray:
    """``n`` RGB colours (matplotlib's tab20, repeated) for class ids 0 .. n-1."""
    import matplotlib
    cmap = matplotlib.colormaps['tab20']
    return np.array([cmap(i % 20)[:3] for i in range(n)])


def colour_labels(ids: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class ids [H, W] as an RGB image of ``palette``'s colours; ``IGNORE_INDEX`` pixels black."""
    img = np.zeros((*ids.shape, 3))
    valid = ids != IGNORE_INDEX
    img[valid] = palette[np.clip(ids[valid], 0, len(palette) - 1)]
    return img
