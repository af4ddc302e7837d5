"""Diffusion inferer that passes class labels to the network, with classifier-free guidance and CPU autocast."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import nullcontext

import torch
from monai.inferers import DiffusionInferer
from monai.networks.schedulers import RFlowScheduler, Scheduler
from monai.utils import optional_import

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["ConditionalDiffusionInferer"]


def _autocast_dtype(value: str | torch.dtype | None) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if value not in names:
        raise ValueError(f"autocast_dtype must be one of {sorted(names)} or None, got {value!r}.")
    return names[value]


class ConditionalDiffusionInferer(DiffusionInferer):
    """MONAI's :class:`~monai.inferers.DiffusionInferer` that also passes ``class_labels`` to the network.

    MONAI's inferer forwards only cross-attention ``condition`` to the diffusion model; class-conditional networks
    (``num_class_embeds``) need ``class_labels``. This inferer forwards both, for the training forward pass
    (:meth:`__call__`) and for sampling (:meth:`sample`), where it adds classifier-free guidance (Ho & Salimans,
    "Classifier-Free Diffusion Guidance", 2022): ``out = out_uncond + w * (out_cond - out_uncond)``, with the
    unconditional branch evaluated on ``null_class_label``. ``w = 1`` is plain conditional sampling.

    It can also run the network under ``torch.autocast`` with bfloat16, which roughly doubles CPU training and
    sampling speed on processors with AVX512-BF16 / AMX (see ``benchmarks/bench_networks.py``); the network output
    is returned as float32.

    Args:
        scheduler: the noise scheduler (DDPM, DDIM, PNDM or RFlow from :mod:`monai.networks.schedulers`).
        autocast_dtype: ``None`` (full precision), ``"bfloat16"`` or ``"float16"``: dtype of ``torch.autocast`` on
            the input's device for the network's forward pass.
        guidance_scale: default classifier-free guidance weight ``w`` for :meth:`sample`.
        null_class_label: class index the network was trained with as "no class" (condition dropout); required
            when sampling with ``guidance_scale != 1``.

    Example:
        >>> import torch
        >>> from monai.networks.schedulers import DDPMScheduler
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4, num_class_embeds=3)
        >>> inferer = ConditionalDiffusionInferer(DDPMScheduler(num_train_timesteps=10))
        >>> x = torch.randn(2, 1, 8, 8)
        >>> pred = inferer(x, net, noise=torch.randn_like(x), timesteps=torch.tensor([1, 5]),
        ...                class_labels=torch.tensor([0, 2]))
        >>> pred.shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        scheduler: Scheduler,
        autocast_dtype: str | torch.dtype | None = None,
        guidance_scale: float = 1.0,
        null_class_label: int | None = None,
    ) -> None:
        super().__init__(scheduler)
        self.autocast_dtype = _autocast_dtype(autocast_dtype)
        self.guidance_scale = float(guidance_scale)
        self.null_class_label = null_class_label

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def _forward(
        self,
        diffusion_model: Callable,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None,
        class_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        kwargs = {"x": x, "timesteps": timesteps, "context": condition}
        if class_labels is not None:
            kwargs["class_labels"] = class_labels
        with self._autocast(x.device):
            out = diffusion_model(**kwargs)
        return out.float()

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        diffusion_model: Callable,
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None = None,
        mode: str = "crossattn",
        seg: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Noise ``inputs`` to ``timesteps`` with ``noise`` and return the network's prediction.

        Args:
            inputs: clean images ``(B, C, *spatial)``.
            diffusion_model: the network.
            noise: noise of the same shape as ``inputs``.
            timesteps: ``(B,)`` training time steps.
            condition: cross-attention conditioning (``mode="crossattn"``) or channels to concatenate
                (``mode="concat"``).
            mode: ``"crossattn"`` or ``"concat"``.
            seg: not supported (SPADE networks); must be ``None``.
            class_labels: ``(B,)`` class indices for class-conditional networks.
        """
        if mode not in ("crossattn", "concat"):
            raise ValueError(f"mode must be 'crossattn' or 'concat', got {mode!r}.")
        if seg is not None:
            raise ValueError("seg (SPADE) conditioning is not supported by ConditionalDiffusionInferer.")
        noisy = self.scheduler.add_noise(original_samples=inputs, noise=noise, timesteps=timesteps)
        if mode == "concat":
            if condition is None:
                raise ValueError("mode='concat' needs a condition.")
            noisy = torch.cat([noisy, condition], dim=1)
            condition = None
        return self._forward(diffusion_model, noisy, timesteps, condition, class_labels)

    def guided_prediction(
        self,
        diffusion_model: Callable,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """Network prediction with classifier-free guidance ``u + w (c - u)`` (one batched forward pass).

        Args:
            diffusion_model: the network.
            x: noisy images at ``timesteps``.
            timesteps: ``(B,)`` time steps.
            condition: cross-attention conditioning, passed unchanged to both branches.
            class_labels: ``(B,)`` class indices; guidance needs them.
            guidance_scale: ``w``; defaults to the inferer's ``guidance_scale``. ``1`` returns the conditional
                prediction with a single forward pass, ``0`` the unconditional one.
        """
        w = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        if w == 1.0 or class_labels is None:
            if w != 1.0:
                raise ValueError("classifier-free guidance (guidance_scale != 1) needs class_labels.")
            return self._forward(diffusion_model, x, timesteps, condition, class_labels)
        if self.null_class_label is None:
            raise ValueError(
                "guidance_scale != 1 needs null_class_label: the class index the model was trained with as 'no class' "
                "(condition dropout)."
            )
        null = torch.full_like(class_labels, int(self.null_class_label))
        both = torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([class_labels, null])
        cond_both = None if condition is None else torch.cat([condition, condition])
        out_cond, out_uncond = self._forward(diffusion_model, both[0], both[1], cond_both, both[2]).chunk(2)
        return out_uncond + w * (out_cond - out_uncond)

    @torch.no_grad()
    def sample(  # type: ignore[override]
        self,
        input_noise: torch.Tensor,
        diffusion_model: Callable,
        scheduler: Scheduler | None = None,
        save_intermediates: bool | None = False,
        intermediate_steps: int | None = 100,
        conditioning: torch.Tensor | None = None,
        mode: str = "crossattn",
        verbose: bool = True,
        seg: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Denoise ``input_noise`` through ``scheduler.timesteps``.

        Args:
            input_noise: starting noise ``(B, C, *spatial)``.
            diffusion_model: the network (e.g. the EMA copy).
            scheduler: scheduler to sample with (e.g. a DDIM scheduler after ``set_timesteps``); defaults to the
                inferer's.
            save_intermediates: also return the images every ``intermediate_steps`` steps.
            intermediate_steps: interval for ``save_intermediates``.
            conditioning: cross-attention conditioning.
            mode: ``"crossattn"`` or ``"concat"``.
            verbose: show a progress bar.
            seg: not supported.
            class_labels: ``(B,)`` class indices for class-conditional networks.
            guidance_scale: classifier-free guidance weight; defaults to the inferer's.
            generator: random generator for the stochastic steps (DDPM, DDIM with ``eta > 0``), for reproducibility.

        Returns:
            the sampled images, plus the list of intermediates when ``save_intermediates``.
        """
        if seg is not None:
            raise ValueError("seg (SPADE) conditioning is not supported by ConditionalDiffusionInferer.")
        scheduler = scheduler or self.scheduler
        image = input_noise
        takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        is_rflow = isinstance(scheduler, RFlowScheduler)
        timesteps = list(scheduler.timesteps)
        next_timesteps = timesteps[1:] + [0] if is_rflow else [None] * len(timesteps)
        steps = zip(timesteps, next_timesteps, strict=True)
        if verbose and has_tqdm:
            steps = tqdm(steps, total=len(timesteps), desc="sampling")
        intermediates = []
        for t, next_t in steps:
            t_batch = torch.as_tensor(t, device=image.device).reshape(1).expand(image.shape[0])
            model_in, cond = image, conditioning
            if mode == "concat":
                if conditioning is None:
                    raise ValueError("mode='concat' needs conditioning.")
                model_in, cond = torch.cat([image, conditioning], dim=1), None
            out = self.guided_prediction(diffusion_model, model_in, t_batch, cond, class_labels, guidance_scale)
            if is_rflow:
                image, _ = scheduler.step(out, t, image, next_t)
            elif takes_generator:
                image, _ = scheduler.step(out, t, image, generator=generator)
            else:
                image, _ = scheduler.step(out, t, image)
            if save_intermediates and int(t) % int(intermediate_steps or 1) == 0:
                intermediates.append(image)
        return (image, intermediates) if save_intermediates else image
