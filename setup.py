"""Build step (all metadata is in pyproject.toml): put the YAML configs and the release manifest into the wheel.

The files users browse stay where they are (``training/configs/**.yaml``, ``hub/manifest.yaml``); building copies
them to ``mask3d_cli/_bundled/``, so a new config folder or file ships without being listed anywhere.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


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


setup(cmdclass={'build_py': BuildPyWithBundledFiles})
