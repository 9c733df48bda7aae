"""The main job end to end on built-in synthetic data: synth, prepare, train, evaluate, detect.

The default (--preset synthetic, `make demo`) is the main job in about 5 minutes on a 2-core CPU machine
(4 min 47 s-6 min measured): one model, the shipped MACB-DF + sync, on 480 synthetic clips of
1.5-2.5 s at 128 px, 200 steps.
--preset compare (`make demo-compare`, ~15 minutes) is the fair comparison: six models on 480 clips of
2-4 s at 160 px, 250 steps each, with paired intervals (benchmarks/RESULTS.md `## demo in five minutes`):

  1. synth      a synthetic audio-visual deepfake benchmark in the FakeAVCeleb layout
                (procedural talking heads and speech, RVRA/RVFA/FVRA/FVFA, identity-
                disjoint train/val/test)
  2. prepare    decode, face tracking, log-mel -> DIR/cache
  3. train      MACB-DF `small` with OM-Pareto and our synchrony extension (models/sync.py, not
                in the paper); with --preset compare also without the extension, the
                concatenation baseline with and without it, and the audio-only and video-only
                baselines (sync needs both modalities: n/a there), same data, seed and steps
                -> DIR/runs/
  4. evaluate   every model on the identity-disjoint test split (threshold tuned on val)
  5. detect     the trained detector on held-out test clips, straight from their MP4
  6. report     the full model's ACC/AUC (beside the baselines), per category, in the
                terminal and in DIR/report.json; ROC / training-curve / latent-space /
                timeline plots in DIR; the checkpoint in DIR/checkpoint

The report gives every test AUC with a 95% bootstrap interval over the test clips; with baselines
(--preset compare, or --models), the paired comparisons: the paper's components (full vs concat, both
with sync and both without) and the sync extension's own effect, and the goal (full-model test AUC
>= 0.95 and above every baseline). The test split is scored once per model per run; the threshold is
tuned on val. Every stage is resumable: run the same command again after an interruption and
finished stages are skipped.

With --preset real the job is the real-footage recipe instead (src/macbdf_train/real_recipe.py):
forge fakes from the real talking-face clips of a corpus (--real-root, a folder with a MANIFEST.csv
naming file, label, identity, has_audio), prepare, train `small` on the training identities,
evaluate on held-out identities' forged clips, calibrate the threshold on the validation
identities' real clips (--fpr), and score the corpus's real deepfakes (never trained on) against
the held-out real clips. OUT/report.json, OUT/checkpoint (+ model card). <= 15 min on 2 cores.

Examples:
  macbdf demo --out demo_out                    # the main job, one model (~5 min)
  macbdf demo --preset compare --out demo_compare    # six models, paired comparisons (~15 min)
  macbdf demo --preset real --real-root ../shared/realcorpus --out demo_real
  macbdf detect --checkpoint demo_out/checkpoint some_clip.mp4
  macbdf demo --out /tmp/smoke --quick          # a tiny end-to-end smoke run (~1 minute)
  macbdf demo --out demo_seeds --seeds 0,1,2    # three seeds, means with 95% intervals
  macbdf demo --preset compare --out cmp_seeds --seeds 0,1,2   # the comparison over three seeds
"""
from __future__ import annotations

import argparse
import json
import sys

from macbdf.commands.ablate import seeds_arg

# the demo's model names (kept here so that the module does not import torch)
MODEL_NAMES = ("macbdf", "macbdf_nosync", "audio_only", "video_only", "concat", "concat_nosync")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created; resumed when it holds an earlier demo)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (tiny model, few clips and steps)")
    parser.add_argument("--num-clips", type=int, help="synthetic clips to generate (default 480 from 120 identities; quick 16)")
    # the training settings: flags and help derived from TrainConfig's fields, the demo's defaults
    from macbdf_train.config import TrainConfig
    from macbdf_train.demo import DEMO_TRAIN, PRESETS, QUICK_TRAIN
    from macbdf_train.flags import add_flags

    names = ("steps", "batch_size", "model")
    add_flags(parser, TrainConfig, names, defaults=dict.fromkeys(names),
              default_text={k: f"{DEMO_TRAIN[k]}" + (f"; compare {PRESETS['compare'][k]}" if k in PRESETS["compare"]
                                                        else "") + f"; quick {QUICK_TRAIN[k]}" for k in names},
              extra_help={"steps": "per model", "model": "of the full model and the baselines"})
    add_flags(parser, TrainConfig, ("seed",), extra_help={"seed": "also the seed of the synthetic data"})
    parser.add_argument("--seeds", metavar="A,B,...", type=seeds_arg,
                        help="run the whole demo once per seed (data + training seed) in OUT/seed_<k> and report, "
                             "for every AUC, the mean with a 95%% t-interval over seeds and a pooled clip-bootstrap "
                             "interval; paired comparisons likewise (OUT/report.json). Overrides --seed")
    parser.add_argument("--workers", type=int, help="worker processes for synth and prepare (default 2)")
    parser.add_argument("--parallel", type=int,
                        help="models trained at the same time, one process each, CPUs split between them "
                             "(default min(2, CPUs); 1 = one after the other; quick 1)")
    parser.add_argument("--checkpoint", choices=("final", "best"), default="final",
                        help="weights to evaluate and ship: the end of training (default) or the best validation AUC")
    add_flags(parser, TrainConfig, ("device",), defaults={"device": DEMO_TRAIN["device"]},
              extra_help={"device": "for training and evaluation"})
    parser.add_argument("--models", metavar="A,B,...",
                        help="subset of " + ",".join(MODEL_NAMES) + " (default: macbdf; --preset compare: all six)")
    parser.add_argument("--json", action="store_true", help="print report.json instead of the text report")
    parser.add_argument("--preset", choices=("synthetic", "compare", "real"), default="synthetic",
                        help="synthetic (default): the main job on built-in synthetic data, one model, ~5 min on "
                             "2 cores; compare: six models (full and concat, each with and without the sync "
                             "extension, audio-only, video-only) on longer, larger synthetic clips with paired "
                             "comparisons, ~15 min; real: the real-footage recipe")
    parser.add_argument("--real-root", metavar="DIR", help="--preset real: corpus folder with MANIFEST.csv and the clips")
    parser.add_argument("--fpr", type=float, default=0.05,
                        help="--preset real: false-positive rate the threshold is calibrated to (default 0.05)")


def run_real(args: argparse.Namespace) -> int:
    from macbdf_train.demo import DemoError
    from macbdf_train.real_recipe import RealRecipeConfig, RecipeError, format_real_report, run_real_recipe

    if not args.real_root:
        print("error: --preset real needs --real-root DIR (a corpus folder with MANIFEST.csv)", file=sys.stderr)
        return 2
    bad = [f"--{k}" for k in ("num_clips", "parallel", "models") if getattr(args, k, None) is not None]
    if bad or args.quick:
        print(f"error: {', '.join(bad) or '--quick'} does not apply to --preset real", file=sys.stderr)
        return 2
    kw = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("model", args.model),
                             ("workers", args.workers)) if v is not None}
    for k in ("steps", "batch_size", "workers"):
        if k in kw and kw[k] < 1:
            print(f"error: --{k.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    cfg = RealRecipeConfig(real_root=args.real_root, out=args.out, seed=args.seed, device=args.device,
                           checkpoint=args.checkpoint, fpr=args.fpr, progress=not args.json, **kw)
    try:
        report = run_real_recipe(cfg)
    except (RecipeError, DemoError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_real_report(report))
    return 0


def run(args: argparse.Namespace) -> int:

    if args.preset == "real":
        return run_real(args)
    if args.real_root or args.fpr != 0.05:
        print(f"error: --real-root and --fpr apply to --preset real only (got --preset {args.preset})", file=sys.stderr)
        return 2
    from macbdf_train.demo import (MODELS, DemoConfig, DemoError, format_demo_report, format_seeds_report, run_demo,
                                   run_demo_seeds)

    kw = {k: v for k, v in (("num_clips", args.num_clips), ("steps", args.steps), ("batch_size", args.batch_size),
                             ("model", args.model), ("workers", args.workers), ("parallel", args.parallel))
          if v is not None}
    for k in ("num_clips", "steps", "batch_size", "workers", "parallel"):
        if k in kw and kw[k] < 1:
            print(f"error: --{k.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if args.models:
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        bad = [m for m in models if m not in MODELS]
        if bad or not models:
            print(f"error: --models takes names from {', '.join(MODELS)}; got {args.models!r}", file=sys.stderr)
            return 2
        kw["models"] = models
    kw.update(seed=args.seed, device=args.device, checkpoint=args.checkpoint, progress=not args.json)
    seeds = args.seeds
    try:
        cfg = (DemoConfig.quick_config(args.out, args.preset, **kw) if args.quick
               else DemoConfig.make(args.out, args.preset, **kw))
        report = run_demo_seeds(cfg, seeds) if seeds else run_demo(cfg)
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_seeds_report(report) if seeds else format_demo_report(report))
    return 0
