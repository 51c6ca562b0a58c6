"""Zero-shot dense correspondence: nearest-neighbour feature matches between two posed views (Probe3D, Sec. 3.3).

Ground truth: each pixel of view A with depth is back-projected, moved to view B with the poses
(``T_B_from_A = inv(pose_B) @ pose_A``, poses camera-to-world) and projected with B's intrinsics. It counts only
where it lands inside B, in front of the camera, and B's own depth at that pixel agrees with the projected depth
within ``tolerance`` (relative): otherwise the point is occluded in B or B has no measurement there.

Prediction: the features of both views, L2-normalised per block and concatenated, are sampled bilinearly at the
query pixel centres of A and on a grid of candidate pixels of B (every ``stride`` pixels); the match is the
candidate of highest cosine similarity. Recall@t = fraction of queries whose match lies within t pixels of the
ground truth.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .geometry import back_project, pixel_grid, project, transform


def ground_truth_matches(depth_a: torch.Tensor, K_a: torch.Tensor, pose_a: torch.Tensor, depth_b: torch.Tensor,
                         K_b: torch.Tensor, pose_b: torch.Tensor, tolerance: float = 0.05
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(uv_a [M, 2], uv_b [M, 2]) pixel-centre coordinates of the pixels of A visible in B and where they land."""
    depth_a, depth_b = depth_a.reshape(depth_a.shape[-2:]), depth_b.reshape(depth_b.shape[-2:])
    h, w = depth_a.shape
    hb, wb = depth_b.shape
    valid = depth_a > 0
    points_b = transform(back_project(depth_a, K_a)[valid], torch.linalg.inv(pose_b.double()) @ pose_a.double())
    uv_b = project(points_b, K_b)
    col, row = uv_b[:, 0].floor().long(), uv_b[:, 1].floor().long()
    inside = (points_b[:, 2] > 1e-6) & (col >= 0) & (col < wb) & (row >= 0) & (row < hb)
    seen = torch.zeros_like(inside)
    z_b = depth_b.double()[row.clamp(0, hb - 1), col.clamp(0, wb - 1)]
    seen[inside] = (z_b[inside] > 0) & ((z_b[inside] - points_b[inside, 2]).abs() <= tolerance * z_b[inside])
    uv_a = pixel_grid(h, w, depth_a.device)[valid]
    return uv_a[seen].float(), uv_b[seen].float()


def _sample(features: torch.Tensor, uv: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """features [C, h, w] covering an image of ``size`` (H, W); uv [M, 2] pixel-centre coords -> [M, C]."""
    H, W = size
    grid = torch.stack([uv[:, 0] / W * 2 - 1, uv[:, 1] / H * 2 - 1], -1).view(1, 1, -1, 2)
    return F.grid_sample(features[None].float(), grid.to(features.device, torch.float32), mode='bilinear',
                         padding_mode='border', align_corners=False)[0, :, 0].T


def normalise_blocks(features: torch.Tensor) -> torch.Tensor:
    """[n_blocks, C, h, w] or [C, h, w] -> [n_blocks * C, h, w], each block unit-norm per pixel (equal say)."""
    if features.dim() == 3:
        features = features[None]
    return F.normalize(features.float(), dim=1).flatten(0, 1)


def match(features_a: torch.Tensor, features_b: torch.Tensor, uv_a: torch.Tensor, size: Tuple[int, int],
          stride: int = 4) -> torch.Tensor:
    """Nearest-neighbour (cosine) matches in B of the query pixels uv_a of A -> predicted uv_b [M, 2]."""
    H, W = size
    fa = F.normalize(_sample(features_a, uv_a, size), dim=1)
    cand = pixel_grid(H, W)[stride // 2::stride, stride // 2::stride].reshape(-1, 2).float()
    fb = F.normalize(_sample(features_b, cand, size), dim=1)
    best = torch.cat([(chunk @ fb.T).argmax(1) for chunk in fa.split(4096)])
    return cand[best]


def correspondence_recall(errors: torch.Tensor, thresholds: Sequence[float]) -> Dict[str, float]:
    """``recall@{t}px`` for each threshold and the median error (pixels)."""
    out = {f'recall_{t:g}px': float((errors <= t).float().mean()) if errors.numel() else float('nan')
           for t in thresholds}
    out['median_error_px'] = float(errors.median()) if errors.numel() else float('nan')
    return out


def pair_errors(features_a: torch.Tensor, features_b: torch.Tensor, frame_a: Dict[str, torch.Tensor],
                frame_b: Dict[str, torch.Tensor], *, max_queries: int = 1000, stride: int = 4,
                tolerance: float = 0.05, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Pixel errors of the matches of up to ``max_queries`` ground-truth correspondences of one pair."""
    uv_a, uv_b = ground_truth_matches(frame_a['depth'], frame_a['intrinsics'], frame_a['pose'], frame_b['depth'],
                                      frame_b['intrinsics'], frame_b['pose'], tolerance)
    if len(uv_a) > max_queries:
        keep = torch.randperm(len(uv_a), generator=generator)[:max_queries]
        uv_a, uv_b = uv_a[keep], uv_b[keep]
    if not len(uv_a):
        return torch.zeros(0)
    size = tuple(frame_a['depth'].shape[-2:])
    pred = match(normalise_blocks(features_a), normalise_blocks(features_b), uv_a, size, stride)
    return (pred - uv_b).norm(dim=1)
