"""Patchify / unpatchify for any channel count and any H x W that the patch size divides."""
import torch


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/p)*(W/p), p*p*C], patches in row-major order, pixels (py, px, c) inside."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple, channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify` for a ``grid`` of (H/p, W/p) patches."""
    b = patches.shape[0]
    gh, gw = grid
    p = patch_size
    x = patches.reshape(b, gh, gw, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, gh * p, gw * p)


def upsample_patch_mask(mask: torch.Tensor, patch_size: int, grid: tuple) -> torch.Tensor:
    """[B, N] per-patch values -> [B, 1, H, W] per-pixel values."""
    b = mask.shape[0]
    m = mask.reshape(b, 1, grid[0], 1, grid[1], 1)
    return m.expand(b, 1, grid[0], patch_size, grid[1], patch_size).reshape(
        b, 1, grid[0] * patch_size, grid[1] * patch_size)
