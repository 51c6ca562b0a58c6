"""Shards: exact round trip (bytes and arrays) for a folder and a ScanNet fixture, inspect equality, the reader
rules (distinct shards per reader, seeded shuffle, exact mid-epoch resume) and pre-training on shards."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
import yaml

from mask3d.cli import main as cli_main
from mask3d.errors import Mask3DError
from mask3d.training.data.inspect import inspect, open_dataset
from mask3d.training.data.shards import ShardFrames, ShardStream, epoch_assignment, open_shard_set

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1', 'HF_HUB_OFFLINE': '1'}


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    from mask3d.training.data.cli import write_synthetic
    return write_synthetic(tmp_path_factory.mktemp('folder') / 'f', frames=10, seed=3, image_size=(48, 64),
                           progress=False)


@pytest.fixture(scope='module')
def scannet25k(tmp_path_factory):
    """Two scenes; colour twice the depth size (JPEG), so the reader's resize path is exercised too."""
    from mask3d.training.data.synthetic import render_scene
    from mask3d.training.data.writers import write_scannet25k_frame
    root = tmp_path_factory.mktemp('scannet') / 's'
    for i in range(6):
        big, f = render_scene(1, i, 96, 128), render_scene(1, i, 48, 64)
        write_scannet25k_frame(root / f'scene000{i % 2}_00', i * 100, big['rgb'],
                               np.round(f['depth'][0] * 1000).astype(np.uint16), np.clip(f['semantic'] + 1, 0, 40),
                               f['instance'] + 5000 * (f['instance'] > 0), f['intrinsics'])
    return root


def _shard(src, out, n):
    assert cli_main(['data', 'shard', str(src), '--out', str(out), '--frames-per-shard', str(n)]) == 0
    return out


def _assert_same_samples(a, b):
    assert len(a) == len(b)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x.keys() == y.keys(), i
        for k in x:
            if isinstance(x[k], np.ndarray):
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), (i, k)
            else:
                assert x[k] == y[k], (i, k)


def _members(out):
    found = {}
    for tar in sorted(out.glob('*.tar')):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                found[m.name] = tf.extractfile(m).read()
    return found


def test_folder_round_trips_exactly(folder, tmp_path):
    out = _shard(folder, tmp_path / 'shards', 4)
    assert sorted(p.name for p in out.glob('*.tar')) == ['shard-000000.tar', 'shard-000001.tar', 'shard-000002.tar']
    src, names, fmt = open_dataset(folder)
    shards, shard_names, shard_fmt = open_dataset(out)
    assert (shard_fmt, shard_names) == (fmt, names) == ('folder', names)
    _assert_same_samples(src, shards)  # rgb, depth, intrinsics, semantic, source: equal arrays
    members = _members(out)  # the source's encoded bytes are stored unchanged
    for i, (rgb, depth) in enumerate(src.frames):
        assert members[f'{i:09d}.rgb.png'] == rgb.read_bytes()
        assert members[f'{i:09d}.depth.png'] == depth.read_bytes()
    assert inspect(src, names, fmt) == inspect(shards, shard_names, shard_fmt)


def test_scannet_round_trips_exactly_and_inspect_agrees(scannet25k, tmp_path, capsys):
    out = _shard(scannet25k, tmp_path / 'shards', 4)
    src, _, fmt = open_dataset(scannet25k)
    assert fmt == 'scannet-25k'
    _assert_same_samples(src, ShardFrames(out))  # incl. resized colour, 20-class labels, instances
    members = _members(out)
    assert members['000000000.rgb.jpg'] == src.frames[0][0].read_bytes()  # JPEG stays JPEG
    assert json.loads(members['000000000.meta.json'])['depth_scale'] == 1000.0
    reports = []
    for path in (scannet25k, out):
        capsys.readouterr()
        assert cli_main(['data', 'inspect', str(path), '--json']) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0] == reports[1] and 'labels' in reports[0]


def test_other_formats_store_lossless_arrays(tmp_path):
    out = _shard('synthetic', tmp_path / 'shards', 8)  # rendered on the fly: PNG colour + float metres
    src, _, _ = open_dataset('synthetic')
    _assert_same_samples(src, ShardFrames(out))
    assert cli_main(['data', 'shard', 'synthetic', '--out', str(out)]) == 1  # one-line error, nothing overwritten


def test_brace_pattern_and_missing_index(folder, tmp_path):
    out = _shard(folder, tmp_path / 'shards', 4)
    s = open_shard_set(str(out / 'shard-{000000..000001}.tar'))
    assert s.counts == [4, 4] and len(s.urls) == 2
    joined = open_shard_set(f'{out}/shard-000002.tar::{out}/shard-{{000000..000001}}.tar')  # webdataset's `::`
    assert joined.counts == [2, 4, 4] and [u.rsplit('/', 1)[-1] for u in joined.urls] == [
        'shard-000002.tar', 'shard-000000.tar', 'shard-000001.tar']
    (out / 'shards.json').unlink()
    with pytest.raises(Mask3DError, match='shard index'):
        open_shard_set(str(out))


def _webdataset_uses_not_public(source: str):
    """(line, what) for every use of webdataset in ``source`` other than a name exported at its top level: an
    import of a submodule, a private name, or a submodule reached through the alias (``wds.tariterators.x``)."""
    import ast
    import inspect as pyinspect

    import webdataset
    tree, aliases, names, bad = ast.parse(source), set(), [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == 'webdataset':
                    aliases.add(a.asname or a.name)
                elif a.name.startswith('webdataset.'):
                    bad.append((node.lineno, a.name))
        elif isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'webdataset':
            if node.module != 'webdataset':
                bad.append((node.lineno, node.module))
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith('webdataset.'):
            bad.append((node.lineno, node.value))  # importlib.import_module('webdataset.x')
    attribute_bases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            names.append((node.lineno, node.attr))
            attribute_bases.add(id(node.value))
    bad += [(n.lineno, f'{n.id} used other than as {n.id}.<name>') for n in ast.walk(tree)
            if isinstance(n, ast.Name) and n.id in aliases and id(n) not in attribute_bases]
    bad += [(line, name) for line, name in names if name.startswith('_') or not hasattr(webdataset, name)
            or pyinspect.ismodule(getattr(webdataset, name))]
    return bad


def test_shards_use_only_webdataset_top_level_names():
    """Issue 24: shards.py reaches webdataset through names exported at its top level only (they are what
    webdataset keeps stable); the check itself flags the forms shards.py used before."""
    from conftest import REPO_ROOT
    source = (REPO_ROOT / 'mask3d' / 'training' / 'data' / 'shards.py').read_text()
    assert 'import webdataset as wds' in source and _webdataset_uses_not_public(source) == []
    for private in ('from webdataset.shardlists import expand_urls', 'from webdataset import _x',
                    'import webdataset.filters', 'import webdataset as wds\nwds.tariterators.tar_file_iterator',
                    'import webdataset as wds\nwds._private', 'import webdataset as wds\ngetattr(wds, "_x")',
                    'import importlib\nimportlib.import_module("webdataset.filters")'):
        assert _webdataset_uses_not_public(private), private


def _index_stream(shards, **kw):
    return ShardStream(shards, lambda frame, epoch, index, skipped: {'index': index,
                                                                     'rgb': torch.from_numpy(frame['rgb'][:, 0, :4])},
                       **kw)


def test_readers_get_distinct_shards_and_a_seeded_shuffle(folder, tmp_path):
    shards = open_shard_set(str(_shard(folder, tmp_path / 'shards', 2)))  # 5 shards of 2
    deals = [epoch_assignment(5, 4, 0, e) for e in range(4)]
    assert all(sorted(sum(d, [])) == list(range(5)) for d in deals) and len({str(d) for d in deals}) > 1
    seen = []
    for rank in range(2):
        stream = _index_stream(shards, batch_size=2, rank=rank, world_size=2, num_workers=2, shuffle_buffer=4)
        for worker in range(2):
            got = [s['index'] for s in stream.reader_samples(worker)]
            assert len(got) == 2 * stream.batches_per_reader
            seen.append(got)
    flat = [i for got in seen for i in got]
    assert len(flat) == len(set(flat))  # no frame read twice: each reader its own shards
    shards_read = [{i // 2 for i in got} for got in seen]  # frames 2k, 2k+1 live in shard k
    assert all(a.isdisjoint(b) for n, a in enumerate(shards_read) for b in shards_read[n + 1:])
    again = _index_stream(shards, batch_size=2, rank=0, world_size=2, num_workers=2, shuffle_buffer=4)
    assert [s['index'] for s in again.reader_samples(0)] == seen[0]  # seeded
    with pytest.raises(Mask3DError, match='5 shards for 2 rank'):
        _index_stream(shards, batch_size=2, world_size=2, num_workers=3)


def test_resume_mid_epoch_continues_the_same_batch_sequence(folder, tmp_path):
    """Through a real 2-worker DataLoader: skipping k batches gives exactly the rest of the epoch's batches."""
    shards = open_shard_set(str(_shard(folder, tmp_path / 'shards', 2)))
    stream = _index_stream(shards, batch_size=2, num_workers=2, shuffle_buffer=3, seed=5)
    loader = torch.utils.data.DataLoader(stream, batch_size=2, num_workers=2, drop_last=True)
    stream.set_epoch(1)
    full = [b['index'].tolist() for b in loader]
    assert len(full) == stream.batches_per_epoch == 4
    for k in (1, 3):
        stream.set_epoch(1, start=2 * k)
        assert [b['index'].tolist() for b in loader] == full[k:], k


TINY = {
    'model': {'name': 'mask3d_vit_tiny_patch16', 'model_args': {'depth': 1}},
    'method': {'depth_encoder_depth': 0, 'decoder_dim': 32, 'decoder_depth': 1, 'decoder_num_heads': 2},
    'data': {'source': 'shards', 'image_size': [32, 48], 'batch_size': 2, 'num_workers': 0},
    'optim': {'lr': 1.0e-3, 'warmup_steps': 1},
    'train': {'steps': 6, 'precision': 'fp32', 'device': 'cpu', 'log_every': 1, 'ckpt_every': 2, 'keep_every': 2,
              'figure_every': 1000, 'export_at_end': False},
}


def _weights(run):
    return torch.load(run / 'checkpoints' / 'last.pt', map_location='cpu', weights_only=True)


@pytest.mark.e2e
def test_pretrain_on_shards_resumes_exactly(folder, tmp_path):
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.pretrain.engine import pretrain
    out = _shard(folder, tmp_path / 'shards', 2)
    cfg_path = tmp_path / 'cfg.yaml'
    cfg_path.write_text(yaml.safe_dump(TINY))
    cfg = lambda: load_config(cfg_path, [f'data.root={out}'])  # noqa: E731 - 5 batches/epoch: resume mid-epoch
    pretrain(cfg(), tmp_path / 'full', progress=False)
    shutil.copytree(tmp_path / 'full', tmp_path / 'cut')
    shutil.copy(tmp_path / 'cut' / 'checkpoints' / 'step_0000002.pt', tmp_path / 'cut' / 'checkpoints' / 'last.pt')
    pretrain(cfg(), tmp_path / 'cut', resume=True, progress=False)
    a, b = _weights(tmp_path / 'full')['model'], _weights(tmp_path / 'cut')['model']
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(Mask3DError, match='num_workers'):
        pretrain(load_config(cfg_path, [f'data.root={out}', 'data.num_workers=1']), tmp_path / 'cut', resume=True,
                 progress=False)


@pytest.mark.ddp
def test_two_process_gloo_pretraining_on_shards(folder, tmp_path):
    out = _shard(folder, tmp_path / 'shards', 2)
    cfg_path = tmp_path / 'cfg.yaml'
    cfg_path.write_text(yaml.safe_dump(TINY))
    run = tmp_path / 'ddp'
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                             '-m', 'mask3d', 'pretrain', '--config', str(cfg_path), '--output', str(run),
                             '--set', f'data.root={out}', '--set', 'train.steps=3', '--set', 'data.num_workers=1'],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    state = _weights(run)
    assert state['step'] == 3 and len(state['rng']) == 2
    records = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in records] == [1, 2, 3] and all(np.isfinite(r['loss']) for r in records)


# ---- damaged shards and indexes: one line naming the shard (issue 21) ----------------------------------------------
def _damaged(folder, tmp_path):
    return _shard(folder, tmp_path / 'shards', 4)  # shard-000000.tar (4), -000001 (4), -000002 (2)


def _all_records(root):
    from mask3d.training.data.shards import shard_records
    s = open_shard_set(str(root))
    return list(shard_records(s.urls, s.counts))


def test_empty_or_truncated_shard_is_named_when_the_set_is_opened(folder, tmp_path):
    out = _damaged(folder, tmp_path)
    shard = out / 'shard-000001.tar'
    data = shard.read_bytes()
    shard.write_bytes(b'')
    with pytest.raises(Mask3DError, match=r'shard-000001.tar: shard is empty \(0 bytes\)'):
        open_shard_set(str(out))
    shard.write_bytes(data[:len(data) // 2 + 100])
    with pytest.raises(Mask3DError, match=r'shard-000001.tar: shard is truncated \(\d+ bytes, not a whole number'):
        ShardFrames(out)


def test_shard_cut_at_a_block_boundary_is_named(folder, tmp_path, monkeypatch):
    """A cut at a 512-byte boundary passes the size check but loses the end-of-archive blocks; where that check
    cannot run (a remote shard, simulated), reading it (stream and random access) names it."""
    from mask3d.training.data import shards as shards_module
    from mask3d.training.data.shards import shard_records
    out = _damaged(folder, tmp_path)
    shard = out / 'shard-000000.tar'
    with tarfile.open(shard) as tf:
        members = tf.getmembers()
    cut_mid_data = members[len(members) // 2].offset_data + 512  # inside a member's data
    cut_at_header = members[len(members) // 2].offset             # a whole number of members: fewer frames
    data = shard.read_bytes()
    for cut in (cut_mid_data, cut_at_header):
        shard.write_bytes(data[:cut - cut % 512])
        with pytest.raises(Mask3DError, match=r'shard-000000.tar: shard is truncated \(it does not end with the tar '
                                              r'end-of-archive blocks\)'):
            open_shard_set(str(out))
        with pytest.raises(Mask3DError, match=r'shard-000000.tar: (cannot read this shard|shard holds \d frames but '
                                              r'shards.json lists 4)') as info:
            list(shard_records([str(shard)], [4]))
        assert len(info.value.args) == 1  # one line, not webdataset's (message, stream, url)
        with monkeypatch.context() as m:
            m.setattr(shards_module, 'check_local_shard', lambda url: None)
            with pytest.raises(Mask3DError, match='shard-000000.tar: '):
                [ShardFrames(out)[i] for i in range(4)]


def test_index_that_overstates_its_shards_is_named(folder, tmp_path):
    out = _damaged(folder, tmp_path)
    index = json.loads((out / 'shards.json').read_text())
    index['shards'][2]['frames'] = 4  # shard-000002.tar holds 2
    (out / 'shards.json').write_text(json.dumps(index))
    message = r'shard-000002.tar: shard holds 2 frames but shards.json lists 4'
    with pytest.raises(Mask3DError, match=message):
        _all_records(out)
    with pytest.raises(Mask3DError, match=message):
        ShardFrames(out)[9]
    index['shards'][2]['frames'] = 2
    index['shards'].append({'name': 'shard-000003.tar', 'frames': 4})  # a shard the folder does not have
    (out / 'shards.json').write_text(json.dumps(index))
    with pytest.raises(Mask3DError, match=r'shard-000003.tar: listed in .*shards.json but missing'):
        open_shard_set(str(out))



@pytest.mark.parametrize('index, expected', [
    ([1, 2], 'not a mask3d shard index'),
    ({'shards': None}, '"shards" must be a non-empty list'),
    ({'shards': [{'name': 'shard-000000.tar'}]}, r'shards\[0\] must be .* got .*shard-000000.tar'),
    ({'shards': [{'name': 'shard-000000.tar', 'frames': -5}]}, r'shards\[0\] must be .*-5'),
    ({'shards': [{'name': 'shard-000000.tar', 'frames': 'abc'}]}, r'shards\[0\] must be .*abc'),
    ({'shards': [{'name': 'shard-000000.tar', 'frames': 2.5}]}, r'shards\[0\] must be .*2\.5'),
])
def test_malformed_index_is_one_line_naming_the_entry(folder, tmp_path, index, expected):
    """A hand-edited shards.json used to end in KeyError / ValueError / AttributeError tracebacks."""
    out = _damaged(folder, tmp_path)
    if isinstance(index, dict):
        index = {**json.loads((out / 'shards.json').read_text()), **index}
    (out / 'shards.json').write_text(json.dumps(index))
    with pytest.raises(Mask3DError, match=f'shards.json: {expected}') as e:
        open_shard_set(str(out))
    assert '\n' not in str(e.value)


def test_damaged_shard_in_pretraining_is_one_line(folder, tmp_path, capsys):
    out = _damaged(folder, tmp_path)
    shard = out / 'shard-000002.tar'
    shard.write_bytes(shard.read_bytes()[:1000])
    rc = cli_main(['data', 'inspect', str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and 'shard-000002.tar: shard is truncated (1000 bytes' in err and 'Traceback' not in err
