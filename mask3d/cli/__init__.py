"""The ``mask3d`` command. Subcommands import their (possibly heavy) dependencies lazily."""
import argparse
import sys
from typing import List, Optional

from ..errors import Mask3DError


def _cmd_models(args) -> int:
    import timm

    from .. import list_models
    from ..weights import PUBLISHED_TAGS
    print(f"{'model':28s}  weights (tag: status, hub repo)")
    for arch in list_models(args.filter):
        cfgs = timm.models.get_arch_pretrained_cfgs(arch)
        tags = ', '.join(f"{n.split('.', 1)[1]}: {'published' if n in PUBLISHED_TAGS else 'not yet published'}"
                         f" ({c.hf_hub_id})" for n, c in cfgs.items()) or '-'
        print(f"{arch:28s}  {tags}")
    return 0


def _cmd_push(args) -> int:
    from ..publish import push
    return push(args.folder, args.repo_id, manifest=args.manifest, dry_run=args.dry_run, private=args.private)


def _cmd_pretrain(args) -> int:
    from ..training.cli import run_pretrain
    return run_pretrain(args)


def _cmd_export(args) -> int:
    from ..training.cli import run_export
    return run_export(args)


def _cmd_finetune(args) -> int:
    from ..training.finetune.cli import run_finetune
    return run_finetune(args)


def _cmd_evaluate(args) -> int:
    from ..training.finetune.cli import run_evaluate
    return run_evaluate(args)


def _cmd_data(args) -> int:
    from ..training.data.cli import run_data
    return run_data(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='mask3d', description='Mask3D RGB-D pre-trained ViT backbones.')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('models', help='list Mask3D backbones and their weights')
    p.add_argument('filter', nargs='?', default='', help="wildcard filter, e.g. '*base*'")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser('push', help='upload an exported folder to the Hugging Face Hub')
    p.add_argument('folder')
    p.add_argument('--repo-id', required=True, help='ORG/NAME; must have an entry in the manifest')
    p.add_argument('--manifest', default='hub/manifest.yaml')
    p.add_argument('--dry-run', action='store_true', help='verify and list what would be uploaded')
    p.add_argument('--private', action='store_true')
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser('pretrain', help='Mask3D masked RGB-D pre-training (needs mask3d[train])')
    p.add_argument('--config', required=True, help='YAML file, e.g. training/configs/pretrain/synthetic_tiny.yaml')
    p.add_argument('--output', required=True, help='run directory (checkpoints, metrics.jsonl, figures, export)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override, e.g. optim.lr=1e-4')
    p.add_argument('--resume', action='store_true', help='continue from RUN_DIR/checkpoints/last.pt')
    p.add_argument('--overwrite', action='store_true', help='delete an earlier run in RUN_DIR first')
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser('export', help='write a pre-training run\'s encoder as a Hub folder')
    p.add_argument('run_dir')
    p.add_argument('--out', required=True)
    p.add_argument('--checkpoint', default=None, help='checkpoint file (default RUN_DIR/checkpoints/last.pt)')
    p.set_defaults(func=_cmd_export)

    tasks = ('semseg', 'depth', 'instance')
    p = sub.add_parser('finetune', help='fine-tune a backbone for semseg, depth or instance (needs mask3d[train])')
    p.add_argument('--task', required=True, choices=tasks)
    p.add_argument('--config', required=True, help='YAML file, e.g. training/configs/finetune/synthetic_semseg.yaml')
    p.add_argument('--output', required=True, help='run directory (checkpoints, metrics.jsonl, eval/)')
    p.add_argument('--backbone', default=None, metavar='NAME_OR_PATH',
                   help='create_model name, hf-hub:ORG/NAME, local-dir:DIR, an exported folder or a pretrain run dir')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override, e.g. optim.lr=1e-4')
    p.add_argument('--resume', action='store_true', help='continue from RUN_DIR/checkpoints/last.pt')
    p.add_argument('--overwrite', action='store_true', help='delete an earlier run in RUN_DIR first')
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser('evaluate', help='score a fine-tuned run: metrics JSON and a PNG of predictions')
    p.add_argument('checkpoint', metavar='RUN_DIR_OR_CHECKPOINT')
    p.add_argument('--task', default=None, choices=tasks, help='must match the checkpoint')
    p.add_argument('--config', default=None, help='data/eval sections to use (default: the run\'s own config)')
    p.add_argument('--split', default='val', choices=('val', 'train'))
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
    p.add_argument('--output', default=None, help='folder for the metrics and figure (default RUN_DIR/eval)')
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser('data', help='dataset tools (needs mask3d[train])')
    data = p.add_subparsers(dest='data_command', required=True)
    q = data.add_parser('extract-sens', help='export a ScanNet .sens file to color/ depth/ pose/ intrinsic/')
    q.add_argument('sens')
    q.add_argument('--out', required=True)
    q.add_argument('--every', type=int, default=1, help='keep every K-th frame')
    q = data.add_parser('synth', help='write built-in synthetic RGB-D scenes in the RGB-D folder layout')
    q.add_argument('--out', required=True)
    q.add_argument('--frames', type=int, default=100)
    q.add_argument('--seed', type=int, default=0)
    q.add_argument('--image-size', type=int, nargs=2, default=[240, 320], metavar=('H', 'W'))
    q = data.add_parser('inspect', help='what a dataset holds: format, frames, size, depth range, labels')
    q.add_argument('path', help="a dataset file or folder, or 'synthetic'")
    q.add_argument('--format', default='auto', choices=('auto', 'scannet-sens', 'scannet-frames', 'scannet-25k',
                                                         'nyu-mat', 'nyu-raw', 'sunrgbd', 'cityscapes', 'folder',
                                                         'synthetic', 'shards'))
    q.add_argument('--depth-scale', type=float, default=1000.0, help='16-bit PNG units per metre (folder, nyu-raw)')
    q.add_argument('--class-mapping', default=None, help='nyu-mat: classMapping40.mat (default: next to the .mat)')
    q.add_argument('--max-frames', type=int, default=50, help='frames read for the statistics (evenly spaced)')
    q.add_argument('--json', action='store_true')
    q.add_argument('--sheet', default=None, metavar='OUT.png', help='contact sheet of a few frames')
    q = data.add_parser('shard', help='write a dataset as WebDataset tar shards (data.source: shards)')
    q.add_argument('src', help="a dataset file or folder (any format inspect opens), or 'synthetic'")
    q.add_argument('--format', default='auto', choices=('auto', 'scannet-sens', 'scannet-frames', 'scannet-25k',
                                                         'nyu-mat', 'nyu-raw', 'sunrgbd', 'cityscapes', 'folder',
                                                         'synthetic'))
    q.add_argument('--out', required=True, help='an empty folder for shard-NNNNNN.tar and shards.json')
    q.add_argument('--frames-per-shard', type=int, default=1000)
    q.add_argument('--depth-scale', type=float, default=1000.0, help='16-bit PNG units per metre (folder, nyu-raw)')
    q.add_argument('--class-mapping', default=None, help='nyu-mat: classMapping40.mat (default: next to the .mat)')
    p.set_defaults(func=_cmd_data)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except Mask3DError as e:
        print(f"mask3d {args.command}: error: {e}", file=sys.stderr)
        return 2
