"""Bad inputs and faults, one table: each row runs the real ``mask3d`` command and asserts its exit code, that the
one line it prints names the culprit (a file, key or value) and that no traceback is printed (issue 13).

Rows run ``mask3d_cli.main(argv)`` in-process: the same code as the console script, without paying a fresh
interpreter's torch import per row. The faults that need a process to die or hit a limit (SIGKILL during a
checkpoint write, a file-size limit during a checkpoint) run the real command as a subprocess. The rows of the
data readers live in ``bad_input_cases_data.py`` (dicts: ``name``, a function that builds the input under a tmp
folder and returns the argv, ``culprit``; optional ``code``) and are run here as well when that file exists.
"""
import errno
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, List, Sequence, Union

import pytest
import torch
import yaml

import mask3d_cli
from mask3d_cli import main
from mask3d_cli.failures import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE

TINY = {  # a 4-block ViT-Tiny (the fine-tuning heads need 4 blocks) on 64x64 synthetic frames: seconds per run
    'model': {'name': 'mask3d_vit_tiny_patch16', 'model_args': {'depth': 4}},
    'method': {'depth_encoder_depth': 1, 'decoder_dim': 64, 'decoder_depth': 1, 'decoder_num_heads': 4},
    'data': {'source': 'synthetic', 'image_size': [64, 64], 'batch_size': 2, 'num_workers': 0,
             'synthetic_length': 16},
    'optim': {'lr': 1.0e-3, 'warmup_steps': 0},
    'train': {'steps': 1, 'precision': 'fp32', 'device': 'cpu', 'log_every': 1, 'ckpt_every': 1,
              'figure_every': 1000, 'figure_samples': 1},
}
FINETUNE_CONFIG = 'synthetic_depth'
FINETUNE_SMALL = ['data.image_size=[64,64]', 'data.batch_size=2', 'data.num_workers=0', 'train.steps=1',
                  'train.device=cpu']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1', 'HF_HUB_OFFLINE': '1',
       'PYTHONPATH': os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get('PYTHONPATH', '')])}
TRACEBACK = 'Traceback (most recent call last)'
UNSAFE_HINTS = ('weights_only=False', 'weights_only` set to `False', 'two options', 'trust the source')


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[SimpleNamespace], List[str]]  # makes the bad input under env.tmp; returns the argv
    culprit: Union[str, Sequence[str]]                  # text the one-line message must contain
    code: int = EXIT_FAILED
    absent: Sequence[str] = ()                          # text the message must not contain


def _sets(*items: str) -> List[str]:
    return [x for item in items for x in ('--set', item)]


def _write(env, name: str, content: Union[str, bytes]) -> Path:
    path = env.tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


def _pretrain(env, *sets: str, output: str = 'out') -> List[str]:
    return ['pretrain', '--config', str(env.config), '--output', str(env.tmp / output), *_sets(*sets)]


def _finetune(env, backbone: str) -> List[str]:
    return ['finetune', '--task', 'depth', '--config', FINETUNE_CONFIG, '--backbone', backbone, '--output',
            str(env.tmp / 'ft'), *_sets(*FINETUNE_SMALL)]


def _flipped_export(env) -> Path:
    """A copy of the shared export with one byte flipped inside a tensor of model.safetensors."""
    folder = env.tmp / 'flipped'
    folder.mkdir()
    for f in env.export.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    data = bytearray((folder / 'model.safetensors').read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / 'model.safetensors').write_bytes(bytes(data))
    return folder


def _pickle_checkpoint(env) -> Path:
    """A torch checkpoint holding a class instance: only an unpickler that runs code could read it."""
    path = env.tmp / 'unsafe.pt'
    torch.save({'model': {}, 'payload': SimpleNamespace(x=1)}, path)
    return path


def _wider_export(env) -> Path:
    """A hand-assembled folder: config.json (without a recorded sha256) says ViT-Tiny, the weights are a ViT-Small."""
    import mask3d
    folder = env.tmp / 'wider'
    mask3d.save_pretrained(mask3d.create_model('mask3d_vit_small_patch16', depth=4), folder)
    config = json.loads((env.export / 'config.json').read_text())
    config.pop('mask3d')
    (folder / 'config.json').write_text(json.dumps(config))
    return folder


def _folder_data(env, rgb: bytes) -> Path:
    """An RGB-D folder whose only colour file holds ``rgb`` (its depth partner is a real 16-bit PNG)."""
    import numpy as np
    from PIL import Image
    root = env.tmp / 'folder_data'
    (root / 'rgb').mkdir(parents=True)
    (root / 'depth').mkdir()
    Image.fromarray(np.full((64, 64), 1500, np.uint16)).save(root / 'depth' / '000000.png')
    (root / 'rgb' / '000000.png').write_bytes(rgb)
    return root


CASES = [
    # ---- the command line and the config: exit 2, nothing runs ----
    Case('config-name-unknown', lambda e: ['pretrain', '--config', 'no_such_config', '--output', str(e.tmp / 'o')],
         'no_such_config', EXIT_USAGE),
    Case('config-file-invalid-yaml', lambda e: ['pretrain', '--config', str(_write(e, 'bad.yaml', 'model: [a,\n')),
                                                '--output', str(e.tmp / 'o')], 'bad.yaml', EXIT_USAGE),
    Case('config-file-not-a-mapping', lambda e: ['pretrain', '--config', str(_write(e, 'list.yaml', '- 1\n- 2\n')),
                                                 '--output', str(e.tmp / 'o')], 'list.yaml', EXIT_USAGE),
    Case('config-unknown-key', lambda e: _pretrain(e, 'optim.lrr=1'), 'optim.lrr', EXIT_USAGE),
    Case('set-without-equals', lambda e: _pretrain(e, 'optim.lr'), 'optim.lr', EXIT_USAGE),
    Case('set-invalid-yaml-value', lambda e: _pretrain(e, 'data.image_size=[64,'), 'data.image_size', EXIT_USAGE),
    Case('set-value-then-subkey', lambda e: _pretrain(e, 'optim=1', 'optim.lr=2'), 'optim.lr=2', EXIT_USAGE),
    Case('set-wrong-type', lambda e: _pretrain(e, 'train.steps=abc'), 'train.steps', EXIT_USAGE),
    Case('lr-negative', lambda e: _pretrain(e, 'optim.lr=-1'), 'optim.lr', EXIT_USAGE),
    Case('clip-grad-negative', lambda e: _pretrain(e, 'optim.clip_grad=-3'), 'optim.clip_grad', EXIT_USAGE),
    Case('min-lr-above-lr', lambda e: _pretrain(e, 'optim.min_lr=1'), 'optim.min_lr', EXIT_USAGE),
    Case('precision-unknown', lambda e: _pretrain(e, 'train.precision=fp8'), 'fp8', EXIT_USAGE),
    Case('image-size-not-patch-multiple', lambda e: _pretrain(e, 'data.image_size=[100,96]'), 'data.image_size',
         EXIT_USAGE),
    Case('data-source-unknown', lambda e: _pretrain(e, 'data.source=kinect'), 'kinect', EXIT_USAGE),
    Case('data-root-missing', lambda e: _pretrain(e, 'data.source=folder'), 'data.root', EXIT_USAGE),
    Case('device-cuda-without-cuda', lambda e: _pretrain(e, 'train.device=cuda'), 'train.device=cuda', EXIT_USAGE),
    Case('output-is-a-file', lambda e: ['pretrain', '--config', str(e.config), '--output',
                                        str(_write(e, 'taken.txt', 'x'))], 'taken.txt', EXIT_USAGE),
    Case('output-under-a-file', lambda e: ['data', 'synth', '--out', str(_write(e, 'f.txt', 'x') / 'sub'),
                                           '--frames', '1'], 'f.txt', EXIT_USAGE),
    Case('finetune-config-of-other-task', lambda e: ['finetune', '--task', 'semseg', '--config', FINETUNE_CONFIG,
                                                     '--output', str(e.tmp / 'ft')], "'depth' config", EXIT_USAGE),
    Case('resume-with-changed-config', lambda e: ['pretrain', '--config', str(e.config), '--output', str(e.run),
                                                  '--resume', '--set', 'optim.weight_decay=0.5'],
         'optim.weight_decay', EXIT_USAGE),
    Case('probe-json-invalid', lambda e: ['export', str(e.probe_run), '--out', str(e.tmp / 'x')], 'probe.json',
         EXIT_USAGE),
    # ---- runs, checkpoints and weights: exit 1 ----
    Case('resume-without-run', lambda e: _pretrain(e) + ['--resume'], 'last.pt'),
    Case('run-exists-without-resume', lambda e: ['pretrain', '--config', str(e.config), '--output', str(e.run)],
         '--resume'),
    Case('overwrite-foreign-folder', lambda e: ['pretrain', '--config', str(e.config), '--overwrite', '--output',
                                                str(_write(e, 'mine/notes.txt', 'x').parent)], 'mine'),
    Case('model-name-unknown', lambda e: _pretrain(e, 'model.name=mask3d_vit_tiniest'), 'mask3d_vit_tiniest'),
    Case('export-without-checkpoint', lambda e: ['export', str(e.tmp), '--out', str(e.tmp / 'x')], 'last.pt'),
    Case('export-checkpoint-garbage', lambda e: ['export', str(e.run), '--out', str(e.tmp / 'x'), '--checkpoint',
                                                 str(_write(e, 'garbage.pt', os.urandom(4096)))], 'garbage.pt',
         absent=UNSAFE_HINTS),
    Case('checkpoint-needs-unpickling', lambda e: ['export', str(e.run), '--out', str(e.tmp / 'x'), '--checkpoint',
                                                   str(_pickle_checkpoint(e))], 'unsafe.pt', absent=UNSAFE_HINTS),
    Case('evaluate-a-pretrain-run', lambda e: ['evaluate', str(e.run), '--output', str(e.tmp / 'ev')],
         'not a mask3d fine-tuning checkpoint'),
    Case('backbone-name-unknown', lambda e: _finetune(e, 'vit_no_such_model'), 'vit_no_such_model'),
    Case('backbone-local-dir-empty', lambda e: _finetune(e, f"local-dir:{_write(e, 'empty/x', '').parent}"),
         'empty'),
    Case('backbone-weights-byte-flipped', lambda e: _finetune(e, str(_flipped_export(e))), 'sha256'),
    Case('weights-file-byte-flipped', lambda e: _finetune(e, str(_flipped_export(e) / 'model.safetensors')) + _sets(
        'model.arch=mask3d_vit_tiny_patch16', 'model.model_args={depth: 4}'), ('model.safetensors', 'sha256')),
    Case('backbone-weights-other-size', lambda e: _finetune(e, str(_wider_export(e))),
         ('wider', 'embed dim 384', 'embed dim 192')),
    Case('backbone-other-depth-asked', lambda e: _finetune(e, str(e.export)) + _sets('model.model_args={depth: 8}'),
         ('export', 'depth 4', 'depth 8')),
    Case('backbone-weights-pickle', lambda e: _finetune(e, str(_pickle_checkpoint(e))) + _sets(
        'model.arch=mask3d_vit_tiny_patch16'), 'unsafe.pt', absent=UNSAFE_HINTS),
    Case('init-weights-other-architecture', lambda e: _pretrain(e, f'model.init=local-dir:{e.export}',
                                                                'model.name=mask3d_vit_small_patch16'),
         ('export', 'embed dim 192', 'embed dim 384')),
    Case('inspect-path-missing', lambda e: ['data', 'inspect', str(e.tmp / 'nowhere')], 'nowhere'),
    Case('inspect-unknown-layout', lambda e: ['data', 'inspect', str(_write(e, 'odd/readme.txt', 'x').parent)],
         'odd'),
    Case('extract-sens-not-a-sens-file', lambda e: ['data', 'extract-sens', str(_write(e, 'scene.sens', os.urandom(
        300))), '--out', str(e.tmp / 'scene')], 'scene.sens'),
    Case('push-folder-incomplete', lambda e: ['push', str(_write(e, 'half/config.json', '{}').parent), '--repo-id',
                                              'x/y', '--dry-run'], 'half'),
    Case('colour-file-not-an-image', lambda e: _pretrain(e, 'data.source=folder', f'data.root={_folder_data(e, b"no")}',
                                                         'data.batch_size=1'), '000000.png'),
    Case('colour-file-not-an-image-in-worker', lambda e: _pretrain(
        e, 'data.source=folder', f'data.root={_folder_data(e, b"no")}', 'data.batch_size=1', 'data.num_workers=1'),
        '000000.png'),
    # issue 21 part B
    # ---- numeric command-line arguments: argparse's one-line usage error, exit 2 ----
    Case('synth-frames-negative', lambda e: ['data', 'synth', '--out', str(e.tmp / 's'), '--frames', '-3'],
         ("argument --frames: '-3' is not an integer >= 1",), EXIT_USAGE),
    Case('synth-frames-zero', lambda e: ['data', 'synth', '--out', str(e.tmp / 's'), '--frames', '0'],
         "argument --frames: '0' is not an integer >= 1", EXIT_USAGE),
    Case('synth-image-size-zero', lambda e: ['data', 'synth', '--out', str(e.tmp / 's'), '--image-size', '0', '0'],
         "argument --image-size: '0' is not an integer >= 1", EXIT_USAGE),
    Case('synth-views-zero', lambda e: ['data', 'synth', '--out', str(e.tmp / 's'), '--views', '0'],
         "argument --views: '0' is not an integer >= 1", EXIT_USAGE),
    Case('synth-seed-negative', lambda e: ['data', 'synth', '--out', str(e.tmp / 's'), '--seed', '-1'],
         "argument --seed: '-1' is not an integer >= 0", EXIT_USAGE),
    Case('inspect-max-frames-negative', lambda e: ['data', 'inspect', 'synthetic', '--max-frames', '-5'],
         "argument --max-frames: '-5' is not an integer >= 1", EXIT_USAGE),
    Case('inspect-depth-scale-nan', lambda e: ['data', 'inspect', 'synthetic', '--depth-scale', 'nan'],
         "argument --depth-scale: 'nan' is not a finite number > 0", EXIT_USAGE),
    Case('shard-frames-per-shard-zero', lambda e: ['data', 'shard', 'synthetic', '--out', str(e.tmp / 's'),
                                                   '--frames-per-shard', '0'],
         "argument --frames-per-shard: '0' is not an integer >= 1", EXIT_USAGE),
    Case('extract-sens-every-zero', lambda e: ['data', 'extract-sens', 'x.sens', '--out', str(e.tmp / 's'),
                                               '--every', '0'], "argument --every: '0' is not an integer >= 1",
         EXIT_USAGE),
    # ---- synthetic frames too small to render: exit 1 ----
    Case('synth-image-size-below-minimum', lambda e: ['data', 'synth', '--out', str(e.tmp / 's'), '--frames', '1',
                                                      '--image-size', '64', '37'],
         ('synthetic image size 64x37', 'at least 38 px')),
    Case('pretrain-synthetic-below-minimum', lambda e: _pretrain(e, 'data.image_size=[32,32]'),
         ('synthetic image size 32x32', 'at least 38 px')),
    # issue 21 part A: run folders, config files, every key typed, no NaN/inf
    Case('output-is-the-working-directory', lambda e: ['pretrain', '--config', str(e.config), '--overwrite',
                                                       '--output', '.'], ('--output .', 'the working directory')),
    Case('output-is-a-parent-of-the-working-directory', lambda e: ['pretrain', '--config', str(e.config), '--output',
                                                                   '..'], 'a parent of the working directory'),
    Case('probe-output-is-the-working-directory', lambda e: ['probe', '--config', 'synthetic', '--output', '.'],
         'the working directory'),
    Case('overwrite-a-users-project-folder', lambda e: ['pretrain', '--config', str(e.config), '--overwrite',
                                                        '--output', str(_user_project(e))],
         ('project', 'no .mask3d-run marker')),
    Case('fresh-run-over-a-users-file', lambda e: ['pretrain', '--config', str(e.config), '--output',
                                                   str(_write(e, 'mine/metrics.jsonl', '{}').parent)],
         ('mine', 'already holds metrics.jsonl')),
    Case('folder-used-by-another-run', lambda e: ['pretrain', '--config', str(e.config), '--output',
                                                  str(_locked_folder(e))], ('locked', f'pid {os.getpid()}')),
    Case('config-duplicate-key', lambda e: ['pretrain', '--config', str(_write(e, 'dup.yaml', yaml.safe_dump(TINY) +
                                                                              'train:\n  steps: 2\n')), '--output',
                                            str(e.tmp / 'out')], ('dup.yaml', "duplicate key 'train'"), EXIT_USAGE),
    Case('config-zero-bytes', lambda e: ['pretrain', '--config', str(_write(e, 'empty.yaml', b'')), '--output',
                                         str(e.tmp / 'out')], ('empty.yaml', 'empty (0 bytes)'), EXIT_USAGE),
    Case('config-not-utf8', lambda e: ['pretrain', '--config', str(_write(e, 'latin1.yaml', 'model:\n  name: caf\xe9\n'
                                                                                          .encode('latin-1'))),
                                       '--output', str(e.tmp / 'out')], ('latin1.yaml', 'not UTF-8'), EXIT_USAGE),
    Case('weight-decay-inf', lambda e: _pretrain(e, 'optim.weight_decay=.inf'),
         ('optim.weight_decay', 'finite', '>= 0'), EXIT_USAGE),
    Case('lr-nan', lambda e: _pretrain(e, 'optim.lr=.nan'), ('optim.lr', 'finite'), EXIT_USAGE),
    Case('betas-one-value', lambda e: _pretrain(e, 'optim.betas=[0.9]'), 'optim.betas', EXIT_USAGE),
    Case('seed-not-an-integer', lambda e: _pretrain(e, 'train.seed=abc'), 'train.seed', EXIT_USAGE),
    Case('model-name-empty', lambda e: _pretrain(e, 'model.name=""'), 'model.name', EXIT_USAGE),
    Case('model-args-a-list', lambda e: _pretrain(e, 'model.model_args=[2]'), 'model.model_args', EXIT_USAGE),
    Case('model-init-a-number', lambda e: _pretrain(e, 'model.init=12'), 'model.init', EXIT_USAGE),
    Case('data-root-a-list', lambda e: _pretrain(e, 'data.source=folder', 'data.root=[a, b]'), 'data.root',
         EXIT_USAGE),
    Case('mixture-weight-nan', lambda e: _pretrain(e, 'data.source=mixture',
                                                   'data.mixture=[{source: synthetic, weight: .nan}]'),
         'data.mixture[0].weight', EXIT_USAGE),
    Case('out-indices-empty', lambda e: _finetune(e, str(e.export)) + _sets('model.out_indices=[]'),
         'model.out_indices', EXIT_USAGE),
]


def _user_project(env) -> Path:
    """A folder of the user's own: its config.yaml and source code (no .mask3d-run marker)."""
    _write(env, 'project/src/train.py', 'print(1)\n')
    return _write(env, 'project/config.yaml', 'mine: true\n').parent


_HELD_LOCKS = []  # kept open until the test process ends: flock conflicts between two opens of one process too


def _locked_folder(env) -> Path:
    from mask3d.training.runtime.run_folder import RunLock
    folder = env.tmp / 'locked'
    folder.mkdir()
    _HELD_LOCKS.append(RunLock(folder).acquire())
    return folder


def _data_cases() -> List[Case]:
    """harden-data's rows (tests/bad_input_cases_data.py), when that file exists on this branch."""
    path = Path(__file__).with_name('bad_input_cases_data.py')
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location('bad_input_cases_data', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = []
    for row in module.CASES if hasattr(module, 'CASES') else module.ROWS:
        build = next(v for k, v in row.items() if callable(v) and k not in ('culprit',))
        cases.append(Case(f"reader-{row['name']}", lambda e, build=build: build(e.tmp), row['culprit'],
                          row.get('code', EXIT_FAILED)))
    return cases


ALL_CASES = CASES + _data_cases()


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    """One finished 1-step pre-training run (checkpoint + export) that the rows read but never change."""
    root = tmp_path_factory.mktemp('shared')
    config = root / 'tiny.yaml'
    config.write_text(yaml.safe_dump(TINY))
    run = root / 'run'
    assert main(['pretrain', '--config', str(config), '--output', str(run)]) == 0
    probe_run = root / 'probe_run'  # a run whose probe.json is not JSON (export records the probe metrics)
    probe_run.mkdir()
    for name in ('config.yaml', 'metrics.jsonl'):
        (probe_run / name).write_bytes((run / name).read_bytes())
    (probe_run / 'checkpoints').mkdir()
    (probe_run / 'checkpoints' / 'last.pt').symlink_to(run / 'checkpoints' / 'last.pt')
    (probe_run / 'probe.json').write_text('{"depth": ')
    return SimpleNamespace(config=config, run=run, export=run / 'export', probe_run=probe_run)


@pytest.fixture
def env(shared, tmp_path):
    return SimpleNamespace(**vars(shared), tmp=tmp_path)


def _one_line(err: str) -> str:
    # mask3d's own errors start 'mask3d: error: '; argparse's name the subcommand: 'mask3d data synth: error: '
    lines = [line for line in err.splitlines() if re.match(r'mask3d( [\w-]+)*: error: ', line)]
    assert len(lines) == 1, f'expected one error line, got:\n{err[-3000:]}'
    return lines[0]


@pytest.mark.e2e
@pytest.mark.parametrize('case', ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_bad_input_gives_one_line(case, env, capsys):
    if case.name == 'device-cuda-without-cuda' and torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    argv = case.build(env)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's usage error (exit 2) ends the parse with SystemExit
        rc = e.code
    err = capsys.readouterr().err
    line = _one_line(err)
    assert TRACEBACK not in err, err[-3000:]
    culprits = (case.culprit,) if isinstance(case.culprit, str) else case.culprit
    assert all(c in line for c in culprits), line
    assert not [a for a in case.absent if a in line], line
    assert rc == case.code, f'exit {rc}: {line}'


def test_table_has_thirty_rows():
    assert len(ALL_CASES) >= 30


# ---- how the command reports: --debug, bugs, Ctrl-C, OS errors ----

@pytest.mark.e2e
def test_debug_flag_and_env_show_the_traceback(env, capsys, monkeypatch):
    argv = _pretrain(env, 'optim.lr=-1')
    for args in (['--debug', *argv], [*argv, '--debug']):
        assert main(args) == EXIT_USAGE
        err = capsys.readouterr().err
        assert TRACEBACK in err and 'ConfigError' in err and _one_line(err)
    monkeypatch.setenv('MASK3D_DEBUG', '1')
    assert main(argv) == EXIT_USAGE
    assert TRACEBACK in capsys.readouterr().err
    # an error from a DataLoader worker: --debug adds the worker's own traceback
    worker = _pretrain(env, 'data.source=folder', f'data.root={_folder_data(env, b"no")}', 'data.batch_size=1',
                       'data.num_workers=1')
    assert main(worker) == EXIT_FAILED
    err = capsys.readouterr().err
    assert 'in DataLoader worker process 0' in err and '000000.png' in _one_line(err)


@pytest.mark.e2e
def test_a_bug_shows_its_traceback_and_asks_for_a_report(env, capsys, monkeypatch):
    def broken(*args, **kwargs):
        return 1 / 0
    monkeypatch.setattr('mask3d_resources.resolve_config', broken)
    assert main(_pretrain(env)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert TRACEBACK in err and 'ZeroDivisionError' in err and 'This is a bug in mask3d' in err
    assert 'mask3d: error:' not in err


@pytest.mark.e2e
def test_ctrl_c_is_one_line(env, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr('mask3d_resources.resolve_config', interrupted)
    assert main(_pretrain(env)) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.strip() == 'mask3d: interrupted'


@pytest.mark.e2e
def test_permission_denied_is_one_line(env, capsys, monkeypatch):
    """A run directory that cannot be created (a real read-only folder where the user is not root)."""
    locked = env.tmp / 'locked'
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o500)
    else:  # root ignores permissions: the OS error is raised where the run directory is made
        real_mkdir = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if locked in (self, *self.parents):
                raise PermissionError(errno.EACCES, 'Permission denied', str(self))
            return real_mkdir(self, *args, **kwargs)
        monkeypatch.setattr(Path, 'mkdir', mkdir)
    try:
        rc = main(['pretrain', '--config', str(env.config), '--output', str(locked / 'run')])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    line = _one_line(err)
    assert rc == EXIT_FAILED and TRACEBACK not in err
    assert 'locked' in line and 'Permission denied' in line and 'troubleshooting' in line


@pytest.mark.parametrize('exc,code,expected', [
    (torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB'),
     EXIT_FAILED, 'out of GPU memory (CUDA out of memory); lower data.batch_size'),
    (RuntimeError('No CUDA GPUs are available'), EXIT_FAILED, 'CUDA was asked for but is not available here'),
    (AssertionError('Torch not compiled with CUDA enabled'), EXIT_FAILED, 'set train.device=cpu or auto'),
    (OSError(errno.ENOSPC, 'No space left on device', '/runs/a/metrics.jsonl'), EXIT_FAILED,
     '/runs/a/metrics.jsonl: No space left on device (free some space'),
    (FileNotFoundError(errno.ENOENT, 'No such file or directory', 'split.txt'), EXIT_FAILED,
     'split.txt: No such file or directory'),
    (ValueError('Caught ValueError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n'
                '  File "x.py", line 3, in f\nmask3d.errors.DataError: /d/rgb/7.png: cannot read image\n'),
     None, None),
])
def test_what_counts_as_a_user_error(exc, code, expected):
    """Failures torch and the OS raise that a user fixes (GPU memory, no CUDA, disk, paths) are one line; an
    exception of a non-mask3d type from a DataLoader worker is a bug (only its class decides)."""
    from mask3d_cli.failures import classify, one_line
    found = classify(exc)
    if code is None:
        assert found is None
        assert one_line(str(exc)) == '/d/rgb/7.png: cannot read image'
        return
    assert found[0] == code and expected in found[1] and '\n' not in found[1], found


# ---- faults: a process killed or out of space while it writes a checkpoint ----

def _subprocess_config(env, **train) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg['train'].update(train)
    path = env.tmp / 'sub.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


def _mask3d(*args, **kwargs) -> List[str]:
    return [sys.executable, '-c', 'import sys; from mask3d_cli import main; sys.exit(main())', *args]


def _steps(run: Path) -> List[int]:
    return [json.loads(line)['step'] for line in (run / 'metrics.jsonl').read_text().splitlines() if line.strip()]


def _temp_files(run: Path) -> List[str]:
    return sorted(p.name for p in (run / 'checkpoints').iterdir() if '.tmp' in p.name)


def _checkpoint_step(run: Path) -> int:
    return int(torch.load(run / 'checkpoints' / 'last.pt', map_location='cpu', weights_only=True)['step'])


@pytest.mark.e2e
def test_sigkill_during_checkpoint_write_then_resume(env):
    """SIGKILL while a checkpoint's temp file is being written (after steps were logged past the last good
    checkpoint); --resume removes the stale temp file, continues from last.pt and metrics.jsonl holds each step
    once."""
    config = _subprocess_config(env, steps=40, ckpt_every=2)
    run = env.tmp / 'killed'
    proc = subprocess.Popen(_mask3d('pretrain', '--config', str(config), '--output', str(run)), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    caught, deadline = False, time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            folder = run / 'checkpoints'
            names = os.listdir(folder) if folder.is_dir() else []
            if 'last.pt' in names and any('.tmp' in n for n in names):
                proc.send_signal(signal.SIGKILL)
                caught = True
                break
            time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait()
    assert caught, 'the run ended before a checkpoint write was seen'
    stale = _temp_files(run)
    assert stale, 'the kill should leave the temp file of the interrupted write'
    good = _checkpoint_step(run)
    assert max(_steps(run)) > good  # steps were logged after the last good checkpoint
    assert main(['pretrain', '--config', str(config), '--output', str(run), '--resume', '--set',
                 f'train.steps={good + 2}']) == 0
    assert _temp_files(run) == []
    assert _steps(run) == list(range(1, good + 3))
    assert _checkpoint_step(run) == good + 2


@pytest.mark.e2e
def test_file_size_limit_during_checkpoint_write(env):
    """The disk fills up while a checkpoint is written (simulated with RLIMIT_FSIZE: writes past 1 MiB fail with
    EFBIG, as they fail with ENOSPC on a full disk): one line, the temp file removed, the previous checkpoint kept."""
    run = env.tmp / 'full'
    shutil.copytree(env.run, run, ignore=shutil.ignore_patterns('export', 'tensorboard'))  # its last.pt: step 1
    assert (run / 'checkpoints' / 'last.pt').stat().st_size > 2 ** 20

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 ** 20, resource.RLIM_INFINITY))
    result = subprocess.run(_mask3d('pretrain', '--config', str(env.config), '--output', str(run), '--resume',
                                    '--set', 'train.steps=2', '--set', 'train.export_at_end=false'),
                            env=ENV, capture_output=True, text=True, preexec_fn=limit_file_size)
    line = _one_line(result.stderr)
    assert result.returncode == EXIT_FAILED and TRACEBACK not in result.stderr, result.stderr[-3000:]
    assert 'last.pt' in line and 'File too large' in line and 'kept' in line, line
    assert _temp_files(run) == []
    assert _checkpoint_step(run) == 1


class _FullDisk:
    """A file object that accepts ``room`` bytes, then fails like a full disk."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, 'No space left on device')
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_disk_full_during_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    """ENOSPC in the middle of torch.save: a one-line CheckpointWriteError, no temp file, last.pt unchanged."""
    from mask3d.errors import CheckpointWriteError
    from mask3d.training.runtime import checkpoint
    path = tmp_path / 'last.pt'
    checkpoint.save_atomic({'step': 1, 'w': torch.ones(8)}, path)
    monkeypatch.setattr(checkpoint, 'open', lambda p, mode: _FullDisk(open(p, mode), 2 ** 16), raising=False)
    with pytest.raises(CheckpointWriteError) as e:
        checkpoint.save_atomic({'step': 2, 'w': torch.zeros(2 ** 18)}, path)
    message = str(e.value)
    assert '\n' not in message and str(path) in message and 'No space left on device' in message
    assert 'previous last.pt is kept' in message
    assert os.listdir(tmp_path) == ['last.pt']
    assert torch.load(path, weights_only=True)['step'] == 1


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    """Steps logged between the checkpoint and a kill, and a line the kill cut in half, go; the rest stays."""
    from mask3d.training.runtime.metrics_log import drop_metrics_after, read_metrics
    path = tmp_path / 'metrics.jsonl'
    lines = [json.dumps({'step': s, 'loss': 1.0 / s}) for s in (1, 2, 3, 4)] + [json.dumps({'step': 2, 'split': 'val'})]
    path.write_text('\n'.join(lines) + '\n{"step": 5, "lo')
    assert drop_metrics_after(path, 2) == 3
    assert [(r['step'], r.get('split')) for r in read_metrics(tmp_path)] == [(1, None), (2, None), (2, 'val')]
    assert drop_metrics_after(path, 2) == 0


def test_stale_temp_files_are_removed(tmp_path):
    from mask3d.training.runtime.checkpoint import remove_stale_temp_files
    for name in ('.last.pt.tmp.123', '.step_0000004.pt.tmp.9', 'last.pt', 'notes.tmp.txt'):
        (tmp_path / name).write_bytes(b'x')
    assert remove_stale_temp_files(tmp_path) == ['.last.pt.tmp.123', '.step_0000004.pt.tmp.9']
    assert sorted(os.listdir(tmp_path)) == ['last.pt', 'notes.tmp.txt']


def test_troubleshooting_links_in_messages_exist():
    """Every ``docs/troubleshooting.md#anchor`` the command prints is a heading of that page."""
    import re
    from mask3d_cli import failures
    text = (Path(__file__).resolve().parents[1] / 'docs' / 'troubleshooting.md').read_text()
    anchors = {re.sub(r'[^a-z0-9 -]', '', h.lower()).replace(' ', '-') for h in re.findall(r'^#+ (.+)$', text, re.M)}
    used = set(failures._USER_ERRNOS.values()) | set(re.findall(r"_see\('([a-z-]+)'\)", Path(failures.__file__)
                                                                .read_text()))
    assert used and used <= anchors, used - anchors
