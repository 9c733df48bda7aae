"""`macbdf` command line: one subcommand per module in `macbdf.commands`.

Every subcommand module exposes `add_arguments(parser)` and `run(args) -> int`, and its
help text in the module docstring's first line. Modules are imported only when their
subcommand is used, so `macbdf --help` stays fast and a broken optional part cannot take
the others down.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("macbdf.commands.synth", "generate the synthetic audio-visual deepfake benchmark as MP4 files"),
    "forge": ("macbdf.commands.forge", "make labelled deepfakes from real talking-face clips (LAV-DF / FakeAVCeleb layout)"),
    "prepare": ("macbdf.commands.prepare", "decode videos, track faces, compute log-mel, write a sharded cache"),
    "audit": ("macbdf.commands.audit", "shortcut audit of a prepared cache: silence, codec, bitrate, face coverage vs label"),
    "train": ("macbdf.commands.train", "train a model on a prepared cache (single process or torchrun/DDP)"),
    "evaluate": ("macbdf.commands.evaluate", "evaluate a checkpoint with the paper's protocol (ACC/AUC/AP/EER, per category, localisation)"),
    "ablate": ("macbdf.commands.ablate", "run the paper's ablation grid and write one table"),
    "demo": ("macbdf.commands.demo", "the main job end to end on synthetic data: synth, prepare, train, evaluate, detect"),
    "detect": ("macbdf.commands.detect", "score videos: is it fake, where, and in which modality"),
    "calibrate": ("macbdf.commands.calibrate", "set a checkpoint's threshold from your own real clips at a chosen false-positive rate"),
    "serve": ("macbdf.commands.serve", "web service and browser page for detection"),
    "models": ("macbdf.commands.models", "list the named model configs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="macbdf",
        description="MACB-DF audio-visual deepfake detection toolkit. "
        "Run `macbdf COMMAND --help` for the options of each command.",
    )
    from macbdf import __version__

    parser.add_argument("--version", action="version", version=f"macbdf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 some inputs failed, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] == "--version":
        try:
            top.parse_args(argv or ["--help"])
        except SystemExit as e:
            return int(e.code or 0)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        try:
            top.parse_args(argv)
        except SystemExit as e:
            return int(e.code or 2)
        return 2
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"macbdf {name}",
        description=(module.__doc__ or help_text).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else 2
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
