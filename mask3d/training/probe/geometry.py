"""Camera geometry shared by the normal and correspondence probes: pixel centres, back-projection, rigid motion.

Pixel (u, v) covers [u, u+1) x [v, v+1); its ray goes through its centre (u + 0.5, v + 0.5), the convention of
the synthetic renderer and of ``JointTransform``'s intrinsics. Depth is z-depth in metres, 0 = invalid.
"""
import torch


def pixel_grid(height: int, width: int, device=None) -> torch.Tensor:
    """[H, W, 2] pixel-centre coordinates (u + 0.5, v + 0.5)."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float64),
                          torch.arange(width, device=device, dtype=torch.float64), indexing='ij')
    return torch.stack([u + 0.5, v + 0.5], -1)


def back_project(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """depth [H, W], K [3, 3] -> camera-frame points [H, W, 3] (x right, y down, z forward), float64."""
    h, w = depth.shape
    uv = pixel_grid(h, w, depth.device)
    K = K.double()
    z = depth.double()
    x = (uv[..., 0] - K[0, 2]) / K[0, 0] * z
    y = (uv[..., 1] - K[1, 2]) / K[1, 1] * z
    return torch.stack([x, y, z], -1)


def transform(points: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Apply a 4x4 rigid transform to points [..., 3]."""
    T = T.double()
    return points @ T[:3, :3].T + T[:3, 3]


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-frame points [..., 3] -> pixel-centre coordinates [..., 2] (u + 0.5, v + 0.5 convention)."""
    K = K.double()
    z = points[..., 2].clamp_min(1e-9)
    return torch.stack([points[..., 0] / z * K[0, 0] + K[0, 2], points[..., 1] / z * K[1, 1] + K[1, 2]], -1)
