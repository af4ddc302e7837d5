"""ConditionalDiffusionInferer: training call, sampling, classifier-free guidance and guidance rescale, bf16."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medsyn_monai.inferers import ConditionalDiffusionInferer, rescale_guidance
from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet, LightweightDiffusionUNet


def _lightweight_net(num_classes=3):
    """A class-conditional LightweightDiffusionUNet with a random (not zero) output layer, in eval mode."""
    torch.manual_seed(0)
    net = LightweightDiffusionUNet(channels=(8, 16), norm_num_groups=4, num_class_embeds=num_classes)
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    return net.eval()


def test_training_call_passes_class_labels_and_noises():
    sched = DDPMScheduler(num_train_timesteps=100)
    inferer = ConditionalDiffusionInferer(sched)
    net = _lightweight_net()
    x, noise, t = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8), torch.tensor([10, 90])
    y = torch.tensor([0, 2])
    out = inferer(x, net, noise=noise, timesteps=t, class_labels=y)
    expected = net(sched.add_noise(x, noise, t), t, class_labels=y)
    assert torch.allclose(out, expected)


def test_guidance_scale_one_and_zero():
    net = _lightweight_net()
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
    x, t, y = torch.randn(1, 1, 8, 8), torch.tensor([1]), torch.tensor([0])
    with pytest.raises(ValueError, match="null_class_label"):
        inferer.guided_prediction(_lightweight_net(), x, t, class_labels=y, guidance_scale=2.0)


@pytest.mark.parametrize("scheduler_cls", [DDPMScheduler, DDIMScheduler])
def test_sample_reproducible_and_class_dependent(scheduler_cls):
    net = _lightweight_net()
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
    net = _lightweight_net()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3, 4]), torch.tensor([0, 1])
    ref = ConditionalDiffusionInferer(DDPMScheduler(10))._forward(net, x, t, None, y)
    bf = ConditionalDiffusionInferer(DDPMScheduler(10), autocast_dtype="bfloat16")._forward(net, x, t, None, y)
    assert bf.dtype == torch.float32
    assert torch.allclose(bf, ref, atol=0.05 * ref.abs().max().item() + 1e-3)
    with pytest.raises(ValueError, match="autocast_dtype"):
        ConditionalDiffusionInferer(DDPMScheduler(10), autocast_dtype="int8")


# ---------------------------------------------------------------- guidance with ClassConditionedDiffusionUNet
TINY_LW = {"channels": (8, 16), "norm_num_groups": 4, "num_head_channels": 8}


class _CountingNet(torch.nn.Module):
    """Wraps a network and records the batch size of every forward pass."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.batches: list[int] = []

    def forward(self, x, timesteps, context=None, class_labels=None):
        self.batches.append(int(x.shape[0]))
        return self.net(x, timesteps, context=context, class_labels=class_labels)


def _wrapper_net(mode: str = "embedding", seed: int = 0) -> ClassConditionedDiffusionUNet:
    """A ClassConditionedDiffusionUNet (2 classes) whose predictions depend on the label, in eval mode."""
    torch.manual_seed(seed)
    net = ClassConditionedDiffusionUNet("lightweight", mode, num_classes=2, cross_attention_dim=8,
                                        network_kwargs=TINY_LW)  # fmt: skip
    with torch.no_grad():  # move the zero-initialised output layers so that predictions depend on the label
        for p in net.parameters():
            if p.ndim > 1 and p.abs().sum() == 0:
                p.normal_(std=0.3)
    return net.eval()


def _inputs():
    g = torch.Generator().manual_seed(3)
    return torch.randn(3, 1, 8, 8, generator=g), torch.tensor([5, 50, 500]), torch.tensor([0, 1, 0])


@pytest.mark.parametrize("mode", ["embedding", "cross_attention"])
def test_guidance_weights_match_hand_computation(mode):
    net = _CountingNet(_wrapper_net(mode))
    inferer = ConditionalDiffusionInferer(DDPMScheduler(num_train_timesteps=1000), null_class_label=2)
    x, t, y = _inputs()
    with torch.no_grad():
        cond = net(x, t, class_labels=y)
        uncond = net(x, t, class_labels=torch.full_like(y, 2))
        net.batches.clear()
        w1 = inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=1.0)
        w0 = inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=0.0)
        assert net.batches == [3, 3]  # w = 1 and w = 0: one forward pass each, no doubled batch
        w3 = inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=3.0)
        assert net.batches[-1] == 6  # guidance: conditional and null label in one batched pass
    assert torch.allclose(w1, cond, atol=1e-6)
    assert torch.allclose(w0, uncond, atol=1e-6)
    assert torch.allclose(w3, uncond + 3.0 * (cond - uncond), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(w3, cond, atol=1e-3)


def test_guidance_rescale_matches_the_conditional_std():
    net = _wrapper_net()
    inferer = ConditionalDiffusionInferer(DDPMScheduler(num_train_timesteps=1000), null_class_label=2)
    x, t, y = _inputs()
    with torch.no_grad():
        cond = net(x, t, class_labels=y)
        uncond = net(x, t, class_labels=torch.full_like(y, 2))
        guided = uncond + 5.0 * (cond - uncond)
        phi0 = inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=5.0, guidance_rescale=0.0)
        phi1 = inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=5.0, guidance_rescale=1.0)
        half = inferer.guided_prediction(net, x, t, class_labels=y, guidance_scale=5.0, guidance_rescale=0.5)
    std = lambda a: a.std(dim=(1, 2, 3))  # noqa: E731
    assert torch.allclose(phi0, guided, rtol=1e-4, atol=1e-4)  # phi = 0: unchanged
    assert torch.allclose(std(phi1), std(cond), rtol=1e-4)  # phi = 1: per-sample std of the conditional prediction
    assert not torch.allclose(std(guided), std(cond), rtol=1e-2)  # (guidance had changed it)
    rescaled = guided * (std(cond) / std(guided)).reshape(-1, 1, 1, 1)
    assert torch.allclose(phi1, rescaled, rtol=1e-4, atol=1e-4)
    assert torch.allclose(half, 0.5 * rescaled + 0.5 * guided, rtol=1e-4, atol=1e-4)
    # the inferer's default phi is used when the call does not give one
    default = ConditionalDiffusionInferer(DDPMScheduler(1000), null_class_label=2, guidance_rescale=1.0)
    with torch.no_grad():
        assert torch.allclose(default.guided_prediction(net, x, t, class_labels=y, guidance_scale=5.0), phi1)


def test_rescale_guidance_function():
    g = torch.Generator().manual_seed(0)
    cond, guided = torch.randn(4, 2, 5, 5, generator=g), 3 * torch.randn(4, 2, 5, 5, generator=g) + 1
    out = rescale_guidance(guided, cond, 1.0)
    assert torch.allclose(out.std(dim=(1, 2, 3)), cond.std(dim=(1, 2, 3)), rtol=1e-5)
    assert torch.equal(rescale_guidance(guided, cond, 0.0), guided)
    with pytest.raises(ValueError, match="guidance_rescale"):
        rescale_guidance(guided, cond, 1.5)
    with pytest.raises(ValueError, match="shapes differ"):
        rescale_guidance(guided, cond[:2], 0.5)


@pytest.mark.parametrize("scheduler_cls", [DDPMScheduler, DDIMScheduler])
def test_sampling_with_guidance_and_rescale(scheduler_cls):
    net = _wrapper_net("cross_attention")
    sched = scheduler_cls(num_train_timesteps=100, schedule="cosine", prediction_type="v_prediction")
    sched.set_timesteps(4)
    inferer = ConditionalDiffusionInferer(sched, null_class_label=2)

    def run(w, phi, labels=(0, 1)):
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(2, 1, 8, 8, generator=g)
        return inferer.sample(noise, net, verbose=False, class_labels=torch.tensor(labels), generator=g,
                              guidance_scale=w, guidance_rescale=phi)  # fmt: skip

    base = run(1.0, 0.0)
    assert base.shape == (2, 1, 8, 8) and torch.isfinite(base).all()
    assert torch.equal(run(1.0, 0.7), base)  # at w = 1 the rescale has no effect
    guided, rescaled = run(4.0, 0.0), run(4.0, 0.7)
    assert torch.isfinite(guided).all() and torch.isfinite(rescaled).all()
    assert not torch.allclose(guided, base, atol=1e-4) and not torch.allclose(rescaled, guided, atol=1e-4)
    assert torch.equal(run(4.0, 0.7), rescaled)  # reproducible
    with pytest.raises(ValueError, match="guidance_rescale"):
        run(4.0, -0.1)


def test_guidance_rescale_is_validated():
    with pytest.raises(ValueError, match="guidance_rescale"):
        ConditionalDiffusionInferer(DDPMScheduler(10), guidance_rescale=2.0)
    inferer = ConditionalDiffusionInferer(DDPMScheduler(10), null_class_label=2)
    x, t, y = _inputs()
    with pytest.raises(ValueError, match="guidance_rescale"):
        inferer.guided_prediction(_wrapper_net(), x, t, class_labels=y, guidance_scale=2.0, guidance_rescale=1.1)


class _TwoGaussians(torch.nn.Module):
    """The exact noise prediction for data N(-0.5, 0.2^2) (class 0) and N(0.5, 0.2^2) (class 1); the null class 2 is
    their equal mixture (what condition dropout trains)."""

    means, s = (-0.5, 0.5), 0.2

    def __init__(self, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.abar = alphas_cumprod.double()

    def forward(self, x, timesteps, context=None, class_labels=None):
        abar = self.abar[timesteps.long()].view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        a, sg = abar.sqrt(), (1 - abar).sqrt()
        var = a * a * self.s**2 + sg * sg
        eps = [sg * (x - a * m) / var for m in self.means]
        log_p = [-((x - a * m) ** 2) / (2 * var) for m in self.means]
        w0 = torch.sigmoid(log_p[0] - log_p[1])
        mixture = w0 * eps[0] + (1 - w0) * eps[1]
        labels = class_labels.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(labels == 0, eps[0], torch.where(labels == 1, eps[1], mixture))


@pytest.mark.parametrize("kind", ["ddim", "dpmpp_2m", "dpmpp_3m", "unipc", "dpmpp_2m_sde"])
def test_guided_sampling_with_every_sampler(kind):
    """With the exact conditional network, w = 1 samples each class's distribution in 20 steps; guidance w = 3
    moves the classes apart and narrows them, as classifier-free guidance does."""
    from medsyn_monai.networks.schedulers import sampling_scheduler

    scheduler = sampling_scheduler(kind, 1000, clip_sample=False, timestep_spacing="logsnr")
    scheduler.set_timesteps({"ddim": 200, "dpmpp_2m_sde": 50}.get(kind, 20))
    network = _TwoGaussians(scheduler.alphas_cumprod)
    inferer = ConditionalDiffusionInferer(scheduler, null_class_label=2)
    labels = torch.tensor([0, 1] * 2000)
    noise = torch.randn(len(labels), 1, 1, 1, generator=torch.Generator().manual_seed(0))
    stats = {}
    for w in (1.0, 3.0):
        generator = torch.Generator().manual_seed(1)  # the stochastic sampler's noise
        x = inferer.sample(
            noise, network, scheduler, verbose=False, class_labels=labels, guidance_scale=w, generator=generator
        ).flatten()
        stats[w] = [(float(x[labels == c].mean()), float(x[labels == c].std())) for c in (0, 1)]
    for (mean, std), target in zip(stats[1.0], (-0.5, 0.5), strict=True):
        assert abs(mean - target) < 0.02 and abs(std - 0.2) < 0.02
    assert stats[3.0][1][0] - stats[3.0][0][0] > 1.05 and max(stats[3.0][0][1], stats[3.0][1][1]) < 0.19
