"""The wheel and sdist are complete: a wheel installed into a fresh environment runs the documented commands from
any folder (bundled configs and manifest, LICENSE, no repository needed); the sdist holds what the tests need; an
editable install reads the configs and the manifest in place."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.packaging

OFFLINE_BUILD_ENV = {'PATH': '/usr/bin:/bin'}  # no index, no build isolation: nothing is downloaded


def _run(args, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    build = tmp_path_factory.mktemp('build')
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', out,
          REPO_ROOT], env={**OFFLINE_BUILD_ENV, 'TMPDIR': str(build), 'HOME': str(build)})
    wheels = list(out.glob('mask3d-*.whl'))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split('/')[0] for n in names} == {'mask3d', 'mask3d_cli', 'mask3d_resources', 'mask3d-0.1.0.dist-info'}
    assert 'mask3d/__init__.py' in names and 'mask3d/training/__init__.py' in names
    assert 'mask3d/models/mask3d_vit.py' in names and 'mask3d/training/data/synthetic.py' in names
    # package data: every YAML under training/configs (not listed by hand) and the manifest; nothing else from
    # training/ or hub/ (hub/make_cards.py, hub/cards/, training/README.md stay in the repository)
    configs = sorted(p.relative_to(REPO_ROOT / 'training' / 'configs').as_posix()
                     for p in (REPO_ROOT / 'training' / 'configs').rglob('*.yaml'))
    resources = sorted(n[len('mask3d_resources/'):] for n in names if n.startswith('mask3d_resources/'))
    assert resources == ['__init__.py'] + [f'configs/{c}' for c in configs] + ['hub/manifest.yaml'], resources
    assert not any(n.startswith(('mask3d_cli/_bundled/', 'mask3d_cli/bundled.py')) for n in names)  # the old copy
    manifest = zipfile.ZipFile(wheel).read('mask3d_resources/hub/manifest.yaml')
    assert manifest == (REPO_ROOT / 'hub' / 'manifest.yaml').read_bytes()
    assert 'mask3d-0.1.0.dist-info/licenses/LICENSE' in names
    assert not any(n.startswith(('tests/', 'training/', 'hub/', 'benchmarks/', 'docs/')) for n in names)
    assert not any(n.endswith(('.png', '.jpg', '.mat', '.npy', '.sens', '.pt', '.safetensors')) for n in names)
    text = zipfile.ZipFile(wheel).read('mask3d-0.1.0.dist-info/METADATA').decode()
    requires = [line for line in text.splitlines() if line.startswith('Requires-Dist') and 'extra ==' not in line]
    assert sorted(r.split()[1].split('>')[0].split('<')[0] for r in requires) == \
        ['huggingface-hub', 'safetensors', 'timm', 'torch']
    assert 'Provides-Extra: train' in text and 'License-Expression: Apache-2.0' in text
    assert 'Requires-Python: >=3.10' in text and 'Classifier: Intended Audience :: Science/Research' in text
    assert 'Project-URL: Paper, https://arxiv.org/abs/2302.14746' in text
    for label in ('Homepage', 'Documentation', 'Source', 'Issues'):
        assert f'Project-URL: {label}, https://' in text
    for minor in (10, 11, 12, 13):
        assert f'Classifier: Programming Language :: Python :: 3.{minor}' in text
    assert "Requires-Dist: tensorboard>=2.12; extra == \"train\"" in text
    description = text.split('\n\n', 1)[1]
    assert '# mask3d' in description and '](docs/' not in description and '/blob/main/docs/quickstart.md)' in description
    entry = zipfile.ZipFile(wheel).read('mask3d-0.1.0.dist-info/entry_points.txt').decode()
    assert 'mask3d = mask3d_cli:main' in entry


def test_readme_links_are_absolute_on_pypi_and_relative_on_github():
    import tomllib
    spec = importlib.util.spec_from_file_location('mask3d_setup', REPO_ROOT / 'setup.py')
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)  # guarded by __name__: builds nothing
    urls = tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())['project']['urls']
    assert setup_py.REPOSITORY == urls['Source'] == urls['Homepage']
    readme = (REPO_ROOT / 'README.md').read_text()
    relative = re.findall(r'\]\(((?!https?:|#)[^)]+)\)', readme)
    assert relative and all((REPO_ROOT / r.split('#')[0]).exists() for r in relative), relative  # GitHub: they resolve
    pypi = setup_py.absolute_links(readme)
    assert not re.findall(r'\]\(((?!https?:|#)[^)]+)\)', pypi)
    assert f"]({urls['Source']}/blob/main/docs/testing.md)" in pypi
    assert setup_py.absolute_links('[t](training/) [a](#x) [u](https://e.org/y)') == \
        f"[t]({urls['Source']}/tree/main/training/) [a](#x) [u](https://e.org/y)"


def test_build_requires_only_setuptools():
    import tomllib
    assert tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())['build-system']['requires'] == ['setuptools>=77']
    assert (REPO_ROOT / 'LICENSE').read_text().lstrip().startswith('Apache License')


def test_sdist_holds_what_the_tests_need(tmp_path):
    _run([sys.executable, '-m', 'build', '--sdist', '--no-isolation', '--outdir', tmp_path, REPO_ROOT],
         env={**OFFLINE_BUILD_ENV, 'TMPDIR': str(tmp_path), 'HOME': str(tmp_path)})
    names = {n.split('/', 1)[1] for n in tarfile.open(next(tmp_path.glob('mask3d-*.tar.gz'))).getnames() if '/' in n}
    tracked = _run(['git', 'ls-files'], cwd=REPO_ROOT).stdout.split()
    needed = [n for n in tracked if n.startswith(('tests/', 'training/', 'hub/', 'docs/', 'benchmarks/', 'mask3d'))]
    missing = sorted(set(needed + ['LICENSE', 'README.md', 'setup.py', 'pyproject.toml', '.ci/run']) - names)
    assert not missing


def test_installed_wheel_runs_from_another_folder(wheel, tmp_path):
    """A fresh environment (the shared site-packages for torch & co., no mask3d) + the wheel: pretrain by name."""
    env_dir = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', env_dir])
    python = env_dir / 'bin' / 'python'
    site = Path(_run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    # dependencies come from this interpreter's site-packages (a plain path: its editable mask3d is not loaded)
    (site / 'shared_site.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    _run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '--no-index', wheel],
         env={**OFFLINE_BUILD_ENV, 'HOME': str(tmp_path)})
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    env = {'PATH': f"{env_dir / 'bin'}:/usr/bin:/bin", 'HOME': str(tmp_path), 'HF_HUB_OFFLINE': '1',
           'HF_HUB_CACHE': str(tmp_path / 'hf'), 'OMP_NUM_THREADS': '2'}
    version = _run(['mask3d', '--version'], cwd=elsewhere, env=env).stdout
    assert version.strip() == 'mask3d 0.1.0'
    assert 'pretrain/synthetic_tiny' in _run(['mask3d', 'configs'], cwd=elsewhere, env=env).stdout
    _run(['mask3d', 'pretrain', '--config', 'synthetic_tiny', '--output', 'run', '--set', 'train.steps=2',
          '--set', 'data.batch_size=2', '--set', 'data.num_workers=0', '--set', 'train.precision=fp32',
          '--set', 'model.model_args={depth: 2}', '--set', 'data.image_size=[96,128]'], cwd=elsewhere, env=env)
    assert (elsewhere / 'run' / 'export' / 'model.safetensors').is_file()
    where = _run([python, '-c', 'import mask3d, mask3d_resources as r; print(mask3d.__file__, r.manifest_path())'],
                 cwd=elsewhere, env=env).stdout.split()
    assert str(REPO_ROOT) not in ' '.join(where)  # the installed copies, not the repository
    assert where[1].endswith('site-packages/mask3d_resources/hub/manifest.yaml')
    # the manifest works after a non-editable install: a release dry run checks the export's provenance against it
    out = subprocess.run(['mask3d', 'push', 'run/export', '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet',
                          '--release', '--dry-run'], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "trained on ['synthetic']" in out.stdout, out.stdout + out.stderr


def test_data_packages_are_declared_once_each():
    """setup.py adds the two package folders pyproject.toml maps onto training/configs and hub/ (discovery cannot see
    them): the three lists must name the same packages."""
    import tomllib
    spec = importlib.util.spec_from_file_location('mask3d_setup', REPO_ROOT / 'setup.py')
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)
    tool = tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())['tool']['setuptools']
    assert sorted(setup_py.DATA_PACKAGES) == sorted(tool['package-dir']) == sorted(tool['package-data'])
    assert tool['package-dir'] == {'mask3d_resources.configs': 'training/configs', 'mask3d_resources.hub': 'hub'}


def test_editable_install_reads_the_files_in_place(tmp_path):
    """``pip install -e`` (the README's install): configs and the manifest are the repository's files, so a new or
    edited config is seen without reinstalling. Installed from a copy of the repository, which the test then edits."""
    repo = tmp_path / 'repo'
    repo.mkdir()
    for name in ('pyproject.toml', 'setup.py', 'README.md', 'LICENSE', 'MANIFEST.in'):
        shutil.copy(REPO_ROOT / name, repo / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.egg-info')
    for folder in ('mask3d', 'mask3d_cli', 'mask3d_resources', 'training/configs', 'hub'):
        shutil.copytree(REPO_ROOT / folder, repo / folder, ignore=ignore)
    env_dir = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', env_dir])
    python = env_dir / 'bin' / 'python'
    site = Path(_run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    (site / 'shared_site.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    _run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '--no-index', '--no-build-isolation',
          '-e', repo], env={**OFFLINE_BUILD_ENV, 'HOME': str(tmp_path), 'TMPDIR': str(tmp_path)})
    (repo / 'training' / 'configs' / 'probe' / 'added_after_install.yaml').write_text('# added after the install\n')
    code = ('import sys, mask3d_resources as r; '
            'print(r.configs_root(), r.manifest_path(), r.resolve_config("added_after_install")); '
            'assert "torch" not in sys.modules')
    where = _run([python, '-c', code], cwd=tmp_path, env={'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path)})
    where = where.stdout.split()
    assert where == [str(repo / 'training' / 'configs'), str(repo / 'hub' / 'manifest.yaml'),
                     str(repo / 'training' / 'configs' / 'probe' / 'added_after_install.yaml')]
