"""Every frame a reader lists is read, skipped with its reason (data.skip_bad) or named in an error: broken symbolic
links, link loops, folders and unreadable files among the frames; colour must be 8-bit; a depth unit that cannot be
right is warned about (issue 21, part B). The CLI rows are in ``bad_input_cases_data.py``."""
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask3d.errors import DataError
from mask3d.training.data.folder import RGBDFolder, read_rgb
from mask3d.training.data.inspect import inspect
from mask3d.training.data.mixture import MixtureFrames
from mask3d.training.data.sanity import depth_unit_problem, depth_unit_warning, warn_if_depth_implausible
from mask3d.training.data.scannet import ScanNetFrames
from mask3d.training.data.seven_scenes import SevenScenesFrames
from mask3d.training.data.tum import TUMFrames
from mask3d.training.runtime.skips import load_skipping


def _folder(root: Path, frames: int = 3, depth_mm=(500, 5000), labels: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for sub in ('rgb', 'depth') + (('semantic',) if labels else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / 'rgb' / f'{i:06d}.png')
        Image.fromarray(rng.integers(*depth_mm, (16, 16), dtype=np.uint16)).save(root / 'depth' / f'{i:06d}.png')
        if labels:
            Image.fromarray(rng.integers(0, 3, (16, 16), dtype=np.uint8)).save(root / 'semantic' / f'{i:06d}.png')
    return root


def _break(path: Path, kind: str) -> str:
    """Replace ``path`` by a broken symbolic link, a link loop or a folder; returns the expected reason."""
    path.unlink()
    if kind == 'broken-link':
        path.symlink_to(path.parent / 'gone.png')
        return 'symbolic link that cannot be followed'
    if kind == 'link-loop':
        path.symlink_to(path)
        return 'symbolic link that cannot be followed'
    path.mkdir()
    return 'a folder where a'


KINDS = ('broken-link', 'link-loop', 'folder')


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('sub', ['rgb', 'depth'])
def test_folder_entries_that_are_not_files_are_named(tmp_path, kind, sub):
    root = _folder(tmp_path / 'd')
    reason = _break(root / sub / '000001.png', kind)
    with pytest.raises(DataError, match=f'{sub}/000001.png: .*{reason}'):
        RGBDFolder(root)


@pytest.mark.parametrize('kind', KINDS)
def test_skip_bad_counts_them_with_their_reason(tmp_path, kind, caplog):
    root = _folder(tmp_path / 'd')
    reason = _break(root / 'depth' / '000001.png', kind)
    with caplog.at_level(logging.WARNING):
        ds = RGBDFolder(root, skip_bad=True)
    assert len(ds) == 2 and [f[0].name for f in ds.frames] == ['000000.png', '000002.png']
    assert len(ds.skipped_at_listing) == 1 and reason in ds.skipped_at_listing[0]  # the partner is not counted twice
    assert 'depth/000001.png' in caplog.text


def test_scannet_7scenes_and_tum_name_a_broken_link(tmp_path):
    scene = tmp_path / 'scannet' / 'scene0000_00'
    for sub in ('color', 'depth'):
        (scene / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(scene / 'color' / f'{i}.jpg')
        Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(scene / 'depth' / f'{i}.png')
    _break(scene / 'color' / '1.jpg', 'broken-link')
    with pytest.raises(DataError, match='color/1.jpg: colour file is a symbolic link that cannot be followed'):
        ScanNetFrames(tmp_path / 'scannet')

    seq = tmp_path / 'seven' / 'seq-01'
    seq.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(seq / f'frame-{i:06d}.color.png')
        Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(seq / f'frame-{i:06d}.depth.png')
    _break(seq / 'frame-000001.depth.png', 'link-loop')
    with pytest.raises(DataError, match='frame-000001.depth.png: depth file is a symbolic link'):
        SevenScenesFrames(seq)

    tum = tmp_path / 'rgbd_dataset_freiburg1_xyz'
    for sub in ('rgb', 'depth'):
        (tum / sub).mkdir(parents=True)
    for name in ('rgb', 'depth'):
        (tum / f'{name}.txt').write_text(''.join(f'{t}.000000 {name}/{t}.000000.png\n' for t in (1, 2)))
    for t in (1, 2):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tum / 'rgb' / f'{t}.000000.png')
        Image.fromarray(np.full((8, 8), 5000, np.uint16)).save(tum / 'depth' / f'{t}.000000.png')
    _break(tum / 'depth' / '2.000000.png', 'broken-link')
    with pytest.raises(DataError, match=r'depth/2.000000.png: depth file is a symbolic link .*\(listed in .*depth.txt'):
        TUMFrames(tum)


def test_broken_optional_files_are_named_not_passed_over(tmp_path):
    """A per-frame label or intrinsics file that is a broken link used to read as "no label" / "global K"."""
    root = _folder(tmp_path / 'd', labels=True)
    _break(root / 'semantic' / '000002.png', 'broken-link')
    ds = RGBDFolder(root)
    assert len(ds) == 3
    with pytest.raises(DataError, match='semantic/000002.png: label file is a symbolic link'):
        ds[2]
    (root / 'intrinsics').mkdir()
    (root / 'intrinsics' / '000000.txt').symlink_to(root / 'nowhere.txt')
    with pytest.raises(DataError, match='intrinsics/000000.txt: intrinsics file is a symbolic link'):
        ds[0]


def test_unreadable_file_is_named_and_skippable(tmp_path, monkeypatch):
    """Permission denied (simulated: tests may run as root, which reads any file) is one line naming the file."""
    root = _folder(tmp_path / 'd')
    locked = root / 'depth' / '000001.png'
    real_read = Path.read_bytes

    def read_bytes(self):
        if self == locked:
            raise PermissionError(13, 'Permission denied', str(self))
        return real_read(self)
    monkeypatch.setattr(Path, 'read_bytes', read_bytes)
    ds = RGBDFolder(root)
    with pytest.raises(DataError, match=r'depth/000001.png: cannot read the depth file \(Permission denied\)'):
        ds[1]
    frame, skipped = load_skipping(ds, 1, skip_bad=True)
    assert skipped == 1 and frame['source'].endswith('depth/000002.png')


@pytest.mark.parametrize('array, mode', [(np.full((8, 8), 40000, np.uint16), 'I;16'),
                                         (np.full((8, 8), 0.5, np.float32), 'F'),
                                         (np.full((8, 8), 70000, np.int32), 'I')])
def test_colour_that_is_not_8_bit_is_named_with_its_mode(tmp_path, array, mode):
    """A 16-bit greyscale PNG given as colour used to decode as a white image."""
    path = tmp_path / ('c.png' if mode == 'I;16' else 'c.tif')
    Image.fromarray(array).save(path)
    with pytest.raises(DataError, match=f'{path.name}: colour must be 8-bit greyscale, RGB or RGBA, got PIL mode '
                                        f'{mode} '):
        read_rgb(path)


@pytest.mark.parametrize('mode', ['L', 'LA', 'P', 'RGB', 'RGBA'])
def test_8_bit_colour_modes_still_read(tmp_path, mode):
    Image.new(mode, (5, 4)).save(tmp_path / 'c.png')
    assert read_rgb(tmp_path / 'c.png').shape == (3, 4, 5)


def test_depth_unit_problem_rules():
    metres = np.random.default_rng(0).uniform(0.5, 5, 1000)
    assert depth_unit_problem([metres]) is None and depth_unit_problem([metres], max_depth=10) is None
    assert 'median valid depth' in depth_unit_problem([metres * 1000])
    assert depth_unit_problem([metres * 4]) is None                     # 2-20 m: plausible without a max_depth
    assert '% of the valid depth beyond max_depth 3 m' in depth_unit_problem([metres + 3], max_depth=3)
    assert depth_unit_problem([np.array([np.nan, 0, -1])]) is None      # nothing valid: not a unit question


def test_float_tiff_in_millimetres_is_warned_by_inspect_and_training(tmp_path, caplog):
    """The issue's case: float32 TIFF depth in millimetres is read as metres (median ~2750 m)."""
    root = _folder(tmp_path / 'd')
    for p in sorted((root / 'depth').glob('*.png')):
        Image.fromarray(np.asarray(Image.open(p)).astype(np.float32)).save(p.with_suffix('.tif'))
        p.unlink()
    ds = RGBDFolder(root)
    report = inspect(ds, fmt='folder')
    assert len(report['warnings']) == 1 and 'depth looks like the wrong unit (median valid depth' in \
        report['warnings'][0] and 'float .tif depth is read as metres' in report['warnings'][0]
    with caplog.at_level(logging.WARNING):
        message = warn_if_depth_implausible(ds, 'data.source=folder')
        assert warn_if_depth_implausible(ds, 'data.source=folder') == message  # said once, returned each time
    assert [r.getMessage() for r in caplog.records] == [message] and message.startswith(f'{root}: depth looks like')
    assert '\n' not in message


def test_wrong_depth_scale_is_warned_with_the_key_to_fix(tmp_path):
    root = _folder(tmp_path / 'd', depth_mm=(5000, 50000))  # TUM-like 1/5000 m units read with the default 1000
    assert depth_unit_warning(RGBDFolder(root), 'x') is None                 # 5-50 m: possible
    warning = depth_unit_warning(RGBDFolder(root), 'x', max_depth=4.0)     # but not for a 4 m depth task
    assert 'beyond max_depth 4 m' in warning and '--depth-scale / data.depth_scale' in warning
    assert depth_unit_warning(RGBDFolder(root, depth_scale=5000), 'x', max_depth=10.0) is None
    mixture = MixtureFrames([(RGBDFolder(_folder(tmp_path / 'ok')), 1.0), (RGBDFolder(root, depth_scale=1), 1.0)], 8)
    assert 'source 1' not in depth_unit_warning(mixture, 'mix') and str(root) in depth_unit_warning(mixture, 'mix')


def test_mixture_weight_nan_is_refused(tmp_path):
    ds = RGBDFolder(_folder(tmp_path / 'd'))
    with pytest.raises(DataError, match=r'mixture weights must be > 0 and finite, got \[nan, 1.0\]'):
        MixtureFrames([(ds, float('nan')), (ds, 1.0)], 8)


def test_depth_metrics_without_valid_ground_truth_warn(caplog):
    """Millimetres read as metres leave no pixel inside (min_depth, max_depth): NaN metrics, never silently."""
    import torch

    from mask3d.training.metrics import DepthMetrics
    metrics = DepthMetrics(max_depth=10.0)
    gt = torch.full((1, 1, 4, 4), 2500.0)
    metrics.update(torch.ones_like(gt), gt)
    with caplog.at_level(logging.WARNING):
        result = metrics.compute()
    assert np.isnan(result['abs_rel']) and 'depth metrics are NaN: no evaluated image has ground-truth depth ' \
        'between min_depth 0.001 and max_depth 10 m' in caplog.text


def test_shards_of_millimetre_depth_are_warned_about(tmp_path):
    from mask3d.training.data.sanity import local_shards
    from mask3d.training.data.shards import write_shards
    root = _folder(tmp_path / 'd', depth_mm=(500, 5000))
    out = write_shards(RGBDFolder(root, depth_scale=1), tmp_path / 's', 2, source_format='folder', progress=False)
    warning = depth_unit_warning(local_shards(str(out)), 'data.source=shards')
    assert 'depth looks like the wrong unit (median valid depth' in warning and 'data shard --depth-scale' in warning
    assert local_shards(str(out / 'shard-{000000..000001}.tar')) is None  # patterns and URLs: not checked


def test_inspect_command_warns_in_one_line_and_still_succeeds(tmp_path, caplog, capsys):
    from mask3d.cli import main
    root = _folder(tmp_path / 'd', depth_mm=(500, 5000))
    with caplog.at_level(logging.WARNING):
        assert main(['data', 'inspect', str(root), '--depth-scale', '1', '--json']) == 0
    warnings = [r.getMessage() for r in caplog.records if 'wrong unit' in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f'{root}: depth looks like the wrong unit (median valid')
    assert '--depth-scale / data.depth_scale' in warnings[0] and '\n' not in warnings[0]
    import json
    assert json.loads(capsys.readouterr().out)['warnings'] == [warnings[0].split(': ', 1)[1]]
