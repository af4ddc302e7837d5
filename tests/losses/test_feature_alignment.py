"""FeatureAlignmentLoss: the cosine loss through a trainable projection, both directions, centring."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medsyn_monai.losses import FeatureAlignmentLoss


@pytest.mark.parametrize("direction", ["expert_to_diffusion", "diffusion_to_expert"])
def test_loss_value_and_projections(direction):
    torch.manual_seed(0)
    align = FeatureAlignmentLoss(expert_dim=6, diffusion_dim=4, direction=direction)
    proj = align.projection
    assert isinstance(proj, nn.Linear) and sorted(align.state_dict()) == ["projection.bias", "projection.weight"]
    assert (proj.in_features, proj.out_features) == ((6, 4) if direction == "expert_to_diffusion" else (4, 6))
    diff, expert = torch.randn(5, 4, 2, 2, requires_grad=True), torch.randn(5, 6)
    loss = align(diff, expert)
    d = diff.mean(dim=(2, 3))
    a, b = (proj(expert), d) if direction == "expert_to_diffusion" else (proj(d), expert)
    assert torch.allclose(loss, (1 - F.cosine_similarity(a, b, dim=1)).mean(), atol=1e-6)
    assert 0.0 <= loss.item() <= 2.0
    loss.backward()
    assert diff.grad.abs().sum() > 0 and proj.weight.grad.abs().sum() > 0

    mlp = FeatureAlignmentLoss(6, 4, projection="mlp", direction=direction, hidden_dim=10)
    layers = list(mlp.projection)
    assert [type(m) for m in layers] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]
    assert layers[0].out_features == layers[2].in_features == layers[2].out_features == 10
    assert mlp(diff, expert).shape == ()
    custom = FeatureAlignmentLoss(6, 4, projection=nn.Linear(6, 4, bias=False))
    assert custom(diff, expert).shape == () and sorted(custom.state_dict()) == ["projection.weight"]


def test_centering_removes_the_constant_bias_shortcut():
    """A projection that outputs a constant vector (its bias) along the mean of the U-Net features makes the plain
    cosine loss vanish without any per-image information; centred over the batch, that solution scores 1."""
    torch.manual_seed(0)
    common = torch.randn(8)
    diffusion = common + 0.01 * torch.randn(4, 8)  # features dominated by a component shared by every image
    expert = torch.randn(4, 6)
    plain = FeatureAlignmentLoss(6, 8)
    centred = FeatureAlignmentLoss(6, 8, center="true")  # command-line spelling
    for loss in (plain, centred):
        with torch.no_grad():
            loss.projection.weight.zero_()
            loss.projection.bias.copy_(common)
    assert plain(diffusion, expert).item() < 1e-3
    assert centred(diffusion, expert).item() == pytest.approx(1.0, abs=1e-4)
    # a projection that carries the per-image variation is rewarded by the centred loss
    exact = FeatureAlignmentLoss(8, 8, center=True, direction="diffusion_to_expert")
    with torch.no_grad():
        exact.projection.weight.copy_(torch.eye(8))
        exact.projection.bias.fill_(5.0)  # a constant offset does not matter once centred
    target = torch.randn(6, 8)
    assert exact(target + 3.0, target).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        centred(diffusion[:1], expert[:1])
    assert "center=True" in repr(centred)


def test_errors():
    with pytest.raises(ValueError, match="projection"):
        FeatureAlignmentLoss(4, 4, projection="conv")
    with pytest.raises(ValueError, match="direction"):
        FeatureAlignmentLoss(4, 4, direction="sideways")
    with pytest.raises(ValueError, match="positive"):
        FeatureAlignmentLoss(0, 4)
    with pytest.raises(ValueError, match="center"):
        FeatureAlignmentLoss(4, 4, center="maybe")
    loss = FeatureAlignmentLoss(6, 4)
    with pytest.raises(ValueError, match="3 channels, expected 4"):
        loss(torch.randn(2, 3, 2, 2), torch.randn(2, 6))
    with pytest.raises(ValueError, match="5 values, expected 6"):
        loss(torch.randn(2, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match="2 diffusion feature vectors but 3"):
        loss(torch.randn(2, 4), torch.randn(3, 6))


def _per_location(module, features):
    """``module`` applied to the channel vector of every location of a ``(B, C, h, w)`` map."""
    return module(features.movedim(1, -1)).movedim(-1, 1)


@pytest.mark.parametrize("direction", ["expert_to_diffusion", "diffusion_to_expert"])
@pytest.mark.parametrize("projection", ["linear", "mlp", "conv"])
def test_spatial_shapes_values_and_gradients(direction, projection):
    """Spatial alignment: maps of the U-Net's size in both directions, the expert map resized (adaptive average
    pooling when larger, bilinear interpolation when smaller), the mean over images and locations of 1 - cos."""
    torch.manual_seed(0)
    align = FeatureAlignmentLoss(6, 4, projection=projection, hidden_dim=5, direction=direction, spatial=True,
                                 spatial_norm=False)  # fmt: skip
    assert align.spatial and not align.spatial_norm and "spatial=True" in repr(align)
    diff = torch.randn(3, 4, 8, 8, requires_grad=True)
    for expert, resized in (
        (torch.randn(3, 6, 16, 16), None),  # larger: 2x2 block means
        (torch.randn(3, 6, 2, 2), None),  # smaller: bilinear
        (torch.randn(3, 6, 8, 8), None),  # same size: as is
    ):
        if expert.shape[-1] > 8:
            resized = F.avg_pool2d(expert, 2)
        elif expert.shape[-1] < 8:
            resized = F.interpolate(expert, size=(8, 8), mode="bilinear", align_corners=False)
        else:
            resized = expert
        projected, target = align.project(diff, expert)
        channels = 4 if direction == "expert_to_diffusion" else 6
        assert projected.shape == target.shape == (3, channels, 8, 8)
        a = resized if direction == "expert_to_diffusion" else diff
        manual = align.projection(a) if projection == "conv" else _per_location(align.projection, a)
        b = diff if direction == "expert_to_diffusion" else resized
        assert torch.allclose(projected, manual, atol=1e-5) and torch.allclose(target, b, atol=1e-6)
        loss = align(diff, expert)
        assert torch.allclose(loss, (1 - F.cosine_similarity(manual, b, dim=1)).mean(), atol=1e-5)
    loss.backward()
    assert diff.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in align.projection.parameters())


def test_mlp_is_repas_three_layers_and_conv_is_one_3x3_convolution():
    mlp = FeatureAlignmentLoss(6, 4, projection="mlp", spatial=True)
    assert [type(m) for m in mlp.projection] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]
    conv = FeatureAlignmentLoss(6, 4, projection="conv", spatial=True, direction="diffusion_to_expert")
    assert isinstance(conv.projection, nn.Conv2d) and conv.projection.weight.shape == (6, 4, 3, 3)
    assert conv.spatial_norm and not FeatureAlignmentLoss(6, 4, spatial=True).spatial_norm  # the defaults
    assert not FeatureAlignmentLoss(6, 4, projection="conv", spatial="true", spatial_norm="false").spatial_norm
    assert FeatureAlignmentLoss(6, 4, spatial=True, spatial_norm="null").spatial_norm is False
    assert FeatureAlignmentLoss(6, 4, spatial=True, spatial_norm=True).spatial_norm
    volume = FeatureAlignmentLoss(6, 4, projection="conv", spatial=True, spatial_dims=3)
    assert isinstance(volume.projection, nn.Conv3d)
    assert volume(torch.randn(2, 4, 4, 4, 4), torch.randn(2, 6, 2, 2, 2)).shape == ()
    # the pooled default is untouched: the same modules and state_dict keys as before
    pooled = FeatureAlignmentLoss(6, 4)
    assert not pooled.spatial and not pooled.spatial_norm and "spatial" not in repr(pooled)


def test_spatial_norm_and_centring_remove_the_constant_shortcut():
    """A projection whose output is one constant vector (its bias) along the mean of the U-Net features makes the plain
    spatial loss vanish; with batch centring or spatial normalisation that output scores exactly 1."""
    torch.manual_seed(0)
    common = torch.randn(8)
    diffusion = common[None, :, None, None] + 0.01 * torch.randn(4, 8, 6, 6)
    expert = torch.randn(4, 6, 3, 3)
    losses = {
        "plain": FeatureAlignmentLoss(6, 8, spatial=True),
        "center": FeatureAlignmentLoss(6, 8, spatial=True, center=True),
        "spatial_norm": FeatureAlignmentLoss(6, 8, spatial=True, spatial_norm=True),
        "conv": FeatureAlignmentLoss(6, 8, projection="conv", spatial=True),  # spatial_norm by default
    }
    for loss in losses.values():
        with torch.no_grad():
            loss.projection.weight.zero_()
            loss.projection.bias.copy_(common)
    assert losses["plain"](diffusion, expert).item() < 1e-3
    for name in ("center", "spatial_norm", "conv"):
        assert losses[name](diffusion, expert).item() == pytest.approx(1.0, abs=1e-5), name
    # a projection that carries the spatial pattern is rewarded: per-image offsets do not matter once normalised
    exact = FeatureAlignmentLoss(8, 8, spatial=True, spatial_norm=True, direction="diffusion_to_expert")
    with torch.no_grad():
        exact.projection.weight.copy_(torch.eye(8))
        exact.projection.bias.fill_(5.0)
    pattern = torch.randn(3, 8, 4, 4)
    pattern = (pattern - pattern.mean((2, 3), keepdim=True)) / pattern.std((2, 3), keepdim=True, correction=0)
    assert exact(pattern + torch.randn(3, 1, 1, 1), pattern).item() == pytest.approx(0.0, abs=1e-5)
    assert exact(pattern, pattern.flip(-1)).item() > 0.5  # the wrong layout is not


def test_batch_std_shows_a_collapse():
    assert FeatureAlignmentLoss.batch_std(torch.ones(4, 3, 2, 2) * 7.0).item() == 0.0
    x = torch.randn(5, 3)
    assert FeatureAlignmentLoss.batch_std(x).item() == pytest.approx(x.std(0).mean().item())
    with pytest.raises(ValueError, match="at least 2 images"):
        FeatureAlignmentLoss.batch_std(torch.randn(1, 3))


def test_spatial_errors():
    with pytest.raises(ValueError, match="projection='conv'.*spatial=True.*--align_spatial true"):
        FeatureAlignmentLoss(4, 4, projection="conv")
    with pytest.raises(ValueError, match="spatial_norm=True.*needs spatial=True"):
        FeatureAlignmentLoss(4, 4, spatial_norm=True)
    with pytest.raises(ValueError, match="spatial_norm"):
        FeatureAlignmentLoss(4, 4, spatial=True, spatial_norm="maybe")
    with pytest.raises(ValueError, match="spatial_dims"):
        FeatureAlignmentLoss(4, 4, projection="conv", spatial=True, spatial_dims=4)
    loss = FeatureAlignmentLoss(6, 4, spatial=True)
    with pytest.raises(ValueError, match="expert's feature map.*FeatureExtractor.feature_map"):
        loss(torch.randn(2, 4, 4, 4), torch.randn(2, 6))  # pooled expert features
    with pytest.raises(ValueError, match="U-Net's feature map"):
        loss(torch.randn(2, 4), torch.randn(2, 6))
    with pytest.raises(ValueError, match="5 channels, expected 6"):
        loss(torch.randn(2, 4, 4, 4), torch.randn(2, 5, 2, 2))
    with pytest.raises(ValueError, match="3 channels, expected 4"):
        loss(torch.randn(2, 3, 4, 4), torch.randn(2, 6, 2, 2))
    with pytest.raises(ValueError, match="2 diffusion feature maps but 3"):
        loss(torch.randn(2, 4, 4, 4), torch.randn(3, 6, 2, 2))
    # one expert location leaves nothing after the spatial normalisation; without it the map is usable
    normed = FeatureAlignmentLoss(6, 4, projection="conv", spatial=True)
    with pytest.raises(ValueError, match="more than one location.*expert_input_size.*spatial_norm=False"):
        normed(torch.randn(2, 4, 4, 4), torch.randn(2, 6, 1, 1))
    assert FeatureAlignmentLoss(6, 4, spatial=True)(torch.randn(2, 4, 4, 4), torch.randn(2, 6, 1, 1)).shape == ()
