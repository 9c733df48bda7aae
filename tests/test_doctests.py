"""Every docstring example of src (macbdf and macbdf_train) runs and gives what it shows.

The modules are found by their text (a ``>>>`` anywhere), so a new example is tested without being listed
here. Examples that write files use ``tempfile``; they run inside the test's own temporary folder.
"""
from __future__ import annotations

import doctest
import importlib
import tempfile
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules_with_examples() -> list[str]:
    out = []
    for pkg in ("macbdf", "macbdf_train"):
        for p in sorted((SRC / pkg).rglob("*.py")):
            if ">>>" in p.read_text(encoding="utf-8"):
                parts = p.relative_to(SRC).with_suffix("").parts
                out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


MODULES = _modules_with_examples()


def test_the_examples_are_found() -> None:
    assert {"macbdf.models.losses", "macbdf.optim.pareto", "macbdf_train.flags", "macbdf.filemode"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see the output)"
