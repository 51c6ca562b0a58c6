"""Ground-truth surface normals from depth + intrinsics.

Method: back-project every pixel to a camera-frame point P(u, v); the normal is the cross product of the central
differences P(u+1, v) - P(u-1, v) and P(u, v+1) - P(u, v-1) (the tangent plane through the four neighbours),
normalised and oriented towards the camera (n . P < 0). A pixel is valid where it and its four neighbours have
depth and no neighbour jumps by more than ``max_jump`` of the centre depth (a depth edge is not a surface).
For any plane this is exact: the differences are two vectors in the plane. Frame: camera (x right, y down, z
forward), as Probe3D's NYU normals.
"""
from typing import Tuple

import torch

from .geometry import back_project


def normals_from_depth(depth: torch.Tensor, K: torch.Tensor, max_jump: float = 0.05
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """depth [H, W] (0 invalid), K [3, 3] -> (unit normals [3, H, W] float32, valid [H, W] bool)."""
    if depth.dim() == 3:
        depth = depth[0]
    h, w = depth.shape
    normals = torch.zeros(3, h, w)
    valid = torch.zeros(h, w, dtype=torch.bool)
    if h < 3 or w < 3:
        return normals, valid
    P = back_project(depth, K)
    z = depth.double()
    du = P[1:-1, 2:] - P[1:-1, :-2]
    dv = P[2:, 1:-1] - P[:-2, 1:-1]
    n = torch.cross(du, dv, dim=-1)
    centre = P[1:-1, 1:-1]
    n = torch.where(((n * centre).sum(-1, keepdim=True) > 0), -n, n)
    norm = n.norm(dim=-1, keepdim=True)
    zc = z[1:-1, 1:-1]
    neighbours = torch.stack([z[1:-1, 2:], z[1:-1, :-2], z[2:, 1:-1], z[:-2, 1:-1]])
    ok = (zc > 0) & (neighbours > 0).all(0) & ((neighbours - zc).abs() <= max_jump * zc).all(0) & (norm[..., 0] > 0)
    normals[:, 1:-1, 1:-1] = (n / norm.clamp_min(1e-12)).permute(2, 0, 1).float()
    valid[1:-1, 1:-1] = ok
    normals[:, ~valid] = 0
    return normals, valid
