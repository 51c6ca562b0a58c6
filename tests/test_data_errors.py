"""Data errors name the file and what is wrong in one line, also from DataLoader workers; an interrupted ``.sens``
export is never mistaken for complete (issue 13, item 2). The CLI rows are in ``bad_input_cases_data.py``."""
import json

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from mask3d.cli import main
from mask3d.errors import DataError, LabelRangeError, Mask3DError
from mask3d.training.data import scannet_sens
from mask3d.training.data.folder import RGBDFolder
from mask3d.training.data.inspect import inspect, open_dataset
from mask3d.training.data.nyu import NYUSyncFrames
from mask3d.training.data.scannet import ScanNetFrames
from mask3d.training.data.sunrgbd import SUNRGBDFrames, encode_sunrgbd_depth


def _folder(root, frames=3, labels=False):
    rng = np.random.default_rng(0)
    for sub in ('rgb', 'depth') + (('semantic',) if labels else ()):
        (root / sub).mkdir(parents=True)
    for i in range(frames):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / 'rgb' / f'{i:06d}.png')
        Image.fromarray(rng.integers(500, 5000, (16, 16), dtype=np.uint16)).save(root / 'depth' / f'{i:06d}.png')
        if labels:
            Image.fromarray(rng.integers(0, 3, (16, 16), dtype=np.uint8)).save(root / 'semantic' / f'{i:06d}.png')
    return root


def _cut(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _batches(dataset, workers):
    batches = iter(DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=lambda b: b))
    try:
        return list(batches)
    finally:  # now: left to the garbage collector (the raised error keeps the iterator), it waits 5 s per worker
        if workers:
            batches._shutdown_workers()


@pytest.mark.parametrize('workers', [0, 2])
def test_error_from_a_worker_keeps_its_one_line_message(tmp_path, workers):
    """torch re-creates a worker's exception from one string holding the worker traceback; ours keeps the line."""
    root = _folder(tmp_path / 'd')
    _cut(root / 'depth' / '000002.png')
    with pytest.raises(DataError) as info:
        _batches(RGBDFolder(root), workers)
    expected = f"{root / 'depth' / '000002.png'}: cannot read depth (image file is truncated)"
    assert str(info.value) == expected
    if workers:
        assert 'Original Traceback' in info.value.worker_traceback  # kept for --debug
    else:
        assert info.value.worker_traceback is None


def test_subclass_and_label_ids_survive_a_worker(tmp_path):
    root = _folder(tmp_path / 'd', labels=True)
    label = np.zeros((16, 16), np.uint8)
    label[0, :4] = (3, 17, 255, 2)  # 255 is ignore, 2 is a class: only 3 and 17 are wrong
    Image.fromarray(label).save(root / 'semantic' / '000001.png')
    ds = RGBDFolder(root)
    assert ds[1]['semantic'].max() == 255  # no class count known: read as is
    ds.num_classes = 3
    with pytest.raises(LabelRangeError) as info:
        _batches(ds, 1)
    assert str(info.value) == (f"{root / 'semantic' / '000001.png'}: label ids 3, 17 outside the 3 classes "
                               f"(0..2, 255 = ignore)")


def test_messages_that_only_look_like_a_worker_error_are_kept():
    assert str(Mask3DError('Caught nothing')) == 'Caught nothing'
    assert str(Mask3DError('Caught X in DataLoader worker process 0.\nOriginal Traceback: no such line')) \
        .startswith('Caught X')
    assert Mask3DError('a', 'b').args == ('a', 'b')


def test_label_file_and_class_list_problems(tmp_path):
    root = _folder(tmp_path / 'd', labels=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / 'semantic' / '000000.png')
    with pytest.raises(DataError, match=r'semantic/000000.png: labels must be one channel of class ids, got '
                                              r'shape \(16, 16, 3\)'):
        RGBDFolder(root)[0]
    (root / 'classes.json').write_text('{"names": 3}')
    with pytest.raises(DataError, match=r'classes.json: "names" must be a non-empty list'):
        RGBDFolder(root)
    (root / 'classes.json').write_text('not json')
    with pytest.raises(DataError, match=r'classes.json: expected JSON with a "names" list'):
        RGBDFolder(root)


def test_inspect_lists_bad_frames_and_keeps_going(tmp_path, capsys):
    root = _folder(tmp_path / 'd', frames=4, labels=True)
    (root / 'classes.json').write_text(json.dumps({'names': ['wall', 'floor', 'chair']}))
    label = np.ones((16, 16), np.uint8)
    label[5, 5] = 9
    Image.fromarray(label).save(root / 'semantic' / '000002.png')
    _cut(root / 'rgb' / '000003.png')
    ds, names, fmt = open_dataset(root)
    report = inspect(ds, names, fmt)
    assert len(report['problems']) == 2 and 'semantic/000002.png: label ids 9 outside' in report['problems'][0]
    assert 'rgb/000003.png: cannot read image' in report['problems'][1]
    assert set(report['labels']) == {'wall', 'floor', 'chair'}  # the two good frames are still counted
    assert main(['data', 'inspect', str(root)]) == 1  # a data error: the work ran and stopped (docs/troubleshooting.md)
    out, err = capsys.readouterr()
    assert 'problem: ' in out and 'median' in out
    assert '2 of 4 inspected frames have problems, the first:' in err and 'Traceback' not in err


def _sens(tmp_path, n=4):
    K = np.diag([500.0, 500.0, 1.0, 1.0])
    return scannet_sens.write_sens(tmp_path / 'scene0000_00.sens',
                                   [np.full((12, 16, 3), 30 * i, np.uint8) for i in range(n)],
                                   [np.full((12, 16), 1000 + i, np.uint16) for i in range(n)], [np.eye(4)] * n,
                                   intrinsic_color=K, intrinsic_depth=K)


def test_interrupted_sens_export_is_refused_until_rerun(tmp_path, monkeypatch):
    sens = _sens(tmp_path)
    scene = tmp_path / 'scans' / 'scene0000_00'
    stream = scannet_sens.SensReader.frames

    def killed_after_two(self, every=1):
        for k, frame in enumerate(stream(self, every)):
            if k == 2:
                raise KeyboardInterrupt  # what Ctrl-C (or a kill between frames) leaves behind
            yield frame

    monkeypatch.setattr(scannet_sens.SensReader, 'frames', killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        scannet_sens.extract_sens(sens, scene, progress=False)
    assert len(list((scene / 'color').iterdir())) == 2  # a valid-looking partial scene...
    with pytest.raises(DataError, match=r'scene0000_00: export from .*scene0000_00.sens did not finish'):
        ScanNetFrames(scene.parent)  # ...that is refused
    monkeypatch.setattr(scannet_sens.SensReader, 'frames', stream)
    assert scannet_sens.extract_sens(sens, scene, progress=False) == 4
    assert len(ScanNetFrames(scene.parent)) == 4
    marker = json.loads((scene / scannet_sens.EXPORT_MARKER).read_text())
    assert marker['complete'] and marker['frames'] == 4 and not list(scene.glob('.*.tmp'))


def test_scannet_25k_label_folder_must_cover_every_frame(tmp_path):
    from mask3d.training.data.scannet import ScanNet25kFrames
    scene = tmp_path / 'scene0000_00'
    for sub in ('color', 'depth', 'label'):
        (scene / sub).mkdir(parents=True)
    for i in (0, 100):
        Image.fromarray(np.full((12, 16, 3), 50, np.uint8)).save(scene / 'color' / f'{i:06d}.jpg')
        Image.fromarray(np.full((12, 16), 1500, np.uint16)).save(scene / 'depth' / f'{i:06d}.png')
    Image.fromarray(np.full((12, 16), 5, np.uint8)).save(scene / 'label' / '000000.png')
    ds = ScanNet25kFrames(tmp_path)
    assert ds[0]['semantic'][0, 0] == 4  # NYU-40 chair -> train id 4
    with pytest.raises(DataError, match=r'label/000100.png: label file not found'):
        ds[1]


def test_sunrgbd_and_nyu_partners(tmp_path):
    sample = tmp_path / 'sun' / 'kv1' / 'b3dodata' / 'img_0063'
    (sample / 'image').mkdir(parents=True)
    (sample / 'depth').mkdir()
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(sample / 'image' / 'img_0063.jpg')
    with pytest.raises(DataError, match=r'img_0063: no depth/\*.png for this sample'):
        SUNRGBDFrames(tmp_path / 'sun')
    Image.fromarray(encode_sunrgbd_depth(np.full((8, 8), 2000, np.uint16))).save(sample / 'depth' / 'img_0063.png')
    (sample / 'intrinsics.txt').write_text('529.5 0 365 0 529.5 265 0 0\n')
    with pytest.raises(DataError, match=r'img_0063/intrinsics.txt: intrinsics must be 3x3 \(9 values\), '
                                              r'found 8'):
        SUNRGBDFrames(tmp_path / 'sun')[0]
    nyu = tmp_path / 'nyu' / 'basement_0001a'
    nyu.mkdir(parents=True)
    for i in (0, 1):
        Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(nyu / f'rgb_{i:05d}.jpg')
    Image.fromarray(np.full((8, 8), 2000, np.uint16)).save(nyu / 'sync_depth_00000.png')
    with pytest.raises(DataError, match=r'rgb_00001.jpg: no depth partner \(sync_depth_00001.png\)'):
        NYUSyncFrames(tmp_path / 'nyu')


def test_skip_bad_leaves_out_listing_problems_and_reports_each(tmp_path, caplog):
    root = _folder(tmp_path / 'd', frames=5, labels=True)
    (root / 'depth' / '000001.png').unlink()                                          # no partner
    Image.open(root / 'rgb' / '000002.png').save(root / 'rgb' / '000002.jpg')         # two colour files
    (root / 'semantic' / '000003.png').unlink()                                       # no labels
    for make in (lambda: RGBDFolder(root), lambda: RGBDFolder(root, skip_bad=False)):
        with pytest.raises(DataError):
            make()
    ds = RGBDFolder(root, skip_bad=True)
    assert [rgb.name for rgb, _ in ds.frames] == ['000000.png', '000004.png']
    assert len(ds.skipped_at_listing) == 3 and len(ds[1]['semantic']) == 16
    for culprit in ('rgb/000001.png: frame 000001 without a colour/depth partner', 'two colour files for frame 000002',
                    'semantic/000003.png: label file missing'):
        assert sum(culprit in m for m in ds.skipped_at_listing) == 1
        assert culprit in caplog.text
    from mask3d.training.data.mixture import MixtureFrames
    assert len(MixtureFrames([(ds, 1.0), (RGBDFolder(_folder(tmp_path / 'e')), 1.0)], 4).skipped_at_listing) == 3
