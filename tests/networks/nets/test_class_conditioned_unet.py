"""ClassConditionedDiffusionUNet: class labels as an embedding or a cross-attention token, on both backbones."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import SpatialTransformer

from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet, LightweightDiffusionUNet
from tests.networks.nets._helpers import randomise_zero_weights

TINY_LW = {"channels": (8, 16, 16), "norm_num_groups": 4, "num_head_channels": 8}


TINY_MONAI = {"channels": (8, 16, 16), "norm_num_groups": 4, "num_res_blocks": 1,
              "attention_levels": (False, False, True), "num_head_channels": 8}  # fmt: skip


BACKBONES = {"lightweight": TINY_LW, "monai": TINY_MONAI}


def _wrapper(arch: str, mode: str, num_classes: int = 3, seed: int = 0) -> ClassConditionedDiffusionUNet:
    torch.manual_seed(seed)
    net = ClassConditionedDiffusionUNet(arch, mode, num_classes=num_classes, cross_attention_dim=12,
                                        network_kwargs=BACKBONES[arch])  # fmt: skip
    return randomise_zero_weights(net)


@pytest.mark.parametrize("arch", ["lightweight", "monai"])
@pytest.mark.parametrize("mode", ["embedding", "cross_attention"])
def test_wrapper_both_ways_on_both_backbones(arch, mode):
    net = _wrapper(arch, mode)
    assert net.num_classes == 3 and net.null_class_label == 3
    assert net.in_channels == 1 and net.out_channels == 1
    assert isinstance(net.backbone, DiffusionModelUNet if arch == "monai" else LightweightDiffusionUNet)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([5, 5, 5, 5])
    with torch.no_grad():
        out = net(x, t, class_labels=torch.tensor([0, 1, 2, 3]))  # the null label 3 is a valid input
        assert out.shape == x.shape and torch.isfinite(out).all()
        same_x = x[:1].expand(4, -1, -1, -1)
        per_label = net(same_x, t, class_labels=torch.tensor([0, 1, 2, 3]))
    # the same noisy image gives a different prediction for each label, the null label included
    diffs = [(per_label[i] - per_label[j]).abs().max().item() for i in range(4) for j in range(i + 1, 4)]
    assert min(diffs) > 1e-5
    backbone_embedding = getattr(net.backbone, "class_embedding", None)
    if mode == "embedding":
        assert net.label_embedding is None and backbone_embedding.num_embeddings == 4
        assert not any(isinstance(m, SpatialTransformer) for m in net.backbone.modules()) or arch == "monai"
    else:
        assert backbone_embedding is None  # the label reaches the backbone only as a cross-attention token
        assert net.label_embedding.num_embeddings == 4 and net.label_embedding.embedding_dim == 12
        assert net.label_tokens(torch.tensor([0, 3])).shape == (2, 1, 12)
        assert any(isinstance(m, SpatialTransformer) for m in net.backbone.modules())


@pytest.mark.parametrize("arch", ["lightweight", "monai"])
@pytest.mark.parametrize("mode", ["embedding", "cross_attention"])
def test_wrapper_state_dict_round_trip(arch, mode):
    net = _wrapper(arch, mode, seed=0)
    other = _wrapper(arch, mode, seed=7)
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 900]), torch.tensor([2, 0])
    with torch.no_grad():
        assert not torch.allclose(net(x, t, class_labels=y), other(x, t, class_labels=y))
        other.load_state_dict(net.state_dict())
        assert torch.equal(net(x, t, class_labels=y), other(x, t, class_labels=y))
    keys = list(net.state_dict())
    assert all(k.startswith(("backbone.", "label_embedding.")) for k in keys)
    assert ("label_embedding.weight" in keys) == (mode == "cross_attention")


def test_cross_attention_label_token_is_trained():
    """The label embedding receives gradients once the zero-initialised attention output starts to move."""
    torch.manual_seed(0)
    net = ClassConditionedDiffusionUNet("lightweight", "cross_attention", 2, 12, TINY_LW).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([10, 20, 30, 40]), torch.tensor([0, 1, 2, 1])
    before = net.label_embedding.weight.detach().clone()
    for _ in range(3):
        loss = (net(x, t, class_labels=y) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before, net.label_embedding.weight)


def test_extra_context_tokens_follow_the_label_token():
    net = _wrapper("lightweight", "cross_attention")
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1])
    extra = torch.randn(2, 2, 12)
    with torch.no_grad():
        expected = net.backbone(x, t, context=torch.cat([net.label_tokens(y), extra], dim=1))
        assert torch.equal(net(x, t, context=extra, class_labels=y), expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"architecture": "unet"}, "architecture"),
        ({"class_conditioning": "concat"}, "class_conditioning"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": None}, "unlabelled"),
        ({"cross_attention_dim": 0}, "cross_attention_dim"),
        ({"network_kwargs": {**TINY_LW, "num_class_embeds": 3}}, "must not set"),
        ({"network_kwargs": [1, 2]}, "mapping"),
    ],
)
def test_wrapper_bad_arguments(kwargs, match):
    args = {"architecture": "lightweight", "class_conditioning": "embedding", "num_classes": 2,
            "network_kwargs": TINY_LW, **kwargs}  # fmt: skip
    with pytest.raises(ValueError, match=match):
        ClassConditionedDiffusionUNet(**args)


def test_wrapper_needs_one_label_per_image():
    net = _wrapper("lightweight", "embedding")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="null label"):
        net(x, t)
    with pytest.raises(ValueError, match="3 class labels for a batch of 2"):
        net(x, t, class_labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"must be in \[0, 3\].*got \[0, 4\]"):  # 3 classes: 3 is the null label
        net(x, t, class_labels=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"got \[-1, 1\]"):
        net(x, t, class_labels=torch.tensor([-1, 1]))
