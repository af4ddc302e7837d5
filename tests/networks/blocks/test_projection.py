"""feature_projection: linear, MLP or convolutional heads, the default MLP width, and the errors for bad kinds and
dimensions.

Its use inside the alignment loss (``hidden_dim``, gradients) is tested in tests/losses/test_feature_alignment.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medsyn_monai.networks.blocks import feature_projection
from medsyn_monai.utils.enums import AlignmentProjection


@pytest.mark.parametrize("in_dim, out_dim", [(12, 5), (5, 12)])
def test_mlp_default_width_is_the_larger_dimension(in_dim, out_dim):
    mlp = feature_projection(in_dim, out_dim, AlignmentProjection.MLP)
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(in_dim, 12), (12, 12), (12, out_dim)]
    torch.manual_seed(0)
    x = torch.randn(3, in_dim)
    assert mlp(x).shape == (3, out_dim)
    # SiLU between the layers: not an affine map (an affine f has f(x) + f(-x) == 2 f(0))
    assert not torch.allclose(mlp(x) + mlp(-x), 2 * mlp(torch.zeros(1, in_dim)), atol=1e-4)


def test_linear_is_one_layer_of_the_given_size():
    for kind in ("linear", AlignmentProjection.LINEAR):
        proj = feature_projection(7, 3, kind, hidden_dim=100)  # hidden_dim concerns the MLP only
        assert type(proj) is nn.Linear and (proj.in_features, proj.out_features) == (7, 3) and proj.bias is not None
    assert sum(p.numel() for p in feature_projection(7, 3).parameters()) == 7 * 3 + 3


def test_conv_is_one_3x3_convolution_of_a_map():
    proj = feature_projection(7, 3, "conv", hidden_dim=100)
    assert type(proj) is nn.Conv2d and proj.kernel_size == (3, 3) and proj.padding == (1, 1)
    assert proj(torch.randn(2, 7, 5, 4)).shape == (2, 3, 5, 4)  # same spatial size
    assert type(feature_projection(7, 3, AlignmentProjection.CONV, spatial_dims=3)) is nn.Conv3d
    with pytest.raises(ValueError, match="spatial_dims of a 'conv' projection must be 1, 2 or 3, got 4"):
        feature_projection(7, 3, "conv", spatial_dims=4)


def test_errors_name_the_bad_value():
    for kind in ("convolution", "MLP", None):
        expected = rf"^projection must be one of \['linear', 'mlp', 'conv'\], got {kind!r}\.$"
        with pytest.raises(ValueError, match=expected):
            feature_projection(4, 4, kind)
    for dims in [(0, 4, None), (4, -1, None), (4, 4, 0)]:
        with pytest.raises(ValueError, match="feature dimensions must be positive") as info:
            feature_projection(dims[0], dims[1], "mlp", hidden_dim=dims[2])
        assert f"in {dims[0]}, out {dims[1]}, hidden {dims[2]}" in str(info.value)
