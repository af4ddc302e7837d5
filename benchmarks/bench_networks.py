"""Training throughput of LightweightDiffusionUNet vs MONAI's DiffusionModelUNet, side by side in one run.

Each network does full diffusion training steps (noise, forward, L2 loss, backward, AdamW step) on random
images of the given size, in float32 and under CPU bfloat16 autocast; the table gives parameters, forward GFLOPs per
image (counted with ``torch.utils.flop_counter``), images per second (median of repeats) and the speed ratio to
MONAI's reference network in the same precision.

Usage::

    python benchmarks/bench_networks.py                      # 32 px, batch 32
    python benchmarks/bench_networks.py --image-size 64 --batch-size 32 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler
from torch.utils.flop_counter import FlopCounterMode

from medsyn_monai.networks.nets import LightweightDiffusionUNet


def networks(num_classes: int | None) -> dict[str, torch.nn.Module]:
    """The compared networks (grey 2D images; ``num_classes`` class embeddings, ``None``: unconditional)."""
    monai = dict(spatial_dims=2, in_channels=1, out_channels=1, num_res_blocks=1, num_class_embeds=num_classes)
    return {
        "MONAI DiffusionModelUNet (32,64,64), attn (F,T,T), 1 res block [reference]": DiffusionModelUNet(
            **monai, channels=(32, 64, 64), attention_levels=(False, True, True), num_head_channels=64
        ),
        "MONAI DiffusionModelUNet (32,64,128), mid-block attention only, 1 res block": DiffusionModelUNet(
            **monai, channels=(32, 64, 128), attention_levels=(False, False, False)
        ),
        "LightweightDiffusionUNet (32,64,128), 2 convs/level, injection all": LightweightDiffusionUNet(
            channels=(32, 64, 128), num_class_embeds=num_classes
        ),
    }


def forward_gflops(net: torch.nn.Module, size: int) -> float:
    x, t = torch.randn(1, 1, size, size), torch.tensor([10])
    kwargs = {"class_labels": torch.tensor([0])} if getattr(net, "num_class_embeds", None) else {}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, timesteps=t, **kwargs)
    return counter.get_total_flops() / 1e9


def train_speed(net: torch.nn.Module, size: int, batch: int, steps: int, repeats: int, bf16: bool) -> float:
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x0 = torch.rand(batch, 1, size, size) * 2 - 1
    labels = torch.randint(0, 2, (batch,)) if getattr(net, "num_class_embeds", None) else None

    def step() -> None:
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,))
        xt = scheduler.add_noise(x0, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = net(xt, timesteps=t, class_labels=labels) if labels is not None else net(xt, timesteps=t)
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="training steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=2, help="class embeddings (0: unconditional)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = networks(args.num_classes or None)
    print(
        f"# {args.image_size} px, batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats, "
        f"{args.threads} threads, torch {torch.__version__}\n"
    )
    print("| network | params | fwd GFLOP/img | fp32 img/s | bf16 img/s | fp32 vs ref | bf16 vs ref |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ref: dict[bool, float] = {}
    for name, net in nets.items():
        params = sum(p.numel() for p in net.parameters())
        gflops = forward_gflops(net, args.image_size)
        rates = {}
        for bf16 in (False, True):
            rates[bf16] = train_speed(net, args.image_size, args.batch_size, args.steps, args.repeats, bf16)
            ref.setdefault(bf16, rates[bf16])
        print(
            f"| {name} | {params / 1e6:.2f} M | {gflops:.3f} | {rates[False]:.1f} | {rates[True]:.1f} | "
            f"{rates[False] / ref[False]:.2f}x | {rates[True] / ref[True]:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
