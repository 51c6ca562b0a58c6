"""Every code block in README.md and docs/*.md runs as written, or is a checked sketch (docs/testing.md, "Code in
the docs").

- ``python`` blocks run, in order, one namespace per file, in an empty working folder, offline, with a fake Hub cache
  holding ``ORG/REPO`` (the docs' placeholder repo), unless a ``<!-- sketch: why -->`` line precedes the block.
- ``bash`` blocks are command sketches (they need data, GPUs, a network or minutes): every ``mask3d`` command in them
  must parse with the real CLI parser, every ``--config`` must name a bundled config and every ``python X.py`` an
  existing script. ``<!-- run -->`` before a bash block runs it too.
- ``yaml`` blocks must parse; untagged and ``text`` blocks are layouts or output, not code.
"""
import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from mask3d.errors import ConfigError

DOCS = [REPO_ROOT / 'README.md', *sorted((REPO_ROOT / 'docs').glob('*.md'))]
_BLOCK = re.compile(r'(?:^<!--\s*([^>]*?)\s*-->\n)?^```(\w*)[^\n]*\n(.*?)^```', re.S | re.M)
_OWN_TEST = 'runnable example'   # blocks with a dedicated test below


def blocks(path: Path):
    """(marker, language, code, line number) of each fenced block."""
    text = path.read_text()
    for m in _BLOCK.finditer(text):
        yield (m.group(1) or '').strip(), m.group(2), m.group(3), text[:m.start(2)].count('\n') + 1


def _ids(kind):
    return [pytest.param(p, id=p.relative_to(REPO_ROOT).as_posix())
            for p in DOCS if any(lang == kind for _, lang, _, _ in blocks(p))]


def _logical_lines(code: str):
    """Lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r'\\\n\s*', ' ', code)
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split('#')[0].split()
        if words:
            yield line.strip(), words


def _commands(words):
    """The argv of each mask3d command in a shell line (after ``&&``, ``-m mask3d``, ``.venv/bin/mask3d``, env)."""
    command = []
    for word in [*words, '&&']:
        if word in ('&&', '||', ';', '|'):
            yield command
            command = []
        else:
            command.append(word)


def _mask3d_argv(command):
    """The arguments after ``mask3d`` when ``command`` runs the mask3d CLI (``pip install mask3d`` does not)."""
    for i, word in enumerate(command):
        if word != 'mask3d' and not word.endswith('/mask3d'):
            continue
        before = command[:i]
        if not before or before[-1] == '-m' or command[0] in ('nice', 'time', 'env') or \
                all(re.fullmatch(r'\w+=\S*', w) for w in before):
            return command[i + 1:]
    return None


def check_command_sketch(line: str, words) -> list:
    """Problems of one shell line: mask3d argv the parser refuses, configs or scripts that do not exist."""
    from mask3d_cli import build_parser
    from mask3d_resources import resolve_config
    problems = []
    for command in _commands(words):
        argv = _mask3d_argv(command)
        if command[:1] in (['python'], ['python3']) and len(command) > 1 and command[1].endswith('.py'):
            if not (REPO_ROOT / command[1]).is_file():
                problems.append(f'{line}: no script {command[1]}')
        if argv is None or any('...' in w or '$' in w or w.startswith('[') for w in argv):
            continue  # not mask3d, or an elided / templated argument (`mask3d pretrain ... --resume`)
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            if e.code:
                problems.append(f'{line}: the CLI refuses it')
            continue
        config = getattr(args, 'config', None)
        if config and getattr(args, 'config_family', None):
            try:
                resolve_config(config, args.config_family)
            except ConfigError as e:  # names the missing config
                problems.append(f'{line}: {e}')
    return problems


@pytest.mark.parametrize('path', _ids('bash'))
def test_bash_blocks_are_valid_command_sketches(path, capsys):
    problems = []
    for marker, lang, code, line in blocks(path):
        if lang != 'bash':
            continue
        for text, words in _logical_lines(code):
            problems += [f'{path.name}:{line}: {p}' for p in check_command_sketch(text, words)]
    capsys.readouterr()
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('path', _ids('yaml'))
def test_yaml_blocks_parse(path):
    import yaml
    for marker, lang, code, line in blocks(path):
        if lang == 'yaml':
            assert isinstance(yaml.safe_load(code), dict), f'{path.name}:{line}'


@pytest.fixture
def fake_hub_repo(offline_hub, tmp_path):
    """``ORG/REPO`` in the (offline, temporary) Hugging Face cache: a tiny mask3d export, as a pushed repo holds it."""
    import torch

    import mask3d
    torch.manual_seed(0)
    export = mask3d.save_pretrained(mask3d.create_model('mask3d_vit_tiny_patch16'), tmp_path / 'export')
    root, commit = offline_hub / 'models--ORG--REPO', 'f' * 40
    (root / 'refs').mkdir(parents=True)
    (root / 'refs' / 'main').write_text(commit)
    (root / 'blobs').mkdir()
    snap = root / 'snapshots' / commit
    snap.mkdir(parents=True)
    for name in ('model.safetensors', 'config.json', 'README.md'):
        data = (export / name).read_bytes()
        blob = root / 'blobs' / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / name).symlink_to(Path('..') / '..' / 'blobs' / blob.name)
    return 'ORG/REPO'


@pytest.mark.e2e
@pytest.mark.parametrize('path', _ids('python'))
def test_python_blocks_run_as_written(path, fake_hub_repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope = {'__name__': '__docs__'}
    ran = 0
    for marker, lang, code, line in blocks(path):
        if lang != 'python' or marker.startswith('sketch') or marker == _OWN_TEST:
            ran += marker == _OWN_TEST
            continue
        try:
            exec(compile('\n' * (line) + code, str(path), 'exec'), scope)
        except Exception as e:
            raise AssertionError(f'{path.name}:{line}: the python block fails as written: {e!r}') from e
        ran += 1
    assert ran, f'{path.name}: every python block is a sketch'


def test_sketch_markers_say_why():
    for path in DOCS:
        for marker, lang, code, line in blocks(path):
            if marker.startswith('sketch'):
                assert re.fullmatch(r'sketch: \S.*', marker), f'{path.name}:{line}: write <!-- sketch: why -->'


@pytest.mark.e2e
def test_run_marked_bash_blocks_run(tmp_path):
    env = {**os.environ, 'PATH': f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'}
    for path in DOCS:
        for marker, lang, code, line in blocks(path):
            if lang == 'bash' and marker == 'run':
                out = subprocess.run(['bash', '-e', '-c', code], cwd=REPO_ROOT, capture_output=True, text=True,
                                     env=env, timeout=300)
                assert out.returncode == 0, f'{path.name}:{line}: {out.stderr[-2000:]}'


def test_the_checker_catches_what_it_should():
    """A renamed flag, a missing config and a missing script are each caught; elided lines are left alone."""
    assert check_command_sketch('x', shlex.split('mask3d pretrain --config synthetic_tiny --outptu runs/x'))
    assert check_command_sketch('x', shlex.split('mask3d pretrain --config no_such_config --output runs/x'))
    assert check_command_sketch('x', shlex.split('python benchmarks/no_such_script.py'))
    assert check_command_sketch('x', shlex.split('.venv/bin/pip install -e . && .venv/bin/mask3d pretrian')) != []
    assert not check_command_sketch('x', shlex.split('mask3d pretrain ... --resume'))
    assert not check_command_sketch('x', shlex.split('torchrun --nproc_per_node 8 -m mask3d pretrain --config '
                                                     'scannet_vit_base --output runs/x --set a=1'))


@pytest.mark.e2e
def test_finetuning_doc_example_runs_and_learns(capsys):
    text = (REPO_ROOT / 'docs' / 'finetuning.md').read_text()
    code = re.search(r'<!-- runnable example -->\n```python\n(.*?)```', text, re.S).group(1)
    scope = {}
    exec(compile(code, 'docs/finetuning.md', 'exec'), scope)
    assert scope['result']['pixel_acc'] > 0.3  # 15 steps on 8 frames: well above chance (1/12)
    assert 'mIoU' in capsys.readouterr().out


def test_every_config_the_training_readme_names_exists():
    """training/README.md's table once named a config that did not exist (issue 24): every ``configs/...yaml`` in it,
    with ``{a,b}`` expanded, is a file."""
    text = (REPO_ROOT / 'training' / 'README.md').read_text(encoding='utf-8')
    names = re.findall(r'configs/[\w/{},.-]+\.yaml', text)
    assert len(names) >= 10
    missing = []
    for name in names:
        parts = [name]
        while any('{' in p for p in parts):
            p = next(p for p in parts if '{' in p)
            head, rest = p.split('{', 1)
            options, tail = rest.split('}', 1)
            parts.remove(p)
            parts += [head + o + tail for o in options.split(',')]
        missing += [p for p in parts if not (REPO_ROOT / 'training' / p).is_file()]
    assert not missing, missing
