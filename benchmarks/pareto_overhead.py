"""Training-step cost of OM-Pareto vs the plain summed loss (same model, same batch, one run).

A step is forward + backward (+ OM-Pareto's extra encoder gradients) + AdamW step. The two modes
are run interleaved (alternating order every repeat) so machine load affects both alike; the
figure is the ratio of the medians. The MMPareto reference needs four backward passes per step;
the target here is a ratio <= 1.35.

Also timed, for information: OM-Pareto with one ``autograd.grad`` call for both encoders (exact
only when the unimodal objectives touch disjoint encoders, which MACB-DF's fused frame heads do not).

Usage:
    python benchmarks/pareto_overhead.py [--model small] [--batch-size 8] [--repeats 9] [--device auto]

Writes the `## pareto_overhead` section of benchmarks/RESULTS.md; the last line printed is
`pareto_overhead_ratio: X`.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch

from macbdf.models.losses import MACBCriterion
from macbdf.models.registry import create_model
from macbdf.optim.pareto import OMPareto

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "pareto_overhead"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))

    torch.manual_seed(0)
    model = create_model(args.model).to(device).train()
    criterion = MACBCriterion(model.config).to(device).train()
    params = [p for p in [*model.parameters(), *criterion.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    batch = model.dummy_batch(batch_size=args.batch_size, device=device)
    balancers = {
        "ompareto": OMPareto.from_model(model, criterion),
        "ompareto_1call": OMPareto.from_model(model, criterion, per_group_grad=False),
    }

    def step(mode: str) -> float:
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(batch)
        losses = criterion(out, batch)
        if mode == "sum":
            criterion.total(losses).backward()
        else:
            balancers[mode].backward(losses)
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    modes = ["sum", "ompareto", "ompareto_1call"]
    for _ in range(args.warmup):
        for m in modes:
            step(m)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.repeats):
        order = modes if r % 2 == 0 else modes[::-1]
        for m in order:
            times[m].append(step(m))
    med = {m: statistics.median(v) for m, v in times.items()}
    ratio = med["ompareto"] / med["sum"]
    ratio_1 = med["ompareto_1call"] / med["sum"]

    nparam = sum(p.numel() for p in model.parameters())
    nenc = sum(p.numel() for ps in model.modality_parameters().values() for p in ps)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    print(f"model {args.model}: {nparam / 1e6:.2f} M parameters ({nenc / 1e6:.2f} M in the encoders), "
          f"batch {args.batch_size}, T={model.config.num_frames}, {where}")
    print(f"{'mode':<16}{'median s/step':>14}{'min':>10}{'max':>10}")
    for m in modes:
        print(f"{m:<16}{med[m]:>14.4f}{min(times[m]):>10.4f}{max(times[m]):>10.4f}")
    print(f"ratio ompareto/sum (per-modality grads, exact): {ratio:.3f}   one-call variant: {ratio_1:.3f}   target <= 1.35")

    if not args.no_write:
        body = (
            f"## {SECTION}\n\n"
            f"`python benchmarks/pareto_overhead.py --model {args.model} --batch-size {args.batch_size} "
            f"--repeats {args.repeats}` on {where}, torch {torch.__version__}; "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}.\n"
            f"Train step = forward + backward + AdamW step, same model ({nparam / 1e6:.2f} M params, "
            f"{nenc / 1e6:.2f} M in the encoders) and batch, interleaved, median of {args.repeats}.\n\n"
            f"| mode | median s/step |\n|---|---|\n"
            f"| plain summed loss | {med['sum']:.4f} |\n"
            f"| OM-Pareto (one autograd.grad per modality; exact, used by the trainer) | {med['ompareto']:.4f} |\n"
            f"| OM-Pareto, one autograd.grad for both encoders (exact only for disjoint unimodal objectives) | "
            f"{med['ompareto_1call']:.4f} |\n\n"
            f"pareto_overhead_ratio: **{ratio:.3f}** (target <= 1.35; one-call variant {ratio_1:.3f}). "
            f"The MMPareto reference needs four backward passes per step.\n"
        )
        _write_section(body)
    print(f"pareto_overhead_ratio: {ratio:.3f}")


def _write_section(body: str) -> None:
    """Replace (or append) this benchmark's own section of RESULTS.md, atomically."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pat = re.compile(rf"^## {re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pat.search(text):
        text = pat.sub(lambda _: body + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, prefix=".RESULTS.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, RESULTS)


if __name__ == "__main__":
    main()
