"""Run folders belong to mask3d (issue 21): a marker, one run per folder (a lock), ``--overwrite`` removes only
what mask3d wrote, and the working directory and above are never a run folder."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mask3d.errors import Mask3DError, RunFolderError
from mask3d.training.runtime.run_folder import LOCK, MARKER, RunLock, check_not_protected, prepare_run_folder


def _earlier_run(folder: Path) -> None:
    """What a finished mask3d run leaves, plus the user's own files beside it."""
    lock = prepare_run_folder(folder, 'pretrain')
    lock.release()
    for name in ('config.yaml', 'metrics.jsonl', 'summary.json', 'checkpoints/last.pt', 'checkpoints/step_0000002.pt',
                 'figures/step_0000002.png', 'export/model.safetensors', 'export/config.json', 'export/README.md',
                 'tensorboard/events.out.tfevents.1.host'):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text('mask3d')


def test_a_new_folder_is_marked_and_locked_while_the_run_lives(tmp_path):
    lock = prepare_run_folder(tmp_path / 'run', 'pretrain')
    marker = json.loads((tmp_path / 'run' / MARKER).read_text())
    assert marker['pid'] == os.getpid() and marker['command'] == 'pretrain' and 'mask3d' in marker
    assert json.loads((tmp_path / 'run' / LOCK).read_text())['pid'] == os.getpid()
    lock.release()
    assert not (tmp_path / 'run' / LOCK).exists()


def test_overwrite_removes_only_what_mask3d_wrote(tmp_path):
    run = tmp_path / 'run'
    _earlier_run(run)
    for name in ('notes.txt', 'checkpoints/my_own.pt', 'export/extra.bin', 'src/train.py'):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text('user')
    prepare_run_folder(run, 'pretrain', overwrite=True).release()
    left = sorted(str(p.relative_to(run)) for p in run.rglob('*') if p.is_file())
    assert left == [MARKER, 'checkpoints/my_own.pt', 'export/extra.bin', 'notes.txt', 'src/train.py']
    assert not (run / 'figures').exists() and not (run / 'tensorboard').exists()


def test_overwrite_refuses_a_folder_mask3d_did_not_make(tmp_path):
    mine = tmp_path / 'project'
    (mine / 'src').mkdir(parents=True)
    (mine / 'config.yaml').write_text('mine: 1\n')
    (mine / 'src' / 'main.py').write_text('print(1)\n')
    with pytest.raises(RunFolderError, match=f'--overwrite: {mine} has no {MARKER} marker') as err:
        prepare_run_folder(mine, 'pretrain', overwrite=True)
    assert '\n' not in str(err.value)
    assert (mine / 'config.yaml').read_text() == 'mine: 1\n' and (mine / 'src' / 'main.py').is_file()
    assert not (mine / LOCK).exists() and not (mine / MARKER).exists()


def test_a_fresh_run_never_overwrites_a_users_file(tmp_path):
    mine = tmp_path / 'project'
    mine.mkdir()
    (mine / 'metrics.jsonl').write_text('{"mine": 1}\n')
    with pytest.raises(RunFolderError, match='already holds metrics.jsonl and has no .mask3d-run marker'):
        prepare_run_folder(mine, 'pretrain')
    (mine / 'metrics.jsonl').unlink()
    (mine / 'notes.txt').write_text('x')  # nothing mask3d would write: the folder is used, notes.txt stays
    prepare_run_folder(mine, 'pretrain').release()
    assert (mine / 'notes.txt').read_text() == 'x' and (mine / MARKER).is_file()


def test_a_fresh_run_refuses_an_earlier_run_in_its_folder(tmp_path):
    run = tmp_path / 'run'
    _earlier_run(run)
    with pytest.raises(RunFolderError, match='already holds a run .*--resume'):
        prepare_run_folder(run, 'pretrain')
    (run / 'checkpoints' / 'last.pt').unlink()
    with pytest.raises(RunFolderError, match='holds an earlier run that wrote no checkpoint .*--overwrite'):
        prepare_run_folder(run, 'pretrain')
    prepare_run_folder(run, 'probe', outputs=('probe.json',), adds_to_runs=True).release()  # the probe may add


@pytest.mark.parametrize('where', ['.', 'cwd-parent', 'home', '/'])
def test_the_working_directory_its_parents_home_and_root_are_never_a_run_folder(where, tmp_path, monkeypatch):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'keep.txt').write_text('x')
    monkeypatch.chdir(work)
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    (tmp_path / 'home').mkdir()
    folder = {'.': Path('.'), 'cwd-parent': Path('..'), 'home': Path('~'), '/': Path('/')}[where]
    with pytest.raises(RunFolderError, match='a run needs a folder of its own') as err:
        prepare_run_folder(folder, 'pretrain', overwrite=True)
    assert '\n' not in str(err.value) and str(folder) in str(err.value)
    assert (work / 'keep.txt').is_file() and not (work / MARKER).exists()
    check_not_protected(work / 'runs' / 'a')  # a folder below the working directory is fine


def test_a_second_run_on_a_folder_is_refused_naming_the_first_ones_pid(tmp_path):
    run = tmp_path / 'run'
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import sys, time
        from mask3d.training.runtime.run_folder import prepare_run_folder
        prepare_run_folder({str(run)!r}, 'pretrain')
        print('locked', flush=True)
        time.sleep(60)
    ''')], stdout=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONPATH': str(Path(__file__).parents[1])})
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(RunFolderError, match=f'another run is using this folder \\(pid {holder.pid} on '):
            prepare_run_folder(run, 'pretrain', resume=True)
    finally:
        holder.kill()
        holder.wait()
    prepare_run_folder(run, 'pretrain', resume=True).release()  # the kernel dropped the dead process's lock


def test_the_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path, caplog):
    run = tmp_path / 'run'
    run.mkdir()
    (run / LOCK).write_text(json.dumps({'pid': 999999, 'host': 'elsewhere'}))
    with caplog.at_level('WARNING'):
        lock = RunLock(run).acquire()
    assert 'taking over the lock of a run that is no longer running (pid 999999 on elsewhere)' in caplog.text
    assert json.loads((run / LOCK).read_text())['pid'] == os.getpid()
    lock.release()


def test_run_folder_errors_are_mask3d_errors():
    assert issubclass(RunFolderError, Mask3DError)


def test_the_troubleshooting_anchor_in_the_messages_exists():
    import re
    from mask3d.training.runtime.run_folder import TROUBLESHOOTING
    page, anchor = TROUBLESHOOTING.split('#')
    text = (Path(__file__).resolve().parents[1] / page).read_text()
    anchors = {re.sub(r'[^a-z0-9 -]', '', h.lower()).replace(' ', '-') for h in re.findall(r'^#+ (.+)$', text, re.M)}
    assert anchor in anchors
