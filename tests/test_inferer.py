from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import LightweightDiffusionUNet


def _net(num_classes=3):
    torch.manual_seed(0)
    net = LightweightDiffusionUNet(channels=(8, 16), norm_num_groups=4, num_class_embeds=num_classes)
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    return net.eval()


def test_training_call_passes_class_labels_and_noises():
    sched = DDPMScheduler(num_train_timesteps=100)
    inferer = ConditionalDiffusionInferer(sched)
    net = _net()
    x, noise, t = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8), torch.tensor([10, 90])
    y = torch.tensor([0, 2])
    out = inferer(x, net, noise=noise, timesteps=t, class_labels=y)
    expected = net(sched.add_noise(x, noise, t), t, class_labels=y)
    assert torch.allclose(out, expected)


def test_guidance_scale_one_and_zero():
    net = _net()
    inferer = ConditionalDiffusionInferer(DDPMScheduler(num_train_timesteps=100), null_class_label=2)
    x, t, y = torch.randn(3, 1, 8, 8), torch.tensor([5, 5, 5]), torch.tensor([0, 1, 0])
    cond = net(x, t, class_labels=y)
    uncond = net(x, t, class_labels=torch.full_like(y, 2))
    assert torch.allclose(inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=1.0), cond)
    assert torch.allclose(inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=0.0), uncond, atol=1e-6)
    w3 = inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=3.0)
    assert torch.allclose(w3, uncond + 3.0 * (cond - uncond), atol=1e-5)


def test_guidance_needs_null_label():
    inferer = ConditionalDiffusionInferer(DDPMScheduler(num_train_timesteps=10))
    with pytest.raises(ValueError, match="null_class_label"):
        inferer.guided_prediction(_net(), torch.randn(1, 1, 8, 8), torch.tensor([1]), class_labels=torch.tensor([0]),
                                  guidance_scale=2.0)  # fmt: skip


@pytest.mark.parametrize("scheduler_cls", [DDPMScheduler, DDIMScheduler])
def test_sample_reproducible_and_class_dependent(scheduler_cls):
    net = _net()
    sched = scheduler_cls(num_train_timesteps=50)
    sched.set_timesteps(5)
    inferer = ConditionalDiffusionInferer(sched)

    def run(labels, seed=0):
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(2, 1, 8, 8, generator=g)
        return inferer.sample(noise, net, verbose=False, class_labels=labels, generator=g)

    a = run(torch.tensor([0, 1]))
    assert a.shape == (2, 1, 8, 8) and torch.isfinite(a).all()
    assert torch.equal(a, run(torch.tensor([0, 1])))
    assert not torch.allclose(a, run(torch.tensor([2, 2])))


def test_bf16_autocast_close_to_fp32():
    net = _net()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3, 4]), torch.tensor([0, 1])
    ref = ConditionalDiffusionInferer(DDPMScheduler(10))._forward(net, x, t, None, y)
    bf = ConditionalDiffusionInferer(DDPMScheduler(10), autocast_dtype="bfloat16")._forward(net, x, t, None, y)
    assert bf.dtype == torch.float32
    assert torch.allclose(bf, ref, atol=0.05 * ref.abs().max().item() + 1e-3)
    with pytest.raises(ValueError, match="autocast_dtype"):
        ConditionalDiffusionInferer(DDPMScheduler(10), autocast_dtype="int8")
