"""``mask3d data ...``: extract-sens, synth, inspect, shard."""
import json
import logging
from pathlib import Path

import numpy as np


def write_synthetic(out, frames: int, seed: int, image_size=(240, 320), progress: bool = True,
                    start: int = 0, views: int = 1, clean_depth: bool = True) -> Path:
    """Synthetic frames ``start .. frames-1`` in the RGB-D folder layout (depth: uint16 mm), plus semantic/instance
    PNGs and per-frame intrinsics; readable with ``data.source: folder``. Disjoint ranges can be written by
    parallel processes. ``views > 1``: each room from that many camera poses, named ``ROOM_VIEW`` (``000003_01``),
    with ``pose/NAME.txt`` (4x4 camera-to-world, ScanNet's convention) for correspondence probes. ``depth/`` has
    the simulated sensor noise and holes; ``depth_clean/NAME.npy`` (float32 metres) is the noise-free ray-cast
    depth, the probe's ground truth for surface normals (``clean_depth=False``: not written, e.g. for a
    pre-training pool)."""
    from PIL import Image

    from .synthetic import CLASS_NAMES, IGNORE_INDEX, check_synthetic_size, render_views

    check_synthetic_size(*image_size)  # before any folder is made
    out = Path(out)
    subs = ('rgb', 'depth', 'semantic', 'instance', 'intrinsics') + (('depth_clean',) if clean_depth else ())
    for sub in subs + (('pose',) if views > 1 else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    it = range(start, frames)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc='synth', unit='frame')
    for i in it:
        for v, f in enumerate(render_views(seed, i, views, *image_size, clean_depth=clean_depth)):
            name = f'{i:06d}_{v:02d}' if views > 1 else f'{i:06d}'
            if views > 1:
                np.savetxt(out / 'pose' / f'{name}.txt', f['pose'], fmt='%.6f')
            Image.fromarray(f['rgb'].transpose(1, 2, 0)).save(out / 'rgb' / f'{name}.png')
            Image.fromarray(np.round(f['depth'][0] * 1000).astype(np.uint16)).save(out / 'depth' / f'{name}.png')
            if clean_depth:
                np.save(out / 'depth_clean' / f'{name}.npy', f['depth_clean'][0])
            Image.fromarray(f['semantic'].astype(np.uint8)).save(out / 'semantic' / f'{name}.png')
            Image.fromarray(f['instance'].astype(np.uint16)).save(out / 'instance' / f'{name}.png')
            np.savetxt(out / 'intrinsics' / f'{name}.txt', f['intrinsics'], fmt='%.6f')
    (out / 'classes.json').write_text(json.dumps({'names': list(CLASS_NAMES), 'ignore_index': IGNORE_INDEX,
                                                  'depth_scale': 1000, 'seed': seed, 'views': views}, indent=1))
    return out


def run_data(args) -> int:
    if args.data_command == 'extract-sens':
        from .scannet_sens import extract_sens
        n = extract_sens(args.sens, args.out, every=args.every)
        print(f'wrote {n} frames to {args.out} (color/, depth/ uint16 mm, pose/, intrinsic/)')
        return 0
    if args.data_command == 'synth':
        views = getattr(args, 'views', 1)
        out = write_synthetic(args.out, args.frames, args.seed, tuple(args.image_size), views=views)
        print(f'wrote {args.frames} synthetic rooms x {views} view(s) to {out}; train on them with '
              f'--set data.source=folder '
              f'--set data.root={out} --set data.depth_scale=1000')
        return 0
    if args.data_command == 'shard':
        from .inspect import open_dataset
        from .shards import write_shards
        dataset, names, fmt = open_dataset(args.src, args.format, depth_scale=args.depth_scale,
                                           class_mapping_40=args.class_mapping)
        out = write_shards(dataset, args.out, args.frames_per_shard, source_format=fmt, class_names=names)
        shards = len(list(out.glob('*.tar')))
        print(f'wrote {len(dataset)} {fmt} frames into {shards} shards in {out}; train on them with '
              f'--set data.source=shards --set data.root={out}')
        return 0
    if args.data_command == 'inspect':
        from .inspect import contact_sheet, inspect, open_dataset
        dataset, names, fmt = open_dataset(args.path, args.format, depth_scale=args.depth_scale,
                                           class_mapping_40=args.class_mapping)
        report = inspect(dataset, names, fmt, max_frames=args.max_frames)
        for warning in report['warnings']:  # one line on stderr, in text and JSON mode alike
            logging.getLogger('mask3d.training.data.inspect').warning('%s: %s', args.path, warning)
        if args.sheet:
            report['sheet'] = str(contact_sheet(dataset, args.sheet))
        if args.json:
            print(json.dumps(report))
        else:
            print(f"{args.path}: {report['format']}, {report['frames']} frames, image {report['image_size']}")
            d = report['depth_m']
            if d:
                print(f"depth (m, {report['inspected_frames']} frames): min {d['min']:.3f}  median {d['median']:.3f}  "
                      f"max {d['max']:.3f}; valid {100 * report['depth_valid_fraction']:.1f} % of pixels")
            for name, count in report.get('labels', {}).items():
                print(f'  {name:20s} {count:>12,d} px')
            if args.sheet:
                print(f"contact sheet: {report['sheet']}")
            for problem in report['problems']:
                print(f'problem: {problem}')
        if report['problems']:  # after the report, so the statistics of the good frames are still shown
            from ...errors import DataError
            raise DataError(f"{len(report['problems'])} of {report['inspected_frames']} inspected frames have "
                                  f"problems, the first: {report['problems'][0]}")
        return 0
    raise SystemExit(f'unknown data command {args.data_command}')
