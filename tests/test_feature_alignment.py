"""FeatureAlignmentLoss: hook points, pooling, projection, frozen expert, expert inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from medsyn_monai.losses import FeatureAlignmentLoss
from medsyn_monai.networks.nets import ExpertClassifier, LightweightDiffusionUNet

SHAPE = (1, 16, 16)


def _lightweight(num_classes=None):
    torch.manual_seed(0)
    return LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4, num_class_embeds=num_classes)


def _monai(num_classes=None):
    torch.manual_seed(0)
    return DiffusionModelUNet(2, 1, 1, channels=(8, 16), attention_levels=(False, False), num_res_blocks=1,
                              norm_num_groups=4, num_class_embeds=num_classes)  # fmt: skip


def _expert(in_channels=1, image_size=16):
    torch.manual_seed(1)
    return ExpertClassifier("resnet18", in_channels=in_channels, num_classes=3, image_size=image_size)


class RecordingExpert(nn.Module):
    """A small real expert (conv + pooling) that records the images it was shown."""

    def __init__(self, in_channels=1, image_size=16, feature_dim=6):
        super().__init__()
        self.in_channels, self.image_size, self.feature_dim = in_channels, (image_size, image_size), feature_dim
        self.conv = nn.Conv2d(in_channels, feature_dim, 3, padding=1)
        self.norm = nn.BatchNorm2d(feature_dim)
        self.seen: list[torch.Tensor] = []

    def features(self, x):
        self.seen.append(x.detach().clone())
        return self.norm(self.conv(x)).mean(dim=(2, 3))


class Wrapper(nn.Module):
    """A class-conditioning wrapper around a U-Net kept in ``.backbone`` (like ClassConditionedDiffusionUNet)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.num_classes = 2
        self.embed = nn.Embedding(3, 4)

    def forward(self, x, timesteps, context=None, class_labels=None):
        return self.backbone(x, timesteps) + 0 * self.embed(class_labels).sum()


def _reference_features(network, take_output_of, x, t, **kwargs):
    """Pooled features seen by an independent forward hook on ``take_output_of`` (first tensor of the output)."""
    store = {}

    def hook(module, args, out):
        store["f"] = out[0] if isinstance(out, tuple) else out

    handle = dict(network.named_modules())[take_output_of].register_forward_hook(hook)
    with torch.no_grad():
        network(x, t, **kwargs)
    handle.remove()
    return store["f"].float().mean(dim=(2, 3))


@pytest.mark.parametrize(
    "factory, default_source, named, named_channels",
    [
        # Lightweight: default = input of the bottleneck = output of the last stride-2 convolution
        (_lightweight, "downsamplers.0", "down_blocks.0.1", 8),
        # MONAI: default = input of middle_block = output of the last down block
        (_monai, "down_blocks.1", "down_blocks.0", 8),
    ],
)
def test_hook_default_and_named_points(factory, default_source, named, named_channels):
    net = factory()
    x, t = torch.randn(3, *SHAPE), torch.tensor([1, 50, 900])
    align = FeatureAlignmentLoss(_expert(), net, image_shape=SHAPE)
    assert align.diffusion_dim == 16 and align.expert_dim == 512
    assert not net._forward_pre_hooks and align.recorded_features is None  # the dry run's hooks are gone
    with align.attached(net):
        assert align.is_attached and align.attached_network is net
        with torch.no_grad():
            net(x, t)
        feats = align.recorded_features
        assert feats.shape == (3, 16)
        assert torch.allclose(feats, _reference_features(net, default_source, x, t), atol=1e-6)
        assert torch.equal(align.recorded_input, x)
    assert not align.is_attached and align.recorded_features is None
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in net.modules())

    named_align = FeatureAlignmentLoss(_expert(), net, image_shape=SHAPE, module_name=named)
    assert named_align.diffusion_dim == named_channels
    with named_align.attached(net), torch.no_grad():
        net(x, t)
        assert named_align.recorded_features.shape == (3, named_channels)
        ref = _reference_features(net, named, x, t)
        assert torch.allclose(named_align.recorded_features, ref, atol=1e-6)


def test_wrapper_and_class_conditional_dry_run():
    inner = _monai()
    wrapped = Wrapper(inner)
    align = FeatureAlignmentLoss(_expert(), wrapped, image_shape=SHAPE)  # needs class labels for the dry run
    assert align.diffusion_dim == 16
    x, t = torch.randn(2, *SHAPE), torch.tensor([3, 4])
    with align.attached(wrapped), torch.no_grad():
        wrapped(x=x, timesteps=t, class_labels=torch.tensor([0, 2]))
        ref = _reference_features(inner, "down_blocks.1", x, t)
        assert torch.allclose(align.recorded_features, ref, atol=1e-6)
    named = FeatureAlignmentLoss(_expert(), wrapped, image_shape=SHAPE, module_name="backbone.middle_block")
    assert named.diffusion_dim == 16
    conditional = FeatureAlignmentLoss(_expert(), _lightweight(num_classes=3), image_shape=SHAPE)
    assert conditional.diffusion_dim == 16


def test_unknown_module_and_bad_arguments():
    net = _lightweight()
    with pytest.raises(ValueError, match="unknown module_name 'nope'.*down_blocks"):
        FeatureAlignmentLoss(_expert(), net, image_shape=SHAPE, module_name="nope")
    with pytest.raises(ValueError, match="expert_input"):
        FeatureAlignmentLoss(_expert(), net, image_shape=SHAPE, expert_input="blurry")
    with pytest.raises(ValueError, match="projection"):
        FeatureAlignmentLoss(_expert(), net, image_shape=SHAPE, projection="conv")
    with pytest.raises(ValueError, match="direction"):
        FeatureAlignmentLoss(_expert(), net, image_shape=SHAPE, direction="sideways")
    with pytest.raises(ValueError, match="diffusion_dim"):
        FeatureAlignmentLoss(_expert())
    with pytest.raises(ValueError, match="features"):
        FeatureAlignmentLoss(nn.Linear(2, 2), diffusion_dim=4)
    with pytest.raises(ValueError, match="no default alignment point"):
        FeatureAlignmentLoss(_expert(), nn.Sequential(nn.Conv2d(1, 1, 1)), image_shape=SHAPE)
    align = FeatureAlignmentLoss(_expert(), diffusion_dim=16)  # explicit dimensions: no network needed
    with pytest.raises(RuntimeError, match="no diffusion features recorded"):
        align.recorded_loss()


def test_expert_is_frozen_and_outside_the_module_tree():
    expert = _expert()
    expert.train()
    align = FeatureAlignmentLoss(expert, _lightweight(), image_shape=SHAPE)
    assert not expert.training and not any(p.requires_grad for p in expert.parameters())
    assert [n for n, _ in align.named_parameters()] == ["projection.weight", "projection.bias"]
    assert sorted(align.state_dict()) == ["projection.bias", "projection.weight"]
    align.train(True)
    assert align.training and align.projection.training and not align.expert.training
    align.double()  # .to()/.double() move the expert along
    assert next(expert.parameters()).dtype == torch.float64 and align.projection.weight.dtype == torch.float64


@pytest.mark.parametrize("direction", ["expert_to_diffusion", "diffusion_to_expert"])
def test_loss_value_and_projections(direction):
    expert = RecordingExpert(feature_dim=6)
    align = FeatureAlignmentLoss(expert, diffusion_dim=4, direction=direction)
    proj = align.projection
    assert isinstance(proj, nn.Linear)
    assert (proj.in_features, proj.out_features) == ((6, 4) if direction == "expert_to_diffusion" else (4, 6))
    diff, images = torch.randn(5, 4, 2, 2), torch.randn(5, 1, 16, 16)
    loss = align(diff, images)
    with torch.no_grad():
        e = expert.norm(expert.conv(images)).mean(dim=(2, 3))
    d = diff.mean(dim=(2, 3))
    a, b = (proj(e), d) if direction == "expert_to_diffusion" else (proj(d), e)
    assert torch.allclose(loss, (1 - F.cosine_similarity(a, b, dim=1)).mean(), atol=1e-6)
    assert 0.0 <= loss.item() <= 2.0

    mlp = FeatureAlignmentLoss(expert, diffusion_dim=4, projection="mlp", direction=direction, hidden_dim=10)
    layers = list(mlp.projection)
    assert [type(m) for m in layers] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]
    assert layers[0].out_features == layers[2].in_features == layers[2].out_features == 10
    assert mlp(diff, images).shape == ()


def test_expert_images_channels_and_size():
    rgb_expert = RecordingExpert(in_channels=3, image_size=8)
    align = FeatureAlignmentLoss(rgb_expert, diffusion_dim=4)
    grey = torch.rand(2, 1, 16, 16)
    seen = align.expert_images(grey)
    assert seen.shape == (2, 3, 8, 8) and torch.equal(seen[:, 0], seen[:, 2])
    assert torch.allclose(seen[:, :1], F.interpolate(grey, size=(8, 8), mode="bilinear", antialias=True))
    grey_expert = RecordingExpert(in_channels=1, image_size=16)
    rgb = torch.rand(2, 3, 16, 16)
    seen = FeatureAlignmentLoss(grey_expert, diffusion_dim=4).expert_images(rgb)
    expected = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert seen.shape == (2, 1, 16, 16) and torch.allclose(seen[:, 0], expected, atol=1e-6)


@pytest.mark.parametrize("expert_input", ["noisy", "clean"])
def test_recorded_loss_feeds_noisy_or_clean_images(expert_input):
    net, expert = _lightweight(), RecordingExpert()
    align = FeatureAlignmentLoss(expert, net, image_shape=SHAPE, expert_input=expert_input)
    expert.seen.clear()
    x0 = torch.rand(2, *SHAPE) * 2 - 1
    xt = 0.5 * x0 + 0.8 * torch.randn_like(x0)
    with align.attached(net):
        net(xt, torch.tensor([500, 600]))
        loss = align.recorded_loss(clean_images=x0)
    assert torch.equal(expert.seen[-1], xt if expert_input == "noisy" else x0)
    loss.backward()  # differentiable with respect to the network and the projection
    assert align.projection.weight.grad.abs().sum() > 0
    assert net.stem.conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in expert.parameters())
    assert align.recorded_features is None  # consumed
    if expert_input == "clean":
        with align.attached(net):
            net(xt, torch.tensor([1, 2]))
            with pytest.raises(ValueError, match="clean images"):
                align.recorded_loss()


def test_centering_removes_the_constant_bias_shortcut():
    """A projection that outputs a constant vector (its bias) along the mean of the U-Net features makes the plain
    cosine loss vanish without any per-image information; centred over the batch, that solution scores 1."""
    torch.manual_seed(0)
    common = torch.randn(8)
    diffusion = common + 0.01 * torch.randn(4, 8)  # features dominated by a component shared by every image
    images = torch.randn(4, 1, 16, 16)
    plain = FeatureAlignmentLoss(RecordingExpert(), diffusion_dim=8)
    centred = FeatureAlignmentLoss(RecordingExpert(), diffusion_dim=8, center=True)
    for loss in (plain, centred):
        with torch.no_grad():
            loss.projection.weight.zero_()
            loss.projection.bias.copy_(common)
    assert plain(diffusion, images).item() < 1e-3
    assert centred(diffusion, images).item() == pytest.approx(1.0, abs=1e-4)
    # a projection that carries the per-image variation is rewarded by the centred loss
    exact = FeatureAlignmentLoss(RecordingExpert(feature_dim=8), diffusion_dim=8, center=True,
                                 direction="diffusion_to_expert")  # fmt: skip
    with torch.no_grad():
        exact.projection.weight.copy_(torch.eye(8))
        exact.projection.bias.fill_(5.0)  # a constant offset does not matter once centred
    expert_images = torch.randn(6, 1, 16, 16)
    target = exact.expert_features(expert_images)
    assert exact(target + 3.0, expert_images).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        centred(diffusion[:1], images[:1])
    assert "center=True" in repr(centred)
