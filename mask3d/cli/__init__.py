"""The ``mask3d`` command lives in the light ``mask3d_cli`` package (fast ``--help``); kept here for imports."""
from mask3d_cli import build_parser, lazy, main  # noqa: F401
