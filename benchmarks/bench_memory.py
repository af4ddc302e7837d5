"""Memory of training and sampling against image size: peak resident memory per image of one training step and of one
sampling step of the project's default network (``LightweightDiffusionUNet`` (32, 64, 128), class-conditional), with
and without gradient checkpointing, at 64/128/256 px; the largest training batch that fits in ``--budget-gib``.

Each measurement runs in a fresh process (the peak resident set size, ``ru_maxrss``, only grows): the network,
optimiser and a batch are built, the resident memory is read, one step runs (a warm-up step first), and the peak
minus that baseline is the step's working memory. Per-image memory is the slope over ``--batches``; the largest batch
in the budget is extrapolated from that line and then checked by running it (``--check``).

Usage::

    python benchmarks/bench_memory.py --output-dir /tmp/memory                 # about 10 min on 2 cores
    python benchmarks/bench_memory.py --sizes 64 --batches 2 4 --output-dir /tmp/memory_q   # pipeline check

CPU figures (this machine's float32, or bfloat16 where the CPU has it); on a GPU the same script measures
``torch.cuda.max_memory_allocated`` with ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from _common import machine_summary, markdown_table

GIB = 1024**3


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(mode: str, size: int, batch: int, checkpointing: bool, device: str) -> dict[str, float]:
    """One step in this process: ``{"baseline_gib", "peak_gib", "step_gib"}``."""
    import torch
    from monai.networks.schedulers import DDPMScheduler

    from medsyn_monai.networks.nets import LightweightDiffusionUNet
    from medsyn_monai.utils import resolve_cpu_bf16

    bf16 = device == "cpu" and resolve_cpu_bf16("auto")
    net = LightweightDiffusionUNet(num_class_embeds=2, gradient_checkpointing=checkpointing).to(device)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x0 = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    labels = torch.randint(0, 2, (batch,), device=device)

    def step() -> None:
        t = torch.randint(0, 1000, (batch,), device=device)
        noise = torch.randn_like(x0)
        dtype = torch.bfloat16 if bf16 else (torch.float16 if device != "cpu" else torch.float32)
        enabled = bf16 or device != "cpu"
        if mode == "train":
            net.train()
            with torch.autocast(torch.device(device).type, dtype=dtype, enabled=enabled):
                pred = net(scheduler.add_noise(x0, noise, t), t, class_labels=labels)
            loss = torch.nn.functional.mse_loss(pred.float(), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:  # one guided sampling evaluation: conditional and unconditional halves in one batch
            net.eval()
            with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=dtype, enabled=enabled):
                net(torch.cat([x0, x0]), torch.cat([t, t]), class_labels=torch.cat([labels, labels]))

    step()  # warm-up: optimiser state, allocator pools
    if device == "cpu":
        baseline = _rss_bytes()
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    else:
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        peak = torch.cuda.max_memory_allocated()
    return {"baseline_gib": baseline / GIB, "peak_gib": peak / GIB, "step_gib": (peak - baseline) / GIB}


def run(mode: str, size: int, batch: int, checkpointing: bool, device: str) -> dict[str, float]:
    """:func:`measure` in a fresh process."""
    cmd = [sys.executable, __file__, "--child", mode, str(size), str(batch), str(int(checkpointing)), device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, size, batch, ckpt, device = sys.argv[2:7]
        print(json.dumps(measure(mode, int(size), int(batch), bool(int(ckpt)), device)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/memory"))
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--batches", nargs="+", type=int, default=[2, 4, 8])
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--check", action="store_true", help="run the extrapolated largest batch at the last size")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        for mode, ckpt in (("train", False), ("train", True), ("sample", False)):
            points = [(b, run(mode, size, b, ckpt, args.device)) for b in args.batches]
            batches = np.array([b for b, _ in points], dtype=float)
            peaks = np.array([p["peak_gib"] for _, p in points])
            slope, intercept = np.polyfit(batches, peaks, 1)
            largest = int((args.budget_gib - intercept) // slope) if slope > 0 else None
            row = {"px": size, "step": f"{mode}{' + checkpointing' if ckpt else ''}",
                   "MiB per image": 1024 * slope, "fixed GiB": intercept,
                   "peak GiB at batch " + str(args.batches[-1]): peaks[-1],
                   f"largest batch in {args.budget_gib:g} GiB (extrapolated)": largest}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = list(rows[0])
    md = f"{machine_summary()}, device {args.device}\n\n" + markdown_table(rows, header, ".3g")
    if args.check:
        size = args.sizes[-1]
        row = next(r for r in rows if r["px"] == size and r["step"] == "train")
        batch = row[header[-1]]
        if batch:
            checked = run("train", size, int(batch), False, args.device)
            peak = checked["peak_gib"]
            md += f"\n\nCheck: a training step at {size} px, batch {batch}, peaked at {peak:.2f} GiB."
    (args.output_dir / "memory.md").write_text(md + "\n")
    (args.output_dir / "memory.json").write_text(json.dumps(rows, indent=1))
    print("\n" + md)


if __name__ == "__main__":
    main()
