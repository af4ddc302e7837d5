"""SampleGridHandler: a grid of samples written at every interval."""

from __future__ import annotations

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

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
