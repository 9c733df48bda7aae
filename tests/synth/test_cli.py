"""`macbdf synth` end to end: JSON report, determinism of files, resume, refusing foreign folders."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from macbdf.cli import main

ARGS = ["--layout", "lavdf", "--num-clips", "4", "--seed", "9", "--duration-range", "1.0,1.2", "--size", "96",
        "--workers", "1", "--json"]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_json_resume_and_determinism(tmp_path: Path, capsys):
    out = tmp_path / "a"
    assert main(["synth", str(out), *ARGS]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["written"] == 4 and rep["resumed"] == 0 and rep["failed"] == []
    assert rep["counts"]["category"] == {"RVRA": 1, "RVFA": 1, "FVRA": 1, "FVFA": 1}
    first = _digest(out)

    # Same seed elsewhere: same metadata and labels (and, with one encoder thread, the same bytes).
    other = tmp_path / "b"
    assert main(["synth", str(other), *ARGS]) == 0
    capsys.readouterr()
    second = _digest(other)
    assert first["metadata.json"] == second["metadata.json"]
    assert first == second

    # Resume: a missing clip is rendered again, the rest kept.
    victim = next(out.rglob("*.mp4"))
    victim.unlink()
    (victim.parent / ".000002.1234.partial.mp4").write_bytes(b"junk from a killed run")
    assert main(["synth", str(out), *ARGS]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["written"] == 1 and rep["resumed"] == 3
    assert victim.is_file() and not list(out.rglob(".*.partial.mp4"))
    assert _digest(out)["metadata.json"] == first["metadata.json"]


def test_cli_refuses_foreign_or_different_folders(tmp_path: Path, capsys):
    foreign = tmp_path / "user"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["synth", str(foreign), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "refusing" in err and "Traceback" not in err
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]

    out = tmp_path / "s"
    assert main(["synth", str(out), *ARGS]) == 0
    capsys.readouterr()
    changed = [a if a != "9" else "10" for a in ARGS]
    assert main(["synth", str(out), *changed]) == 2
    assert "differs in: seed" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path: Path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--layout", "lavdf", "--num-clips", "4",
                 "--holdout-families", "deepfacelab"]) == 2
    assert "unknown manipulation family deepfacelab" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x"), "--layout", "nope", "--num-clips", "4"]) == 2
    assert main(["synth", str(tmp_path / "x"), "--layout", "lavdf", "--num-clips", "4",
                 "--duration-range", "a,b"]) == 2
    assert not (tmp_path / "x").exists()


def test_help_describes_the_command(capsys):
    assert main(["synth", "--help"]) == 0
    text = capsys.readouterr().out
    for word in ("fakeavceleb", "lavdf", "--holdout-families", "faceswap", "audioswap", "resumes"):
        assert word in text
