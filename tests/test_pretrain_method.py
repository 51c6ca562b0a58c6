"""The Mask3D pre-training model: masking, visible-only encoding, depth normalisation and the loss."""
import numpy as np
import pytest
import torch

import mask3d
from conftest import tiny_kwargs
from mask3d.training import Mask3DPretrainer, PretrainMethodConfig
from mask3d.training.pretrain.depth_targets import DEPTH_NORMS, denormalize_depth, normalize_depth
from mask3d.training.depth_loss import silog_loss
from mask3d.training.pretrain.losses import masked_reconstruction_loss
from mask3d.training.pretrain.masking import num_visible, random_patch_mask
from mask3d.training.pretrain.patches import patchify, unpatchify

SMALL = dict(depth_encoder_depth=1, decoder_dim=64, decoder_depth=1, decoder_num_heads=4)


def _model(**cfg):
    torch.manual_seed(0)
    encoder = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    return Mask3DPretrainer(encoder, PretrainMethodConfig(**{**SMALL, **cfg}))


def _batch(b=2, h=96, w=128):
    g = torch.Generator().manual_seed(1)
    rgb = torch.randn(b, 3, h, w, generator=g)
    depth = torch.rand(b, 1, h, w, generator=g) * 4 + 0.5
    return rgb, depth


def test_num_visible_and_masks():
    assert num_visible(300, 0.8) == 60 and num_visible(196, 0.75) == 49 and num_visible(10, 0.99) == 1
    m = random_patch_mask(4, 300, 0.8)
    assert m.mask.shape == (4, 300) and m.ids_keep.shape == (4, 60)
    assert (m.mask.sum(1) == 240).all()
    assert (torch.diff(m.ids_keep, dim=1) > 0).all()  # ascending, unique
    assert not m.mask.gather(1, m.ids_keep).any()
    noise = torch.rand(4, 300)
    assert torch.equal(random_patch_mask(4, 300, 0.8, noise=noise).mask, random_patch_mask(4, 300, 0.8, noise=noise).mask)
    assert not torch.equal(m.mask[0], m.mask[1])  # independent per sample
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            random_patch_mask(1, 10, bad)


def test_patchify_round_trip():
    x = torch.randn(2, 3, 48, 64)
    p = patchify(x, 16)
    assert p.shape == (2, 12, 768)
    assert torch.equal(unpatchify(p, 16, (3, 4), 3), x)
    assert torch.equal(p[0, 5].view(16, 16, 3)[:, :, 1], x[0, 1, 16:32, 16:32])  # patch (1, 1), row-major


def test_forward_outputs_and_masks():
    model = _model()
    rgb, depth = _batch()
    out = model(rgb, depth)
    assert out['pred_depth'].shape == (2, 1, 96, 128)
    assert out['rgb_mask'].shape == out['depth_mask'].shape == (2, 48)
    assert (out['rgb_mask'].sum(1) == 48 - num_visible(48, 0.8)).all()
    assert torch.isfinite(out['loss']) and out['loss'].dim() == 0
    assert not torch.equal(out['rgb_mask'], out['depth_mask'])  # independent RGB and depth masks


def test_encoder_sees_only_visible_tokens():
    model = _model(rgb_mask_ratio=0.75)
    seen = []
    model.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    rgb, depth = _batch(h=240, w=320)
    model(rgb, depth)
    assert seen == [torch.Size([2, 1 + 75, 192])]  # cls + 25% of 300 patches, never mask tokens


def test_encoder_state_dict_is_the_backbone():
    model = _model()
    backbone = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    assert set(model.encoder.state_dict()) == set(backbone.state_dict())
    assert all(not k.startswith('encoder.') or k[8:] in backbone.state_dict() for k in model.state_dict())


def test_invalid_depth_contributes_nothing():
    model = _model().eval()
    rgb, depth = _batch()
    noise = torch.rand(2, 2, 48)
    # all-zero depth: finite, zero loss, zero gradient through the depth head
    out = model(rgb, torch.zeros_like(depth), mask_noise=noise)
    assert torch.isfinite(out['loss']) and out['loss'].item() == 0.0
    out['loss'].backward()
    assert model.decoder_depth_pred.weight.grad.abs().sum() == 0
    # a frame without valid depth (zeros, NaN, inf, negative) leaves the other frame's loss untouched
    bad = depth.clone()
    bad[1] = 0
    bad[1, :, :10] = float('nan')
    bad[1, :, 10:20] = float('inf')
    bad[1, :, 20:30] = -1.0
    alone = model(rgb[:1], depth[:1], mask_noise=noise[:1])['loss']
    mixed = model(rgb, bad, mask_noise=noise)['loss']
    assert torch.isfinite(mixed)
    assert torch.allclose(mixed * 2, alone, atol=1e-6)


def test_loss_on_masked_only_counts_depth_masked_patches():
    pred, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    weight = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert masked_reconstruction_loss(pred, target, weight, 'l1').item() == pytest.approx(2.5)
    assert masked_reconstruction_loss(pred, target, weight, 'l2').item() == pytest.approx(8.5)
    # with depth input off (so depth is only a target) and metric normalisation (no global statistics):
    # the loss changes when depth changes in a depth-masked patch, not in a depth-visible one
    model = _model(loss_on='masked', depth_input=False, depth_norm='metric').eval()
    rgb, depth = _batch()
    noise = torch.rand(2, 2, 48)
    out = model(rgb, depth, mask_noise=noise)
    grid_w = 128 // 16
    visible = (~out['depth_mask'][0]).nonzero()[0].item()
    masked = out['depth_mask'][0].nonzero()[0].item()

    def bump(patch):
        d = depth.clone()
        r, c = divmod(patch, grid_w)
        d[0, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] += 1.0
        return model(rgb, d, mask_noise=noise)['loss']
    assert torch.equal(bump(visible), out['loss'])
    assert not torch.equal(bump(masked), out['loss'])


@pytest.mark.parametrize('mode', DEPTH_NORMS)
def test_depth_normalisation_round_trip(mode):
    _, depth = _batch()
    depth[0, :, :8, :8] = 0
    norm = normalize_depth(depth, mode, patch_size=16)
    assert not norm.valid[0, 0, :8, :8].any() and (norm.value[0, 0, :8, :8] == 0).all()
    back = denormalize_depth(norm.value, norm, mode)
    assert torch.allclose(back[norm.valid], depth[norm.valid], rtol=1e-4)
    if mode == 'standardize':
        v = norm.value[1][norm.valid[1]]
        assert abs(v.mean().item()) < 1e-4 and abs(v.std().item() - 1) < 1e-2


def test_rgb_ablation_and_no_depth_input():
    model = _model(rgb_loss_weight=1.0, depth_input=False, depth_loss_weight=0.0)  # plain MAE arm
    assert not hasattr(model, 'depth_embed')
    rgb, depth = _batch()
    out = model(rgb, depth)
    assert 'loss_rgb' in out and torch.isfinite(out['loss']) and out['loss'].item() > 0
    out['loss'].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('size', [(96, 128), (240, 320), (64, 64)])
def test_sizes_and_bf16_autocast(size):
    model = _model()
    rgb, depth = _batch(h=size[0], w=size[1])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(rgb, depth)
    assert out['pred_depth'].shape == (2, 1, *size) and torch.isfinite(out['loss'])
    with pytest.raises(ValueError, match='divisible'):
        model(rgb[..., :-8], depth[..., :-8])


def test_bad_method_values():
    enc = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    for bad in (dict(rgb_mask_ratio=1.0), dict(depth_mask_ratio=-0.1), dict(loss='huber'), dict(loss_on='some'),
                dict(depth_norm='inverse'), dict(decoder_dim=100, decoder_num_heads=16)):
        with pytest.raises(ValueError):
            Mask3DPretrainer(enc, PretrainMethodConfig(**bad))


def test_grad_checkpointing_same_loss_and_grads():
    rgb, depth = _batch()
    noise = torch.rand(2, 2, 48)
    a = _model()
    la = a(rgb, depth, mask_noise=noise)['loss']
    la.backward()
    b = _model()
    b.set_grad_checkpointing(True)
    lb = b(rgb, depth, mask_noise=noise)['loss']
    lb.backward()
    assert torch.allclose(la, lb, atol=1e-6)
    assert torch.allclose(a.encoder.blocks[0].attn.qkv.weight.grad, b.encoder.blocks[0].attn.qkv.weight.grad, atol=1e-5)


def test_fused_and_plain_attention_agree():
    rgb, depth = _batch()
    noise = torch.rand(2, 2, 48)
    model = _model().eval()
    fused = model(rgb, depth, mask_noise=noise)['loss']
    model.set_fused_attn(False)
    assert not any(getattr(m, 'fused_attn', False) for m in model.modules())
    plain = model(rgb, depth, mask_noise=noise)['loss']
    assert torch.allclose(fused, plain, atol=1e-5)


def test_silog_loss_by_hand_one_definition_for_probe_and_finetune():
    """One scale-invariant log loss (issue 24: the probe's and fine-tuning's copies differed by the factor 10)."""
    target = torch.tensor([[1.0, 2.0, 0.0, 4.0]])          # 0 = no depth: not counted
    pred = torch.tensor([[2.0, 2.0, 9.0, 1.0]])
    g = np.log([2.0, 1.0, 0.25])                            # log(pred) - log(target) over the valid pixels
    expected = np.sqrt((g ** 2).mean() - 0.85 * g.mean() ** 2 + 1e-8)
    assert float(silog_loss(pred, target)) == pytest.approx(expected, rel=1e-5)
    assert float(silog_loss(pred, target, scale=10.0)) == pytest.approx(10 * expected, rel=1e-5)
    assert float(silog_loss(pred, target, lam=0.0)) == pytest.approx(np.sqrt((g ** 2).mean() + 1e-8), rel=1e-5)
    assert float(silog_loss(pred, torch.zeros_like(target))) == 0.0     # nothing valid: 0, never NaN
    assert float(silog_loss(pred * 3, target * 3)) == pytest.approx(expected, rel=1e-5)  # scale-free in the ratio
    from mask3d.training.finetune.tasks import depth
    from mask3d.training.probe import tasks
    assert depth.silog_loss is silog_loss and tasks.silog_loss is silog_loss
