"""Batch preparation: DiffusionPrepareBatch (targets, condition dropout) and ExpertPrepareBatch."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.networks.schedulers import DDPMScheduler

from medsyn_monai.engines import DiffusionPrepareBatch, DiffusionTrainer, ExpertPrepareBatch
from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet


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


def test_expert_prepare_batch():
    batch = {"img": MetaTensor(torch.ones(3, 1, 4, 4)), "y": torch.tensor([[1.0], [0.0], [2.0]])}
    images, labels = ExpertPrepareBatch(image_key="img", label_key="y")(batch, "cpu")
    assert type(images) is torch.Tensor and images.dtype == torch.float32 and images.shape == (3, 1, 4, 4)
    assert type(labels) is torch.Tensor and labels.dtype == torch.int64 and labels.tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="no 'label' entry"):
        ExpertPrepareBatch()({"image": torch.zeros(1, 1, 2, 2)})
    with pytest.raises(ValueError, match="2 labels for a batch of 3"):
        ExpertPrepareBatch()({"image": torch.zeros(3, 1, 2, 2), "label": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="dictionary"):
        ExpertPrepareBatch()([torch.zeros(1, 1, 2, 2), torch.zeros(1)])


def test_condition_dropout_rate_with_the_wrapper_null_label():
    """The trainer's condition dropout replaces labels by the wrapper's null label at ``cond_drop_prob``."""
    torch.manual_seed(0)
    tiny = {"channels": (8, 16), "norm_num_groups": 4, "num_head_channels": 8}
    net = ClassConditionedDiffusionUNet("lightweight", "embedding", num_classes=2, cross_attention_dim=8,
                                        network_kwargs=tiny)  # fmt: skip
    null = net.null_class_label
    trainer = DiffusionTrainer("cpu", 1, [], net, torch.optim.Adam(net.parameters()), DDPMScheduler(10),
                               label_key="label", cond_drop_prob=0.1, null_class_label=null)  # fmt: skip
    assert isinstance(trainer.prepare_batch, DiffusionPrepareBatch)
    torch.manual_seed(0)
    labels = torch.arange(20000) % 2
    _, _, _, kwargs = trainer.prepare_batch({"image": torch.zeros(20000, 1, 1, 1), "label": labels})
    dropped = kwargs["class_labels"] == net.null_class_label
    assert abs(dropped.float().mean().item() - 0.1) < 0.02
    kept = ~dropped
    assert torch.equal(kwargs["class_labels"][kept], labels[kept])  # the other labels are untouched
