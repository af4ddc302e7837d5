"""Training throughput against the machine's limit, side by side in one run: the plain MONAI tutorial loop, the same
network through the project's ``DiffusionTrainer``, and the project defaults, with the machine's measured matmul and
convolution peaks and FLOPs counted by ``torch.utils.flop_counter``.

1. **Peaks** of this machine (all threads): dense matmul (fp32, bf16) at 512-2048, and 3x3 convolutions of diffusion
   U-Net shapes (fp32, bf16; NCHW and channels-last). GFLOP/s = 2 x multiply-adds / wall time; the best shape counts.
2. **Bare training steps** (noise, forward, L2 loss, backward, optimiser step; random images; no data loading): the
   MONAI 2D DDPM tutorial network (``DiffusionModelUNet`` (128, 256, 256), attention (F, T, T), 1 residual block,
   256 head channels, Adam) and the project's ``LightweightDiffusionUNet`` (32, 64, 128) in each precision. FLOPs per
   image are counted over forward **and** backward (not 3 x forward); achieved GFLOP/s and % of the peak of the same
   precision follow.
3. **Whole loops** for ``--loop-seconds`` each on the ``ct_lightweight`` demo data: the tutorial's loop
   (``DataLoader`` + MONAI ``DiffusionInferer`` + Adam, fp32, eager); the same tutorial network through the bundle's
   ``train.json`` (``DiffusionTrainer`` with its data pipeline, EMA, gradient clipping, logging, checkpoints); and the
   bundle's ``train.json`` unchanged (lightweight network, bf16). Images/s after ``--warmup`` iterations; the
   trainer's overhead is its images/s against the bare step of the same network and precision.

Usage::

    python benchmarks/bench_throughput.py --output-dir /tmp/throughput                 # about 15 min on 2 cores
    python benchmarks/bench_throughput.py --output-dir /tmp/throughput --sizes 32 --loop-seconds 20 --quick

Run it alone: a second PyTorch process on the same cores slows both several-fold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import REPO, machine_summary, markdown_table
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler
from torch.utils.flop_counter import FlopCounterMode

from medsyn_monai.networks.nets import LightweightDiffusionUNet

TUTORIAL = {"channels": (128, 256, 256), "attention_levels": (False, True, True), "num_res_blocks": 1,
            "num_head_channels": 256}  # fmt: skip
LIGHTWEIGHT = {"channels": (32, 64, 128), "convs_per_level": 2, "time_injection": "all"}


def _timed(fn: Callable[[], Any], min_seconds: float) -> float:
    """Seconds per call of ``fn`` (after one warm-up call), timed over at least ``min_seconds``."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def matmul_peak(dtype: torch.dtype, min_seconds: float) -> tuple[float, str]:
    """Best GFLOP/s of a dense square matmul over sizes 512-2048."""
    best = (0.0, "")
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        seconds = _timed(lambda a=a, b=b: torch.mm(a, b), min_seconds)
        best = max(best, (2 * n**3 / seconds / 1e9, f"{n}x{n}"))
    return best


def conv_peak(dtype: torch.dtype, channels_last: bool, min_seconds: float) -> tuple[float, str]:
    """Best GFLOP/s of a 3x3 convolution over U-Net shapes (batch 32)."""
    best = (0.0, "")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for c, size in ((32, 64), (64, 32), (128, 16), (256, 16)):
        conv = torch.nn.Conv2d(c, c, 3, padding=1).to(dtype).to(memory_format=fmt)
        x = torch.randn(32, c, size, size).to(dtype).contiguous(memory_format=fmt)
        with torch.no_grad():
            seconds = _timed(lambda conv=conv, x=x: conv(x), min_seconds)
        flops = 2 * 32 * c * c * 9 * size * size
        best = max(best, (flops / seconds / 1e9, f"{c}ch {size}px"))
    return best


def build(kind: str, num_classes: int | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "tutorial":
        return DiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1, num_class_embeds=num_classes,
                                  **TUTORIAL)  # fmt: skip
    return LightweightDiffusionUNet(num_class_embeds=num_classes, **LIGHTWEIGHT)


class BareStep:
    """One diffusion training step of ``net`` on a fixed random batch (no data loading)."""

    def __init__(self, net: torch.nn.Module, size: int, batch: int, bf16: bool, channels_last: bool, compiled: bool):
        self.scheduler = DDPMScheduler(num_train_timesteps=1000)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(memory_format=fmt)
        self.model = torch.compile(self.net) if compiled else self.net
        self.opt = torch.optim.Adam(self.net.parameters(), lr=2.5e-5)
        self.x0 = (torch.rand(batch, 1, size, size) * 2 - 1).contiguous(memory_format=fmt)
        self.bf16, self.batch = bf16, batch

    def __call__(self, x0: torch.Tensor | None = None) -> None:
        x0 = self.x0 if x0 is None else x0
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (x0.shape[0],))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model(self.scheduler.add_noise(x0, noise, t), timesteps=t)
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def step_gflops(kind: str, size: int, bf16: bool) -> tuple[float, float]:
    """Counted GFLOP per image: forward only, and forward + backward of one training step (batch 2)."""
    net = build(kind)
    step = BareStep(net, size, 2, bf16, False, False)
    x = step.x0
    t = torch.tensor([10, 500])
    with FlopCounterMode(display=False) as fwd, torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        net(x, timesteps=t)
    with FlopCounterMode(display=False) as full:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = net(x, timesteps=t)
        torch.nn.functional.mse_loss(pred.float(), x).backward()
    return fwd.get_total_flops() / 2e9, full.get_total_flops() / 2e9


def bare_rate(kind: str, size: int, batch: int, bf16: bool, channels_last: bool, compiled: bool, seconds: float,
              repeats: int) -> float:  # fmt: skip
    step = BareStep(build(kind), size, batch, bf16, channels_last, compiled)
    for _ in range(3 if compiled else 1):
        step()
    rates = [batch / _timed(step, seconds / repeats) for _ in range(repeats)]
    return statistics.median(rates)


def demo_images(size: int, data_dir: Path) -> torch.Tensor:
    """The ``ct_lightweight`` demo slices at ``size`` px in [-1, 1], read by the bundle's own pipeline."""
    from monai.bundle import ConfigParser
    from monai.data import MetaTensor

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "ct_lightweight" / "configs" / "train.json"))
    parser.update({"dataset_dir": str(data_dir), "demo_dir": str(data_dir), "image_size": size,
                   "output_dir": str(data_dir.parent / "probe"), "augment": False})  # fmt: skip
    dataset = parser.get_parsed_content("train#dataset")
    images = [dataset[i]["image"] for i in range(len(dataset))]
    return torch.stack([x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x) for x in images])


def tutorial_training(images: torch.Tensor, batch: int) -> tuple[torch.nn.Module, Any, Callable[[torch.Tensor], float]]:
    """The MONAI 2D DDPM tutorial's training parts (its structure, fp32 eager on the CPU): the network, the
    ``DataLoader`` of ``images`` and one training step (``DiffusionInferer`` + Adam) returning the loss."""
    from monai.data import CacheDataset, DataLoader
    from monai.inferers import DiffusionInferer

    model = build("tutorial")
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.Adam(params=model.parameters(), lr=2.5e-5)
    inferer = DiffusionInferer(scheduler)
    loader = DataLoader(CacheDataset([{"image": im} for im in images], progress=False), batch_size=batch,
                        shuffle=True, num_workers=0)  # fmt: skip

    def step(im: torch.Tensor) -> float:
        optimizer.zero_grad(set_to_none=True)
        noise = torch.randn_like(im)
        timesteps = torch.randint(0, inferer.scheduler.num_train_timesteps, (im.shape[0],)).long()
        noise_pred = inferer(inputs=im, diffusion_model=model, noise=noise, timesteps=timesteps)
        loss = torch.nn.functional.mse_loss(noise_pred.float(), noise.float())
        loss.backward()
        optimizer.step()
        return float(loss)

    model.train()
    return model, loader, step


def tutorial_loop_rate(size: int, batch: int, images: torch.Tensor, seconds: float, warmup: int) -> float:
    """The MONAI 2D DDPM tutorial's training loop (:func:`tutorial_training`), images/s."""
    _, loader, step = tutorial_training(images, batch)
    done, count, start = 0, 0, 0.0
    while True:
        for data in loader:
            im = data["image"]
            step(im)
            done += 1
            if done == warmup:
                start = time.perf_counter()
            elif done > warmup:
                count += im.shape[0]
                if time.perf_counter() - start >= seconds:
                    return count / (time.perf_counter() - start)


def trainer_rate(size: int, batch: int, data_dir: Path, out: Path, seconds: float, warmup: int,
                 overrides: dict[str, Any]) -> float:  # fmt: skip
    """The bundle's whole ``train.json`` workflow (``DiffusionTrainer`` with data, EMA, logging, checkpoints)."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=str(REPO / "bundles" / "ct_lightweight" / "configs" / "train.json"), workflow_type="train",
        dataset_dir=str(data_dir), demo_dir=str(data_dir), output_dir=str(out), image_size=size, batch_size=batch,
        sample_interval=0, max_epochs=10_000, resume=False, device="cpu", **overrides,
    )  # fmt: skip
    workflow.initialize()
    trainer = workflow.trainer
    marks: dict[str, float] = {}

    def record(engine) -> None:
        if engine.state.iteration == warmup:
            marks["start"], marks["images"] = time.perf_counter(), 0
        elif engine.state.iteration > warmup:
            marks["images"] += batch
            if time.perf_counter() - marks["start"] >= seconds:
                marks["end"] = time.perf_counter()
                engine.terminate()

    trainer.add_event_handler(Events.ITERATION_COMPLETED, record)
    workflow.run()
    workflow.finalize()
    return marks["images"] / (marks["end"] - marks["start"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/throughput"))
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--step-seconds", type=float, default=6.0, help="timing of each bare-step configuration")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-seconds", type=float, default=60.0, help="timing of each whole loop")
    parser.add_argument("--warmup", type=int, default=3, help="iterations before a whole loop is timed")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the lightweight network")
    parser.add_argument("--quick", action="store_true", help="short timings: checks the pipeline")
    args = parser.parse_args()
    if args.quick:
        args.step_seconds, args.repeats, args.loop_seconds, args.warmup = 1.0, 1, min(args.loop_seconds, 10.0), 1
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    peak_seconds = 0.5 if args.quick else 2.0
    peaks = {
        "matmul fp32": matmul_peak(torch.float32, peak_seconds),
        "matmul bf16": matmul_peak(torch.bfloat16, peak_seconds),
        "conv fp32": conv_peak(torch.float32, False, peak_seconds),
        "conv fp32 channels-last": conv_peak(torch.float32, True, peak_seconds),
        "conv bf16": conv_peak(torch.bfloat16, False, peak_seconds),
        "conv bf16 channels-last": conv_peak(torch.bfloat16, True, peak_seconds),
    }
    peak_rows = [{"kernel": k, "gflops": v[0], "best shape": v[1]} for k, v in peaks.items()]
    print(f"# {machine_summary()}\n\n" + markdown_table(peak_rows, ["kernel", "gflops",
          "best shape"], ".1f") + "\n", flush=True)  # fmt: skip
    limit = {bf16: max(v[0] for k, v in peaks.items() if ("bf16" in k) == bf16) for bf16 in (False, True)}
    configs = [("tutorial", False, False, False), ("tutorial", True, False, False),
               ("lightweight", False, False, False), ("lightweight", True, False, False),
               ("lightweight", True, True, False)]  # fmt: skip
    if args.compile:
        configs.append(("lightweight", True, False, True))
    step_rows, loop_rows = [], []
    for size in args.sizes:
        bare: dict[tuple[str, bool], float] = {}
        for kind, bf16, channels_last, compiled in configs:
            fwd, full = step_gflops(kind, size, bf16)
            rate = bare_rate(kind, size, args.batch_size, bf16, channels_last, compiled, args.step_seconds,
                             args.repeats)  # fmt: skip
            if not channels_last and not compiled:
                bare[(kind, bf16)] = rate
            achieved = full * rate
            row = {"px": size, "network": kind, "precision": "bf16" if bf16 else "fp32",
                   "layout": "channels-last" if channels_last else "NCHW", "compiled": compiled,
                   "fwd GFLOP/img": fwd, "train GFLOP/img": full, "train/fwd": full / fwd, "img/s": rate,
                   "GFLOP/s": achieved, "% of peak": 100 * achieved / limit[bf16]}  # fmt: skip
            step_rows.append(row)
            print(json.dumps(row), flush=True)
        data_dir = out / "ct_demo"
        images = demo_images(size, data_dir)
        tutorial = tutorial_loop_rate(size, args.batch_size, images, args.loop_seconds, args.warmup)
        loops = [("MONAI tutorial loop (tutorial network, fp32, eager)", tutorial, bare[("tutorial", False)])]
        # MONAI's DiffusionModelUNet with the tutorial's settings, in the wrapper that records its arguments
        backbone = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                    **{k: list(v) if isinstance(v, tuple) else v for k, v in TUTORIAL.items()}}  # fmt: skip
        tutorial_net = {"network_def": {"_target_": "medsyn_monai.networks.nets.ClassConditionedDiffusionUNet",
                                        "architecture": "monai", "num_classes": "@num_classes",
                                        "network_kwargs": backbone},
                        "cpu_bf16": False, "prediction_type": "epsilon", "learning_rate": 2.5e-5}  # fmt: skip
        rate = trainer_rate(size, args.batch_size, data_dir, out / f"trainer_tutorial_{size}", args.loop_seconds,
                            args.warmup, tutorial_net)  # fmt: skip
        loops.append(("DiffusionTrainer, tutorial network (train.json, fp32)", rate, bare[("tutorial", False)]))
        rate = trainer_rate(size, args.batch_size, data_dir, out / f"trainer_default_{size}", args.loop_seconds,
                            args.warmup, {})  # fmt: skip
        loops.append(("DiffusionTrainer, project defaults (train.json: lightweight, bf16)", rate,
                      bare[("lightweight", True)]))  # fmt: skip
        for name, rate, bare_step in loops:
            row = {"px": size, "loop": name, "img/s": rate, "vs tutorial loop": rate / tutorial,
                   "bare step img/s": bare_step, "loop / bare step": rate / bare_step}  # fmt: skip
            loop_rows.append(row)
            print(json.dumps(row), flush=True)
    step_md = markdown_table(step_rows, ["px", "network", "precision", "layout", "compiled", "fwd GFLOP/img",
                             "train GFLOP/img", "train/fwd", "img/s", "GFLOP/s", "% of peak"], ".3g")  # fmt: skip
    loop_md = markdown_table(loop_rows, ["px", "loop", "img/s", "vs tutorial loop", "bare step img/s",
                             "loop / bare step"], ".3g")  # fmt: skip
    peak_md = markdown_table(peak_rows, ["kernel", "gflops", "best shape"], ".1f")
    text = f"{machine_summary()}\n\n{peak_md}\n\n{step_md}\n\n{loop_md}\n"
    (out / "throughput.md").write_text(text)
    (out / "throughput.json").write_text(json.dumps({"peaks": peak_rows, "steps": step_rows, "loops": loop_rows},
                                                    indent=1, default=str))  # fmt: skip
    print("\n" + text)


if __name__ == "__main__":
    main()
