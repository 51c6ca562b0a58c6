"""Bad data inputs as rows for the table-driven test (``tests/test_bad_inputs.py`` runs them through ``mask3d``).

Each row: ``name``; ``build(tmp) -> argv`` makes the bad input under the folder ``tmp`` and returns the ``mask3d``
arguments; ``culprit``: text the one-line message must contain (the file, and what is wrong); ``code``: the exit
status (1: the work started and stopped on the data). Not a test module itself (no ``test_`` prefix).
"""
import io
import zlib
from pathlib import Path
from typing import List

import numpy as np
import yaml
from PIL import Image

EXIT_FAILED = 1

TINY_PRETRAIN = {
    'model': {'name': 'mask3d_vit_tiny_patch16', 'model_args': {'depth': 2}},
    'method': {'depth_encoder_depth': 1, 'decoder_dim': 32, 'decoder_depth': 1, 'decoder_num_heads': 2},
    'data': {'source': 'folder', 'image_size': [32, 32], 'batch_size': 2, 'num_workers': 1},
    'optim': {'lr': 1.0e-3, 'warmup_steps': 0},
    'train': {'steps': 1, 'precision': 'fp32', 'device': 'cpu', 'log_every': 1, 'ckpt_every': 1,
              'figure_every': 1000, 'export_at_end': False},
}


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _truncate(path: Path) -> None:
    """Cut a file in half, inside its compressed pixel data (as a copy or download that stopped does)."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _folder(root: Path, frames: int = 2, labels: bool = False, size=(16, 16)) -> Path:
    """A valid RGB-D folder (``rgb/``, ``depth/`` uint16 mm, optionally ``semantic/`` ids 0..2); noise content, so
    the compressed pixel data fills most of each file."""
    rng = np.random.default_rng(0)
    for i in range(frames):
        _png(root / 'rgb' / f'{i:06d}.png', rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        _png(root / 'depth' / f'{i:06d}.png', rng.integers(500, 5000, size, dtype=np.uint16))
        if labels:
            _png(root / 'semantic' / f'{i:06d}.png', rng.integers(0, 3, size, dtype=np.uint8))
    return root


def _inspect(root: Path) -> List[str]:
    return ['data', 'inspect', str(root)]


def truncated_colour(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    _truncate(root / 'rgb' / '000001.png')
    return _inspect(root)


def truncated_depth(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    _truncate(root / 'depth' / '000001.png')
    return _inspect(root)


def truncated_label(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder', labels=True)
    _truncate(root / 'semantic' / '000000.png')
    return _inspect(root)


def label_ids_outside_classes(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder', labels=True)
    (root / 'classes.json').write_text('{"names": ["wall", "floor", "chair"]}')
    label = np.zeros((16, 16), np.uint8)
    label[2, 2], label[3, 3] = 7, 200
    _png(root / 'semantic' / '000001.png', label)
    return _inspect(root)


def malformed_intrinsics(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    (root / 'intrinsics.txt').write_text('fx=500 fy=500\n')
    return _inspect(root)


def intrinsics_wrong_size(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    (root / 'intrinsics').mkdir()
    (root / 'intrinsics' / '000001.txt').write_text('500 0 8\n0 500 8\n')
    return _inspect(root)


def colour_without_depth(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    (root / 'depth' / '000001.png').unlink()
    return _inspect(root)


def duplicate_stems(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    Image.open(root / 'rgb' / '000001.png').convert('RGB').save(root / 'rgb' / '000001.jpg')
    return _inspect(root)


def label_missing_for_a_frame(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder', labels=True)
    (root / 'semantic' / '000001.png').unlink()
    return _inspect(root)


def _scannet_scene(scene: Path, frames: int = 2) -> Path:
    for i in range(frames):
        buf = io.BytesIO()
        Image.fromarray(np.full((24, 32, 3), 80, np.uint8)).save(buf, format='JPEG')
        (scene / 'color').mkdir(parents=True, exist_ok=True)
        (scene / 'color' / f'{i}.jpg').write_bytes(buf.getvalue())
        _png(scene / 'depth' / f'{i}.png', np.full((24, 32), 1200, np.uint16))
    return scene


def scannet_frame_without_depth(tmp: Path) -> List[str]:
    scene = _scannet_scene(tmp / 'scans' / 'scene0000_00')
    (scene / 'depth' / '1.png').unlink()
    return _inspect(tmp / 'scans')


def scannet_malformed_intrinsics(tmp: Path) -> List[str]:
    scene = _scannet_scene(tmp / 'scans' / 'scene0000_00')
    (scene / 'intrinsic').mkdir()
    (scene / 'intrinsic' / 'intrinsic_depth.txt').write_text('577.87 0 319.5\nnan 577.87 239.5\n0 0 1\n')
    return _inspect(tmp / 'scans')


def _sens(tmp: Path, frames: int = 3) -> Path:
    from mask3d.training.data.scannet_sens import write_sens
    K = np.diag([500.0, 500.0, 1.0, 1.0])
    return write_sens(tmp / 'scene0000_00.sens', [np.full((24, 32, 3), 40 * i, np.uint8) for i in range(frames)],
                      [np.full((12, 16), 1000 + i, np.uint16) for i in range(frames)], [np.eye(4)] * frames,
                      intrinsic_color=K, intrinsic_depth=K)


def truncated_sens(tmp: Path) -> List[str]:
    path = _sens(tmp)
    path.write_bytes(path.read_bytes()[:-50])
    return ['data', 'extract-sens', str(path), '--out', str(tmp / 'scans' / 'scene0000_00')]


def interrupted_sens_export(tmp: Path) -> List[str]:
    """What an export killed half way leaves: some frames and a marker that says incomplete."""
    from mask3d.training.data.scannet_sens import SensFormatError, extract_sens
    path = _sens(tmp)
    path.write_bytes(path.read_bytes()[:-50])
    try:
        extract_sens(path, tmp / 'scans' / 'scene0000_00', progress=False)
    except SensFormatError:
        pass
    return _inspect(tmp / 'scans')


def sens_export_lost_frames(tmp: Path) -> List[str]:
    from mask3d.training.data.scannet_sens import extract_sens
    extract_sens(_sens(tmp), tmp / 'scans' / 'scene0000_00', progress=False)
    (tmp / 'scans' / 'scene0000_00' / 'color' / '2.jpg').unlink()
    (tmp / 'scans' / 'scene0000_00' / 'depth' / '2.png').unlink()
    return _inspect(tmp / 'scans')


def _tum(root: Path) -> Path:
    for kind in ('rgb', 'depth'):
        lines = ['# timestamp filename\n']
        for t in (1.0, 2.0):
            name = f'{kind}/{t:.6f}.png'
            lines.append(f'{t:.6f} {name}\n')
            _png(root / name, np.full((8, 8, 3), 90, np.uint8) if kind == 'rgb' else np.full((8, 8), 9000, np.uint16))
        (root / f'{kind}.txt').write_text(''.join(lines))
    return root


def tum_listed_file_missing(tmp: Path) -> List[str]:
    root = _tum(tmp / 'rgbd_dataset_freiburg1_xyz')
    (root / 'depth' / '2.000000.png').unlink()
    return _inspect(root)


def tum_malformed_list(tmp: Path) -> List[str]:
    root = _tum(tmp / 'rgbd_dataset_freiburg1_xyz')
    (root / 'rgb.txt').write_text('# timestamp filename\n1.000000 rgb/1.000000.png\n2.0s rgb/2.000000.png\n')
    return _inspect(root)


def seven_scenes_colour_without_depth(tmp: Path) -> List[str]:
    seq = tmp / 'chess' / 'seq-01'
    for i in range(2):
        _png(seq / f'frame-{i:06d}.color.png', np.full((8, 8, 3), 50, np.uint8))
    _png(seq / 'frame-000000.depth.png', np.full((8, 8), 1500, np.uint16))
    return _inspect(tmp / 'chess')


def worker_error_in_pretraining(tmp: Path) -> List[str]:
    """The error is raised inside a DataLoader worker (num_workers=1): the one line must still name the file."""
    root = _folder(tmp / 'worker_data', frames=2)
    for i in range(2):
        _truncate(root / 'depth' / f'{i:06d}.png')
    cfg = dict(TINY_PRETRAIN, data=dict(TINY_PRETRAIN['data'], root=str(root)))
    (tmp / 'cfg.yaml').write_text(yaml.safe_dump(cfg))
    return ['pretrain', '--config', str(tmp / 'cfg.yaml'), '--output', str(tmp / 'run')]


def worker_label_outside_classes_in_finetuning(tmp: Path) -> List[str]:
    """Semantic ids above model.num_classes used to end in an IndexError at the loss; now the file is named."""
    root = _folder(tmp / 'labelled', frames=2, labels=True)
    for i in range(2):
        label = np.full((16, 16), 1, np.uint8)
        label[0, :3] = (5, 9, 255)
        _png(root / 'semantic' / f'{i:06d}.png', label)
    sets = ['data.source=folder', f'data.root={root}', 'model.num_classes=3', 'data.image_size=[32,32]',
            'data.batch_size=2', 'data.num_workers=1', 'train.steps=1', 'train.device=cpu', 'train.precision=fp32',
            'model.model_args={depth: 4}']
    return ['finetune', '--task', 'semseg', '--config', 'synthetic_semseg', '--output', str(tmp / 'ft'),
            *[x for s in sets for x in ('--set', s)]]


# ---- issue 21 part B: entries that are not files, colour that is not 8-bit, damaged shards ----
def broken_link_among_frames(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    (root / 'rgb' / '000001.png').unlink()
    (root / 'rgb' / '000001.png').symlink_to(tmp / 'moved-away.png')
    return _inspect(root)


def link_loop_among_frames(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    (root / 'depth' / '000001.png').unlink()
    (root / 'depth' / '000001.png').symlink_to(root / 'depth' / '000001.png')
    return _inspect(root)


def broken_link_in_pretraining(tmp: Path) -> List[str]:
    root = _folder(tmp / 'linked', frames=3)
    (root / 'depth' / '000002.png').unlink()
    (root / 'depth' / '000002.png').symlink_to(tmp / 'moved-away.png')
    cfg = dict(TINY_PRETRAIN, data=dict(TINY_PRETRAIN['data'], root=str(root)))
    (tmp / 'cfg.yaml').write_text(yaml.safe_dump(cfg))
    return ['pretrain', '--config', str(tmp / 'cfg.yaml'), '--output', str(tmp / 'run')]


def sixteen_bit_colour(tmp: Path) -> List[str]:
    root = _folder(tmp / 'folder')
    _png(root / 'rgb' / '000001.png', np.full((16, 16), 40000, np.uint16))  # used to decode as a white image
    return _inspect(root)


def _shards(tmp: Path, frames: int = 4, per_shard: int = 2) -> Path:
    from mask3d.training.data.folder import RGBDFolder
    from mask3d.training.data.shards import write_shards
    return write_shards(RGBDFolder(_folder(tmp / 'src', frames=frames)), tmp / 'shards', per_shard,
                        source_format='folder', progress=False)


def zero_byte_shard(tmp: Path) -> List[str]:
    out = _shards(tmp)
    (out / 'shard-000001.tar').write_bytes(b'')
    return _inspect(out)


def shard_index_overstates(tmp: Path) -> List[str]:
    import json
    out = _shards(tmp)
    index = json.loads((out / 'shards.json').read_text())
    index['shards'][1]['frames'] = 3
    (out / 'shards.json').write_text(json.dumps(index))
    return _inspect(out)


def truncated_shard_in_pretraining(tmp: Path) -> List[str]:
    """Cut at a tar block boundary, so the size is still a whole number of blocks: the lost end-of-archive blocks
    name it at start-up."""
    import tarfile
    out = _shards(tmp)
    shard = out / 'shard-000001.tar'
    with tarfile.open(shard) as tf:
        cut = tf.getmembers()[-1].offset  # the last member's header: one file of the second frame is lost
    shard.write_bytes(shard.read_bytes()[:cut])
    cfg = dict(TINY_PRETRAIN, data=dict(TINY_PRETRAIN['data'], source='shards', root=str(out)))
    (tmp / 'cfg.yaml').write_text(yaml.safe_dump(cfg))
    return ['pretrain', '--config', str(tmp / 'cfg.yaml'), '--output', str(tmp / 'run')]


CASES = [
    {'name': 'truncated-colour-png', 'build': truncated_colour, 'culprit': ['rgb/000001.png', 'cannot read']},
    {'name': 'truncated-depth-png', 'build': truncated_depth, 'culprit': ['depth/000001.png', 'cannot read depth']},
    {'name': 'truncated-label-png', 'build': truncated_label,
     'culprit': ['semantic/000000.png', 'cannot read label image']},
    {'name': 'label-ids-outside-classes', 'build': label_ids_outside_classes,
     'culprit': ['semantic/000001.png', 'label ids 7, 200 outside the 3 classes']},
    {'name': 'malformed-intrinsics-txt', 'build': malformed_intrinsics,
     'culprit': ['intrinsics.txt', 'intrinsics must be numbers']},
    {'name': 'per-frame-intrinsics-wrong-size', 'build': intrinsics_wrong_size,
     'culprit': ['intrinsics/000001.txt', 'found 6 values']},
    {'name': 'colour-without-depth-partner', 'build': colour_without_depth,
     'culprit': ['rgb/000001.png', 'without a colour/depth partner']},
    {'name': 'duplicate-colour-stems', 'build': duplicate_stems,
     'culprit': ['two colour files for frame 000001', '000001.jpg', '000001.png']},
    {'name': 'label-missing-for-a-frame', 'build': label_missing_for_a_frame,
     'culprit': ['semantic/000001.png', 'label file missing']},
    {'name': 'scannet-frame-without-depth', 'build': scannet_frame_without_depth,
     'culprit': ['scene0000_00/color/1.jpg', 'without a colour/depth partner']},
    {'name': 'scannet-intrinsics-nan', 'build': scannet_malformed_intrinsics,
     'culprit': ['intrinsic_depth.txt', 'NaN']},
    {'name': 'truncated-sens-file', 'build': truncated_sens,
     'culprit': ['scene0000_00.sens', 'truncated while reading frame 2 of 3']},
    {'name': 'interrupted-sens-export', 'build': interrupted_sens_export,
     'culprit': ['scene0000_00', 'did not finish']},
    {'name': 'sens-export-lost-frames', 'build': sens_export_lost_frames,
     'culprit': ['scene0000_00', 'wrote 3 colour frames but color/ holds 2']},
    {'name': 'tum-listed-file-missing', 'build': tum_listed_file_missing,
     'culprit': ['depth/2.000000.png', 'listed in', 'but missing']},
    {'name': 'tum-malformed-file-list', 'build': tum_malformed_list,
     'culprit': ['rgb.txt: line 3', 'expected "timestamp filename"']},
    {'name': '7scenes-colour-without-depth', 'build': seven_scenes_colour_without_depth,
     'culprit': ['frame-000001.color.png', 'without a colour/depth partner']},
    {'name': 'worker-error-in-pretraining', 'build': worker_error_in_pretraining,
     'culprit': ['worker_data/depth/00000', 'cannot read depth']},
    {'name': 'worker-label-outside-classes-in-finetuning', 'build': worker_label_outside_classes_in_finetuning,
     'culprit': ['labelled/semantic/00000', 'label ids 5, 9 outside the 3 classes']},
    # issue 21 part B
    {'name': 'broken-symlink-among-frames', 'build': broken_link_among_frames,
     'culprit': ['rgb/000001.png', 'colour file is a symbolic link that cannot be followed', 'moved-away.png']},
    {'name': 'symlink-loop-among-frames', 'build': link_loop_among_frames,
     'culprit': ['depth/000001.png', 'depth file is a symbolic link that cannot be followed', 'symbolic links']},
    {'name': 'broken-symlink-in-pretraining', 'build': broken_link_in_pretraining,
     'culprit': ['linked/depth/000002.png', 'symbolic link that cannot be followed']},
    {'name': '16-bit-greyscale-png-as-colour', 'build': sixteen_bit_colour,
     'culprit': ['rgb/000001.png', 'colour must be 8-bit greyscale, RGB or RGBA, got PIL mode I;16']},
    {'name': 'zero-byte-shard', 'build': zero_byte_shard,
     'culprit': ['shard-000001.tar', 'shard is empty (0 bytes)']},
    {'name': 'shard-index-overstates-a-shard', 'build': shard_index_overstates,
     'culprit': ['shard-000001.tar', 'shard holds 2 frames but shards.json lists 3']},
    {'name': 'truncated-shard-in-pretraining', 'build': truncated_shard_in_pretraining,
     'culprit': ['shard-000001.tar', 'shard is truncated (it does not end with the tar end-of-archive blocks)']},
]
for _row in CASES:
    _row.setdefault('code', EXIT_FAILED)
