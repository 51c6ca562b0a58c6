"""The pre-training loss: masked L1/L2 reconstruction. Only valid pixels count, and each frame is weighted equally.

Per frame: mean error over its counted pixels; batch: sum over frames / batch size. A frame with nothing to
count contributes exactly 0 (never NaN), and the batch loss equals the mean of per-rank losses under DDP
with equal per-rank batches, so gradients match a single process with the same global batch.
"""
import torch

LOSSES = ('l1', 'l2')


def masked_reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                               kind: str = 'l1') -> torch.Tensor:
    """``pred``/``target`` [B, C, H, W] (or [B, N, D]); ``weight`` broadcastable, 0 = ignore."""
    if kind not in LOSSES:
        raise ValueError(f'loss must be one of {LOSSES}, got {kind!r}')
    diff = pred.float() - target.float()
    err = diff.abs() if kind == 'l1' else diff * diff
    weight = weight.to(err.dtype).expand_as(err)
    # zero the error where weight is 0 first, so NaN/inf predictions or targets at ignored pixels cannot leak
    err = torch.where(weight > 0, err, torch.zeros_like(err))
    dims = tuple(range(1, err.dim()))
    per_frame = (err * weight).sum(dims) / weight.sum(dims).clamp_min(1e-8)
    return per_frame.sum() / err.shape[0]
