"""Mask3D ViT backbones, registered in timm.

Mask3D: Pre-training 2D Vision Transformers by Learning Masked 3D Priors
(Hou, Dai, He, Dai, Niessner, CVPR 2023, arXiv 2302.14746).

The backbone *is* timm's ``VisionTransformer``: same class, same state-dict keys. Mask3D only changes the
weights (RGB-D pre-training) and the defaults (240x320 ScanNet frames, dynamic image size, no head), so a
mask3d checkpoint loads into ``timm.create_model('vit_base_patch16_224', num_classes=0)`` and back without
any conversion.

Layout follows timm's model-family files: filter fn, ``_cfg``, ``default_cfgs``, builder, entrypoints.
"""
from typing import Any, Dict

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer

from mask3d_resources import manifest_path

from ..constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from ..loading import check_pretrained_source, translate_hub_errors
from ..manifest import load_manifest
from ..weights_fit import checkpoint_filter_fn  # timm's pretrained_filter_fn for this family

__all__ = ['checkpoint_filter_fn', 'default_cfgs', 'DEFAULT_IMG_SIZE', 'SIZES', 'stock_timm_architecture']

DEFAULT_IMG_SIZE = (240, 320)  # default input: ScanNet 2D frames, 15x20 patches (paper Fig. 2, docs/pretraining.md)

# The Hub repo of each official name is a manifest value (no repo id is invented in code).
_HUB_REPOS = {r.name: r.repo_id for r in load_manifest(manifest_path())} if manifest_path().is_file() else {}


def _cfg(arch: str, tag: str, **kwargs) -> Dict[str, Any]:
    return {
        'hf_hub_id': _HUB_REPOS.get(f'{arch}.{tag}'),
        'hf_hub_filename': 'model.safetensors',
        'num_classes': 0,
        'input_size': (3, *DEFAULT_IMG_SIZE),
        'fixed_input_size': False,
        'interpolation': 'bicubic',
        'crop_pct': 1.0,
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj',
        'classifier': 'head',
        'license': 'apache-2.0',
        'paper_ids': 'arXiv:2302.14746',
        'paper_name': 'Mask3D: Pre-training 2D Vision Transformers by Learning Masked 3D Priors',
        **kwargs,
    }


def _scannet(arch: str) -> Dict[str, Any]:
    return _cfg(arch, 'scannet', description='Mask3D RGB-D pre-training from scratch on ScanNet frames.')


def _in1k_scannet(arch: str) -> Dict[str, Any]:
    return _cfg(
        arch, 'in1k_scannet',
        description='ImageNet-1k MAE initialisation, then Mask3D RGB-D pre-training on ScanNet frames.',
        # the ImageNet MAE weights it starts from are CC-BY-NC-4.0; the derived weights inherit that licence
        license='cc-by-nc-4.0',
    )


SIZES = {  # ViT args per size; timm's stock twin of mask3d_vit_{size}[_patch16] is vit_{size}_patch16_224
    'tiny': dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    'small': dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    'base': dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    'large': dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
}
_TAGS = {'tiny': (_scannet,), 'small': (_scannet,), 'base': (_scannet, _in1k_scannet), 'large': (_scannet, _in1k_scannet)}


def stock_timm_architecture(arch: str) -> str:
    """The stock timm ViT with the same weights layout (``mask3d_vit_base[_patch16]`` -> ``vit_base_patch16_224``)."""
    for size in SIZES:
        if arch in (f'mask3d_vit_{size}', f'mask3d_vit_{size}_patch16'):
            return f'vit_{size}_patch16_224'
    return arch


# Both spellings (mask3d_vit_base and mask3d_vit_base_patch16) carry the same tags and point at the same Hub repo.
default_cfgs = generate_default_cfgs({
    f'{name}.{tag_fn.__name__[1:]}': tag_fn(f'mask3d_vit_{size}_patch16')
    for size, tag_fns in _TAGS.items() for tag_fn in tag_fns
    for name in (f'mask3d_vit_{size}_patch16', f'mask3d_vit_{size}')
})


def _create_mask3d_vit(variant: str, pretrained: bool = False, **kwargs) -> VisionTransformer:
    out_indices = kwargs.pop('out_indices', 3)
    # The position embedding is stored on timm's 14x14 (224 px) grid, so the weights load strictly into
    # timm's stock vit_*_patch16_224; dynamic_img_size resamples it to the input's grid (15x20 at 240x320).
    kwargs.setdefault('dynamic_img_size', True)
    if pretrained:
        # refuse unpublished tags and pickle files from the Hub before timm tries to download anything
        kwargs['pretrained_cfg'], location = check_pretrained_source(
            variant, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay'))
    else:
        location = variant
    with translate_hub_errors(location):
        return build_model_with_cfg(
            VisionTransformer,
            variant,
            pretrained,
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
            **kwargs,
        )



def _entry(arch: str, size: str, pretrained: bool, kwargs: Dict[str, Any]) -> VisionTransformer:
    return _create_mask3d_vit(arch, pretrained=pretrained, **dict(SIZES[size], **kwargs))


@register_model
def mask3d_vit_tiny_patch16(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Mask3D ViT-Ti/16 (192-d, 12 blocks), 240x320 default input."""
    return _entry('mask3d_vit_tiny_patch16', 'tiny', pretrained, kwargs)


@register_model
def mask3d_vit_small_patch16(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Mask3D ViT-S/16 (384-d, 12 blocks), 240x320 default input."""
    return _entry('mask3d_vit_small_patch16', 'small', pretrained, kwargs)


@register_model
def mask3d_vit_base_patch16(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Mask3D ViT-B/16 (768-d, 12 blocks), the paper's backbone, 240x320 default input."""
    return _entry('mask3d_vit_base_patch16', 'base', pretrained, kwargs)


@register_model
def mask3d_vit_large_patch16(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Mask3D ViT-L/16 (1024-d, 24 blocks), 240x320 default input."""
    return _entry('mask3d_vit_large_patch16', 'large', pretrained, kwargs)


@register_model
def mask3d_vit_tiny(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Short name of ``mask3d_vit_tiny_patch16`` (same model, same tags)."""
    return _entry('mask3d_vit_tiny', 'tiny', pretrained, kwargs)


@register_model
def mask3d_vit_small(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Short name of ``mask3d_vit_small_patch16`` (same model, same tags)."""
    return _entry('mask3d_vit_small', 'small', pretrained, kwargs)


@register_model
def mask3d_vit_base(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Short name of ``mask3d_vit_base_patch16`` (same model, same tags)."""
    return _entry('mask3d_vit_base', 'base', pretrained, kwargs)


@register_model
def mask3d_vit_large(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """Short name of ``mask3d_vit_large_patch16`` (same model, same tags)."""
    return _entry('mask3d_vit_large', 'large', pretrained, kwargs)
