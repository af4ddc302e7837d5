"""Where the time of one training step goes: ``torch.profiler`` over a few bare training steps of the project's
default network (``LightweightDiffusionUNet`` (32, 64, 128), class-conditional), self CPU time grouped by kind of
operation (convolutions, activation, normalisation, autocast casts, element-wise, optimiser), and the convolutions'
own GFLOP/s (FLOPs counted by ``torch.utils.flop_counter``).

Usage::

    python benchmarks/profile_step.py --image-size 64 --batch-size 32            # under a minute, run it alone
    python benchmarks/profile_step.py --image-size 64 --fp32

Compare the convolutions' GFLOP/s with the convolution peak that ``bench_throughput.py`` measures.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from _common import machine_summary, markdown_table
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from medsyn_monai.networks.nets import LightweightDiffusionUNet

GROUPS = [  # (kind, substrings of the aten operator names), first match wins
    ("convolutions (forward + backward)", ("convolution",)),
    ("SiLU (forward + backward)", ("silu",)),
    ("GroupNorm (forward + backward)", ("group_norm",)),
    ("dtype casts and copies (autocast)", ("_to_copy", "copy_")),
    ("optimiser", ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("element-wise, concatenation, upsampling, sums", ("add", "mul", "cat", "upsample", "sum", "fill_", "zero_")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--fp32", action="store_true", help="float32 (default: CPU bfloat16 autocast)")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = LightweightDiffusionUNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(32, 64, 128),
                                   num_class_embeds=3)  # fmt: skip
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    size, batch = args.image_size, args.batch_size
    x, t = torch.randn(batch, 1, size, size), torch.randint(0, 1000, (batch,))
    labels = torch.randint(0, 2, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        autocast = contextlib.nullcontext() if args.fp32 else torch.autocast("cpu", dtype=torch.bfloat16)
        with autocast:
            out = net(x, t, class_labels=labels)
        torch.nn.functional.mse_loss(out.float(), x).backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    conv_flops = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k))
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = {}
    for event in events:
        name = event.key.lower()
        kind = next((k for k, keys in GROUPS if any(s in name for s in keys)), "other")
        shares[kind] = shares.get(kind, 0.0) + event.self_cpu_time_total
    conv_seconds = shares.get(GROUPS[0][0], 0.0) / 1e6
    rows = [{"operations": k, "share of step time %": 100 * v / total} for k, v in sorted(shares.items(),
            key=lambda kv: -kv[1])]  # fmt: skip
    precision = "fp32" if args.fp32 else "bf16"
    print(f"{machine_summary()}; {precision}, {size} px, batch {batch}, {args.steps} steps profiled\n")
    print(markdown_table(rows, ["operations", "share of step time %"], ".1f"))
    print(f"\nstep: {total / 1e6 / args.steps:.3f} s ({batch * args.steps / (total / 1e6):.1f} images/s under the "
          f"profiler); convolutions: {args.steps * conv_flops / conv_seconds / 1e9:.0f} GFLOP/s")  # fmt: skip


if __name__ == "__main__":
    main()
