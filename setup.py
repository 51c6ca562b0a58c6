"""Build step (all other metadata is in pyproject.toml): bundle the YAML configs and the release manifest into the
wheel, and give PyPI a README whose links work there.

The files users browse stay where they are (``training/configs/**.yaml``, ``hub/manifest.yaml``); building copies
them to ``mask3d_cli/_bundled/``, so a new config folder or file ships without being listed anywhere. README.md links
to ``docs/...`` relative to the repository, which GitHub resolves and PyPI does not: the long description gets the
same links made absolute against ``REPOSITORY`` (the README itself is unchanged).
"""
import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
REPOSITORY = 'https://github.com/mask3d/mask3d'   # = [project.urls] Source in pyproject.toml


def absolute_links(markdown: str, base: str = REPOSITORY, ref: str = 'main') -> str:
    """``[text](docs/x.md)`` -> ``[text](BASE/blob/REF/docs/x.md)``; absolute URLs and ``#anchors`` are kept."""
    def fix(m):
        target = m.group(2)
        if re.match(r'[a-z][a-z0-9+.-]*:|#|/', target):
            return m.group(0)
        kind = 'tree' if target.rstrip('/').split('/')[-1].count('.') == 0 else 'blob'
        return f'{m.group(1)}({base}/{kind}/{ref}/{target})'
    return re.sub(r'(!?\[[^\]]*\])\(([^)\s]+)\)', fix, markdown)


class BuildPyWithBundledFiles(build_py):
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # an editable install reads training/configs and hub/manifest.yaml in place
        bundled = Path(self.build_lib) / 'mask3d_cli' / '_bundled'
        shutil.rmtree(bundled, ignore_errors=True)
        for src in sorted((ROOT / 'training' / 'configs').rglob('*.yaml')):
            dst = bundled / 'configs' / src.relative_to(ROOT / 'training' / 'configs')
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        shutil.copyfile(ROOT / 'hub' / 'manifest.yaml', bundled / 'manifest.yaml')


if __name__ == '__main__':
    setup(cmdclass={'build_py': BuildPyWithBundledFiles},
          long_description=absolute_links((ROOT / 'README.md').read_text(encoding='utf-8')),
          long_description_content_type='text/markdown')
