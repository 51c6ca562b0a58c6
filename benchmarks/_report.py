"""How every benchmark prints its result: one JSON line with ``--json``, else an aligned ``key value`` table."""
import json
from typing import Any, Dict


def print_result(result: Dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result), default=0)
    for k, v in result.items():
        print(f'{k:{width}s} {v:.3f}' if isinstance(v, float) else f'{k:{width}s} {v}')
