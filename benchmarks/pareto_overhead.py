"""Training-step cost of OM-Pareto vs the plain summed loss (same model, same batch, one run).

A step is forward + backward (+ OM-Pareto's extra encoder gradients) + AdamW step. The modes are
run interleaved (alternating order every repeat) so machine load affects them alike; the figure is
the ratio of the medians, OM-Pareto as the trainer runs it by default over the plain summed loss.
The MMPareto reference needs four backward passes per step; the target here is a ratio <= 1.35.
The default counts the unimodal sample losses (Eq. 19) as g_u; also timed: the
`--pareto-unimodal sample+frame` variant (frame losses counted as unimodal too).

Both wall-clock and process CPU time are recorded per step; on a shared machine the CPU-time
ratio is the steadier of the two (the headline stays the wall-clock median ratio). ``--threads``
sets torch's intra-op threads (default 1, so that other load on the machine disturbs less).

Usage:
    python benchmarks/pareto_overhead.py [--model small] [--batch-size 8] [--repeats 15] [--threads 1]

Prints the results (``--write-results FILE`` also puts them into FILE's `## pareto_overhead` section); the
last line printed is
`pareto_overhead_ratio: X`.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from _results import add_results_flag, write_section
from macbdf.models.losses import MACBCriterion
from macbdf.models.registry import create_model
from macbdf.optim.pareto import UNIMODAL_KEYS_SAMPLE, OMPareto

SECTION = "pareto_overhead"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    add_results_flag(ap, f"## {SECTION}")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model).to(device).train()
    criterion = MACBCriterion(model.config).to(device).train()
    params = [p for p in [*model.parameters(), *criterion.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    batch = model.dummy_batch(batch_size=args.batch_size, device=device)
    balancer = OMPareto.from_model(model, criterion)
    # `--pareto-unimodal sample` variant: frame losses count as multimodal; one cheap autograd.grad call
    balancer_sample = OMPareto.from_model(model, criterion, unimodal_keys=UNIMODAL_KEYS_SAMPLE, per_group_grad=False)

    def step(mode: str) -> tuple[float, float]:
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        out = model(batch)
        losses = criterion(out, batch)
        if mode == "sum":
            criterion.total(losses).backward()
        elif mode == "ompareto":
            balancer.backward(losses)
        else:
            balancer_sample.backward(losses)
        opt.step()
        _sync(device)
        return time.perf_counter() - t0, time.process_time() - c0

    modes = ["sum", "ompareto", "ompareto_sample"]
    for _ in range(args.warmup):
        for m in modes:
            step(m)
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.repeats):
        order = modes if r % 2 == 0 else modes[::-1]
        for m in order:
            w, c = step(m)
            times[m].append(w)
            cpu[m].append(c)
    med = {m: statistics.median(v) for m, v in times.items()}
    cmed = {m: statistics.median(v) for m, v in cpu.items()}

    # Where the extra time goes: CPU time of each modality's unimodal-gradient call, same graph.
    parts: dict[str, list[float]] = {k: [] for k in ("forward", "backward_total", *balancer.groups)}
    for _ in range(max(3, args.repeats // 3)):
        opt.zero_grad(set_to_none=True)
        c0 = time.process_time()
        losses = criterion(model(batch), batch)
        parts["forward"].append(time.process_time() - c0)
        for name, plist in balancer.groups.items():
            u = balancer._unimodal_total(losses, [name])
            c0 = time.process_time()
            torch.autograd.grad(u, plist, retain_graph=True, allow_unused=True)
            _sync(device)
            parts[name].append(time.process_time() - c0)
        c0 = time.process_time()
        criterion.total(losses).backward()
        _sync(device)
        parts["backward_total"].append(time.process_time() - c0)
    pmed = {k: statistics.median(v) for k, v in parts.items()}
    breakdown = ", ".join(f"{k} {v:.4f}" for k, v in pmed.items())
    ratio = med["ompareto"] / med["sum"]
    ratio_cpu = cmed["ompareto"] / cmed["sum"]
    ratio_s, ratio_s_cpu = med["ompareto_sample"] / med["sum"], cmed["ompareto_sample"] / cmed["sum"]

    nparam = sum(p.numel() for p in model.parameters())
    nenc = sum(p.numel() for ps in model.modality_parameters().values() for p in ps)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"model {args.model}: {nparam / 1e6:.2f} M parameters ({nenc / 1e6:.2f} M in the encoders), "
          f"batch {args.batch_size}, T={model.config.num_frames}, {where}")
    print(f"{'mode':<16}{'wall median':>12}{'min':>9}{'max':>9}{'CPU median':>12}")
    for m in modes:
        print(f"{m:<16}{med[m]:>12.4f}{min(times[m]):>9.4f}{max(times[m]):>9.4f}{cmed[m]:>12.4f}")
    print(f"ratio ompareto/sum: wall {ratio:.3f}, CPU time {ratio_cpu:.3f} (target <= 1.35); "
          f"sample-only variant: wall {ratio_s:.3f}, CPU {ratio_s_cpu:.3f}")
    print(f"CPU s, medians: {breakdown} (the last ones: unimodal-gradient call per modality)")

    if args.write_results:
        body = (
            f"## {SECTION}\n\n"
            f"`python benchmarks/pareto_overhead.py --model {args.model} --batch-size {args.batch_size} "
            f"--repeats {args.repeats}` on {where}, torch {torch.__version__}; "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}.\n"
            f"Train step = forward + backward + AdamW step, same model ({nparam / 1e6:.2f} M params, "
            f"{nenc / 1e6:.2f} M in the encoders) and batch, interleaved, median of {args.repeats}.\n\n"
            f"| mode | wall median s/step | CPU median s/step |\n|---|---|---|\n"
            f"| plain summed loss | {med['sum']:.4f} | {cmed['sum']:.4f} |\n"
            f"| OM-Pareto, `--pareto-unimodal sample+frame`: g_u = unimodal sample + frame losses (one autograd.grad per modality) | "
            f"{med['ompareto']:.4f} | {cmed['ompareto']:.4f} |\n"
            f"| OM-Pareto, default (`sample`): g_u = unimodal sample losses (one autograd.grad) | "
            f"{med['ompareto_sample']:.4f} | {cmed['ompareto_sample']:.4f} |\n\n"
            f"pareto_overhead_ratio: **{ratio_s:.3f}** (default `sample`; wall; CPU-time ratio {ratio_s_cpu:.3f}; target <= 1.35); "
            f"`--pareto-unimodal sample+frame`: {ratio:.3f} (CPU {ratio_cpu:.3f}). "
            f"The MMPareto reference needs four backward passes per step.\n\n"
            f"Where the extra time goes (CPU s, medians): {breakdown}; the per-modality entries are OM-Pareto's "
            f"`autograd.grad` of that modality's unimodal objectives w.r.t. its encoder. MACB-DF's frame heads read "
            f"the fused multi-scale maps (Eq. 18), so `frame_video`'s gradient must go back through the video "
            f"multi-scale blocks to reach the video encoder; that pass is most of the overhead.\n"
        )
        write_section(args.write_results, f"## {SECTION}", body)
    print(f"pareto_overhead_ratio: {ratio_s:.3f}")


if __name__ == "__main__":
    main()
