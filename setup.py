"""Build step (all other metadata is in pyproject.toml): the package list, and a README whose links work on PyPI.

The YAML configs and the release manifest are package data of ``mask3d_resources``: pyproject.toml maps its package
folders ``configs`` and ``hub`` onto ``training/configs`` and ``hub`` ([tool.setuptools.package-dir]), so the files
stay where users browse them, nothing is copied, and a new config folder or file ships without being listed. Those two
packages have no folder of their own, so package discovery cannot see them: ``DATA_PACKAGES`` adds them, and they
ship their package data only (``hub/`` also holds ``make_cards.py``, a maintainer's script). README.md links to
``docs/...`` relative to the repository, which GitHub resolves and PyPI does not: the long description gets the same
links made absolute against ``REPOSITORY`` (the README itself is unchanged).
"""
import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
REPOSITORY = 'https://github.com/mask3d/mask3d'   # = [project.urls] Source in pyproject.toml
DATA_PACKAGES = ['mask3d_resources.configs', 'mask3d_resources.hub']   # = [tool.setuptools.package-dir] keys


def absolute_links(markdown: str, base: str = REPOSITORY, ref: str = 'main') -> str:
    """``[text](docs/x.md)`` -> ``[text](BASE/blob/REF/docs/x.md)``; absolute URLs and ``#anchors`` are kept."""
    def fix(m):
        target = m.group(2)
        if re.match(r'[a-z][a-z0-9+.-]*:|#|/', target):
            return m.group(0)
        kind = 'tree' if target.rstrip('/').split('/')[-1].count('.') == 0 else 'blob'
        return f'{m.group(1)}({base}/{kind}/{ref}/{target})'
    return re.sub(r'(!?\[[^\]]*\])\(([^)\s]+)\)', fix, markdown)


class BuildPyDataOnly(build_py):
    """The data packages ship their package-data only, not the scripts in the same folder (``hub/make_cards.py``)."""

    def find_package_modules(self, package, package_dir):
        return [] if package in DATA_PACKAGES else super().find_package_modules(package, package_dir)


if __name__ == '__main__':
    setup(packages=find_packages(include=['mask3d', 'mask3d.*', 'mask3d_cli', 'mask3d_resources']) + DATA_PACKAGES,
          cmdclass={'build_py': BuildPyDataOnly},
          long_description=absolute_links((ROOT / 'README.md').read_text(encoding='utf-8')),
          long_description_content_type='text/markdown')
