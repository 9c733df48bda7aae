"""The import graph of `src`: every arrow points from a higher layer to a lower one.

Found by parsing every module (module-level and lazy, function-level imports alike), so a lazy import
cannot hide a loop. The package facade (`macbdf/__init__.py`: `__version__`, `create_model`) may be
imported from anywhere. Also: no module over ~500 lines without a reason at its top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# rank of each unit: an import must go to a strictly lower rank (same unit: free)
RANKS = {
    "macbdf.config": 0, "macbdf.filemode": 0, "macbdf.parallel": 0,
    "macbdf.media": 1, "macbdf.models": 1, "macbdf.metrics": 1,
    "macbdf.data": 2, "macbdf.optim": 2, "macbdf.synth": 2,
    "macbdf.forge": 3, "macbdf.inference": 3, "macbdf.modelcard": 3, "macbdf.calibration": 3,
    "macbdf.checkpoint": 4,
    "macbdf.detect": 5,
    "macbdf.serve": 6, "macbdf_train": 6,      # the server and the training engine use the library
    "macbdf.commands": 7, "macbdf.cli": 7,     # the command line drives all of them
    "macbdf.__main__": 8,
}
FACADE = "macbdf"
LONG = 500


def _unit(mod: str) -> str | None:
    parts = mod.split(".")
    if parts[0] == "macbdf_train":
        return "macbdf_train"
    if parts[0] != "macbdf":
        return None
    return FACADE if len(parts) == 1 else f"macbdf.{parts[1]}"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(SRC.rglob("*.py")):
        mod = ".".join(p.relative_to(SRC).with_suffix("").parts)
        out.append((mod.removesuffix(".__init__"), p))
    return out


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def test_every_unit_has_a_rank():
    units = {_unit(m) for m, _ in _modules()} - {FACADE}
    assert units <= set(RANKS), sorted(units - set(RANKS))


def test_no_import_points_up_or_sideways():
    bad = []
    for mod, path in _modules():
        src = _unit(mod)
        if src == FACADE:
            continue
        for name, line in _imports(path):
            dst = _unit(name)
            if dst is None or dst == src or dst == FACADE:
                continue
            if RANKS[dst] >= RANKS[src]:
                bad.append(f"{path.relative_to(SRC)}:{line} {src} -> {dst}")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


@pytest.mark.parametrize("mod,path", [(m, p) for m, p in _modules()
                                      if len(p.read_text(encoding="utf-8").splitlines()) > LONG])
def test_long_modules_say_why(mod, path):
    head = "\n".join(path.read_text(encoding="utf-8").splitlines()[:12])
    assert "Why one file" in head, f"{path.relative_to(SRC)} is over {LONG} lines without a reason at its top"
