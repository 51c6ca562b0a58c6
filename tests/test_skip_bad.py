"""``data.skip_bad``: the data errors become counted, logged skips, and the count survives ``--resume`` (issue 13)."""
import json

import numpy as np
import pytest
from PIL import Image

from mask3d.training.pretrain.config import config_from_dict
from mask3d.training.pretrain.engine import pretrain

TINY = {
    'model': {'name': 'mask3d_vit_tiny_patch16', 'model_args': {'depth': 2}},
    'method': {'depth_encoder_depth': 1, 'decoder_dim': 32, 'decoder_depth': 1, 'decoder_num_heads': 2},
    'data': {'source': 'folder', 'image_size': [32, 32], 'batch_size': 2, 'num_workers': 0, 'skip_bad': True},
    'optim': {'lr': 1.0e-3, 'warmup_steps': 0},
    'train': {'steps': 6, 'precision': 'fp32', 'device': 'cpu', 'log_every': 1, 'ckpt_every': 2,
              'figure_every': 1000, 'export_at_end': False},
}


def _bad_folder(root, bad: bool = True):
    """12 frames, 3 of them unreadable (truncated depth, truncated colour, label-free is fine: pre-training), and
    one colour file without its depth partner (left out when listing); ``bad=False``: the 12 good frames only."""
    rng = np.random.default_rng(0)
    (root / 'rgb').mkdir(parents=True)
    (root / 'depth').mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / 'rgb' / f'{i:06d}.png')
        Image.fromarray(rng.integers(500, 5000, (24, 24), dtype=np.uint16)).save(root / 'depth' / f'{i:06d}.png')
    if not bad:
        return root
    for path in (root / 'depth' / '000003.png', root / 'depth' / '000007.png', root / 'rgb' / '000010.png'):
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(root / 'rgb' / 'orphan.png')
    return root


def _cfg(root, **train):
    values = json.loads(json.dumps(TINY))
    values['data']['root'] = str(root)
    values['train'].update(train)
    return config_from_dict(values)


def _records(run):
    return [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]


@pytest.mark.e2e
def test_skips_are_logged_counted_and_survive_resume(tmp_path, caplog):
    root = _bad_folder(tmp_path / 'data')
    whole = pretrain(_cfg(root), tmp_path / 'whole', progress=False)
    counts = [r['skipped_frames'] for r in _records(tmp_path / 'whole')]
    assert counts == sorted(counts) and counts[0] >= 1  # the orphan, from the start; then read-time skips
    assert whole['skipped_frames'] == counts[-1] > 1
    assert 'orphan.png' in caplog.text and '000003.png' in caplog.text

    pretrain(_cfg(root, steps=4), tmp_path / 'resumed', progress=False)     # stops at a checkpoint...
    resumed = pretrain(_cfg(root), tmp_path / 'resumed', resume=True, progress=False)  # ...and goes on
    assert resumed['skipped_frames'] == whole['skipped_frames']
    assert [r['skipped_frames'] for r in _records(tmp_path / 'resumed')] == counts


FINETUNE_TINY = {
    'task': 'depth',
    'model': {'backbone': 'mask3d_vit_tiny_patch16', 'pretrained': False, 'model_args': {'depth': 4},
              'head_channels': 16, 'drop_path_rate': 0.0},
    'data': {'source': 'folder', 'image_size': [32, 32],
             'scale': [1.0, 1.0], 'batch_size': 2, 'num_workers': 0, 'skip_bad': True},
    'eval': {'batch_size': 2, 'max_frames': 4, 'figure_samples': 0},
    'optim': {'lr': 1.0e-3, 'warmup_steps': 0},
    'train': {'steps': 6, 'precision': 'fp32', 'device': 'cpu', 'log_every': 1, 'ckpt_every': 2},
}


def _finetune_cfg(root, val_root, **train):
    from mask3d.training.finetune.config import finetune_config_from_dict
    values = json.loads(json.dumps(FINETUNE_TINY))
    values['data'].update(root=str(root), val_root=str(val_root))
    values['train'].update(train)
    return finetune_config_from_dict(values)


@pytest.mark.e2e
def test_finetune_skips_the_same_way_and_the_count_survives_resume(tmp_path, caplog):
    """Fine-tuning shares pre-training's skip_bad (mask3d/training/skips.py): same warnings, same counts in
    metrics.jsonl and summary.json, the same count after a stop and ``--resume``."""
    from mask3d.training.finetune.engine import finetune
    root, val = _bad_folder(tmp_path / 'data'), _bad_folder(tmp_path / 'val', bad=False)
    whole = finetune(_finetune_cfg(root, val), tmp_path / 'whole', progress=False)
    counts = [r['skipped_frames'] for r in _records(tmp_path / 'whole') if r['split'] == 'train']
    assert len(counts) == 6 and counts == sorted(counts) and counts[0] >= 1
    assert whole['skipped_frames'] == counts[-1] > 1
    assert json.loads((tmp_path / 'whole' / 'summary.json').read_text())['skipped_frames'] == counts[-1]
    assert 'orphan.png' in caplog.text and '000003.png' in caplog.text

    finetune(_finetune_cfg(root, val, steps=4), tmp_path / 'resumed', progress=False)
    resumed = finetune(_finetune_cfg(root, val), tmp_path / 'resumed', resume=True, progress=False)
    assert resumed['skipped_frames'] == whole['skipped_frames']
    assert [r['skipped_frames'] for r in _records(tmp_path / 'resumed') if r['split'] == 'train'] == counts


def test_evaluation_never_skips(tmp_path):
    """A bad validation frame stops the run even with data.skip_bad: scores are over the whole split or none."""
    from mask3d.errors import DataError
    from mask3d.training.finetune.data import build_task_frames
    root = _bad_folder(tmp_path / 'data')
    cfg = _finetune_cfg(root, root)
    assert len(build_task_frames(cfg, 'train').skipped_at_listing) == 1  # the orphan, left out for training
    for split, training in (('val', True), ('train', False)):  # validation, and `mask3d evaluate --split train`
        with pytest.raises(DataError, match='orphan'):
            build_task_frames(cfg, split, training=training)
