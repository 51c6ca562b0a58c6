"""Random patch masking, MAE-style: per sample, keep the patches with the smallest noise values.

Masks are drawn from a noise tensor so the data pipeline can supply it (deterministic per sample, which makes
resumed and multi-process runs reproduce a single-process run); without one, ``torch.rand`` is used.
"""
from typing import NamedTuple, Optional

import torch


class PatchMask(NamedTuple):
    ids_keep: torch.Tensor  # [B, K] indices of visible patches, ascending (keeps raster order for locality)
    mask: torch.Tensor      # [B, N] bool, True = masked (hidden from the model)


def num_visible(num_patches: int, mask_ratio: float) -> int:
    """Visible patches for a ratio; round (not floor) so 300 x (1 - 0.8) is 60, and keep at least one."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f'mask ratio must be in [0, 1), got {mask_ratio}')
    return max(1, int(round(num_patches * (1.0 - mask_ratio))))


def random_patch_mask(
        batch_size: int,
        num_patches: int,
        mask_ratio: float,
        *,
        noise: Optional[torch.Tensor] = None,
        device: Optional[torch.device] = None,
) -> PatchMask:
    """Independent uniform random mask per sample, exactly ``num_visible`` patches kept in every sample."""
    keep = num_visible(num_patches, mask_ratio)
    if noise is None:
        noise = torch.rand(batch_size, num_patches, device=device)
    if noise.shape != (batch_size, num_patches):
        raise ValueError(f'mask noise must be [{batch_size}, {num_patches}], got {list(noise.shape)}')
    ids_keep = torch.argsort(noise, dim=1)[:, :keep].sort(dim=1).values
    mask = torch.ones(batch_size, num_patches, dtype=torch.bool, device=noise.device)
    mask.scatter_(1, ids_keep, False)
    return PatchMask(ids_keep, mask)


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[B, N, C] tokens, [B, K] indices -> [B, K, C] (one batched gather, no Python loop)."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
