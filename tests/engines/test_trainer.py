"""DiffusionTrainer: the plain MONAI path (learning, gradient clipping, clear channel errors), the extended objective
(feature alignment, per-sample loss weights) and non-finite losses (stop, or skip without any update)."""

from __future__ import annotations

import copy
import csv
import logging
import math

import pytest
import torch
from ignite.engine import Events
from monai.engines.utils import IterationEvents
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from medsyn_monai.engines import DiffusionPrepareBatch, DiffusionTrainer
from medsyn_monai.engines.trainer import NonFiniteLossError
from medsyn_monai.handlers import AtomicCheckpoint, TrainingStatsHandler
from medsyn_monai.losses import DiffusionLoss, FeatureAlignmentLoss
from medsyn_monai.networks.nets import ExpertClassifier, FeatureExtractor, LightweightDiffusionUNet
from tests._helpers import noise_batches, tiny_unet


class RecordingExpert(nn.Module):
    """A small real expert (conv + BatchNorm + pooling) that records the images it was shown."""

    def __init__(self, in_channels=1, image_size=16, feature_dim=6):
        super().__init__()
        self.in_channels, self.image_size, self.feature_dim = in_channels, (image_size, image_size), feature_dim
        self.conv = nn.Conv2d(in_channels, feature_dim, 3, padding=1)
        self.norm = nn.BatchNorm2d(feature_dim)
        self.seen: list[torch.Tensor] = []

    def features(self, x):
        self.seen.append(x.detach().clone())
        return self.norm(self.conv(x)).mean(dim=(2, 3))


def _data(n_batches=4, batch=4, size=16):
    g = torch.Generator().manual_seed(3)
    return [
        {"image": torch.rand(batch, 1, size, size, generator=g) * 2 - 1, "label": torch.arange(batch) % 2}
        for _ in range(n_batches)
    ]


def _outputs(trainer):
    records = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: records.append({k: float(v.detach()) for k, v in e.state.output.items() if k.startswith("loss")}),
    )
    return records


def test_trainer_learns_and_clips(tmp_path):
    net = tiny_unet(num_classes=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    stats = TrainingStatsHandler(opt, csv_path=tmp_path / "log.csv")
    trainer = DiffusionTrainer("cpu", 8, noise_batches(labelled=True), net, opt, DDPMScheduler(100), label_key="label",
                               max_grad_norm=0.5, train_handlers=[stats])  # fmt: skip
    norms = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: norms.append(e.state.grad_norm))
    trainer.run()
    assert trainer.state.iteration == 32
    losses = [row["mean_loss"] for row in stats.history]
    assert losses[-1] < losses[0]
    # clip_grad_norm_ returns the norm before clipping; after clipping each update's norm is at most 0.5
    assert all(n > 0 for n in norms)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 8 and float(rows[0]["images_per_second"]) > 0


def test_grad_clipping_applied():
    net = tiny_unet()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    trainer = DiffusionTrainer("cpu", 1, noise_batches(1), net, opt, DDPMScheduler(100), max_grad_norm=1e-3)
    total = {}

    def after(engine):
        total["norm"] = torch.norm(torch.stack([p.grad.norm() for p in net.parameters() if p.grad is not None]))

    trainer.add_event_handler(Events.ITERATION_COMPLETED, after)
    trainer.run()
    assert total["norm"] <= 1e-3 * 1.01


def test_channel_mismatch_is_clear():
    net = LightweightDiffusionUNet(in_channels=3, out_channels=3, channels=(8, 16), norm_num_groups=4)
    trainer = DiffusionTrainer("cpu", 1, noise_batches(1), net, torch.optim.Adam(net.parameters()), DDPMScheduler(10))
    with pytest.raises(ValueError, match="1 channel.*expects 3.*--in_channels 1"):
        trainer.run()


def test_default_path_is_monai():
    net = tiny_unet()
    loss = DiffusionLoss()
    trainer = DiffusionTrainer("cpu", 1, _data(2), net, torch.optim.SGD(net.parameters(), 0.1), DDPMScheduler(100),
                               loss_function=loss)  # fmt: skip
    assert trainer.pixel_loss is loss and trainer.loss_components == []
    records = _outputs(trainer)
    trainer.run()
    assert len(records) == 2 and set(records[0]) == {"loss"}


def test_aligned_training_keeps_expert_logs_and_checkpoints(tmp_path):
    net = tiny_unet(num_classes=3)
    torch.manual_seed(1)
    expert = ExpertClassifier("resnet18", in_channels=1, num_classes=2, image_size=16)
    expert.train()  # the loss must put (and keep) it in eval mode
    before = {k: v.clone() for k, v in expert.state_dict().items()}
    assert any(k.endswith("running_mean") for k in before) and any(k.endswith("num_batches_tracked") for k in before)
    align = FeatureAlignmentLoss(expert_dim=512, diffusion_dim=16)
    opt = torch.optim.Adam(list(net.parameters()) + list(align.parameters()), 3e-3)
    writer = SummaryWriter(str(tmp_path / "tb"))
    stats = TrainingStatsHandler(opt, writer, tmp_path / "log.csv", iteration_interval=1)  # components by default
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "projection": align, "optimizer": opt},
                            model_key="network")  # fmt: skip
    trainer = DiffusionTrainer("cpu", 3, _data(), net, opt, DDPMScheduler(100), label_key="label",
                               feature_alignment=align, alignment_expert=FeatureExtractor(expert),
                               noise_loss_weight=0.7, alignment_loss_weight=0.3, max_grad_norm=10.0,
                               train_handlers=[stats, ckpt])  # fmt: skip
    assert trainer.loss_components == ["loss_noise", "loss_align"] and trainer.feature_hook.channels == 16
    records = _outputs(trainer)
    trainer.run()
    writer.close()

    # expert: parameters and BatchNorm buffers bit-identical, still in eval mode, no gradients
    after = expert.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not expert.training and all(p.grad is None for p in expert.parameters())
    # the hooks record only during the trainer's own forward passes
    with torch.no_grad():
        net(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]), class_labels=torch.tensor([0, 1]))
    assert trainer.feature_hook.features.shape == (4, 16, 8, 8)  # still the last training batch

    # output: total = w1 * noise + w2 * align; the alignment loss decreases
    assert len(records) == 12 and all(
        set(r) == {"loss", "loss_noise", "loss_align", "loss_align_shuffled"} for r in records
    )
    for r in records:
        assert math.isclose(r["loss"], 0.7 * r["loss_noise"] + 0.3 * r["loss_align"], rel_tol=1e-5)
    first, last = records[0]["loss_align"], sum(r["loss_align"] for r in records[-3:]) / 3
    assert last < 0.6 * first, (first, last)

    # the projection is in checkpoint.pt (and trained), not in model.pt
    saved = torch.load(tmp_path / "models" / "checkpoint.pt", weights_only=True)
    assert set(saved["projection"]) == {"projection.weight", "projection.bias"}
    assert torch.equal(saved["projection"]["projection.weight"], align.projection.weight.detach())
    model = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("projection") for k in model)

    # TensorBoard and CSV have both components
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss_noise", "train/loss_align", "train/epoch_loss_noise", "train/epoch_loss_align"} <= tags
    assert len(acc.Scalars("train/loss_align")) == 12
    assert math.isclose(acc.Scalars("train/loss_align")[0].value, first, rel_tol=1e-5)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    mean_first_epoch = sum(r["loss_align"] for r in records[:4]) / 4
    assert math.isclose(float(rows[0]["mean_loss_align"]), mean_first_epoch, rel_tol=1e-5)


@pytest.mark.parametrize("expert_input", ["noisy", "clean"])
def test_expert_sees_noisy_or_clean_images(expert_input):
    net, expert = tiny_unet(), RecordingExpert()
    align = FeatureAlignmentLoss(expert_dim=6, diffusion_dim=16)
    net_inputs = []
    net.register_forward_pre_hook(lambda m, args, kwargs: net_inputs.append(kwargs["x"].clone()), with_kwargs=True)
    data = _data(1)
    trainer = DiffusionTrainer("cpu", 1, data, net, torch.optim.SGD(list(net.parameters()) + list(align.parameters()),
                               0.01), DDPMScheduler(100), feature_alignment=align,
                               alignment_expert=FeatureExtractor(expert), expert_input=expert_input)  # fmt: skip
    expert.seen.clear()
    trainer.run()
    shown, x0, xt = expert.seen[-1], data[0]["image"], net_inputs[-1]
    assert not torch.allclose(x0, xt)
    assert torch.equal(shown, xt if expert_input == "noisy" else x0)


def test_clipping_includes_projection():
    net = tiny_unet()
    align = FeatureAlignmentLoss(expert_dim=6, diffusion_dim=16)
    params = list(net.parameters()) + list(align.parameters())
    trainer = DiffusionTrainer("cpu", 1, _data(2), net, torch.optim.SGD(params, 0.01), DDPMScheduler(100),
                               feature_alignment=align, alignment_expert=FeatureExtractor(RecordingExpert()),
                               max_grad_norm=1e-3)  # fmt: skip
    norms = []

    @trainer.on(IterationEvents.BACKWARD_COMPLETED)
    def _(engine):
        norms.append(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])).item())

    trainer.run()
    assert trainer.state.grad_norm > 1e-3 and all(n <= 1e-3 * 1.001 for n in norms)
    assert align.projection.weight.grad.abs().sum() > 0


class FixedNoisePrepareBatch(DiffusionPrepareBatch):
    """Noise and time step as fixed functions of each image, so that a sub-batch sees the same per-sample draws."""

    def get_noise(self, images):
        return torch.sin(13.0 * images + 1.0)

    def get_timesteps(self, images):
        return (images.flatten(1).sum(1).abs() * 37).long() % self.num_train_timesteps


def _one_step(net, batch, **kwargs):
    sched = DDPMScheduler(100)
    trainer = DiffusionTrainer("cpu", 1, [batch], net, torch.optim.SGD(net.parameters(), 0.5), sched, **kwargs)
    trainer.prepare_batch = FixedNoisePrepareBatch(sched)
    records = _outputs(trainer)
    trainer.run()
    return records[0], net


@pytest.mark.parametrize("normalize, weights", [(True, [1.0, 1.0, 0.0, 0.0]), (False, [2.0, 2.0, 0.0, 0.0])])
def test_zero_sample_weights_equal_training_on_the_rest(normalize, weights):
    base = tiny_unet()
    torch.nn.init.normal_(base.out_conv.weight, std=0.1)  # non-zero output: every layer gets gradients
    images = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    full = {"image": images, "w": torch.tensor(weights)}
    out_w, net_w = _one_step(copy.deepcopy(base), full, sample_weight_key="w", sample_weight_normalize=normalize)
    out_h, net_h = _one_step(copy.deepcopy(base), {"image": images[:2]})
    assert math.isclose(out_w["loss"], out_h["loss"], rel_tol=1e-5) and out_w["loss"] == out_w["loss_noise"]
    for (name, a), b in zip(net_w.named_parameters(), net_h.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    changed = any(not torch.equal(a, b) for a, b in zip(net_h.parameters(), base.parameters(), strict=True))
    assert changed
    # unnormalised with unit weights: mean over the whole batch, i.e. half the loss of the non-zero half
    out_u, _ = _one_step(copy.deepcopy(base), {"image": images, "w": torch.tensor([1.0, 1.0, 0.0, 0.0])},
                         sample_weight_key="w")  # fmt: skip
    assert math.isclose(out_u["loss"], 0.5 * out_h["loss"], rel_tol=1e-5)


def test_sample_weight_errors():
    images = torch.rand(4, 1, 16, 16)
    with pytest.raises(ValueError, match="no 'w' entry"):
        _one_step(tiny_unet(), {"image": images}, sample_weight_key="w")
    with pytest.raises(ValueError, match="finite and >= 0"):
        _one_step(tiny_unet(), {"image": images, "w": torch.tensor([1.0, -1.0, 1.0, 1.0])}, sample_weight_key="w")
    with pytest.raises(ValueError, match="4 sample weights for a batch of"):
        _one_step(tiny_unet(), {"image": images[:2], "w": torch.ones(4)}, sample_weight_key="w")
    with pytest.raises(ValueError, match="one value per sample"):
        _one_step(tiny_unet(), {"image": images, "w": torch.ones(4)}, sample_weight_key="w",
                  loss_function=torch.nn.MSELoss())  # fmt: skip
    with pytest.raises(ValueError, match="noise_loss_weight"):
        DiffusionTrainer("cpu", 1, [], tiny_unet(), None, DDPMScheduler(10), noise_loss_weight=-1.0)


def test_alignment_part_errors():
    net = tiny_unet()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    expert = FeatureExtractor(RecordingExpert(feature_dim=6))
    with pytest.raises(ValueError, match="needs alignment_expert"):
        DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), feature_alignment=FeatureAlignmentLoss(6, 16))
    with pytest.raises(ValueError, match="gives 6 features but the FeatureAlignmentLoss expects 5"):
        DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), feature_alignment=FeatureAlignmentLoss(5, 16),
                         alignment_expert=expert)  # fmt: skip
    with pytest.raises(ValueError, match="have 16 channels but the FeatureAlignmentLoss expects 8"):
        DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), feature_alignment=FeatureAlignmentLoss(6, 8),
                         alignment_expert=expert)  # fmt: skip
    with pytest.raises(ValueError, match="unknown module_name"):
        DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), feature_alignment=FeatureAlignmentLoss(6, 8),
                         alignment_expert=expert, align_module="nope")  # fmt: skip
    with pytest.raises(ValueError, match="expert_input"):
        DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), expert_input="blurry")


# ------------------------------------------------------------- alignment options: spatial, middle block, schedule


class SpatialExpert(RecordingExpert):
    """A RecordingExpert with a feature map (B, 6, 16, 16): its spatial mean is its pooled features."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def feature_map(self, x):
        self.calls.append("feature_map")
        self.seen.append(x.detach().clone())
        return self.norm(self.conv(x))

    def features(self, x):
        self.calls.append("features")
        return super().features(x)


def _monai_unet():
    torch.manual_seed(0)
    return DiffusionModelUNet(2, 1, 1, channels=(8, 16), attention_levels=(False, False), num_res_blocks=1,
                              norm_num_groups=4)  # fmt: skip


@pytest.mark.parametrize("direction", ["expert_to_diffusion", "diffusion_to_expert"])
def test_spatial_alignment_uses_the_expert_map_and_reaches_the_projection(tmp_path, direction):
    net, expert = tiny_unet(), SpatialExpert()
    fx = FeatureExtractor(expert)
    align = FeatureAlignmentLoss.between(fx, net, "middle_block", spatial=True, projection="conv", direction=direction)
    assert align.diffusion_dim == 16 and isinstance(align.projection, nn.Conv2d) and align.spatial_norm
    opt = torch.optim.SGD(list(net.parameters()) + list(align.parameters()), 0.0)  # weights kept: values checkable
    writer = SummaryWriter(str(tmp_path / "tb"))
    stats = TrainingStatsHandler(opt, writer, tmp_path / "log.csv", iteration_interval=1)
    trainer = DiffusionTrainer("cpu", 1, _data(2), net, opt, DDPMScheduler(100), feature_alignment=align,
                               alignment_expert=fx, align_module="middle_block", train_handlers=[stats])  # fmt: skip
    assert trainer.feature_hook.module_name == "down_blocks.1.1" and trainer.feature_hook.channels == 16
    assert trainer.output_stats == ["align_proj_std", "align_target_std", "loss_align_shuffled"]
    grads, records = [], []
    trainer.add_event_handler(
        IterationEvents.BACKWARD_COMPLETED,
        lambda e: grads.append([p.grad.abs().sum().item() for p in align.parameters()]),
    )
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: records.append({k: float(v.detach()) for k, v in e.state.output.items() if v.ndim == 0}),
    )
    expert.calls.clear()
    trainer.run()
    writer.close()
    assert len(grads) == 2 and all(g > 0 for step in grads for g in step)  # weight and bias of the conv projection
    assert expert.calls == ["feature_map", "feature_map"]  # the map, never the pooled features
    features, x_t = trainer.feature_hook.features, trainer.input_hook.features
    assert features.shape == (4, 16, 8, 8) and torch.equal(expert.seen[-1], x_t)  # the noisy input
    with torch.no_grad():
        projected, target = align.project(features, fx.feature_map(x_t))
        assert math.isclose(records[-1]["loss_align"], align.compare(projected, target).item(), rel_tol=1e-5)
        shuffled = align.compare(projected, target.roll(1, dims=0)).item()  # each image against the next's target
        assert math.isclose(records[-1]["loss_align_shuffled"], shuffled, rel_tol=1e-5)
    channels = 16 if direction == "expert_to_diffusion" else 6
    assert projected.shape == target.shape == (4, channels, 8, 8)
    assert math.isclose(records[-1]["align_proj_std"], projected.std(0).mean().item(), rel_tol=1e-5)
    assert math.isclose(records[-1]["align_target_std"], target.std(0).mean().item(), rel_tol=1e-5)
    assert all(r["align_proj_std"] > 0 and r["align_target_std"] > 0 for r in records)
    # logged like the loss components: TensorBoard per iteration and epoch, CSV column
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/align_proj_std", "train/epoch_align_proj_std", "train/epoch_align_target_std"} <= tags
    row = list(csv.DictReader(open(tmp_path / "log.csv")))[0]
    mean_std = (records[0]["align_proj_std"] + records[1]["align_proj_std"]) / 2
    assert math.isclose(float(row["mean_align_proj_std"]), mean_std, rel_tol=1e-5) and "mean_loss_align" in row


def test_collapsed_projection_shows_as_zero_spread():
    net = tiny_unet()
    align = FeatureAlignmentLoss(expert_dim=6, diffusion_dim=16)
    with torch.no_grad():
        align.projection.weight.zero_()  # a constant output: the bias
    opt = torch.optim.SGD(list(net.parameters()) + list(align.parameters()), 0.0)
    trainer = DiffusionTrainer("cpu", 1, _data(1), net, opt, DDPMScheduler(100), feature_alignment=align,
                               alignment_expert=FeatureExtractor(RecordingExpert()))  # fmt: skip
    trainer.run()
    assert trainer.state.output["align_proj_std"].item() == 0.0 and trainer.state.output["align_target_std"] > 0
    # a constant projection carries no per-image information: another image's target scores exactly the same
    out = trainer.state.output
    assert math.isclose(out["loss_align_shuffled"].item(), out["loss_align"].item(), rel_tol=1e-5)
    one = [{"image": torch.zeros(1, 1, 16, 16)}]
    single = DiffusionTrainer("cpu", 1, one, tiny_unet(), opt, DDPMScheduler(100), feature_alignment=align,
                              alignment_expert=FeatureExtractor(RecordingExpert()))  # fmt: skip
    single.run()  # no spread across a batch of one image: left out
    assert "loss_align" in single.state.output and "align_proj_std" not in single.state.output
    assert "loss_align_shuffled" not in single.state.output


@pytest.mark.parametrize("network", [tiny_unet, _monai_unet])
def test_alignment_at_the_middle_block_trains(network):
    """U-REPA's alignment point, named "middle_block" for the project's lightweight U-Net and MONAI's U-Net."""
    net, expert = network(), RecordingExpert()
    fx = FeatureExtractor(expert)
    align = FeatureAlignmentLoss.between(fx, net, "middle_block", image_shape=(1, 16, 16), projection="mlp")
    opt = torch.optim.Adam(list(net.parameters()) + list(align.parameters()), 1e-3)
    trainer = DiffusionTrainer("cpu", 1, _data(1), net, opt, DDPMScheduler(100), feature_alignment=align,
                               alignment_expert=fx, align_module="middle_block")  # fmt: skip
    name = "down_blocks.1.1" if isinstance(net, LightweightDiffusionUNet) else "middle_block"
    assert trainer.feature_hook.module_name == name
    before = [p.detach().clone() for p in align.parameters()]
    block = [p.detach().clone() for p in net.get_submodule(name).parameters()]
    records = _outputs(trainer)
    trainer.run()
    assert trainer.feature_hook.features.shape == (4, 16, 8, 8)
    assert len(records) == 1 and 0.0 < records[0]["loss_align"] < 2.0
    assert all(not torch.equal(a, p) for a, p in zip(before, align.parameters(), strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(block, net.get_submodule(name).parameters(), strict=True))


@pytest.mark.parametrize("fraction, aligned", [(0.5, 4), (0.3, 3), (1.0, 8), ("null", 8)])
def test_alignment_stop_fraction_switches_alignment_and_the_expert_off(fraction, aligned):
    """HASTE's schedule: 2 epochs of 4 iterations, aligned while (iterations done) < fraction * 8, then weight 0 and no
    expert forward pass."""
    net, expert = tiny_unet(), RecordingExpert()
    align = FeatureAlignmentLoss(expert_dim=6, diffusion_dim=16)
    opt = torch.optim.SGD(list(net.parameters()) + list(align.parameters()), 0.05)
    trainer = DiffusionTrainer("cpu", 2, _data(4), net, opt, DDPMScheduler(100), feature_alignment=align,
                               alignment_expert=FeatureExtractor(expert), alignment_loss_weight=0.3,
                               alignment_stop_fraction=fraction)  # fmt: skip
    scheduled = fraction != "null"
    assert trainer.alignment_stop_fraction == (fraction if scheduled else None)
    assert (
        trainer.output_stats
        == ["align_proj_std", "align_target_std", "loss_align_shuffled"] + ["align_weight"] * scheduled
    )
    records, projections = [], []

    def record(engine):
        records.append({k: float(v.detach()) for k, v in engine.state.output.items() if v.ndim == 0})
        projections.append(align.projection.weight.detach().clone())

    trainer.add_event_handler(Events.ITERATION_COMPLETED, record)
    expert.seen.clear()
    trainer.run()
    assert [("loss_align" in r, "align_proj_std" in r) for r in records] == [(True, True)] * aligned + [
        (False, False)
    ] * (8 - aligned)
    assert len(expert.seen) == aligned  # the expert runs only while aligning
    if scheduled:
        assert [r["align_weight"] for r in records] == pytest.approx([0.3] * aligned + [0.0] * (8 - aligned))
    for r in records[aligned:]:
        assert r["loss"] == r["loss_noise"]
    for r in records[:aligned]:
        assert math.isclose(r["loss"], r["loss_noise"] + 0.3 * r["loss_align"], rel_tol=1e-5)
    # the projection stops changing with the alignment (plain SGD: no gradient, no update)
    assert not torch.equal(projections[0], projections[aligned - 1]) or aligned == 1
    assert all(torch.equal(p, projections[aligned - 1]) for p in projections[aligned:])


def test_alignment_stop_fraction_errors_and_without_alignment():
    net = tiny_unet()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    kwargs = {"feature_alignment": FeatureAlignmentLoss(6, 16), "alignment_expert": FeatureExtractor(RecordingExpert())}
    for bad in (0, 0.0, 1.5, -0.2, math.nan, "abc", True):
        with pytest.raises(ValueError, match="alignment_stop_fraction must be a number in \\(0, 1\\]"):
            DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), alignment_stop_fraction=bad, **kwargs)
    assert DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), alignment_stop_fraction="0.25",
                            **kwargs).alignment_stop_fraction == 0.25  # fmt: skip
    plain = DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), alignment_stop_fraction=0.5)
    assert plain.alignment_stop_fraction is None and plain.output_stats == [] and not plain.alignment_active()
    unknown = DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), alignment_stop_fraction=0.5, **kwargs)
    unknown.state.max_epochs, unknown.state.epoch_length, unknown.state.iteration = 1, None, 1
    with pytest.raises(ValueError, match="give epoch_length"):
        unknown.alignment_active()


# ----------------------------------------------------------------------------------------------- non-finite losses
def _batches_with_nan(*indices: int, n_batches: int = 5) -> list[dict[str, torch.Tensor]]:
    """``noise_batches(n_batches)`` with one NaN pixel in the batches at ``indices`` (their loss is NaN)."""
    batches = noise_batches(n_batches)
    for i in indices:
        batches[i]["image"][0, 0, 0, 0] = float("nan")
    return batches


def _states_after_each_iteration(trainer, net, opt) -> list[tuple[dict, dict]]:
    """(weights, AdamW state) after every iteration, filled while ``trainer`` runs."""
    states: list[tuple[dict, dict]] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: states.append(
        (copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict()["state"]))))  # fmt: skip
    return states


def _same(a, b) -> bool:
    """Whether two (nested) state dicts hold equal tensors."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_nonfinite_loss_stops_before_the_update():
    net = tiny_unet()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1)
    trainer = DiffusionTrainer("cpu", 1, _batches_with_nan(1), net, opt, DDPMScheduler(100))
    states = _states_after_each_iteration(trainer, net, opt)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.run()
    msg = str(info.value)
    assert msg.startswith("the training loss is nan at epoch 1, iteration 2: training stopped before this batch")
    assert "--max_nonfinite_batches N" in msg and "--learning_rate" in msg and "more than" not in msg
    assert isinstance(info.value, FloatingPointError) and trainer.state.nonfinite_batches == 1
    assert len(states) == 1  # iteration 2 never completed, and changed nothing
    assert _same(states[0][0], net.state_dict()) and _same(states[0][1], opt.state_dict()["state"])
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_nonfinite_batches_skipped_without_any_update(caplog):
    net = tiny_unet()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1)  # decay would move weights without grads
    trainer = DiffusionTrainer("cpu", 1, _batches_with_nan(1, 3), net, opt, DDPMScheduler(100),
                               max_nonfinite_batches=2, max_grad_norm=1.0)  # fmt: skip
    states = _states_after_each_iteration(trainer, net, opt)
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.engines.trainer"):
        trainer.run()
    assert trainer.state.iteration == 5 and trainer.state.nonfinite_batches == 2
    for skipped in (1, 3):  # weights and AdamW state (moments, step counts) exactly as before the batch
        assert _same(states[skipped][0], states[skipped - 1][0]) and _same(states[skipped][1], states[skipped - 1][1])
    assert not _same(states[2][0], states[1][0]) and not _same(states[4][0], states[3][0])  # the others train
    assert int(opt.state_dict()["state"][0]["step"]) == 3
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert "non-finite loss at epoch 1, iteration 2: batch skipped (1 of at most 2)" in caplog.text
    assert "non-finite loss at epoch 1, iteration 4: batch skipped (2 of at most 2)" in caplog.text

    # one more than allowed stops training; the count starts again with every run
    trainer = DiffusionTrainer("cpu", 1, _batches_with_nan(1, 3), net, opt, DDPMScheduler(100),
                               max_nonfinite_batches=1)  # fmt: skip
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, iteration 4 \(more than max_nonfinite_batches=1\)"):
        trainer.run()
    assert trainer.state.nonfinite_batches == 2
    with pytest.raises(ValueError, match="max_nonfinite_batches must be >= 0"):
        DiffusionTrainer("cpu", 1, [], net, opt, DDPMScheduler(10), max_nonfinite_batches=-1)
