"""Depth reconstruction errors without an oracle.

A standardised prediction only becomes metres with a shift and scale. Taking them from the ground-truth frame
(what ``denormalize_depth`` with the target's statistics does) hands the model the hidden depth's mean and std:
an oracle. Here the *unaligned* prediction is de-normalised only with what the model is given (the visible depth
pixels' mean and std; nothing for ``metric``/``log``), and the *aligned* one is fitted to the ground truth by
per-frame least squares (scale and shift), reported under its own name, like the scale-and-shift-invariant depth
metrics of MiDaS and Probe3D.
"""
from typing import Dict, Optional

import torch

from .depth_targets import standardize_stats, valid_depth
from .patches import upsample_patch_mask


def depth_from_visible(pred_norm: torch.Tensor, depth: torch.Tensor, visible_pixels: torch.Tensor, mode: str, *,
                       metric_scale: float = 10.0) -> torch.Tensor:
    """Metres from a normalised prediction [B, 1, H, W], using only the visible depth pixels (bool, same shape).

    ``standardize`` and ``patch``: shift and scale are the mean and std of the visible valid pixels of each frame;
    a frame with none has no known scale and comes back NaN. ``metric``: times ``metric_scale``; ``log``: exp.
    """
    pred = pred_norm.float()
    if mode == 'metric':
        return pred * metric_scale
    if mode == 'log':
        return torch.exp(pred)
    depth = depth.float()
    mean, std, count = standardize_stats(torch.where(valid_depth(depth), depth, torch.zeros_like(depth)),
                                         valid_depth(depth) & visible_pixels)
    return torch.where(count > 0, pred * std + mean, torch.full_like(pred, float('nan')))


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Per frame, ``a * pred + b`` with (a, b) the least-squares fit of ``pred`` to ``target`` over ``pixels``."""
    pred, target = pred.float(), target.float()
    w = pixels.to(pred.dtype)
    pred0 = torch.where(pixels, pred, torch.zeros_like(pred))
    target0 = torch.where(pixels, target, torch.zeros_like(target))
    dims = (1, 2, 3)
    n = w.sum(dims, keepdim=True).clamp_min(1)
    mp, mt = pred0.sum(dims, keepdim=True) / n, target0.sum(dims, keepdim=True) / n
    cov = ((pred0 - mp) * (target0 - mt) * w).sum(dims, keepdim=True)
    var = (((pred0 - mp) * w) ** 2).sum(dims, keepdim=True)
    a = cov / var.clamp_min(1e-12)
    return a * (pred - mp) + mt


def _frame_errors(pred: torch.Tensor, target: torch.Tensor, pixels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Per-frame AbsRel and RMSE over ``pixels``; NaN for a frame with no pixel or a NaN prediction."""
    n = pixels.sum((1, 2, 3)).float()
    safe_t = torch.where(pixels, target, torch.ones_like(target))
    diff = torch.where(pixels, pred - target, torch.zeros_like(pred))
    nan = torch.full_like(n, float('nan'))
    abs_rel = torch.where(n > 0, (diff.abs() / safe_t).sum((1, 2, 3)) / n.clamp_min(1), nan)
    rmse = torch.where(n > 0, ((diff ** 2).sum((1, 2, 3)) / n.clamp_min(1)).sqrt(), nan)
    return {'abs_rel': abs_rel, 'rmse': rmse}


def reconstruction_errors(pred_norm: torch.Tensor, depth: torch.Tensor, depth_mask: torch.Tensor, *, mode: str,
                          patch_size: int, metric_scale: float = 10.0) -> Dict[str, torch.Tensor]:
    """Per-frame errors of a pre-trainer's dense depth against the true depth (metres).

    Keys ``{abs_rel,rmse}_{hidden,all}_{unaligned,aligned}``: over the depth-hidden patches or every valid pixel;
    unaligned = :func:`depth_from_visible`, aligned = least-squares scale and shift fitted on the evaluated pixels.
    """
    depth = depth.float()
    grid = (depth.shape[-2] // patch_size, depth.shape[-1] // patch_size)
    hidden = upsample_patch_mask(depth_mask, patch_size, grid).bool()
    valid = valid_depth(depth)
    target = torch.where(valid, depth, torch.ones_like(depth))
    unaligned = depth_from_visible(pred_norm, depth, ~hidden, mode, metric_scale=metric_scale)
    affine = torch.exp(pred_norm.float()) if mode == 'log' else pred_norm.float()  # affine in metres
    out = {}
    for region, pixels in (('hidden', valid & hidden), ('all', valid)):
        for kind, pred in (('unaligned', unaligned), ('aligned', align_scale_shift(affine, target, pixels))):
            for metric, value in _frame_errors(pred, target, pixels).items():
                out[f'{metric}_{region}_{kind}'] = value
    return out


@torch.no_grad()
def depth_reconstruction_errors(model, rgb: torch.Tensor, depth: torch.Tensor, *,
                                mask_noise: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """A :class:`~mask3d.training.pretrain.pretrainer.Mask3DPretrainer`'s reconstruction errors on one batch,
    averaged over the frames where each is defined (eval mode; the model's own masks, fixed by ``mask_noise`` when
    given)."""
    was_training = model.training
    model.eval()
    try:
        out = model(rgb, depth, mask_noise=mask_noise)
    finally:
        model.train(was_training)
    cfg = model.cfg
    errors = reconstruction_errors(out['pred_depth_normalized'], depth, out['depth_mask'], mode=cfg.depth_norm,
                                   patch_size=model.patch_size, metric_scale=cfg.metric_depth_scale)
    return {k: float(v.nanmean()) for k, v in errors.items()}
