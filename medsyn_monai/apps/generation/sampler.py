"""Generate synthetic images from a trained diffusion model and write them as PNG and NIfTI."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SaveImage

from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import network_from_config
from medsyn_monai.networks.schedulers import (
    DEFAULT_NUM_INFERENCE_STEPS,
    DEFAULT_SCHEDULER_TYPE,
    SamplingScheduler,
    sampling_scheduler,
)
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.image_grid import make_grid, save_grid_png
from medsyn_monai.utils.io import load_torch_file
from medsyn_monai.utils.model_info import load_model_info

__all__ = ["DiffusionSampler", "SampleGenerator"]


class SampleGenerator(Protocol):
    """What the evaluation studies sample from: anything with :meth:`DiffusionSampler.generate`'s signature.

    ``generate(num_samples=None, labels=None, seed=None)`` returns ``(images, labels)``: images ``(N, C, *spatial)``
    in ``[-1, 1]`` on the CPU and the class index of each image (or ``None`` for an unconditional model); the same
    ``seed`` and ``labels`` give the same images.
    """

    def generate(
        self, num_samples: int | None = None, labels: Sequence[int] | None = None, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def _step_seed(seed: int) -> int:
    """Seed of the stochastic sampling steps, a stream independent of the starting noise's ``seed``."""
    return int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])


class DiffusionSampler:
    """Load trained weights, sample ``num_samples`` images and save them (PNG, NIfTI, a grid and a CSV manifest).

    Samples are generated in batches from seeded noise (the same ``seed`` gives the same images), with any MONAI
    scheduler (DDPM with all its steps, or DDIM/PNDM with ``num_inference_steps``). For class-conditional models the
    classes are taken in turn (``class_labels`` restricts them), and classifier-free guidance is applied with
    ``guidance_scale``. Files are written with MONAI's :class:`~monai.transforms.SaveImage`:
    ``sample_00000_<class>.png`` (8-bit; [-1, 1] mapped to [0, 255]) and ``.nii.gz`` (float32; [-1, 1] mapped to
    ``nifti_range``, e.g. the CT window in HU), plus ``grid.png`` and ``samples.csv`` (file, class index, class name).

    Args:
        network: the diffusion network (architecture of the trained model).
        inferer: :class:`~medsyn_monai.inferers.ConditionalDiffusionInferer`.
        scheduler: sampling scheduler; ``set_timesteps(num_inference_steps)`` is called.
        ckpt_path: weights: a ``state_dict`` file (``models/model.pt``, the EMA weights) or a full training
            checkpoint (``checkpoint.pt``), from which ``ckpt_key`` is taken.
        output_dir: folder for the samples (created).
        num_samples: number of images (see also ``num_samples_per_class``).
        image_shape: ``(C, *spatial)`` of one sample.
        batch_size: images denoised together.
        num_inference_steps: denoising steps (``None``: the scheduler's training steps).
        class_names: class names of a class-conditional model (``None``: unconditional).
        class_labels: classes to sample, as indices or names (default: all classes in turn).
        num_samples_per_class: when given, ``num_samples`` is this many images of each sampled class.
        guidance_scale: classifier-free guidance weight (1 = none).
        seed: seed of the noise and of stochastic scheduler steps.
        device: device to sample on.
        ckpt_key: entry of a full checkpoint to load (``"ema"`` by default, falling back to ``"network"``).
        save_png: write PNG files (booleans accept the command-line spellings of :func:`~medsyn_monai.utils.as_bool`).
        save_nifti: write NIfTI files.
        nifti_range: intensities that [-1, 1] maps to in the NIfTI files (``None``: [-1, 1] unchanged), e.g. the CT
            window in HU that the training images were scaled from.
        verbose: show a progress bar.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        inferer: ConditionalDiffusionInferer,
        scheduler: SamplingScheduler,
        ckpt_path: str | Path,
        output_dir: str | Path,
        num_samples: int,
        image_shape: Sequence[int],
        batch_size: int = 16,
        num_inference_steps: int | None = 50,
        class_names: Sequence[str] | None = None,
        class_labels: Sequence[int | str] | None = None,
        num_samples_per_class: int | None = None,
        guidance_scale: float = 1.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
        ckpt_key: str | None = "ema",
        save_png: bool = True,
        save_nifti: bool = True,
        nifti_range: Sequence[float] | None = None,
        verbose: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if class_labels is not None and class_names is None:
            raise ValueError("class_labels need class_names (the model must be class-conditional).")
        labels = None
        if class_names is not None and class_labels is not None:
            names = [str(c) for c in class_names]
            bad = [c for c in class_labels if not (c in names if isinstance(c, str) else 0 <= int(c) < len(names))]
            if bad:
                raise ValueError(f"class_labels {bad}: not classes of the model, whose classes are {names}.")
            labels = [names.index(c) if isinstance(c, str) else int(c) for c in class_labels]
        if num_samples_per_class is not None:
            if int(num_samples_per_class) < 1:
                raise ValueError(f"num_samples_per_class must be >= 1, got {num_samples_per_class}.")
            num_classes = len(labels) if labels is not None else len(class_names) if class_names is not None else 1
            num_samples = int(num_samples_per_class) * num_classes
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        self.network = network
        self.inferer = inferer
        self.scheduler = scheduler
        self.ckpt_path = Path(ckpt_path)
        self.output_dir = Path(output_dir)
        self.num_samples = int(num_samples)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.batch_size = int(batch_size)
        self.num_inference_steps = num_inference_steps
        self.class_names = list(class_names) if class_names is not None else None
        self.class_labels = labels
        self.guidance_scale = float(guidance_scale)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.ckpt_key = ckpt_key
        self.save_png = as_bool(save_png, "save_png")
        self.save_nifti = as_bool(save_nifti, "save_nifti")
        lo, hi = (-1.0, 1.0) if nifti_range is None else nifti_range
        self.nifti_range = (float(lo), float(hi))
        self.verbose = verbose
        self.logger = logging.getLogger(__name__)

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_path: str | Path,
        output_dir: str | Path | None = None,
        num_samples: int = 16,
        scheduler_type: str = DEFAULT_SCHEDULER_TYPE,
        num_inference_steps: int | None = DEFAULT_NUM_INFERENCE_STEPS,
        guidance_scale: float = 1.0,
        guidance_rescale: float = 0.0,
        cpu_bf16: bool = False,
        scheduler_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DiffusionSampler:
        """The sampler of a model trained by a bundle: network, noise schedule, classes and image shape are rebuilt
        from the ``model_info.json`` beside ``ckpt_path`` (its ``network`` and ``scheduler`` entries).

        Args:
            ckpt_path: ``models/model.pt`` (or a snapshot, or ``checkpoint.pt``) of a training run.
            output_dir: where :meth:`run` writes (default: ``samples/`` beside the ``models/`` folder).
            num_samples: number of images.
            scheduler_type: ``"ddim"``, ``"dpmpp_2m"``, ``"dpmpp_3m"``, ``"unipc"`` (``num_inference_steps``
                model evaluations, any number up to the training steps) or ``"ddpm"`` (all training steps)
                (:func:`~medsyn_monai.networks.schedulers.sampling_scheduler`).
            num_inference_steps: number of sampling steps (ignored by DDPM).
            guidance_scale: classifier-free guidance weight (1 = none).
            guidance_rescale: guidance rescale ``phi`` in [0, 1] (Lin et al. 2024).
            cpu_bf16: bfloat16 autocast on the CPU.
            scheduler_options: options of the sampling scheduler (e.g. ``{"timestep_spacing": "logsnr"}``).
            kwargs: other :class:`DiffusionSampler` arguments (``batch_size``, ``class_labels``,
                ``num_samples_per_class``, ``seed``, ``device``, ``save_png``, ...); ``nifti_range`` defaults to the
                training intensity range (e.g. the CT window in HU).

        Raises:
            FileNotFoundError: no ``model_info.json`` beside ``ckpt_path``.
            ValueError: a ``model_info.json`` without the ``network`` / ``scheduler`` entries of this release.
        """
        info = load_model_info(ckpt_path)
        missing = [k for k in ("network", "scheduler", "image_size", "in_channels") if k not in info]
        if missing:
            raise ValueError(
                f"the model_info.json beside {ckpt_path} has no {missing} entries: it was written by an older release "
                "of medsyn_monai; train the model again with this release."
            )
        scheduler = sampling_scheduler(scheduler_type, **info["scheduler"], **(scheduler_options or {}))
        inferer = ConditionalDiffusionInferer(
            scheduler,  # type: ignore[arg-type]  # a MONAI scheduler, typed by what sampling needs
            cpu_bf16=cpu_bf16,
            null_class_label=info.get("null_class_label"),
            guidance_scale=guidance_scale,
            guidance_rescale=guidance_rescale,
        )
        kwargs.setdefault("nifti_range", info.get("intensity_range"))
        size = int(info["image_size"])
        return cls(
            network=network_from_config(info["network"]),
            inferer=inferer,
            scheduler=scheduler,
            ckpt_path=ckpt_path,
            output_dir=output_dir if output_dir is not None else Path(ckpt_path).parent.parent / "samples",
            num_samples=num_samples,
            image_shape=(int(info["in_channels"]), size, size),
            num_inference_steps=num_inference_steps if str(scheduler_type).lower() != "ddpm" else None,
            class_names=info.get("class_names"),
            guidance_scale=guidance_scale,
            **kwargs,
        )

    def load_weights(self) -> None:
        """Load the weights from ``ckpt_path`` into the network (clear errors for a missing or mismatching file)."""
        if not self.ckpt_path.is_file():
            raise FileNotFoundError(
                f"no trained model at {self.ckpt_path}: run the bundle's train.json with the same output_dir first, "
                "or pass --ckpt_path to a models/model.pt file."
            )
        state = load_torch_file(self.ckpt_path, "weights file")
        if isinstance(state, dict) and "trainer" in state:  # a full training checkpoint
            key = self.ckpt_key if self.ckpt_key in state else "network"
            if key not in state:
                raise KeyError(f"{self.ckpt_path} holds {sorted(state)}, none of which is {self.ckpt_key!r}/'network'.")
            state = state[key]
        try:
            self.network.load_state_dict(state)
        except RuntimeError as e:
            raise RuntimeError(
                f"{self.ckpt_path} does not fit the network of this config ({e}); "
                "use the same network settings as for training."
            ) from e

    def _meta_tensor(self, image: torch.Tensor, name: str) -> MetaTensor:
        spatial = image.shape[1:]
        return MetaTensor(
            image,
            affine=torch.eye(4, dtype=torch.float64),
            meta={"filename_or_obj": name, "spatial_shape": np.array(spatial), "original_affine": np.eye(4)},
        )

    @torch.no_grad()
    def generate(
        self,
        num_samples: int | None = None,
        labels: Sequence[int] | None = None,
        seed: int | None = None,
        verbose: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sample images in memory (weights must be loaded: :meth:`load_weights`).

        Args:
            num_samples: number of images (default: ``num_samples`` of the sampler, or ``len(labels)``).
            labels: class index of each image (default: the classes in turn for a conditional model).
            seed: seed of the noise and stochastic steps (default: the sampler's); the same seed and labels give
                the same images, so two models can be compared on identical noise.
            verbose: progress bar (default: the sampler's ``verbose``).

        Returns:
            ``(images, labels)``: images ``(N, C, *spatial)`` in [-1, 1] on the CPU, labels ``(N,)`` or ``None``.
        """
        if labels is not None and self.class_names is None:
            raise ValueError("labels need a class-conditional model (class_names).")
        n = len(labels) if labels is not None else (num_samples or self.num_samples)
        if labels is None and self.class_names is not None:
            classes = self.class_labels if self.class_labels is not None else list(range(len(self.class_names)))
            labels = [classes[i % len(classes)] for i in range(n)]
        self.network.to(self.device).eval()
        if self.num_inference_steps is not None:
            self.scheduler.set_timesteps(self.num_inference_steps)
        base_seed = self.seed if seed is None else int(seed)
        generator = torch.Generator().manual_seed(base_seed)  # the starting noise: drawn on the CPU, any device
        # the noise of stochastic steps (DDPM, DDIM with eta > 0) is drawn where the network runs: a generator on
        # that device, from its own seed stream
        step_generator = torch.Generator(device=self.device).manual_seed(_step_seed(base_seed))
        batches = []
        for start in range(0, n, self.batch_size):
            m = min(self.batch_size, n - start)
            noise = torch.randn((m, *self.image_shape), generator=generator).to(self.device)
            batch_labels = None
            if labels is not None:
                batch_labels = torch.as_tensor(list(labels[start : start + m]), device=self.device).long()
            images = self.inferer.sample(
                noise,
                self.network,
                scheduler=self.scheduler,
                verbose=self.verbose if verbose is None else verbose,
                class_labels=batch_labels,
                guidance_scale=self.guidance_scale,
                generator=step_generator,
            )
            assert isinstance(images, torch.Tensor)  # no intermediates were asked for
            batches.append(images.clamp(-1, 1).float().cpu())
            self.logger.info(f"sampled {start + m}/{n} images")
        label_tensor = torch.as_tensor(list(labels)).long() if labels is not None else None
        return torch.cat(batches), label_tensor

    def run(self) -> list[dict]:
        """Load the weights, sample ``num_samples`` images and write every file; return the manifest rows."""
        self.load_weights()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        images, labels = self.generate()
        common: dict[str, Any] = {"output_dir": str(self.output_dir), "output_postfix": "", "separate_folder": False,
                  "resample": True, "print_log": False}  # fmt: skip
        png_writer = SaveImage(output_ext=".png", output_dtype=np.uint8, scale=255, **common)
        nii_writer = SaveImage(output_ext=".nii.gz", output_dtype=np.float32, **common)
        lo, hi = self.nifti_range
        rows: list[dict] = []
        for idx in range(images.shape[0]):
            label = int(labels[idx]) if labels is not None else None
            class_name = None
            if label is not None:
                assert self.class_names is not None  # generate() gives labels only for a class-conditional model
                class_name = self.class_names[label]
            name = f"sample_{idx:05d}" + (f"_{class_name}" if class_name is not None else "")
            if self.save_png:
                png_writer(self._meta_tensor((images[idx] + 1) / 2, name))
            if self.save_nifti:
                nii_writer(self._meta_tensor(lo + (images[idx] + 1) / 2 * (hi - lo), name))
            rows.append({"file": name, "label": "" if label is None else label, "class_name": class_name or ""})
        save_grid_png(make_grid(images[:64]), self.output_dir / "grid.png")
        with open(self.output_dir / "samples.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["file", "label", "class_name"])
            writer.writeheader()
            writer.writerows(rows)
        self.logger.info(f"wrote {len(rows)} samples to {self.output_dir}")
        return rows
