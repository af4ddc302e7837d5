"""GPU memory of the full-size training recipes (``train_full_size.json`` of every bundle), estimated on the CPU.

No GPU is needed: for each recipe the network is built from the bundle's configs (``train.json`` + the recipe
overlay), and one training forward pass of a small batch at the recipe's resolution is run on the CPU, counting

- the parameters (weights, gradients, AdamW moments and the EMA copy: 4 + 4 + 8 + 4 = 20 bytes each in fp32),
- the forward FLOPs per image (``torch.utils.flop_counter``; a training step is about 3x),
- the activations saved for the backward pass per image in fp32 (``torch.autograd.graph.saved_tensors_hooks``,
  each storage counted once),

and the memory of a GPU training step at the recipe's batch is estimated as parameters x 20 B + batch x activations
+ 1 GiB for the CUDA context, cuDNN workspaces and the allocator's slack: with fp32 activations (``--amp false``, an
upper bound) and with half of them (CUDA AMP keeps most activations in float16; the normalisation layers it runs in
fp32 make the real figure somewhat higher). These are estimates, not GPU measurements; where a GPU is available,
``torch.cuda.max_memory_allocated`` after a few iterations is the figure to trust (the docs say which is which).

Usage::

    python benchmarks/bench_full_size_memory.py            # every bundle's recipe, plus CT at 512 px
    python benchmarks/bench_full_size_memory.py --bundles ct_lightweight --batch 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from _common import markdown_table
from monai.bundle import ConfigParser
from torch.utils.flop_counter import FlopCounterMode

from medsyn_monai.utils.bundle_root import find_bundle_root

BUNDLES = ["ct_lightweight", "cxr_cfg", "derm_dreambooth", "histo_feature_aligned", "cell_ddpm"]
#: class count of each bundle's usual data (the network's class embedding; negligible for memory)
NUM_CLASSES = {"ct_lightweight": 2, "cxr_cfg": 2, "derm_dreambooth": 2, "histo_feature_aligned": 8, "cell_ddpm": 4}
CONTEXT_GIB = 1.0
GIB = 1024**3


def recipe(bundle: str, **overrides: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The recipe's network (built from the bundle's configs, without data) and its settings."""
    configs = Path(find_bundle_root(bundle)) / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), str(configs / "train_full_size.json")])
    parser["num_classes"] = NUM_CLASSES[bundle]
    for key, value in overrides.items():
        parser[key] = value
    settings = {k: parser[k] for k in ("image_size", "batch_size", "channels", "in_channels")}
    return parser.get_parsed_content("network_def"), settings


def saved_bytes(net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> int:
    """Bytes of the tensors the forward pass saves for backward (each storage once)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = net(x, t, class_labels=labels)
    del out
    return sum(seen.values())


def measure(bundle: str, batch: int, **overrides: Any) -> dict[str, Any]:
    net, settings = recipe(bundle, **overrides)
    net.train()
    size, channels = int(settings["image_size"]), int(settings["in_channels"])
    x = torch.randn(batch, channels, size, size)
    t = torch.randint(0, 1000, (batch,))
    labels = torch.arange(batch) % NUM_CLASSES[bundle]
    params = sum(p.numel() for p in net.parameters())
    start = time.perf_counter()
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            net(x, t, class_labels=labels)
    flops = counter.get_total_flops() / batch
    act32 = saved_bytes(net, x, t, labels) / batch
    seconds = time.perf_counter() - start
    recipe_batch = int(settings["batch_size"])

    def gib(activation_bytes: float) -> float:
        return (params * 20 + recipe_batch * activation_bytes) / GIB + CONTEXT_GIB

    def max_batch(activation_bytes: float) -> int:
        return int(((24 - CONTEXT_GIB) * GIB - params * 20) // activation_bytes)

    return {
        "bundle": bundle, "image_size": size, "channels": str(list(settings["channels"])),
        "params_M": params / 1e6, "fwd_GFLOP_per_image": flops / 1e9, "train_GFLOP_per_image": 3 * flops / 1e9,
        "act_fp32_MiB_per_image": act32 / 2**20, "batch": recipe_batch, "est_GiB_fp32": gib(act32),
        "est_GiB_amp": gib(act32 / 2), "max_batch_24GiB_fp32": max_batch(act32),
        "max_batch_24GiB_amp": max_batch(act32 / 2), "cpu_seconds": seconds,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", nargs="+", default=BUNDLES, choices=BUNDLES)
    parser.add_argument("--batch", type=int, default=2, help="images per measured forward pass on the CPU")
    args = parser.parse_args()
    rows = [measure(b, args.batch) for b in args.bundles]
    if "ct_lightweight" in args.bundles:
        rows.append(measure("ct_lightweight", args.batch, image_size=512, batch_size=8))
    header = ["bundle", "image_size", "channels", "params_M", "fwd_GFLOP_per_image", "train_GFLOP_per_image",
              "act_fp32_MiB_per_image", "batch", "est_GiB_fp32", "est_GiB_amp", "max_batch_24GiB_fp32",
              "max_batch_24GiB_amp", "cpu_seconds"]  # fmt: skip
    print(markdown_table(rows, header, ".2f"))
    print(
        f"\nestimate = params x 20 B (weights, gradients, AdamW, EMA) + batch x activations + {CONTEXT_GIB} GiB; "
        "AMP: half the fp32 activations"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
