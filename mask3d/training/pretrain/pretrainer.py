"""The Mask3D pre-training model.

Masked RGB patches go through the ViT encoder (visible tokens only, MAE-style). Masked depth patches get their
own light embedding/encoder. Both meet at the bottleneck: the decoder sees the visible RGB latents, RGB mask
tokens at the hidden positions and the visible depth tokens, each with position and modality embeddings,
and predicts a 16x16 depth patch at every position, i.e. the dense depth map (paper Fig. 1 and 2).

With much depth visible the decoder can complete depth from visible depth and positions alone and the encoder
is barely needed (measure it with :func:`mask3d.training.pretrain.reliance.rgb_reliance`). The knobs that make the
pretext need the encoder: a higher ``depth_mask_ratio`` (1.0: no depth tokens at all), ``depth_drop_prob``
(all depth tokens of a fixed share of each batch replaced by one learned token, static shapes),
``loss_on: masked`` and ``depth_norm_stats: visible`` (input and target standardised with the visible depth only).

``self.encoder`` is an ordinary timm ``VisionTransformer`` built by ``mask3d.create_model``; its
``state_dict()`` is exactly the published backbone. Everything else here exists only for pre-training.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models import checkpoint
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from ..config_rules import Relation, at_least, in_unit, non_negative, one_of, positive, validate_config
from .depth_eval import depth_from_visible
from .depth_targets import DEPTH_NORMS, normalize_depth
from .losses import LOSSES, masked_reconstruction_loss
from .masking import gather_tokens, random_patch_mask
from .patches import patchify, unpatchify, upsample_patch_mask

LOSS_ON = ('all', 'masked')
DEPTH_NORM_STATS = ('visible', 'all')

# the method's rows of the validation table (mask3d.training.pretrain.config adds them to the pre-training config's)
METHOD_KNOBS = {
    'method.rgb_mask_ratio': in_unit(high_open=True), 'method.depth_mask_ratio': in_unit(),
    'method.depth_drop_prob': in_unit(), 'method.depth_encoder_depth': non_negative(),
    'method.decoder_dim': at_least(1), 'method.decoder_depth': non_negative(), 'method.decoder_num_heads': at_least(1),
    'method.loss': one_of(LOSSES), 'method.loss_on': one_of(LOSS_ON), 'method.depth_norm': one_of(DEPTH_NORMS),
    'method.depth_norm_stats': one_of(DEPTH_NORM_STATS), 'method.metric_depth_scale': positive(),
    'method.depth_loss_weight': non_negative(), 'method.rgb_loss_weight': non_negative()}
METHOD_RELATIONS = (
    Relation(('method.decoder_dim', 'method.decoder_num_heads'),
             lambda c: c.method.decoder_dim % c.method.decoder_num_heads == 0,
             lambda c: f'method.decoder_dim {c.method.decoder_dim} is not divisible by method.decoder_num_heads '
                       f'{c.method.decoder_num_heads}', ('method.decoder_dim=100', 'method.decoder_num_heads=8')),
    Relation(('method.depth_loss_weight', 'method.rgb_loss_weight'),
             lambda c: c.method.depth_loss_weight > 0 or c.method.rgb_loss_weight > 0,
             lambda c: 'at least one of method.depth_loss_weight and method.rgb_loss_weight must be > 0',
             ('method.depth_loss_weight=0', 'method.rgb_loss_weight=0')))


@dataclass
class PretrainMethodConfig:
    """The method's knobs. Defaults and their sources are listed in docs/pretraining.md."""
    rgb_mask_ratio: float = 0.8        # paper figure: 240 of 300 patches masked
    depth_mask_ratio: float = 0.8      # not stated in the paper; 1.0 = no depth tokens (depth is only the target)
    depth_drop_prob: float = 0.0       # share of each batch whose depth tokens are all dropped (floor(B * p) samples)
    depth_input: bool = True           # False: monocular depth from masked RGB only (ablation)
    depth_encoder_depth: int = 2       # transformer blocks on visible depth tokens; 0 = embedding only
    decoder_dim: int = 512             # MAE decoder width
    decoder_depth: int = 8             # MAE decoder depth
    decoder_num_heads: int = 8         # head_dim 64 (MAE uses 16 heads = head_dim 32; 8 is ~9% faster, same FLOPs)
    loss: str = 'l1'                   # l1 | l2
    loss_on: str = 'all'               # all: dense depth over every patch | masked: only depth-hidden patches
    depth_norm: str = 'standardize'    # standardize | metric | log | patch
    depth_norm_stats: str = 'visible'  # standardize statistics from: visible depth pixels | all pixels (leaks)
    metric_depth_scale: float = 10.0   # metres per unit for depth_norm=metric
    depth_loss_weight: float = 1.0     # 0 with rgb_loss_weight>0 gives plain MAE (ablation)
    rgb_loss_weight: float = 0.0       # optional RGB reconstruction (norm-pix MSE on masked patches)

    def validate(self) -> None:
        """The ``method.*`` rows of the pre-training validation table (mask3d.training.pretrain.config)."""
        from types import SimpleNamespace
        validate_config(SimpleNamespace(method=self), METHOD_KNOBS, METHOD_RELATIONS)


def _blocks(n: int, dim: int, heads: int) -> nn.ModuleList:
    return nn.ModuleList([Block(dim=dim, num_heads=heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(n)])


class Mask3DPretrainer(nn.Module):
    """``forward(rgb, depth)`` -> dict(loss, pred_depth, rgb_mask, depth_mask, ...).

    rgb: [B, 3, H, W] normalised like the encoder's pretrained_cfg (mean/std); depth: [B, 1, H, W] metres,
    0 = invalid. H and W must be multiples of the patch size.
    """

    def __init__(self, encoder: VisionTransformer, cfg: Optional[PretrainMethodConfig] = None):
        super().__init__()
        cfg = cfg or PretrainMethodConfig()
        cfg.validate()
        self.cfg = cfg
        self.encoder = encoder
        self.patch_size = encoder.patch_embed.patch_size[0]
        self.num_prefix_tokens = encoder.num_prefix_tokens
        dim, ddim = encoder.embed_dim, cfg.decoder_dim
        self.grad_checkpointing = False

        # depth branch: a 2-channel patch embedding (normalised depth, validity) and optional blocks
        # (not built at all without depth tokens, so DDP never sees unused parameters)
        self.has_depth_tokens = cfg.depth_input and cfg.depth_mask_ratio < 1.0
        self.depth_drop_token = None
        if self.has_depth_tokens:
            self.depth_embed = nn.Conv2d(2, ddim, kernel_size=self.patch_size, stride=self.patch_size)
            self.depth_blocks = _blocks(cfg.depth_encoder_depth, ddim, cfg.decoder_num_heads)
            self.depth_norm = nn.LayerNorm(ddim, eps=1e-6)
            if cfg.depth_drop_prob > 0:
                # replaces every depth token of a dropped sample: no depth, no positions of visible depth
                self.depth_drop_token = nn.Parameter(torch.zeros(1, 1, ddim))

        # fusion + decoder
        self.decoder_embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.modality_embed = nn.Parameter(torch.zeros(2, ddim))  # 0: RGB stream, 1: depth stream
        self.decoder_blocks = _blocks(cfg.decoder_depth, ddim, cfg.decoder_num_heads)
        self.decoder_norm = nn.LayerNorm(ddim, eps=1e-6)
        self.decoder_depth_pred = nn.Linear(ddim, self.patch_size ** 2)
        self.decoder_rgb_pred = nn.Linear(ddim, 3 * self.patch_size ** 2) if cfg.rgb_loss_weight > 0 else None
        self._init_new_weights()

    def _init_new_weights(self) -> None:
        for name, module in self.named_modules():
            if name.startswith('encoder'):
                continue
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.has_depth_tokens:
            w = self.depth_embed.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.zeros_(self.depth_embed.bias)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.normal_(self.modality_embed, std=0.02)
        if self.depth_drop_token is not None:
            nn.init.normal_(self.depth_drop_token, std=0.02)

    # ---- optimiser / timm-style contract -------------------------------------------------------------
    def no_weight_decay(self) -> set:
        """Parameters excluded from weight decay besides norms and biases (timm's optimizer factory reads this)."""
        return {'mask_token', 'modality_embed', 'depth_drop_token'} | {f'encoder.{n}' for n in self.encoder.no_weight_decay()}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        self.encoder.set_grad_checkpointing(enable)

    def set_fused_attn(self, enable: bool) -> None:
        """Switch every attention layer (encoder, depth branch, decoder) between timm's fused SDPA path and the
        plain matmul + softmax path. Same maths; which is faster depends on the device."""
        for module in self.modules():
            if hasattr(module, 'fused_attn'):
                module.fused_attn = enable

    def _run(self, blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for blk in blocks:
            x = checkpoint(blk, x) if self.grad_checkpointing and self.training else blk(x)
        return x

    def _pos(self, grid, dim: int, device, dtype) -> torch.Tensor:
        # fixed 2-D sin-cos position embedding for the decoder side (timm's implementation), [1, N, dim]
        return build_sincos2d_pos_embed(list(grid), dim=dim, device=device, dtype=dtype).unsqueeze(0)

    # ---- the three stages ------------------------------------------------------------------------------
    def encode_rgb(self, rgb: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encoder on the visible RGB patches only; returns [B, prefix + K, D] normalised latents."""
        enc = self.encoder
        x = enc.patch_embed(rgb)
        x = enc._pos_embed(x)  # prepends cls token, adds (resampled) position embedding
        prefix, tokens = x[:, :self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
        x = torch.cat([prefix, gather_tokens(tokens, ids_keep)], dim=1)
        x = enc.norm_pre(x)
        x = self._run(enc.blocks, x)
        return enc.norm(x)

    def encode_depth(self, depth_norm: torch.Tensor, valid: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Visible depth patches -> [B, K, decoder_dim] tokens with position and modality embeddings."""
        x = self.depth_embed(torch.cat([depth_norm, valid.to(depth_norm.dtype)], dim=1))
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = x + self._pos(grid, x.shape[-1], x.device, x.dtype)
        x = gather_tokens(x, ids_keep)
        x = self._run(self.depth_blocks, x)
        return self.depth_norm(x) + self.modality_embed[1]

    def decode(self, latents: torch.Tensor, rgb_ids_keep: torch.Tensor, depth_tokens: Optional[torch.Tensor],
               grid) -> torch.Tensor:
        """Fuse at the bottleneck and return decoder features for every patch position, [B, N, decoder_dim]."""
        b = latents.shape[0]
        n = grid[0] * grid[1]
        x = self.decoder_embed(latents)
        prefix, visible = x[:, :self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
        full = self.mask_token.to(x.dtype).expand(b, n, -1).clone()
        full.scatter_(1, rgb_ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]), visible)
        full = full + self._pos(grid, x.shape[-1], x.device, x.dtype) + self.modality_embed[0]
        parts = [prefix, full] + ([depth_tokens.to(x.dtype)] if depth_tokens is not None else [])
        x = self._run(self.decoder_blocks, torch.cat(parts, dim=1))
        x = self.decoder_norm(x)
        return x[:, self.num_prefix_tokens:self.num_prefix_tokens + n]

    def depth_dropped(self, batch_size: int, device) -> torch.Tensor:
        """[B] bool: samples whose depth tokens are all dropped. A fixed, evenly spread floor(B * p) of the batch
        (sample i when floor((i + 1) p) > floor(i p)): static, no RNG, so runs and torch.compile stay deterministic;
        the sampler's shuffling decides which frames land there."""
        i = torch.arange(batch_size, device=device, dtype=torch.float64)
        p = self.cfg.depth_drop_prob
        return torch.floor((i + 1) * p) > torch.floor(i * p)

    @property
    def has_depth_pretext(self) -> bool:
        """Whether the depth reconstruction is trained (False for MAE: ``depth_loss_weight: 0``); only then does
        ``rgb_reliance`` mean anything."""
        return self.cfg.depth_loss_weight > 0

    # ---- forward ------------------------------------------------------------------------------------------
    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, *,
                mask_noise: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """``mask_noise`` [B, 2, N] (RGB, depth) fixes the masks; by default they are drawn with torch.rand."""
        cfg, p = self.cfg, self.patch_size
        b, _, h, w = rgb.shape
        if h % p or w % p or depth.shape[-2:] != rgb.shape[-2:]:
            raise ValueError(f'rgb {list(rgb.shape)} and depth {list(depth.shape)} must share H, W divisible by {p}')
        grid = (h // p, w // p)
        n = grid[0] * grid[1]
        noise = mask_noise if mask_noise is not None else torch.rand(b, 2, n, device=rgb.device)
        rgb_mask = random_patch_mask(b, n, cfg.rgb_mask_ratio, noise=noise[:, 0])
        dropped = self.depth_dropped(b, rgb.device)
        if cfg.depth_mask_ratio < 1.0:
            depth_mask = random_patch_mask(b, n, cfg.depth_mask_ratio, noise=noise[:, 1])
            hidden = depth_mask.mask | dropped[:, None]  # True = the model gets no depth there
        else:
            depth_mask, hidden = None, torch.ones(b, n, dtype=torch.bool, device=rgb.device)
        hidden_px = upsample_patch_mask(hidden, p, grid)

        # 'visible': statistics of the visible depth only (a frame without any falls back to all its pixels,
        # which then reach only the target); input and target share them, so prediction * std + mean is metres
        stats = ~hidden_px | dropped[:, None, None, None] if cfg.depth_norm_stats == 'visible' else None
        norm = normalize_depth(depth, cfg.depth_norm, patch_size=p, metric_scale=cfg.metric_depth_scale,
                               stats_pixels=stats)
        latents = self.encode_rgb(rgb, rgb_mask.ids_keep)
        depth_tokens = None
        if self.has_depth_tokens:
            depth_tokens = self.encode_depth(norm.value, norm.valid, depth_mask.ids_keep)
            if self.depth_drop_token is not None:
                drop_token = self.depth_drop_token.to(depth_tokens.dtype).expand_as(depth_tokens)
                depth_tokens = torch.where(dropped[:, None, None], drop_token, depth_tokens)
        feats = self.decode(latents, rgb_mask.ids_keep, depth_tokens, grid)

        pred = unpatchify(self.decoder_depth_pred(feats).float(), p, grid, 1)
        weight = norm.valid
        if cfg.loss_on == 'masked':
            weight = weight & hidden_px
        loss_depth = masked_reconstruction_loss(pred, norm.value, weight, cfg.loss)
        out = {
            'loss_depth': loss_depth,
            # metres from what the model is given (visible depth statistics), NaN where it is given none
            'pred_depth': depth_from_visible(pred.detach(), depth, ~hidden_px, cfg.depth_norm,
                                             metric_scale=cfg.metric_depth_scale),
            'pred_depth_normalized': pred,
            'rgb_mask': rgb_mask.mask,
            'depth_mask': hidden,
        }
        loss = cfg.depth_loss_weight * loss_depth if cfg.depth_loss_weight > 0 else pred.sum() * 0.0
        if self.decoder_rgb_pred is not None:
            target = patchify(rgb.float(), p)
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
            pred_rgb = self.decoder_rgb_pred(feats).float()
            loss_rgb = masked_reconstruction_loss(pred_rgb, target, rgb_mask.mask.unsqueeze(-1), 'l2')
            loss = loss + cfg.rgb_loss_weight * loss_rgb
            out['loss_rgb'] = loss_rgb
        out['loss'] = loss
        return out
