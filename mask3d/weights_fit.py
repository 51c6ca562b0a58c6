"""Fitting weights to a backbone: :func:`checkpoint_filter_fn` turns any supported checkpoint into its state dict,
and, where they still do not fit, :func:`mismatch_message` says in one line why: what the weights hold and what
was asked for.

torch's strict ``load_state_dict`` lists every mis-shaped key (hundreds of lines for a ViT); a user needs the two
architectures side by side: embedding width, depth and patch size read from the tensors themselves, the
architecture named in the folder's ``config.json``, and the model that was being built.
"""
import re
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer import checkpoint_filter_fn as _timm_vit_filter_fn

# Keys that belong to pre-training only (decoder, depth branch, mask tokens): never part of a backbone.
_PRETRAIN_ONLY_PREFIXES = ('decoder', 'depth_', 'mask_token', 'modality_embed')


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: VisionTransformer) -> Dict[str, torch.Tensor]:
    """Turn any supported checkpoint into this backbone's state dict.

    Accepts a plain backbone state dict, a Mask3D pre-training checkpoint (``{'model': {'encoder.*': ...}}``),
    an MAE checkpoint (``{'model': {...encoder..., 'decoder_*', 'mask_token'}}``) or a DDP-wrapped one. The
    position embedding is resampled to the model's grid by timm's own ViT filter.
    """
    state_dict = state_dict.get('model', state_dict)
    state_dict = state_dict.get('state_dict', state_dict)
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    if any(k.startswith('encoder.') for k in state_dict):
        state_dict = {k[len('encoder.'):]: v for k, v in state_dict.items() if k.startswith('encoder.')}
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(_PRETRAIN_ONLY_PREFIXES)}
    return _timm_vit_filter_fn(state_dict, model)


_PREFIXES = ('module.', 'encoder.', 'model.', 'backbone.')


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def vit_shape(shapes: Mapping[str, Sequence[int]]) -> Dict[str, Any]:
    """``{'embed_dim', 'depth', 'patch_size', 'mlp_dim'}`` of a timm-style ViT state dict (name -> shape); keys it
    cannot tell are left out."""
    shapes = {_strip(k): tuple(v) for k, v in shapes.items()}
    out: Dict[str, Any] = {}
    proj = shapes.get('patch_embed.proj.weight')
    if proj is not None and len(proj) == 4:
        out['embed_dim'], out['patch_size'] = proj[0], proj[-1]
    elif 'cls_token' in shapes:
        out['embed_dim'] = shapes['cls_token'][-1]
    blocks = {int(m.group(1)) for k in shapes for m in [re.match(r'blocks\.(\d+)\.', k)] if m}
    if blocks:
        out['depth'] = max(blocks) + 1
    fc1 = shapes.get('blocks.0.mlp.fc1.weight')
    if fc1 is not None:
        out['mlp_dim'] = fc1[0]
    return out


def model_shapes(model) -> Dict[str, Sequence[int]]:
    """name -> shape of a model's state dict (works on the meta device)."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def describe(shape: Dict[str, Any]) -> str:
    parts = [f'{label} {shape[key]}' for key, label in (('embed_dim', 'embed dim'), ('depth', 'depth'),
                                                         ('patch_size', 'patch'), ('mlp_dim', 'MLP dim'))
             if key in shape]
    return 'a ViT with ' + ', '.join(parts) if parts else 'no ViT weights mask3d recognises'


def mismatch_message(source: str, held: Mapping[str, Sequence[int]], asked: Mapping[str, Sequence[int]],
                     asked_name: str, hint: str, held_name: Optional[str] = None) -> str:
    """``SOURCE holds a ViT with embed dim 192, depth 4 (...); ARCH asks for embed dim 384, depth 4: HINT``."""
    named = f' ({held_name} in its config.json)' if held_name else ''
    want = describe(vit_shape(asked)).replace('a ViT with ', '', 1)
    return f'{source} holds {describe(vit_shape(held))}{named}; {asked_name} asks for {want}: {hint}'
