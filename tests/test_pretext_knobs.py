"""Issue 11: a pretext that needs the encoder (rgb_reliance and the knobs) and honest depth errors."""
from pathlib import Path

import numpy as np
import pytest
import torch

import mask3d
from conftest import tiny_kwargs
from mask3d.training import Mask3DPretrainer, PretrainMethodConfig
from mask3d.training.pretrain.depth_eval import (align_scale_shift, depth_from_visible, depth_reconstruction_errors,
                                        reconstruction_errors)
from mask3d.training.pretrain.depth_targets import normalize_depth
from mask3d.training.pretrain.reliance import rgb_reliance

SMALL = dict(depth_encoder_depth=1, decoder_dim=64, decoder_depth=1, decoder_num_heads=4)


def _model(**cfg):
    torch.manual_seed(0)
    encoder = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    return Mask3DPretrainer(encoder, PretrainMethodConfig(**{**SMALL, **cfg}))


def _batch(b=4, h=64, w=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randn(b, 3, h, w, generator=g)
    depth = torch.rand(b, 1, h, w, generator=g) * 4 + 0.5
    return rgb, depth


def test_rgb_reliance_is_one_when_the_encoder_is_ignored():
    model = _model()
    model.encoder.norm.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    rgb, depth = _batch()
    assert rgb_reliance(model, rgb, depth) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match='at least 2'):
        rgb_reliance(model, rgb[:1], depth[:1])


def test_rgb_reliance_is_high_when_depth_can_only_come_from_rgb():
    # depth is a per-pixel function of the RGB and no depth is visible: the model must read it from the encoder
    torch.manual_seed(0)
    encoder = mask3d.create_model('mask3d_vit_tiny_patch16', depth=1, embed_dim=64, num_heads=2)  # small: fast
    model = Mask3DPretrainer(encoder, PretrainMethodConfig(**SMALL, rgb_mask_ratio=0.0, depth_mask_ratio=1.0,
                                                           depth_norm='metric', metric_depth_scale=1.0))
    assert not model.has_depth_tokens
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def sample(b=8):
        rgb = torch.nn.functional.interpolate(torch.randn(b, 3, 4, 4, generator=g), size=(32, 32), mode='nearest')
        return rgb, 2.0 + rgb[:, :1]

    untrained = rgb_reliance(model, *sample())
    for _ in range(50):  # measured: reliance 1.00 untrained, 3.5 after 50 steps, 4.5 after 60
        loss = model(*sample())['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained = rgb_reliance(model, *sample())
    assert trained > 1.5 and trained > untrained + 0.3, (untrained, trained)


def test_depth_mask_ratio_one_has_no_depth_tokens():
    model = _model(depth_mask_ratio=1.0)
    assert not hasattr(model, 'depth_embed')
    rgb, depth = _batch()
    out = model(rgb, depth)
    assert out['depth_mask'].all() and torch.isfinite(out['loss'])
    assert torch.isnan(out['pred_depth']).all()  # standardised with nothing visible: scale unknown
    out['loss'].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # nothing unused under DDP
    with pytest.raises(ValueError, match=r'depth_mask_ratio must be in \[0, 1\]'):
        _model(depth_mask_ratio=1.1)
    with pytest.raises(ValueError, match=r'depth_drop_prob must be in \[0, 1\]'):
        _model(depth_drop_prob=-0.5)
    with pytest.raises(ValueError, match='depth_norm_stats must be one of'):
        _model(depth_norm_stats='hidden')


def test_depth_drop_prob_one_removes_depth_information():
    model = _model(depth_drop_prob=1.0).eval()
    rgb, depth = _batch()
    noise = torch.rand(4, 2, 16)
    a = model(rgb, depth, mask_noise=noise)
    b = model(rgb, depth * 3 + torch.rand_like(depth), mask_noise=noise)
    assert torch.equal(a['pred_depth_normalized'], b['pred_depth_normalized'])
    assert a['depth_mask'].all()
    a['loss'].backward()
    assert model.depth_embed.weight.grad is not None  # in the graph (zero gradient), so DDP sees it used


def test_depth_drop_prob_half_drops_every_other_sample():
    model = _model(depth_drop_prob=0.5).eval()
    assert model.depth_dropped(4, 'cpu').tolist() == [False, True, False, True]
    assert int(model.depth_dropped(16, 'cpu').sum()) == 8 and int(_model().depth_dropped(16, 'cpu').sum()) == 0
    rgb, depth = _batch()
    noise = torch.rand(4, 2, 16)
    a = model(rgb, depth, mask_noise=noise)['pred_depth_normalized']
    changed = depth.clone()
    changed[1] += 1.0  # a dropped sample: its output cannot change
    changed[0] = changed[0] * 2 + torch.rand_like(changed[0])  # a kept sample: its output must
    b = model(rgb, changed, mask_noise=noise)['pred_depth_normalized']
    assert torch.equal(a[1], b[1]) and not torch.equal(a[0], b[0])


def test_visible_stats_ignore_hidden_pixels():
    model = _model(depth_norm_stats='visible', loss_on='masked').eval()
    rgb, depth = _batch()
    noise = torch.rand(4, 2, 16)
    out = model(rgb, depth, mask_noise=noise)
    hidden = torch.nn.functional.interpolate(out['depth_mask'].view(4, 1, 4, 4).float(), scale_factor=16) > 0
    changed = torch.where(hidden, depth * 5 + 1, depth)  # only the hidden pixels move
    again = model(rgb, changed, mask_noise=noise)
    assert torch.equal(out['pred_depth_normalized'], again['pred_depth_normalized'])  # the input saw nothing
    assert torch.allclose(out['pred_depth'], again['pred_depth'])
    # the leak it fixes: with all-pixel statistics the same change moves the input and the prediction
    leaky = _model(depth_norm_stats='all').eval()
    assert not torch.equal(leaky(rgb, depth, mask_noise=noise)['pred_depth_normalized'],
                           leaky(rgb, changed, mask_noise=noise)['pred_depth_normalized'])
    # the statistics are the visible pixels' own
    norm = normalize_depth(depth, 'standardize', stats_pixels=~hidden)
    vis = depth[0][~hidden[0]].double()
    assert norm.shift[0].item() == pytest.approx(vis.mean().item(), rel=1e-5)
    assert norm.scale[0].item() == pytest.approx(vis.std(unbiased=False).item(), rel=1e-4)


def test_unaligned_and_aligned_errors_match_numpy():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, (2, 1, 32, 32)).astype(np.float32)
    depth[1, 0, :4, :4] = 0  # invalid pixels are never counted
    pred_norm = rng.normal(size=(2, 1, 32, 32)).astype(np.float32)
    depth_mask = torch.tensor([[True, False, True, True], [False, True, True, False]])
    hidden = np.kron(depth_mask.numpy().reshape(2, 2, 2), np.ones((16, 16), bool))[:, None]
    got = reconstruction_errors(torch.from_numpy(pred_norm), torch.from_numpy(depth), depth_mask,
                                mode='standardize', patch_size=16)
    for i in range(2):
        valid = depth[i, 0] > 0
        vis = valid & ~hidden[i, 0]
        metres = pred_norm[i, 0] * depth[i, 0][vis].std() + depth[i, 0][vis].mean()  # visible statistics only
        for region, px in (('hidden', valid & hidden[i, 0]), ('all', valid)):
            t = depth[i, 0][px]
            assert got[f'abs_rel_{region}_unaligned'][i].item() == pytest.approx(
                np.mean(np.abs(metres[px] - t) / t), rel=1e-4)
            a, b = np.polyfit(pred_norm[i, 0][px], t, 1)
            aligned = a * pred_norm[i, 0][px] + b
            assert got[f'abs_rel_{region}_aligned'][i].item() == pytest.approx(np.mean(np.abs(aligned - t) / t), rel=1e-4)
            assert got[f'rmse_{region}_aligned'][i].item() == pytest.approx(np.sqrt(np.mean((aligned - t) ** 2)), rel=1e-4)
    # metric needs no statistics; nothing visible -> no scale (NaN), aligned still defined
    assert torch.allclose(depth_from_visible(torch.ones(1, 1, 16, 16), torch.ones(1, 1, 16, 16),
                                             torch.zeros(1, 1, 16, 16, dtype=torch.bool), 'metric', metric_scale=10.0),
                          torch.full((1, 1, 16, 16), 10.0))
    assert torch.isnan(depth_from_visible(torch.ones(1, 1, 16, 16), torch.ones(1, 1, 16, 16),
                                          torch.zeros(1, 1, 16, 16, dtype=torch.bool), 'standardize')).all()
    x = torch.rand(1, 1, 8, 8)
    assert torch.allclose(align_scale_shift(x, 3 * x - 1, torch.ones_like(x, dtype=torch.bool)), 3 * x - 1, atol=1e-5)


def test_depth_reconstruction_errors_on_a_model():
    model = _model(depth_norm_stats='visible')
    rgb, depth = _batch()
    errors = depth_reconstruction_errors(model, rgb, depth, mask_noise=torch.rand(4, 2, 16))
    assert model.training  # mode restored
    assert set(errors) >= {'abs_rel_hidden_unaligned', 'abs_rel_hidden_aligned', 'abs_rel_all_unaligned'}
    assert all(v == v and v >= 0 for v in errors.values())
    assert errors['rmse_hidden_aligned'] <= errors['rmse_hidden_unaligned'] + 1e-6  # least squares is optimal


def test_mae_has_no_rgb_reliance():
    """Issue 23: rgb_reliance measures the depth pretext; an MAE model (no depth loss) has none."""
    model = _model(rgb_loss_weight=1.0, depth_input=False, depth_loss_weight=0.0)
    assert not model.has_depth_pretext and _model().has_depth_pretext
    with pytest.raises(ValueError, match='no depth loss'):
        rgb_reliance(model, *_batch())


@pytest.mark.e2e
def test_stage_two_starts_from_a_local_stage_one_export_and_mae_stores_no_reliance(tmp_path):
    """Replication v4, question A, at toy size and offline: MAE stage 1 stores no rgb_reliance; a Mask3D stage 2
    whose model.init is the stage-1 export starts from exactly those encoder weights and logs rgb_reliance."""
    import json

    from mask3d.loading import load_state_dict_file
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.pretrain.engine import build_encoder, pretrain
    repo = Path(__file__).resolve().parents[1] / 'training' / 'configs' / 'replicate'
    tiny = ['model.model_args={depth: 2}', 'data.source=synthetic', 'data.synthetic_length=8',
            'data.image_size=[32,48]', 'data.batch_size=4', 'data.num_workers=0', 'train.steps=2',
            'train.log_every=1', 'train.ckpt_every=2', 'train.precision=fp32', 'train.device=cpu']
    stage1 = pretrain(load_config(repo / 'pretrain_mae.yaml', tiny), tmp_path / 'stage1', progress=False)
    records = [json.loads(x) for x in (tmp_path / 'stage1' / 'metrics.jsonl').read_text().splitlines()]
    assert records and not any('rgb_reliance' in r for r in records) and 'rgb_reliance' not in stage1
    init = tmp_path / 'stage1' / 'export' / 'model.safetensors'
    cfg2 = load_config(repo / 'pretrain_mask3d_paper.yaml', tiny + [f'model.init={init}'])
    start = build_encoder(cfg2).state_dict()
    exported = load_state_dict_file(init)
    assert all(torch.equal(start[k], exported[k]) for k in start)
    stage2 = pretrain(cfg2, tmp_path / 'stage2', progress=False)
    assert stage2['rgb_reliance']['last'] is not None
