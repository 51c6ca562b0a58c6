"""Fine-tuning end to end on synthetic rooms: each task learns, backbones from every kind of source, resume,
CLI finetune/evaluate, layer decay, clear errors; plus the real NYUv2 frame as an RGB-D folder."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask3d.errors import ConfigError, Mask3DError
from mask3d.training.runtime.distributed import DistInfo
from mask3d.training.finetune.config import load_finetune_config
from mask3d.training.finetune.data import TaskSamples, build_task_frames, collate, task_transform
from mask3d.training.finetune.engine import build_finetune_optimizer, evaluate_model, finetune
from mask3d.training.finetune.models import build_task_model
from mask3d.training.finetune.tasks import get_task
from mask3d.training.runtime.metrics_log import read_metrics

CONFIGS = Path(__file__).resolve().parents[1] / 'training' / 'configs' / 'finetune'
SMALL = ['model.model_args={depth: 4}', 'model.head_channels=32', 'model.drop_path_rate=0.0',
         'data.image_size=[96,128]', 'data.num_workers=0', 'data.batch_size=4', 'data.synthetic_length=32',
         'data.synthetic_val_length=8', 'train.device=cpu', 'train.precision=fp32', 'train.log_every=1',
         'eval.figure_samples=2']


def _cfg(task, *extra):
    return load_finetune_config(CONFIGS / f'synthetic_{task}.yaml', SMALL + list(extra), task=task)


def _untrained_score(cfg, metric):
    torch.manual_seed(cfg.train.seed)
    model, _ = build_task_model(cfg)
    return evaluate_model(cfg, model, build_task_frames(cfg, 'val'), DistInfo(), progress=False)[metric]


@pytest.mark.e2e
@pytest.mark.parametrize('task, metric, better, extra', [
    ('semseg', 'miou', 1, ['train.steps=30', 'optim.lr=2e-3']),
    ('depth', 'abs_rel', -1, ['train.steps=30', 'optim.lr=2e-3']),
    # Mask R-CNN learns slowly: overfit four fixed frames and score on them (the longest test in CI: 79 s alone, 732 s
    # on 2 cores shared with 5 other jobs, hence its own timeout)
    pytest.param('instance', 'bbox_AP50', 1, ['train.steps=40', 'optim.lr=2e-3', 'data.batch_size=2',
                                              'data.synthetic_length=4', 'data.synthetic_val_length=4',
                                              'data.synthetic_val_seed=0', 'data.scale=[1,1]', 'data.hflip=0',
                                              'data.color_jitter=0', 'optim.layer_decay=1.0'],
                 marks=pytest.mark.timeout(1800)),
])
def test_each_task_trains_and_beats_the_untrained_model(tmp_path, task, metric, better, extra):
    cfg = _cfg(task, *extra)
    before = _untrained_score(cfg, metric)
    summary = finetune(cfg, tmp_path / 'run', progress=False)
    after = summary['val'][metric]
    assert np.isfinite(after) and better * (after - before) > 0, (before, after)
    records = read_metrics(tmp_path / 'run')
    train = [r for r in records if r['split'] == 'train']
    assert train[-1]['loss'] < train[0]['loss']
    saved = json.loads((tmp_path / 'run' / 'eval' / 'metrics_val.json').read_text())
    assert saved[metric] == pytest.approx(after) and saved['task'] == task
    assert Image.open(tmp_path / 'run' / 'eval' / 'predictions_val.png').size[0] > 300
    assert (tmp_path / 'run' / 'model.safetensors').is_file()


@pytest.mark.parametrize('size', [(96, 128), (128, 96), (64, 64)])
def test_predictions_match_the_ground_truth_size(size):
    for task in ('semseg', 'depth'):
        cfg = _cfg(task, f'data.image_size=[{size[0]},{size[1]}]')
        model, _ = build_task_model(cfg)
        frames = build_task_frames(cfg, 'val')
        samples = TaskSamples(frames, task, task_transform(cfg, False, (0.5,) * 3, (0.25,) * 3), 0,
                              keep_full_target=True)
        batch = collate([samples[0], samples[1]])
        assert batch['rgb'].shape == (2, 3, *size)
        model.eval()
        for full in (True, False):
            preds = get_task(task).predict(model, batch, full_resolution=full)
            target = batch['full_semantic' if task == 'semseg' else 'full_depth'][0] if full else \
                (batch['semantic'][0] if task == 'semseg' else batch['depth'][0, 0])
            assert preds[0].shape == target.shape


def test_instance_predictions_at_several_sizes():
    for size in ((96, 128), (128, 96)):
        cfg = _cfg('instance', f'data.image_size=[{size[0]},{size[1]}]')
        model, _ = build_task_model(cfg)
        model.eval()
        out = get_task('instance').predict(model, {'rgb': torch.randn(2, 3, *size)}, True)
        assert len(out) == 2 and all(o['masks'].shape[-2:] == size for o in out)


def test_class_count_mismatch_fails_before_training(tmp_path):
    cfg = _cfg('semseg', 'model.num_classes=20', 'train.steps=2')
    with pytest.raises(ConfigError, match=r'model.num_classes=20 but synthetic has 12 classes.*num_classes=12'):
        finetune(cfg, tmp_path / 'run', progress=False)
    assert not (tmp_path / 'run').exists()
    with pytest.raises(ConfigError, match='batch_size >= 2 or model.head=linear'):
        _cfg('semseg', 'data.batch_size=1')
    with pytest.raises(ConfigError, match='9 thing classes'):
        finetune(_cfg('instance', 'model.num_classes=12'), tmp_path / 'run', progress=False)


def test_layer_decay_scales_blocks_and_keeps_the_head_at_full_lr():
    for task in ('semseg', 'instance'):
        cfg = _cfg(task, 'optim.layer_decay=0.5')
        model, _ = build_task_model(cfg)
        opt = build_finetune_optimizer(cfg, model)
        scale = {id(p): g['lr_scale'] for g in opt.param_groups for p in g['params']}
        named = dict(model.named_parameters())
        vit = 'backbone.model.' if task == 'semseg' else 'backbone.backbone.model.'
        assert scale[id(named[vit + 'patch_embed.proj.weight'])] == pytest.approx(0.5 ** 5)  # 4 blocks + norm
        assert scale[id(named[vit + 'blocks.0.attn.qkv.weight'])] == pytest.approx(0.5 ** 4)
        assert scale[id(named[vit + 'blocks.3.attn.qkv.weight'])] == pytest.approx(0.5)
        head = [n for n in named if not n.startswith(vit)]
        assert head and all(scale[id(named[n])] == 1.0 for n in head)
        no_decay = {id(p) for g in opt.param_groups if g['weight_decay'] == 0 for p in g['params']}
        assert id(named[vit + 'pos_embed']) in no_decay and id(named[vit + 'blocks.0.attn.qkv.weight']) not in no_decay


@pytest.fixture(scope='module')
def pretrain_run(tmp_path_factory):
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.pretrain.engine import pretrain
    run = tmp_path_factory.mktemp('pre') / 'run'
    cfg = load_config(None, ['model.name=mask3d_vit_tiny_patch16', 'model.model_args={depth: 4}',
                             'method.decoder_dim=64', 'method.decoder_depth=1', 'method.decoder_num_heads=4',
                             'method.depth_encoder_depth=1', 'data.image_size=[64,96]', 'data.batch_size=2',
                             'data.num_workers=0', 'data.synthetic_length=8', 'train.steps=2', 'train.device=cpu',
                             'train.precision=fp32', 'train.figure_every=1000'])
    pretrain(cfg, run, progress=False)
    return run


def _encoder_weights(run):
    state = torch.load(run / 'checkpoints' / 'last.pt', weights_only=True)['model']
    return {k[len('encoder.'):]: v for k, v in state.items() if k.startswith('encoder.')}


@pytest.mark.e2e
@pytest.mark.parametrize('kind', ['run_dir', 'export_dir', 'local_dir', 'safetensors_file'])
def test_backbone_from_a_pretraining_run_and_its_exports(tmp_path, pretrain_run, kind):
    spec = {'run_dir': str(pretrain_run), 'export_dir': str(pretrain_run / 'export'),
            'local_dir': f'local-dir:{pretrain_run / "export"}',
            'safetensors_file': str(pretrain_run / 'export' / 'model.safetensors')}[kind]
    extra = ['model.arch=mask3d_vit_tiny_patch16'] if kind == 'safetensors_file' else []
    cfg = _cfg('semseg', f'model.backbone={spec}', 'train.steps=1', *extra)
    model, recipe = build_task_model(cfg)
    expected = _encoder_weights(pretrain_run)
    got = model.backbone.model.state_dict()
    for key in ('patch_embed.proj.weight', 'blocks.3.mlp.fc2.weight', 'cls_token'):
        assert torch.equal(got[key], expected[key]), key
    assert recipe['model_args']['depth'] == 4
    summary = finetune(cfg, tmp_path / 'ft', progress=False)
    assert summary['steps'] == 1 and np.isfinite(summary['val']['pixel_acc'])


@pytest.mark.e2e
def test_backbone_from_a_timm_vit_name(tmp_path):
    cfg = _cfg('depth', 'model.backbone=vit_tiny_patch16_224', 'model.pretrained=false', 'train.steps=2')
    summary = finetune(cfg, tmp_path / 'ft', progress=False)
    assert summary['steps'] == 2 and np.isfinite(summary['val']['abs_rel'])
    with pytest.raises(ConfigError, match='model.arch'):
        build_task_model(_cfg('semseg', f'model.backbone={tmp_path / "ft" / "model.safetensors"}'))
    with pytest.raises(ConfigError, match='neither an exported backbone'):
        build_task_model(_cfg('semseg', f'model.backbone={tmp_path}'))


def _all_weights(run):
    return torch.load(run / 'checkpoints' / 'last.pt', weights_only=True)['model']


@pytest.mark.e2e
def test_interrupted_run_resumes_exactly(tmp_path):
    extra = ['train.steps=4', 'train.ckpt_every=2', 'train.keep_every=2', 'data.num_workers=0']
    full = tmp_path / 'full'
    finetune(_cfg('semseg', *extra), full, progress=False)
    cut = tmp_path / 'cut'
    shutil.copytree(full, cut)
    shutil.copy(cut / 'checkpoints' / 'step_0000002.pt', cut / 'checkpoints' / 'last.pt')  # as if killed at step 3
    with pytest.raises(Mask3DError, match='already holds a run'):
        finetune(_cfg('semseg', *extra), cut, progress=False)
    with pytest.raises(ConfigError, match='optim.weight_decay'):  # (a lower lr may change: a diverged run's advice)
        finetune(_cfg('semseg', *extra, 'optim.weight_decay=0.5'), cut, resume=True, progress=False)
    finetune(_cfg('semseg', *extra), cut, resume=True, progress=False)
    a, b = _all_weights(full), _all_weights(cut)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)


@pytest.mark.e2e
def test_cli_finetune_then_evaluate(tmp_path, capsys):
    from mask3d.cli import main
    run = tmp_path / 'run'
    args = ['finetune', '--task', 'depth', '--config', str(CONFIGS / 'synthetic_depth.yaml'), '--output', str(run)]
    sets = [x for s in SMALL + ['train.steps=2'] for x in ('--set', s)]
    assert main(args + sets) == 0
    assert 'abs_rel' in capsys.readouterr().out
    assert main(['evaluate', str(run), '--task', 'depth', '--split', 'train', '--output', str(tmp_path / 'ev')]) == 0
    metrics = json.loads((tmp_path / 'ev' / 'metrics_train.json').read_text())
    assert metrics['split'] == 'train' and metrics['frames'] == 32 and 0 < metrics['delta3'] <= 1
    assert (tmp_path / 'ev' / 'predictions_train.png').is_file()
    # the stored model, another data section from a config file, and a checkpoint file path
    assert main(['evaluate', str(run / 'checkpoints' / 'last.pt'), '--config', str(CONFIGS / 'synthetic_depth.yaml'),
                 *sets, '--set', 'data.synthetic_val_length=4']) == 0
    assert json.loads((run / 'eval' / 'metrics_val.json').read_text())['frames'] == 4
    assert main(['evaluate', str(run), '--task', 'semseg']) == 2
    assert "fine-tuned for 'depth'" in capsys.readouterr().err
    assert main(['finetune', '--task', 'semseg', '--config', str(CONFIGS / 'synthetic_depth.yaml'), '--output',
                 str(tmp_path / 'x')]) == 2
    assert "is a 'depth' config" in capsys.readouterr().err


@pytest.mark.e2e
def test_real_nyu_frame_as_an_rgbd_folder(tmp_path, rgbd_data):
    """The one real labelled NYUv2 frame (1407): its 40-class labels cropped onto the 560x425 demo image."""
    demo = rgbd_data / 'rcnn-depth' / 'demo-data'
    labels = np.array(Image.open(rgbd_data / 'h-0-0-nyuv2-meta-data' / 'test_labels_40' / 'new_nyu_class40_1407.png'))
    train_ids = np.where(labels > 0, labels.astype(np.int64) - 1, 255)[45:470, 40:600].astype(np.uint8)
    root = tmp_path / 'nyu1407'
    for sub, src in (('rgb', demo / 'images.png'), ('depth', demo / 'rawdepth.png')):
        (root / sub).mkdir(parents=True)
        shutil.copy(src, root / sub / '1407.png')
    (root / 'semantic').mkdir()
    Image.fromarray(train_ids).save(root / 'semantic' / '1407.png')
    cfg = _cfg('semseg', 'data.source=folder', f'data.root={root}', 'model.num_classes=40', 'train.steps=2',
               'data.batch_size=1', 'eval.batch_size=1', 'data.image_size=[208,288]', 'model.head=linear')
    summary = finetune(cfg, tmp_path / 'run', progress=False)
    ious = summary['val']['iou_per_class']
    assert len(ious) == 40 and summary['val']['frames'] == 1
    present = {int(c) for c in np.unique(train_ids) if c != 255}
    values = list(ious.values())
    assert all(not np.isnan(values[c]) for c in present)  # every class in the ground truth has an IoU
    assert 0 <= summary['val']['pixel_acc'] <= 1


@pytest.mark.ddp
def test_two_process_ddp_finetune_and_sharded_evaluation_match_one_process(tmp_path):
    """torchrun (gloo, CPU): fine-tuning runs under DDP, and evaluation split across ranks reduces to exactly the
    metrics of one process (confusion matrix and depth sums are all-reduced)."""
    import os
    import subprocess
    import sys
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    # one image per forward pass: batch composition alone changes fp32 logits in the last bits
    sets = [x for s in SMALL + ['train.steps=2', 'data.synthetic_val_length=6', 'eval.batch_size=1']
            for x in ('--set', s)]
    for task in ('semseg', 'depth'):
        run = tmp_path / task
        cmd = ['-m', 'mask3d', 'finetune', '--task', task, '--config', str(CONFIGS / f'synthetic_{task}.yaml'),
               '--output', str(run), *sets]
        ddp = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                              *cmd], capture_output=True, text=True, env=env, timeout=300)
        assert ddp.returncode == 0, ddp.stderr[-3000:]
        assert len(torch.load(run / 'checkpoints' / 'last.pt', weights_only=True)['rng']) == 2
        sharded = json.loads((run / 'eval' / 'metrics_val.json').read_text())  # scored by 2 ranks, 3 frames each
        one = subprocess.run([sys.executable, '-m', 'mask3d', 'evaluate', str(run), '--output', str(tmp_path / 'one')],
                             capture_output=True, text=True, env=env, timeout=300)
        assert one.returncode == 0, one.stderr[-3000:]
        single = json.loads((tmp_path / 'one' / 'metrics_val.json').read_text())
        key = 'miou' if task == 'semseg' else 'abs_rel'
        assert sharded['frames'] == single['frames'] == 6
        assert sharded[key] == pytest.approx(single[key], rel=1e-5, abs=1e-7)
