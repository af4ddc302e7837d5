"""Few-shot fine-tuning with and without prior preservation on real images (MedNIST), side by side.

Runs the real configs of ``bundles/derm_dreambooth`` through ``monai.bundle`` (the overlays stacked on its
``train.json``, as in its docs) on grey MedNIST (``--in_channels 1``; ``../shared/data/mednist64``, unzipped into
``--data-dir``, outside the repository):

1. ``train.json``: a class-conditional base model on five of the six MedNIST classes (``CTAbd``, ``CTChest``,
   ``CXR``, ``MRBrain``, ``MRBreast``); ``CTHead`` is held out as the "rare" class.
2. ``train_fewshot.json`` twice from that base model, on ``--num-instance`` ``CTHead`` images (a new class slot,
   initialised from ``--parent-class``): with DreamBooth's prior preservation (100 images of the parent class generated
   by the base model, prior weight 1) and without it (``--with_prior_preservation false``), same budget (the same
   iterations per epoch: ``num_repeats`` follows ``num_class_images`` in both).
3. For every model, ``--samples-per-class`` images of each of its classes (DDIM-50, guidance 2, identical noise), each
   classified by an independent judge: a DenseNet-121 trained on all six real MedNIST classes
   (``train_expert.json`` of ``cell_ddpm``, on its ``train.json``, at the same size, not on any synthetic image).
   Reported per model:
   the judge's accuracy on the new class (is it ``CTHead``?), on the base classes (did fine-tuning forget them?), and
   per class.

It prints one markdown table and writes ``fewshot_study.json`` / ``.md`` into ``--output-dir``; finished steps are
reused.

Usage::

    python benchmarks/bench_fewshot_mednist.py --output-dir runs/fewshot_mednist
    python benchmarks/bench_fewshot_mednist.py --quick --output-dir /tmp/fewshot_quick     # pipeline check
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from _common import mednist, output_folder, run_bundle

RARE = "CTHead"
#: ``--quick``: a pipeline check (one epoch each, 16 px, a short judge, few prior images; the figures mean nothing)
QUICK_ARGS: dict[str, Any] = {"image_size": 16, "base_epochs": 1, "fewshot_epochs": 1, "judge_epochs": 1,
                              "samples_per_class": 4}  # fmt: skip
QUICK_JUDGE: dict[str, Any] = {"expert_input_size": 32}  # DenseNet-121 needs 32 px or more
QUICK_FEWSHOT: dict[str, Any] = {"num_class_images": 8, "prior_inference_steps": 5}


def _data(data_dir: Path, num_instance: int, archive: Path | None) -> tuple[Path, Path, Path]:
    """MedNIST unzipped (all six classes), the five base classes, and the few instance images of the rare class."""
    full = mednist(data_dir, archive=archive)
    base = mednist(data_dir, [p.name for p in sorted(full.iterdir()) if p.is_dir() and p.name != RARE], archive)
    instance = data_dir / f"mednist64_{RARE}_{num_instance}"
    if not instance.is_dir():
        instance.mkdir(parents=True)
        # the last images of the rare class: the judge's split (by image, seeded) may hold them in any split
        for path in sorted((full / RARE).iterdir())[-num_instance:]:
            shutil.copy(path, instance / path.name)
    return full, base, instance


def _score(models_dir: Path, judge_dir: Path, per_class: int, seed: int) -> dict[str, Any]:
    """Sample every class of the model at models_dir; the judge's accuracy per class (by class name)."""
    from medsyn_monai.apps.generation import DiffusionSampler
    from medsyn_monai.networks.nets import ExpertClassifier
    from medsyn_monai.utils import load_model_info

    # DDIM-50 at guidance 2 (EMA weights), network and noise schedule as recorded in model_info.json
    sampler = DiffusionSampler.from_checkpoint(models_dir / "model.pt", models_dir / "judge_samples", num_samples=1,
                                               guidance_scale=2.0, batch_size=100, seed=seed, save_png=False,
                                               save_nifti=False, verbose=False)  # fmt: skip
    sampler.load_weights()
    class_names = sampler.class_names or []
    labels = [c for c in range(len(class_names)) for _ in range(per_class)]
    images, _ = sampler.generate(labels=labels, seed=seed)

    judge = ExpertClassifier.from_checkpoint(judge_dir / "best_model.pt").eval()
    with torch.no_grad():
        predicted = torch.cat([judge(images[i : i + 200]).argmax(1) for i in range(0, len(images), 200)])
    judge_names = load_model_info(judge_dir)["class_names"]
    per = {}
    for c, name in enumerate(class_names):
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
    parser.add_argument("--mednist-zip", type=Path, default=None, help="MedNIST archive (default: ../shared/data)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--base-epochs", type=int, default=40)
    parser.add_argument("--fewshot-epochs", type=int, default=10)
    parser.add_argument("--judge-epochs", type=int, default=8, help="epochs of the judge (cell_ddpm's default: 8)")
    parser.add_argument("--num-instance", type=int, default=5)
    parser.add_argument("--parent-class", default="CTChest")
    parser.add_argument("--samples-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="pipeline check: one epoch each, 16 px, tiny counts")
    args = parser.parse_args()
    quick_judge, quick_fewshot = (QUICK_JUDGE, QUICK_FEWSHOT) if args.quick else ({}, {})
    if args.quick:
        vars(args).update(QUICK_ARGS)

    out, log = output_folder(args.output_dir, "study.log")
    full, base_data, instance = _data(args.data_dir, args.num_instance, args.mednist_zip)
    common = {"image_size": args.image_size, "in_channels": 1, "seed": args.seed}
    judge_dir = out / "judge" / "models" / "expert"
    if not (judge_dir / "best_model.pt").is_file():
        t = run_bundle("cell_ddpm", "train_expert", log, dataset_dir=full, output_dir=out / "judge",
                       expert_network="densenet121", max_epochs=args.judge_epochs, **common,
                       **quick_judge)  # fmt: skip
        print(f"judge trained in {t:.0f} s", flush=True)
    judge_test = json.loads((out / "judge" / "eval" / "expert" / "test_metrics.json").read_text())

    run = out / "run"
    times: dict[str, float] = {}
    if not (run / "models" / "model.pt").is_file():
        times["base"] = run_bundle("derm_dreambooth", "train", log, dataset_dir=base_data, output_dir=run,
                                   max_epochs=args.base_epochs, sample_interval=0, **common)  # fmt: skip
    conditions = {"prior_preservation": True, "no_prior_preservation": False}
    models = {"base": run / "models"}
    for name, prior in conditions.items():
        target = out / f"fewshot_{name}"
        models[name] = target / "models" / "fewshot"
        if not (models[name] / "model.pt").is_file():
            target.mkdir(parents=True, exist_ok=True)
            times[name] = run_bundle("derm_dreambooth", "train_fewshot", log, dataset_dir=base_data,
                                     output_dir=target, base_ckpt=run / "models" / "model.pt", instance_dir=instance,
                                     instance_class=RARE, parent_class=args.parent_class,
                                     with_prior_preservation=prior, max_epochs=args.fewshot_epochs,
                                     sample_interval=0, seed=args.seed, **quick_fewshot)  # fmt: skip
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
