"""Few-shot fine-tuning with and without prior preservation on real images (MedNIST), side by side.

Runs the real configs of ``bundles/derm_dreambooth`` through ``monai.bundle`` on grey MedNIST (``--in_channels 1``):

1. ``train.json``: a class-conditional base model on five of the six MedNIST classes (``CTAbd``, ``CTChest``,
   ``CXR``, ``MRBrain``, ``MRBreast``); ``CTHead`` is held out as the "rare" class.
2. ``train_fewshot.json`` twice from that base model, on ``--num-instance`` ``CTHead`` images (a new class slot,
   initialised from ``--parent-class``): with DreamBooth's prior preservation (100 images of the parent class generated
   by the base model, prior weight 1) and without it (``--with_prior_preservation false``), same budget (the same
   iterations per epoch: ``num_repeats`` follows ``num_class_images`` in both).
3. For every model, ``--samples-per-class`` images of each of its classes (DDIM-50, guidance 2, identical noise), each
   classified by an independent judge: a DenseNet-121 trained on all six real MedNIST classes
   (``train_expert.json`` of ``cell_ddpm`` at the same size, not on any synthetic image). Reported per model:
   the judge's accuracy on the new class (is it ``CTHead``?), on the base classes (did fine-tuning forget them?), and
   per class.

It prints one markdown table and writes ``fewshot_study.json`` / ``.md`` into ``--output-dir``; finished steps are
reused.

Usage::

    python benchmarks/bench_fewshot_mednist.py --output-dir runs/fewshot_mednist
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DERM = REPO / "bundles" / "derm_dreambooth" / "configs"
CELL = REPO / "bundles" / "cell_ddpm" / "configs"
MEDNIST_ZIP = REPO.parent / "shared" / "data" / "mednist64" / "MedNIST_64x64_500.zip"
RARE = "CTHead"


def _bundle(config: Path, log: Path, **overrides: Any) -> float:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config)]
    for key, value in overrides.items():
        cmd += [f"--{key}", repr(value) if isinstance(value, (bool, list)) or value is None else str(value)]
    start = time.perf_counter()
    with open(log, "a") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{config.name} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def _data(data_dir: Path, num_instance: int) -> tuple[Path, Path, Path]:
    """MedNIST unzipped (all six classes), the five base classes, and the few instance images of the rare class."""
    if not MEDNIST_ZIP.is_file():
        raise SystemExit(f"MedNIST not found at {MEDNIST_ZIP}.")
    full = data_dir / "mednist64"  # outside the repository: the shared data are never copied into the project
    if not full.is_dir():
        with zipfile.ZipFile(MEDNIST_ZIP) as z:
            z.extractall(full)
    base, instance = data_dir / "mednist64_base_classes", data_dir / f"mednist64_{RARE}_{num_instance}"
    if not base.is_dir():
        for cls in sorted(p.name for p in full.iterdir() if p.is_dir() and p.name != RARE):
            shutil.copytree(full / cls, base / cls)
    if not instance.is_dir():
        instance.mkdir(parents=True)
        # the last images of the rare class: the judge's split (by image, seeded) may hold them in any split
        for path in sorted((full / RARE).iterdir())[-num_instance:]:
            shutil.copy(path, instance / path.name)
    return full, base, instance


def _score(models_dir: Path, judge_dir: Path, per_class: int, seed: int) -> dict[str, Any]:
    """Sample every class of the model at models_dir; the judge's accuracy per class (by class name)."""
    from monai.networks.schedulers import DDIMScheduler

    from medsyn_monai.apps.generation import DiffusionSampler
    from medsyn_monai.inferers import ConditionalDiffusionInferer
    from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet, ExpertClassifier
    from medsyn_monai.utils import load_model_info

    info = load_model_info(models_dir)
    network = ClassConditionedDiffusionUNet(
        architecture=info["architecture"], class_conditioning=info["class_conditioning"],
        num_classes=info["num_classes"], cross_attention_dim=info.get("cross_attention_dim", 64),
        network_kwargs=info["network_kwargs"],
    )  # fmt: skip
    scheduler = DDIMScheduler(info["num_train_timesteps"], schedule=info["beta_schedule"],
                              prediction_type=info["prediction_type"])  # fmt: skip
    inferer = ConditionalDiffusionInferer(scheduler, null_class_label=info["null_class_label"])
    size = info["image_size"]
    sampler = DiffusionSampler(network, inferer, scheduler, models_dir / "model.pt", models_dir / "judge_samples",
                               num_samples=1, image_shape=(info["in_channels"], size, size), batch_size=100,
                               class_names=info["class_names"], guidance_scale=2.0, seed=seed, save_png=False,
                               save_nifti=False, verbose=False)  # fmt: skip
    sampler.load_weights()
    labels = [c for c in range(info["num_classes"]) for _ in range(per_class)]
    images, _ = sampler.generate(labels=labels, seed=seed)

    judge_info = load_model_info(judge_dir)
    judge = ExpertClassifier(judge_info["name"], in_channels=judge_info["in_channels"],
                             num_classes=judge_info["num_classes"], image_size=judge_info["expert_input_size"],
                             pretrained_path=judge_dir / "best_model.pt").eval()  # fmt: skip
    with torch.no_grad():
        predicted = torch.cat([judge(images[i : i + 200]).argmax(1) for i in range(0, len(images), 200)])
    judge_names = judge_info["class_names"]
    per = {}
    for c, name in enumerate(info["class_names"]):
        target = judge_names.index(name)
        picks = predicted[torch.as_tensor(labels) == c]
        per[name] = float((picks == target).float().mean())
    base = [v for k, v in per.items() if k != RARE]
    return {"per_class": per, "new_class": per.get(RARE), "base_classes_mean": sum(base) / len(base)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs/fewshot_mednist"))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "medsyn_monai_data",
                        help="where MedNIST is unzipped (outside the repository)")  # fmt: skip
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--base-epochs", type=int, default=40)
    parser.add_argument("--fewshot-epochs", type=int, default=10)
    parser.add_argument("--num-instance", type=int, default=5)
    parser.add_argument("--parent-class", default="CTChest")
    parser.add_argument("--samples-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "study.log"
    full, base_data, instance = _data(args.data_dir, args.num_instance)
    common = {"image_size": args.image_size, "in_channels": 1, "seed": args.seed}
    judge_dir = out / "judge" / "models" / "expert"
    if not (judge_dir / "best_model.pt").is_file():
        t = _bundle(CELL / "train_expert.json", log, dataset_dir=full, output_dir=out / "judge",
                    expert_network="densenet121", **common)  # fmt: skip
        print(f"judge trained in {t:.0f} s", flush=True)
    judge_test = json.loads((out / "judge" / "eval" / "expert" / "test_metrics.json").read_text())

    run = out / "run"
    times: dict[str, float] = {}
    if not (run / "models" / "model.pt").is_file():
        times["base"] = _bundle(DERM / "train.json", log, dataset_dir=base_data, output_dir=run,
                                max_epochs=args.base_epochs, sample_interval=0, **common)  # fmt: skip
    conditions = {"prior_preservation": True, "no_prior_preservation": False}
    models = {"base": run / "models"}
    for name, prior in conditions.items():
        target = out / f"fewshot_{name}"
        models[name] = target / "models" / "fewshot"
        if not (models[name] / "model.pt").is_file():
            target.mkdir(parents=True, exist_ok=True)
            times[name] = _bundle(DERM / "train_fewshot.json", log, output_dir=target,
                                  base_ckpt=run / "models" / "model.pt", instance_dir=instance, instance_class=RARE,
                                  parent_class=args.parent_class, with_prior_preservation=prior,
                                  max_epochs=args.fewshot_epochs, sample_interval=0, seed=args.seed)  # fmt: skip
    rows = {name: _score(path, judge_dir, args.samples_per_class, args.seed) for name, path in models.items()}
    for name, r in rows.items():
        print(name, json.dumps(r), flush=True)

    lines = [f"Judge (DenseNet-121 on all six real classes) test accuracy: {judge_test['accuracy']:.3f}", "",
             f"| model | judge accuracy on '{RARE}' samples | on base-class samples (mean) | per base class |",
             "|---|---:|---:|---|"]  # fmt: skip
    for name, r in rows.items():
        new = "— (no such class)" if r["new_class"] is None else f"{r['new_class']:.3f}"
        per = ", ".join(f"{k} {v:.2f}" for k, v in r["per_class"].items() if k != RARE)
        lines.append(f"| {name} | {new} | {r['base_classes_mean']:.3f} | {per} |")
    table = "\n".join(lines)
    print(table)
    (out / "fewshot_study.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                        "judge_test_accuracy": judge_test["accuracy"],
                                                        "times_s": times, "rows": rows}, indent=2))  # fmt: skip
    (out / "fewshot_study.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
