from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from ignite.engine import Events
from ignite.handlers import EMAHandler
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.engines import DiffusionPrepareBatch, DiffusionTrainer
from medsyn_monai.handlers import AtomicCheckpoint, SampleGridHandler, TrainingStatsHandler
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.losses import DiffusionLoss
from medsyn_monai.networks.nets import LightweightDiffusionUNet


def _net(num_classes=None):
    torch.manual_seed(0)
    return LightweightDiffusionUNet(channels=(8, 16), norm_num_groups=4, num_class_embeds=num_classes)


def _loader(n_batches=4, labelled=False):
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(n_batches):
        b = {"image": torch.rand(4, 1, 8, 8, generator=g) * 2 - 1}
        if labelled:
            b["label"] = torch.randint(0, 2, (4,), generator=g)
        batches.append(b)
    return batches


# ---------------------------------------------------------------- prepare batch
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prepare_batch_targets(prediction_type):
    sched = DDPMScheduler(num_train_timesteps=100, prediction_type=prediction_type)
    prep = DiffusionPrepareBatch(sched, generator=torch.Generator().manual_seed(0))
    x0 = torch.rand(6, 1, 4, 4)
    images, target, args, kwargs = prep({"image": x0})
    assert torch.equal(images, x0) and args == ()
    noise, t = kwargs["noise"], kwargs["timesteps"]
    assert t.dtype == torch.long and ((t >= 0) & (t < 100)).all()
    if prediction_type == "epsilon":
        assert torch.equal(target, noise)
    elif prediction_type == "sample":
        assert torch.equal(target, x0)
    else:
        a = sched.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        assert torch.allclose(target, a.sqrt() * noise - (1 - a).sqrt() * x0, atol=1e-6)


def test_condition_dropout_rate():
    prep = DiffusionPrepareBatch(DDPMScheduler(10), label_key="label", cond_drop_prob=0.1, null_class_label=5,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    labels = torch.zeros(20000, dtype=torch.long)
    _, _, _, kwargs = prep({"image": torch.zeros(20000, 1, 1, 1), "label": labels})
    rate = (kwargs["class_labels"] == 5).float().mean().item()
    assert abs(rate - 0.1) < 0.01
    assert set(kwargs["class_labels"].unique().tolist()) == {0, 5}


def test_prepare_batch_bad_args():
    with pytest.raises(ValueError, match="null_class_label"):
        DiffusionPrepareBatch(DDPMScheduler(10), label_key="label", cond_drop_prob=0.1)
    with pytest.raises(ValueError, match="cond_drop_prob"):
        DiffusionPrepareBatch(DDPMScheduler(10), cond_drop_prob=1.5)
    with pytest.raises(ValueError, match="label"):
        DiffusionPrepareBatch(DDPMScheduler(10), label_key="label")({"image": torch.zeros(1, 1, 2, 2)})


def test_loss():
    a, b = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    assert DiffusionLoss("l2")(a, b).item() == 4.0
    assert DiffusionLoss("l1")(a, b).item() == 2.0
    with pytest.raises(ValueError):
        DiffusionLoss("huber")


# ---------------------------------------------------------------- trainer
def test_trainer_learns_and_clips(tmp_path):
    net = _net(num_classes=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    stats = TrainingStatsHandler(opt, csv_path=tmp_path / "log.csv")
    trainer = DiffusionTrainer("cpu", 8, _loader(labelled=True), net, opt, DDPMScheduler(100), label_key="label",
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
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    trainer = DiffusionTrainer("cpu", 1, _loader(1), net, opt, DDPMScheduler(100), max_grad_norm=1e-3)
    total = {}

    def after(engine):
        total["norm"] = torch.norm(torch.stack([p.grad.norm() for p in net.parameters() if p.grad is not None]))

    trainer.add_event_handler(Events.ITERATION_COMPLETED, after)
    trainer.run()
    assert total["norm"] <= 1e-3 * 1.01


# ---------------------------------------------------------------- checkpoint / resume
def _make_trainer(tmp_path, max_epochs, fail_at=None):
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ema = EMAHandler(net, momentum=0.1)
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "ema": ema.ema_model, "optimizer": opt})
    trainer = DiffusionTrainer("cpu", max_epochs, _loader(3), net, opt, DDPMScheduler(100), train_handlers=[ema, ckpt])
    if fail_at is not None:

        def fail(engine):
            if engine.state.iteration == fail_at:
                raise RuntimeError("simulated crash")

        trainer.add_event_handler(Events.ITERATION_COMPLETED, fail)
    return trainer, net, ema, ckpt


def test_checkpoint_atomic_files_and_resume(tmp_path):
    trainer, net, ema, _ = _make_trainer(tmp_path, 2)
    trainer.run()
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint.pt", "model.pt"]  # no temporary files left
    state = torch.load(models / "checkpoint.pt", weights_only=False)
    assert set(state) == {"network", "ema", "optimizer", "trainer"}
    assert state["trainer"]["iteration"] == 6  # 2 epochs of 3 batches
    model_pt = torch.load(models / "model.pt")
    assert all(torch.equal(model_pt[k], v) for k, v in ema.ema_model.state_dict().items())
    assert not all(torch.equal(model_pt[k], v) for k, v in net.state_dict().items())  # EMA != raw weights

    # extend the run: a new process resumes at epoch 2 and trains epochs 3-4 only
    trainer2, net2, _, ckpt2 = _make_trainer(tmp_path, 4)
    epochs = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer2.run()
    assert ckpt2.resumed_from_epoch == 2
    assert epochs == [3, 4]
    assert trainer2.state.iteration == 12


def test_resume_after_crash(tmp_path):
    trainer, _, _, _ = _make_trainer(tmp_path, 3, fail_at=5)  # crash in epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run()
    state = torch.load(tmp_path / "models" / "checkpoint.pt", weights_only=False)
    assert state["trainer"]["iteration"] == 5  # saved on the exception
    trainer2, _, _, ckpt2 = _make_trainer(tmp_path, 3)
    trainer2.run()
    assert ckpt2.resumed_from_epoch == 1  # iteration 5 = inside epoch 2: epochs 1 done, epoch 2 resumes mid-way
    assert trainer2.state.epoch == 3 and trainer2.state.iteration == 9


def test_resume_mismatch_is_clear(tmp_path):
    trainer, _, _, _ = _make_trainer(tmp_path, 1)
    trainer.run()
    net = LightweightDiffusionUNet(channels=(8, 32), norm_num_groups=4)
    opt = torch.optim.Adam(net.parameters())
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "ema": net, "optimizer": opt})
    trainer2 = DiffusionTrainer("cpu", 2, _loader(3), net, opt, DDPMScheduler(100), train_handlers=[ckpt])
    with pytest.raises(RuntimeError, match="does not match the current configuration"):
        trainer2.run()


# ---------------------------------------------------------------- sample grid + sampler
def test_sample_grid_handler(tmp_path):
    net = _net(num_classes=2)
    sched = DDIMScheduler(100)
    handler = SampleGridHandler(net, ConditionalDiffusionInferer(DDPMScheduler(100)), sched, (1, 8, 8),
                                num_samples=4, num_inference_steps=3, interval=1, output_dir=tmp_path,
                                num_classes=2)  # fmt: skip
    opt = torch.optim.Adam(net.parameters())
    trainer = DiffusionTrainer("cpu", 2, _loader(1, True), net, opt, DDPMScheduler(100), label_key="label",
                               train_handlers=[handler])  # fmt: skip
    trainer.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert handler.last_grid.shape == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2, 1)


def test_sampler_writes_png_nifti(tmp_path):
    import nibabel as nib
    from PIL import Image

    net = _net(num_classes=2)
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    sched = DDIMScheduler(100)

    def sampler(out, seed=0, **kw):
        return DiffusionSampler(_net(num_classes=2), ConditionalDiffusionInferer(sched), sched,
                                tmp_path / "model.pt", out, num_samples=5, image_shape=(1, 8, 12), batch_size=2,
                                num_inference_steps=4, class_names=["normal", "lesion"], seed=seed,
                                nifti_range=(-160, 240), verbose=False, **kw)  # fmt: skip

    rows = sampler(tmp_path / "s1").run()
    assert [r["class_name"] for r in rows] == ["normal", "lesion", "normal", "lesion", "normal"]
    png = Image.open(tmp_path / "s1" / "sample_00001_lesion.png")
    assert png.size == (8, 12) and png.mode == "L"  # PIL size is (width=x, height=y)
    nii = nib.load(tmp_path / "s1" / "sample_00001_lesion.nii.gz").get_fdata()
    assert nii.shape == (8, 12) and nii.min() >= -160 - 1e-3 and nii.max() <= 240 + 1e-3
    # PNG and NIfTI hold the same image
    png_vals = torch.tensor(np.array(png), dtype=torch.float32).T / 255
    assert torch.allclose(png_vals, torch.tensor((nii + 160) / 400, dtype=torch.float32), atol=1 / 255 + 1e-3)
    assert (tmp_path / "s1" / "grid.png").is_file() and (tmp_path / "s1" / "samples.csv").is_file()
    # the same seed reproduces the images, another seed does not
    sampler(tmp_path / "s2").run()
    sampler(tmp_path / "s3", seed=1).run()
    a, b, c = (nib.load(tmp_path / s / "sample_00000_normal.nii.gz").get_fdata() for s in ("s1", "s2", "s3"))
    assert (a == b).all() and not (a == c).all()


def test_sampler_errors(tmp_path):
    sched = DDIMScheduler(100)
    s = DiffusionSampler(_net(), ConditionalDiffusionInferer(sched), sched, tmp_path / "missing.pt", tmp_path, 2,
                         (1, 8, 8))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="train.json"):
        s.run()
    torch.save(LightweightDiffusionUNet(channels=(8, 32), norm_num_groups=4).state_dict(), tmp_path / "other.pt")
    s = DiffusionSampler(_net(), ConditionalDiffusionInferer(sched), sched, tmp_path / "other.pt", tmp_path, 2,
                         (1, 8, 8))  # fmt: skip
    with pytest.raises(RuntimeError, match="does not fit"):
        s.run()
    with pytest.raises(ValueError, match=r"class_labels \[3\]: not classes of the model, whose classes are \['a'\]"):
        DiffusionSampler(_net(), None, sched, "x", tmp_path, 2, (1, 8, 8), class_names=["a"], class_labels=[3])
    with pytest.raises(ValueError, match=r"class_labels \['c'\]: not classes"):
        DiffusionSampler(_net(), None, sched, "x", tmp_path, 2, (1, 8, 8), class_names=["a", "b"], class_labels=["c"])
    by_name = DiffusionSampler(_net(), None, sched, "x", tmp_path, 2, (1, 8, 8), class_names=["a", "b"],
                               class_labels=["b"], num_samples_per_class=3)  # fmt: skip
    assert by_name.class_labels == [1] and by_name.num_samples == 3
    with pytest.raises(ValueError, match="num_samples_per_class"):
        DiffusionSampler(_net(), None, sched, "x", tmp_path, 2, (1, 8, 8), num_samples_per_class=0)


def test_exponential_moving_average_handler():
    from ignite.engine import Engine

    from medsyn_monai.handlers import ExponentialMovingAverage

    net, holder = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    ema = ExponentialMovingAverage(net, holder, decay=0.9)
    assert ema.ema_model is holder and not holder.weight.requires_grad

    def step(engine, batch):
        with torch.no_grad():
            net.weight.fill_(1.0)

    engine = Engine(step)
    ema.attach(engine)
    engine.run([0, 0], max_epochs=1)
    assert torch.allclose(holder.weight, torch.tensor([[1 - 0.9**2]]))  # two updates towards 1
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(net, decay=1.0)
    with pytest.raises(ValueError, match="separate"):
        ExponentialMovingAverage(net, net)
    adaptive = ExponentialMovingAverage(net, decay=0.99, warmup_iters=10, adaptive="true")  # its own warm-up
    assert adaptive.adaptive is True and adaptive._momentum_lambda_obj is None  # no linear warm-up
    assert ExponentialMovingAverage(net, decay=0.99, warmup_iters=10)._momentum_lambda_obj is not None
    with pytest.raises(ValueError, match="warmup_iters"):
        ExponentialMovingAverage(net, decay=0.99, warmup_iters=-1)


def test_adaptive_ema_follows_the_iteration_and_resumes():
    from ignite.engine import Engine

    from medsyn_monai.handlers import ExponentialMovingAverage

    net, holder = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    ema = ExponentialMovingAverage(net, holder, decay=0.999, adaptive=True)

    def step(engine, batch):
        with torch.no_grad():
            net.weight.fill_(float(engine.state.iteration))  # the weights after iteration t are t

    engine = Engine(step)
    ema.attach(engine)
    engine.run(range(30), max_epochs=1)
    expected = 0.0
    for t in range(1, 31):
        d = min(0.999, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * t
    assert holder.weight.item() == pytest.approx(expected, rel=1e-5)
    # a resumed run continues the schedule from the restored iteration, not from its start
    resumed = Engine(step)
    ExponentialMovingAverage(net, holder, decay=0.999, adaptive=True).attach(resumed)
    holder.weight.data.fill_(expected)
    resumed.state.iteration, resumed.state.epoch = 30, 1
    resumed.run(range(30), max_epochs=2)
    for t in range(31, 61):
        d = min(0.999, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * t
    assert holder.weight.item() == pytest.approx(expected, rel=1e-5)


def test_channel_mismatch_is_clear():
    net = LightweightDiffusionUNet(in_channels=3, out_channels=3, channels=(8, 16), norm_num_groups=4)
    trainer = DiffusionTrainer("cpu", 1, _loader(1), net, torch.optim.Adam(net.parameters()), DDPMScheduler(10))
    with pytest.raises(ValueError, match="1 channel.*expects 3.*--in_channels 1"):
        trainer.run()


def test_no_checkpoint_when_failing_before_training(tmp_path):
    net = LightweightDiffusionUNet(in_channels=3, out_channels=3, channels=(8, 16), norm_num_groups=4)
    opt = torch.optim.Adam(net.parameters())
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "optimizer": opt}, model_key="network")
    trainer = DiffusionTrainer("cpu", 1, _loader(1), net, opt, DDPMScheduler(10), train_handlers=[ckpt])
    with pytest.raises(ValueError, match="channel"):
        trainer.run()
    assert not (tmp_path / "models" / "checkpoint.pt").exists()


def test_make_grid_shows_middle_slice_of_volumes():
    from medsyn_monai.utils import make_grid

    vol = -torch.ones(2, 1, 4, 4, 6)
    vol[..., 3] = 1.0  # only the middle slice (6 // 2) is white
    grid = make_grid(vol, nrow=2, padding=0)
    assert grid.shape == (4, 8, 1) and (grid == 255).all()


def test_checkpoint_snapshots_keep_weights_of_given_epochs(tmp_path):
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ckpt = AtomicCheckpoint(tmp_path / "m", {"network": net, "optimizer": opt}, model_key="network",
                            snapshot_epochs=[1, 3])  # fmt: skip
    weights = {}
    trainer = DiffusionTrainer("cpu", 3, _loader(2), net, opt, DDPMScheduler(10), train_handlers=[ckpt])
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: weights.update({e.state.epoch: net.out_conv.weight.detach().clone()})
    )
    trainer.run()
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["checkpoint.pt", "model.pt", "model_epoch_0001.pt", "model_epoch_0003.pt"]
    first = torch.load(tmp_path / "m" / "model_epoch_0001.pt", weights_only=True)
    assert torch.equal(first["out_conv.weight"], weights[1])
    assert not torch.equal(weights[1], weights[3])  # training went on after the first snapshot
    assert ckpt.snapshot_path(3) == tmp_path / "m" / "model_epoch_0003.pt"
    with pytest.raises(ValueError, match="positive"):
        AtomicCheckpoint(tmp_path, {"network": net}, model_key="network", snapshot_epochs=[0])
    with pytest.raises(ValueError, match="model_key"):
        AtomicCheckpoint(tmp_path, {"network": net}, model_key=None, snapshot_epochs=[2])
