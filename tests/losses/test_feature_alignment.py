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
