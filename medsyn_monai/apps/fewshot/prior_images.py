"""Class-prior images for few-shot fine-tuning: generated once by the base model, then reused."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from medsyn_monai.apps.generation.sampler import DiffusionSampler
from medsyn_monai.data.collection import DEFAULT_EXTENSIONS
from medsyn_monai.networks.schedulers import scheduler_name
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.io import atomic_write, write_json

__all__ = ["PRIOR_MANIFEST_NAME", "PriorImageGenerator"]

#: manifest written into ``class_dir`` next to the generated images
PRIOR_MANIFEST_NAME = "prior_images.json"


def _image_seed(seed: int, index: int, stream: int = 0) -> int:
    """Seed of the starting noise (``stream`` 0) of prior image ``index``: independent of which other images exist;
    other streams seed the stochastic sampling steps."""
    entropy = [int(seed), int(index)] + ([int(stream)] if stream else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class PriorImageGenerator:
    """Write the missing class-prior images of a few-shot fine-tuning into ``class_dir`` (PNG + a JSON manifest).

    DreamBooth's prior preservation (Ruiz et al. 2023) trains, next to the few instance images, on images that the
    *base* model generated for the parent class before fine-tuning. This class generates them with a configured
    :class:`~medsyn_monai.apps.generation.DiffusionSampler` of the base model (its network, inferer, scheduler,
    ``num_inference_steps``, ``guidance_scale``, device and ``ckpt_path``), for ``class_label``:

    - image files already in ``class_dir`` (PNG, JPEG, NIfTI, DICOM; e.g. earlier generations, or real images of the
      class put there by hand) are counted and reused; only ``num_class_images`` minus that count are generated, so a
      second run generates nothing (and does not even load the weights);
    - new images are ``prior_XXXXX.png`` with the smallest free indices; image ``i`` starts from noise seeded by
      ``(seed, i)``, so with a deterministic sampler (DDIM, ``eta = 0``) it is the same image whether it is generated
      alone or with others; stochastic samplers (DDPM) are deterministic for a given ``seed`` and set of missing
      images;
    - each PNG is written atomically (a temporary file moved into place), in the orientation
      :class:`~medsyn_monai.data.LoadMedicalImage` reads back (channel-first ``(C, x, y)`` tensors; [-1, 1] mapped to
      [0, 255]), 8-bit grey for one channel, RGB for three;
    - ``prior_images.json`` records the class, the sampler settings and one entry per generated image (file, index,
      noise seed, the SHA-256 of the base weights and the sampler settings it was made with); images are written and
      recorded batch by batch, so an interrupted run keeps what it generated;
    - a ``class_dir`` whose manifest names another class is refused, and so is one whose generated images came from
      other base weights (e.g. the base model was retrained since): prior images must come from the model being
      fine-tuned, so delete them or give another ``class_dir`` (images put there by hand, absent from the manifest,
      are always reused).

    Args:
        sampler: sampler of the base model (``ckpt_path`` = the base weights); its ``class_names`` must be set.
        class_dir: folder of the prior images (created).
        num_class_images: number of prior images wanted (>= 1).
        class_label: class index (of the base model) to generate.
        seed: seed of the noise.
        batch_size: images denoised together (default: the sampler's ``batch_size``).
        verbose: progress bars while sampling.
        enabled: generate (``False``: :meth:`run` returns no image and writes nothing, e.g. a few-shot run without
            prior preservation; the command-line spellings of :func:`~medsyn_monai.utils.as_bool` are accepted).

    Raises:
        ValueError: bad arguments (unconditional sampler, class index out of range, ``num_class_images < 1``, a
            sampler whose images are not 2D grey or RGB) or a ``class_dir`` that holds prior images of another class
            or of other base weights.

    Example:
        >>> import tempfile, torch
        >>> from medsyn_monai.networks.schedulers import DDIMScheduler
        >>> from medsyn_monai.inferers import ConditionalDiffusionInferer
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(4, 8), norm_num_groups=4, num_class_embeds=3)
        >>> d = Path(tempfile.mkdtemp())
        >>> torch.save(net.state_dict(), d / "model.pt")
        >>> scheduler = DDIMScheduler(num_train_timesteps=10)
        >>> sampler = DiffusionSampler(net, ConditionalDiffusionInferer(scheduler), scheduler, d / "model.pt",
        ...                            d / "samples", 1, (1, 8, 8), num_inference_steps=2, class_names=["a", "b"],
        ...                            verbose=False)
        >>> gen = PriorImageGenerator(sampler, d / "prior", num_class_images=3, class_label=1)
        >>> [p.name for p in gen.run()], len(gen.generated), len(PriorImageGenerator(sampler, d / "prior", 3, 1).run())
        (['prior_00000.png', 'prior_00001.png', 'prior_00002.png'], 3, 3)
    """

    def __init__(
        self,
        sampler: DiffusionSampler,
        class_dir: str | Path,
        num_class_images: int,
        class_label: int,
        seed: int = 0,
        batch_size: int | None = None,
        verbose: bool = False,
        enabled: bool = True,
    ) -> None:
        if isinstance(num_class_images, bool) or int(num_class_images) != num_class_images or num_class_images < 1:
            raise ValueError(f"num_class_images must be an integer >= 1, got {num_class_images!r}.")
        if sampler.class_names is None:
            raise ValueError("prior images need a class-conditional base model: the sampler has no class_names.")
        if not 0 <= int(class_label) < len(sampler.class_names):
            raise ValueError(
                f"class_label {class_label} out of range for the base model's classes {sampler.class_names}."
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        shape = tuple(sampler.image_shape)
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise ValueError(
                f"prior images are written as 2D grey or RGB PNG: image_shape (1 or 3, x, y), got {shape}."
            )
        self.sampler = sampler
        self.class_dir = Path(class_dir)
        self.num_class_images = int(num_class_images)
        self.class_label = int(class_label)
        self.class_name = str(sampler.class_names[self.class_label])
        self.seed = int(seed)
        self.batch_size = int(batch_size) if batch_size is not None else sampler.batch_size
        self.verbose = verbose
        self.enabled = as_bool(enabled, "enabled")
        self.generated: list[Path] = []
        self.logger = logging.getLogger(__name__)

    @property
    def manifest_path(self) -> Path:
        return self.class_dir / PRIOR_MANIFEST_NAME

    def weights_digest(self) -> str:
        """SHA-256 of the base weights file (``sampler.ckpt_path``), recorded with every generated image."""
        path = Path(self.sampler.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"base weights {path} not found: train the base model first (train.json).")
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def _check_provenance(self, manifest: dict[str, Any] | None, digest: str) -> None:
        """Refuse generated images of ``class_dir`` that came from other base weights."""
        if not manifest:
            return
        stale = [
            e["file"]
            for e in manifest.get("images", [])
            if e.get("weights_sha256") not in (None, digest) and (self.class_dir / str(e.get("file"))).is_file()
        ]
        if stale:
            raise ValueError(
                f"{len(stale)} prior image(s) in '{self.class_dir}' (e.g. {stale[0]}) were generated by other base "
                f"weights than {self.sampler.ckpt_path} (SHA-256 {digest[:12]}...): prior images must come from the "
                "model being fine-tuned. Delete them (or the folder), or give another class_dir."
            )

    def existing_images(self) -> list[Path]:
        """Image files already in ``class_dir`` (not hidden, not in sub-folders), sorted by name."""
        if not self.class_dir.is_dir():
            return []
        files = []
        for p in self.class_dir.iterdir():
            name = p.name.lower()
            if p.is_file() and not p.name.startswith(".") and any(name.endswith(e) for e in DEFAULT_EXTENSIONS):
                files.append(p)
        return sorted(files)

    def _read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"unreadable prior-image manifest {self.manifest_path}: {e}") from e
        if manifest.get("class_name") != self.class_name:
            raise ValueError(
                f"class_dir '{self.class_dir}' holds prior images of class {manifest.get('class_name')!r}, not "
                f"{self.class_name!r}: use one class_dir per parent class (or delete it)."
            )
        return manifest

    def _free_indices(self, existing: Sequence[Path], count: int) -> list[int]:
        used = set()
        for p in existing:
            m = re.fullmatch(r"prior_(\d+)\.png", p.name)
            if m:
                used.add(int(m.group(1)))
        free: list[int] = []
        i = 0
        while len(free) < count:
            if i not in used:
                free.append(i)
            i += 1
        return free

    @torch.no_grad()
    def sample(self, indices: Sequence[int]) -> torch.Tensor:
        """Generate the prior images of the given indices (weights must be loaded); ``(N, C, *spatial)`` in [-1, 1]."""
        s = self.sampler
        network = s.network.to(s.device).eval()
        if s.num_inference_steps is not None:
            s.scheduler.set_timesteps(s.num_inference_steps)
        out = []
        for start in range(0, len(indices), self.batch_size):
            batch = list(indices[start : start + self.batch_size])
            noise = torch.stack(
                [
                    torch.randn(s.image_shape, generator=torch.Generator().manual_seed(_image_seed(self.seed, i)))
                    for i in batch
                ]
            ).to(s.device)
            labels = torch.full((len(batch),), self.class_label, dtype=torch.long, device=s.device)
            images = s.inferer.sample(
                noise,
                network,
                scheduler=s.scheduler,
                verbose=self.verbose,
                class_labels=labels,
                guidance_scale=s.guidance_scale,
                # stochastic steps: a generator on the sampling device, from a stream apart from the starting noise
                generator=torch.Generator(device=s.device).manual_seed(_image_seed(self.seed, batch[0], stream=1)),
            )
            assert isinstance(images, torch.Tensor)  # no intermediates were asked for
            out.append(images.clamp(-1, 1).float().cpu())
            self.logger.info(f"prior images: {start + len(batch)}/{len(indices)} generated")
        return torch.cat(out)

    @staticmethod
    def save_png(image: torch.Tensor, path: str | Path) -> Path:
        """Write a ``(C, x, y)`` image in [-1, 1] as an 8-bit PNG (grey or RGB) atomically, in MONAI's orientation."""
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected a (1 or 3, x, y) image, got shape {tuple(image.shape)}.")
        array = np.round((image.clamp(-1, 1).numpy() + 1.0) * 127.5).astype(np.uint8)
        array = np.ascontiguousarray(array.transpose(2, 1, 0))  # (C, x, y) -> rows y, columns x, channels
        pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        return atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))

    def records(self) -> list[dict[str, str]]:
        """:meth:`run`, as data records ``{"image": path, "case_id": file name}`` (e.g. for
        :meth:`~medsyn_monai.data.SliceDataset.with_data`)."""
        return [{"image": str(p), "case_id": p.name} for p in self.run()]

    def run(self) -> list[Path]:
        """Generate the missing prior images and return the prior image files to train on.

        Returns:
            the first ``num_class_images`` image files of ``class_dir`` (sorted by name); :attr:`generated` lists
            the files written by this call (empty when nothing was missing).
        """
        if not self.enabled:
            self.generated = []
            return []
        manifest = self._read_manifest()
        # without the weights file nothing can be generated (load_weights says so) nor checked; a complete class_dir
        # is then reused as it is
        digest = self.weights_digest() if Path(self.sampler.ckpt_path).is_file() else None
        if digest is not None:
            self._check_provenance(manifest, digest)
        existing = self.existing_images()
        missing = max(0, self.num_class_images - len(existing))
        self.generated = []
        if missing:
            self.logger.info(
                f"class_dir '{self.class_dir}' holds {len(existing)} image(s): generating {missing} prior image(s) of "
                f"class {self.class_name!r} with the base model {self.sampler.ckpt_path}"
            )
            self.sampler.load_weights()
            indices = self._free_indices(existing, missing)
            self.class_dir.mkdir(parents=True, exist_ok=True)
            entries = list(manifest.get("images", [])) if manifest else []
            s = self.sampler
            settings = {"weights_sha256": digest, "scheduler": scheduler_name(s.scheduler),
                        "num_inference_steps": s.num_inference_steps, "guidance_scale": s.guidance_scale}  # fmt: skip
            for start in range(0, len(indices), self.batch_size):  # write and record batch by batch
                batch = indices[start : start + self.batch_size]
                for index, image in zip(batch, self.sample(batch), strict=True):
                    path = self.save_png(image, self.class_dir / f"prior_{index:05d}.png")
                    self.generated.append(path)
                    entries = [e for e in entries if e.get("file") != path.name]
                    entries.append({"file": path.name, "index": index, "noise_seed": _image_seed(self.seed, index),
                                    **settings})  # fmt: skip
                write_json(
                    self.manifest_path,
                    {
                        "description": "class-prior images generated by the base model before few-shot fine-tuning",
                        "class_label": self.class_label,
                        "class_name": self.class_name,
                        "class_names": s.class_names,
                        "ckpt_path": str(s.ckpt_path),
                        "seed": self.seed,
                        "images": sorted(entries, key=lambda e: e["file"]),
                    },
                )
        else:
            self.logger.info(f"class_dir '{self.class_dir}' already holds {len(existing)} prior image(s): reused")
        return self.existing_images()[: self.num_class_images]
