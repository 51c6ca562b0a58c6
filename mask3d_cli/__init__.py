"""The ``mask3d`` command.

This package is separate from ``mask3d`` so that ``mask3d --help``, ``--version`` and ``configs`` answer without
importing torch and timm (importing ``mask3d`` registers the models in timm, which takes seconds). Each subcommand
names its implementation as ``'module:function'``; that module is imported only when the subcommand runs.

Errors end in one line on stderr (``mask3d: error: ...``, exit 2 for a wrong command line or config, 1 for
anything else a user can fix) and bugs in a traceback; ``--debug`` or ``MASK3D_DEBUG=1`` shows every traceback
(``failures.py``).

Adding a subcommand is a few lines in ``build_parser``::

    p = sub.add_parser('probe', help='...')
    p.add_argument(...)
    p.set_defaults(func=lazy('mask3d.training.probe.cli:run_probe'))
"""
import argparse
import importlib
import re
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Callable, List, Optional

from mask3d_resources import configs_root, list_configs, manifest_path

from .argtypes import non_negative_int, positive_float, positive_int
from .failures import check_output_folder, debug_requested, install_signal_handlers, report


def version() -> str:
    """mask3d's version, read from mask3d/version.py without importing mask3d."""
    spec = find_spec('mask3d')
    text = (Path(list(spec.submodule_search_locations)[0]) / 'version.py').read_text()
    return re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text).group(1)


def lazy(target: str) -> Callable:
    """A subcommand handler that imports ``module`` only when called: ``lazy('pkg.mod:run')(args)``."""
    def handler(args):
        module, function = target.split(':')
        return getattr(importlib.import_module(module), function)(args)
    handler.target = target
    return handler


def shorten(text: str, width: int = 72) -> str:
    """``text`` cut at the last space that fits, marked ``...`` (never inside a word, hyphenated ones included)."""
    if len(text) <= width:
        return text
    return text[:width - 3].rsplit(' ', 1)[0].rstrip(' ,;:') + ' ...'


def _cmd_configs(args) -> int:
    found = list_configs(args.family)
    print(f'bundled configs ({configs_root()}); pass the name to --config, or a path to your own YAML:')
    for key, path in found.items():
        first = next((line[1:].strip() for line in path.read_text().splitlines() if line.startswith('#')), '')
        print(f'  {key:44s} {shorten(first)}')
    return 0


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: also takes ``--debug`` after the subcommand's name (``mask3d pretrain ... --debug``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true', default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _add_push(sub) -> None:
    """``mask3d push``: anyone's export to their own repo; ``--release``: the maintainers' pinned release."""
    p = sub.add_parser('push', help='upload an exported folder to your Hugging Face Hub repo',
                       description='Upload an export (model.safetensors + config.json; the card is re-rendered with '
                                   'the real hf-hub: id) to any repo your token may write. The release manifest is '
                                   'not touched unless --release is given (maintainers only).')
    p.add_argument('folder', help='a folder written by `mask3d export` or mask3d.save_pretrained')
    p.add_argument('--repo-id', required=True, help='you/name: the Hub repo to create or update')
    p.add_argument('--dry-run', action='store_true', help='check the folder and list what would be uploaded')
    p.add_argument('--private', action='store_true', help='create the repository private')
    p.add_argument('--revision', default=None, help='branch to push to (created if missing; default main)')
    p.add_argument('--create-pr', action='store_true', help='open a pull request instead of committing')
    p.add_argument('--release', action='store_true',
                   help='maintainers: publish an official release: the export\'s provenance must match the '
                        'manifest entry of --repo-id, and the pushed commit id and sha256 are pinned there')
    p.add_argument('--manifest', default=None,
                   help=f'release manifest for --release (default: {manifest_path()}); giving it implies --release')
    p.set_defaults(func=lazy('mask3d.cli.commands:run_push'))


def _add_export(sub) -> None:
    """``mask3d export``: a pre-training run's encoder as a Hub folder, with its provenance and stated licence."""
    p = sub.add_parser('export', help='write a pre-training run\'s encoder as a Hub folder',
                       description='Write the encoder of a `mask3d pretrain` run as model.safetensors + a timm '
                                   'config.json (with the run\'s provenance) + a model card; plain timm loads it '
                                   'with local-dir:OUT, and `mask3d push OUT --repo-id you/name` publishes it.')
    p.add_argument('run_dir', help='the run directory given to `mask3d pretrain --output`')
    p.add_argument('--out', required=True, help='folder to write (new, or an earlier export by mask3d)')
    p.add_argument('--checkpoint', default=None, help='checkpoint file (default RUN_DIR/checkpoints/last.pt)')
    p.add_argument('--license', default=None, metavar='ID',
                   help='the licence you state for the weights, a Hub licence id such as apache-2.0 or mit '
                        '(default: not stated; weights from a non-commercial init keep its licence)')
    p.set_defaults(func=lazy('mask3d.cli.commands:run_export'))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='mask3d', description='Mask3D RGB-D pre-trained ViT backbones.')
    parser.add_argument('--version', action='version', version=f'mask3d {version()}')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of errors (also MASK3D_DEBUG=1); without it a mistake in the '
                             'input is one line, exit 2 (command line, config) or 1 (anything else)')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=_SubcommandParser)
    config_help = 'a bundled config name (`mask3d configs`, e.g. {}) or a YAML file'

    p = sub.add_parser('models', help='list Mask3D backbones, their tags and where their weights are')
    p.add_argument('filter', nargs='?', default='', help="wildcard filter, e.g. '*base*'")
    p.set_defaults(func=lazy('mask3d.cli.commands:run_models'))

    p = sub.add_parser('configs', help='list the bundled YAML configs (pretrain, finetune, ...)')
    p.add_argument('family', nargs='?', default=None, help='a folder, e.g. pretrain')
    p.set_defaults(func=_cmd_configs)

    _add_push(sub)

    p = sub.add_parser('pretrain', help='Mask3D masked RGB-D pre-training (needs mask3d[train])')
    p.add_argument('--config', required=True, help=config_help.format('synthetic_tiny'))
    p.add_argument('--output', required=True, help='run directory (checkpoints, metrics.jsonl, figures, export)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override, e.g. optim.lr=1e-4')
    p.add_argument('--resume', action='store_true', help='continue from RUN_DIR/checkpoints/last.pt')
    p.add_argument('--overwrite', action='store_true', help='delete an earlier run in RUN_DIR first')
    p.set_defaults(func=lazy('mask3d.training.pretrain.cli:run_pretrain'), config_family='pretrain')

    _add_export(sub)

    tasks = ('semseg', 'depth', 'instance')
    p = sub.add_parser('finetune', help='fine-tune a backbone for semseg, depth or instance (needs mask3d[train])')
    p.add_argument('--task', required=True, choices=tasks)
    p.add_argument('--config', required=True, help=config_help.format('synthetic_semseg'))
    p.add_argument('--output', required=True, help='run directory (checkpoints, metrics.jsonl, eval/)')
    p.add_argument('--backbone', default=None, metavar='NAME_OR_PATH',
                   help='create_model name, hf-hub:ORG/NAME, local-dir:DIR, an exported folder or a pretrain run dir')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override, e.g. optim.lr=1e-4')
    p.add_argument('--resume', action='store_true', help='continue from RUN_DIR/checkpoints/last.pt')
    p.add_argument('--overwrite', action='store_true', help='delete an earlier run in RUN_DIR first')
    p.set_defaults(func=lazy('mask3d.training.finetune.cli:run_finetune'), config_family='finetune')

    p = sub.add_parser('evaluate', help='score a fine-tuned run: metrics JSON and a PNG of predictions')
    p.add_argument('checkpoint', metavar='RUN_DIR_OR_CHECKPOINT')
    p.add_argument('--task', default=None, choices=tasks, help='must match the checkpoint')
    p.add_argument('--config', default=None, help='data/eval sections to use (default: the run\'s own config)')
    p.add_argument('--split', default='val', choices=('val', 'train'))
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
    p.add_argument('--output', default=None, help='folder for the metrics and figure (default RUN_DIR/eval)')
    p.set_defaults(func=lazy('mask3d.training.finetune.cli:run_evaluate'), config_family='finetune')

    p = sub.add_parser('probe', help='3D awareness of a frozen backbone: depth, normals, semseg, correspondence probes')
    p.add_argument('--backbone', default=None, metavar='NAME_OR_PATH',
                   help='run dir, export folder, local-dir:DIR, hf-hub:ORG/NAME, weights file or any timm ViT name')
    p.add_argument('--config', required=True, help='YAML file or bundled name, e.g. synthetic (training/configs/probe/)')
    p.add_argument('--output', required=True, help='folder for probe.json and the figures')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override, e.g. quick=true')
    p.set_defaults(func=lazy('mask3d.training.probe.cli:run_probe_cli'), config_family='probe')

    p = sub.add_parser('data', help='dataset tools (needs mask3d[train])')
    data = p.add_subparsers(dest='data_command', required=True)
    q = data.add_parser('extract-sens', help='export a ScanNet .sens file to color/ depth/ pose/ intrinsic/')
    q.add_argument('sens')
    q.add_argument('--out', required=True)
    q.add_argument('--every', type=positive_int, default=1, help='keep every K-th frame')
    q = data.add_parser('synth', help='write built-in synthetic RGB-D scenes in the RGB-D folder layout')
    q.add_argument('--out', required=True)
    q.add_argument('--frames', type=positive_int, default=100)
    q.add_argument('--seed', type=non_negative_int, default=0)
    q.add_argument('--image-size', type=positive_int, nargs=2, default=[240, 320], metavar=('H', 'W'))
    q.add_argument('--views', type=positive_int, default=1, help='camera poses per room; > 1 also writes pose/*.txt')
    q = data.add_parser('inspect', help='what a dataset holds: format, frames, size, depth range, labels')
    q.add_argument('path', help="a dataset file or folder, or 'synthetic'")
    # the inspect names of training/data/registry.py, written out: this package imports no torch (tested)
    q.add_argument('--format', default='auto', choices=('auto', 'synthetic', 'folder', 'scannet', 'scannet-frames',
                                                         'scannet-sens', 'scannet-25k', 'nyuv2', 'nyu', 'nyu-mat',
                                                         'nyu-raw', 'sunrgbd', 'cityscapes', 'tum', '7scenes',
                                                         'shards'))
    q.add_argument('--depth-scale', type=positive_float, default=1000.0,
                   help='16-bit PNG units per metre (folder, nyu-raw)')
    q.add_argument('--class-mapping', default=None, help='nyu-mat: classMapping40.mat (default: next to the .mat)')
    q.add_argument('--max-frames', type=positive_int, default=50, help='frames read for the statistics (evenly spaced)')
    q.add_argument('--json', action='store_true')
    q.add_argument('--sheet', default=None, metavar='OUT.png', help='contact sheet of a few frames')
    q = data.add_parser('shard', help='write a dataset as WebDataset tar shards (data.source: shards)')
    q.add_argument('src', help="a dataset file or folder (any format inspect opens), or 'synthetic'")
    q.add_argument('--format', default='auto', choices=('auto', 'synthetic', 'folder', 'scannet', 'scannet-frames',
                                                         'scannet-sens', 'scannet-25k', 'nyuv2', 'nyu', 'nyu-mat',
                                                         'nyu-raw', 'sunrgbd', 'cityscapes', 'tum', '7scenes'))
    q.add_argument('--out', required=True, help='an empty folder for shard-NNNNNN.tar and shards.json')
    q.add_argument('--frames-per-shard', type=positive_int, default=1000)
    q.add_argument('--depth-scale', type=positive_float, default=1000.0,
                   help='16-bit PNG units per metre (folder, nyu-raw)')
    q.add_argument('--class-mapping', default=None, help='nyu-mat: classMapping40.mat (default: next to the .mat)')
    p.set_defaults(func=lazy('mask3d.training.data.cli:run_data'))
    return parser


# options naming a folder the command writes into
_OUTPUT_FOLDERS = (('output', '--output'), ('out', '--out'))


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    install_signal_handlers()  # SIGTERM ends a run like Ctrl-C: one line naming the checkpoint kept, exit 143
    try:
        for attr, option in _OUTPUT_FOLDERS:
            check_output_folder(option, getattr(args, attr, None))
        if getattr(args, 'config', None) and getattr(args, 'config_family', None):
            from mask3d_resources import resolve_config
            args.config = str(resolve_config(args.config, args.config_family))
        return args.func(args) or 0
    except (Exception, KeyboardInterrupt) as e:
        return report(e, debug_requested(args.debug), version(), argv=sys.argv[1:] if argv is None else argv)
