"""List the named model configs (name, parameters, what it is for)."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    from macbdf.models.registry import get_model_config, list_models

    rows = []
    for name in list_models():
        cfg = get_model_config(name)
        rows.append({"name": name, "description": getattr(cfg, "description", ""), "config": cfg.to_dict()})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:<12} {r['description']}")
    return 0
