"""The scale-invariant log loss of the depth heads, shared by fine-tuning (``scale=10``) and the frozen probes (1).
The pre-training loss is ``pretrain/losses.py``."""
import torch


def silog_loss(pred: torch.Tensor, target: torch.Tensor, *, lam: float = 0.85, scale: float = 1.0,
               min_depth: float = 1e-3) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al. 2014; BTS): ``scale * sqrt(mean(g^2) - lam * mean(g)^2)``, ``g = log(pred)
    - log(target)`` over pixels whose target exceeds ``min_depth`` (predictions clamped to it). ``lam < 1`` keeps
    some scale sensitivity; BTS-style fine-tuning uses ``scale=10``, the frozen probes 1. No valid pixel: 0."""
    valid = target > min_depth
    if not valid.any():
        return pred.sum() * 0.0
    g = torch.log(pred.float()[valid].clamp_min(min_depth)) - torch.log(target.float()[valid])
    return torch.sqrt((g ** 2).mean() - lam * g.mean() ** 2 + 1e-8) * scale
