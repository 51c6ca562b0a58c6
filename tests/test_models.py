"""timm's model contract, mirrored from timm's own tests, on the Mask3D backbones."""
import pytest
import torch

import mask3d
from conftest import tiny_kwargs

torch.manual_seed(0)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()).eval()


def test_default_is_a_backbone(model):
    x = torch.randn(2, 3, 240, 320)
    assert model.num_classes == 0
    assert model(x).shape == (2, model.num_features)
    feats = model.forward_features(x)
    assert feats.shape == (2, 1 + 15 * 20, 192)
    assert torch.equal(model.forward_head(feats, pre_logits=True), model(x))
    # cfg names exist in the state dict (timm's test_model_default_cfgs_non_std)
    sd = model.state_dict()
    assert any(k.startswith(model.pretrained_cfg['first_conv']) for k in sd)


@pytest.mark.parametrize('size', [(224, 224), (240, 320), (160, 96), (480, 640)])
def test_any_multiple_of_16_works(model, size):
    out = model.forward_features(torch.randn(1, 3, *size))
    assert out.shape == (1, 1 + (size[0] // 16) * (size[1] // 16), 192)


def test_reset_classifier():
    m = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    m.reset_classifier(7)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    assert m.get_classifier().out_features == 7
    m.reset_classifier(0)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 192)
    m2 = mask3d.create_model('mask3d_vit_tiny_patch16', num_classes=5, **tiny_kwargs())
    assert m2(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_forward_intermediates_matches_forward_features(model):
    x = torch.randn(2, 3, 240, 320)
    final, inter = model.forward_intermediates(x)
    assert torch.allclose(final, model.forward_features(x), atol=1e-5)
    assert [t.shape for t in inter] == [(2, 192, 15, 20)] * 2
    for info in model.feature_info:
        assert info['num_chs'] == 192 and info['reduction'] == 16


def test_grad_checkpointing_parity():
    torch.manual_seed(0)
    m = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()).train()
    x = torch.randn(2, 3, 64, 96)
    ref = m.forward_features(x)
    ref.sum().backward()
    g_ref = m.patch_embed.proj.weight.grad.clone()
    m.zero_grad()
    m.set_grad_checkpointing(True)
    out = m.forward_features(x)
    out.sum().backward()
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(m.patch_embed.proj.weight.grad, g_ref, atol=1e-5)
    _, inter = m.forward_intermediates(x)  # checkpointed path of forward_intermediates runs too
    assert len(inter) == 2


def test_features_only_with_out_indices():
    torch.manual_seed(0)
    m = mask3d.create_model('mask3d_vit_tiny_patch16', features_only=True, out_indices=(0, 1), **tiny_kwargs())
    feats = m(torch.randn(2, 3, 240, 320))
    assert [f.shape for f in feats] == [(2, 192, 15, 20)] * 2
    assert m.feature_info.channels() == [192, 192] and m.feature_info.reduction() == [16, 16]
    # a non-default size works through the same wrapper
    assert m(torch.randn(1, 3, 480, 640))[0].shape == (1, 192, 30, 40)


def test_layer_decay_optimizer_from_timm():
    from timm.optim import create_optimizer_v2
    m = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    opt = create_optimizer_v2(m, 'adamw', lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    scales = sorted({g['lr_scale'] for g in opt.param_groups})
    assert len(scales) >= 3 and scales[-1] == 1.0  # stem and early blocks get smaller lr
