"""How long the `mask3d` command takes before doing anything, against `import mask3d` (torch + timm).

    python benchmarks/cli_startup.py --repeats 5 --json > benchmarks/results/cli_startup.json

Each sample is a fresh interpreter (median of --repeats): `mask3d --help`, `mask3d --version`, `mask3d configs`
through the console script's own module (mask3d_cli), and `import mask3d` for comparison.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

CASES = {
    'mask3d --help': 'import sys; from mask3d_cli import main\ntry: main(["--help"])\nexcept SystemExit: pass',
    'mask3d --version': 'import sys; from mask3d_cli import main\ntry: main(["--version"])\nexcept SystemExit: pass',
    'mask3d configs': 'from mask3d_cli import main; main(["configs"])',
    'import mask3d': 'import mask3d',
}


def median_seconds(code: str, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, '-c', code], check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args()
    result = {name: round(median_seconds(code, args.repeats), 3) for name, code in CASES.items()}
    result['repeats'] = args.repeats
    if not args.json:
        for name, seconds in result.items():
            print(f'{name:20s} {seconds}')
    print(json.dumps(result))


if __name__ == '__main__':
    main()
