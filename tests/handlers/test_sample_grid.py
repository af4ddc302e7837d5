"""SampleGridHandler: a grid of samples written at every interval, to PNG files and TensorBoard (step: iteration)."""

from __future__ import annotations

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from medsyn_monai.engines import DiffusionTrainer
from medsyn_monai.handlers import SampleGridHandler
from medsyn_monai.inferers import ConditionalDiffusionInferer
from tests._helpers import noise_batches, tiny_unet


def test_sample_grid_handler(tmp_path):
    net = tiny_unet(num_classes=2)
    sched = DDIMScheduler(100)
    handler = SampleGridHandler(net, ConditionalDiffusionInferer(DDPMScheduler(100)), sched, (1, 8, 8),
                                num_samples=4, num_inference_steps=3, interval=1, output_dir=tmp_path,
                                num_classes=2)  # fmt: skip
    opt = torch.optim.Adam(net.parameters())
    trainer = DiffusionTrainer("cpu", 2, noise_batches(1, True), net, opt, DDPMScheduler(100), label_key="label",
                               train_handlers=[handler])  # fmt: skip
    trainer.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert handler.last_grid.shape == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2, 1)


def test_sample_grid_tensorboard_step_is_the_iteration(tmp_path):
    """Like every TensorBoard event of a run, the grids use the iteration as step (what purge_step counts in)."""
    net = tiny_unet()
    writer = SummaryWriter(str(tmp_path / "tb"))
    handler = SampleGridHandler(net, ConditionalDiffusionInferer(DDPMScheduler(100)), DDIMScheduler(100), (1, 8, 8),
                                num_samples=2, num_inference_steps=2, interval=2, summary_writer=writer)  # fmt: skip
    trainer = DiffusionTrainer("cpu", 3, noise_batches(2), net, torch.optim.Adam(net.parameters()), DDPMScheduler(100),
                               train_handlers=[handler])  # fmt: skip
    trainer.run()
    writer.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Images("samples")] == [4, 6]  # after epoch 2 (interval) and at the end (epoch 3)
