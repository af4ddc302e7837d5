"""Sample a fixed grid of images during training and show it in TensorBoard and as PNG."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.schedulers import SamplingScheduler
from medsyn_monai.utils.distributed import is_main_process
from medsyn_monai.utils.image_grid import make_grid, save_grid_png

__all__ = ["SampleGridHandler"]


class SampleGridHandler:
    """Every ``interval`` epochs (and at the end), sample images from the (EMA) network and log the grid.

    The same starting noise (``seed``) is used every time, so successive grids show how the model improves. The grid
    goes to TensorBoard (``add_image`` with tag ``tag``, the iteration as its step) and, when ``output_dir`` is
    given, to ``output_dir/epoch_XXXX.png``. For class-conditional networks the grid cycles through ``class_labels``.

    Args:
        network: network to sample from (usually the EMA copy: ``ignite.handlers.EMAHandler.ema_model``).
        inferer: :class:`~medsyn_monai.inferers.ConditionalDiffusionInferer`.
        scheduler: sampling scheduler, e.g. a DDIM scheduler; ``set_timesteps(num_inference_steps)`` is called.
        image_shape: ``(C, *spatial)`` of one sample.
        num_samples: images in the grid.
        num_inference_steps: denoising steps.
        interval: epochs between grids (0: only at the end).
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter`` or ``None``.
        output_dir: folder for PNG grids or ``None``.
        num_classes: number of classes of a class-conditional network (``None``: unconditional).
        guidance_scale: classifier-free guidance weight.
        seed: seed of the starting noise.
        tag: TensorBoard tag.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        inferer: ConditionalDiffusionInferer,
        scheduler: SamplingScheduler,
        image_shape: Sequence[int],
        num_samples: int = 16,
        num_inference_steps: int = 50,
        interval: int = 1,
        summary_writer: Any | None = None,
        output_dir: str | Path | None = None,
        num_classes: int | None = None,
        guidance_scale: float = 1.0,
        seed: int = 0,
        tag: str = "samples",
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        if interval < 0:
            raise ValueError(f"interval must be >= 0, got {interval}.")
        self.network = network
        self.inferer = inferer
        self.scheduler = scheduler
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_samples = num_samples
        self.num_inference_steps = num_inference_steps
        self.interval = interval
        self.summary_writer = summary_writer
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.num_classes = num_classes
        self.guidance_scale = guidance_scale
        self.seed = seed
        self.tag = tag
        self.logger = logging.getLogger(__name__)
        self.last_grid: np.ndarray | None = None

    def attach(self, engine: Engine) -> None:
        if not is_main_process():
            return  # multi-process training: the main process samples and writes the grids
        if self.interval > 0:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self._on_completed)

    def _on_completed(self, engine: Engine) -> None:
        # skip when the last epoch already produced its grid
        if self.interval == 0 or engine.state.epoch % self.interval != 0:
            self(engine)

    @torch.no_grad()
    def sample(self, device: torch.device | str) -> torch.Tensor:
        """Sample the grid's images (``(num_samples, C, *spatial)`` in [-1, 1])."""
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.randn((self.num_samples, *self.image_shape), generator=generator).to(device)
        labels = None
        if self.num_classes is not None:
            labels = (torch.arange(self.num_samples) % self.num_classes).to(device)
        self.scheduler.set_timesteps(self.num_inference_steps)
        was_training = self.network.training
        self.network.eval()
        try:
            images = self.inferer.sample(
                noise,
                self.network,
                scheduler=self.scheduler,
                verbose=False,
                class_labels=labels,
                guidance_scale=self.guidance_scale,
                # stochastic steps (DDPM): a generator on the sampling device, seeded apart from the starting noise
                generator=torch.Generator(device=noise.device).manual_seed(self.seed + 1),
            )
        finally:
            self.network.train(was_training)
        assert isinstance(images, torch.Tensor)  # no intermediates were asked for
        return images.clamp(-1, 1)

    def __call__(self, engine: Engine) -> None:
        # MONAI workflows keep their device on the state; a plain Ignite engine falls back to the network's
        device = getattr(engine.state, "device", None) or next(self.network.parameters()).device
        images = self.sample(device)
        nrow = self.num_classes if self.num_classes and self.num_classes <= 8 else None
        grid = make_grid(images, nrow=nrow)
        self.last_grid = grid
        epoch = engine.state.epoch
        if self.summary_writer is not None:
            self.summary_writer.add_image(self.tag, grid, global_step=engine.state.iteration, dataformats="HWC")
            self.summary_writer.flush()
        if self.output_dir is not None:
            path = save_grid_png(grid, self.output_dir / f"epoch_{epoch:04d}.png")
            self.logger.info(f"epoch {epoch}: sample grid written to {path}")
