"""``rgb_reliance``: does the pretext need the encoder?

The depth loss with each sample's RGB replaced by the next sample's RGB of the same batch (same masks, same
depth input, no gradient, eval mode) divided by the loss with its own RGB. About 1.0 means the decoder completes
depth from the visible depth and positions alone and the encoder gets almost no useful gradient; clearly above
1.0 means the predictions depend on what the encoder sees. A model without a depth loss (MAE) has none.
"""
import contextlib
from typing import Optional

import torch


@torch.no_grad()
def rgb_reliance(model, rgb: torch.Tensor, depth: torch.Tensor, *, mask_noise: Optional[torch.Tensor] = None,
                 autocast=None) -> float:
    """``loss_depth(RGB rolled by one in the batch) / loss_depth(own RGB)`` for a Mask3DPretrainer (batch >= 2)."""
    b, _, h, w = rgb.shape
    if not model.has_depth_pretext:
        raise ValueError('rgb_reliance measures the depth pretext; this model trains no depth loss '
                         '(method.depth_loss_weight: 0, e.g. MAE), so it has no rgb_reliance')
    if b < 2:
        raise ValueError(f'rgb_reliance needs a batch of at least 2 samples to swap RGB between, got {b}')
    if mask_noise is None:
        n = (h // model.patch_size) * (w // model.patch_size)
        mask_noise = torch.rand(b, 2, n, device=rgb.device)
    was_training = model.training
    model.eval()
    try:
        with autocast if autocast is not None else contextlib.nullcontext():
            own = model(rgb, depth, mask_noise=mask_noise)['loss_depth'].float()
            other = model(rgb.roll(1, dims=0), depth, mask_noise=mask_noise)['loss_depth'].float()
    finally:
        model.train(was_training)
    return float(other / own.clamp_min(1e-12))
