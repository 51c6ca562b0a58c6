"""The frozen backbone and its dense features, computed once per frame and kept for every probe.

The backbone comes from the resolution fine-tuning uses too (``backbones.backbone_source``: run dirs, exports,
``local-dir:``, ``hf-hub:``, weights files, timm names), built ``features_only`` over the chosen blocks, in eval
mode, without gradients. Each block gives a [C, H/p, W/p] map; they are stored stacked as [B, n_blocks, C, h, w]
(float16 to halve the memory, as Probe3D's cached features), so heads train for hundreds of steps without another
forward.
"""
import logging
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import nn

from ...errors import ConfigError
from ...factory import create_model
from ...heads import build_backbone
from ...unwrap import vit_inside
from ..backbones import backbone_source, input_normalisation

log = logging.getLogger(__name__)


def resolve_blocks(blocks: Sequence[int], depth: int) -> Tuple[int, ...]:
    """Block indices with negatives counted from the end (-1: the last block), sorted, each in range."""
    out = []
    for b in blocks:
        i = b + depth if b < 0 else b
        if not 0 <= i < depth:
            raise ConfigError(f'features.blocks: block {b} does not exist in a {depth}-block backbone')
        out.append(i)
    return tuple(sorted(set(out)))


def build_frozen_backbone(model_cfg, blocks: Sequence[int]) -> Tuple[nn.Module, Dict[str, Any]]:
    """(frozen features_only backbone in eval mode, recipe {name, weights, pretrained, blocks, mean, std})."""
    name, pretrained, weights, run_args = backbone_source(model_cfg.backbone, model_cfg.pretrained, model_cfg.arch)
    args = dict(run_args, **model_cfg.model_args)
    with torch.device('meta'):  # only the block count is needed
        depth = len(create_model(name, pretrained=False, **args).blocks)
    indices = resolve_blocks(blocks, depth)
    net = build_backbone(name, out_indices=indices, pretrained=pretrained, checkpoint_path=weights,
                         dynamic_img_size=True, **args)
    net.eval().requires_grad_(False)
    vit, _ = vit_inside(net)
    mean, std = input_normalisation(vit)
    recipe = {'spec': model_cfg.backbone, 'name': name, 'pretrained_weights': bool(pretrained or weights),
              'weights': weights, 'model_args': args, 'blocks': list(indices), 'depth': depth,
              'patch_size': int(vit.patch_embed.patch_size[0]),
              'mean': list(mean), 'std': list(std)}
    log.info('backbone %s (%s), blocks %s of %d, %s weights', model_cfg.backbone, name, list(indices), depth,
             'loaded' if recipe['pretrained_weights'] else 'random')
    return net, recipe


@torch.no_grad()
def extract_features(net: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device,
                     desc: str = 'features') -> torch.Tensor:
    """[N, 3, H, W] normalised images -> [N, n_blocks, C, h, w] float16 features (CPU), with a progress bar."""
    from tqdm.auto import tqdm
    out: List[torch.Tensor] = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit='batch'):
        maps = net(images[start:start + batch_size].to(device))
        out.append(torch.stack(list(maps), 1).to('cpu', torch.float16))
    return torch.cat(out)
