"""Class conditioning both ways: cross-attention in LightweightDiffusionUNet and ClassConditionedDiffusionUNet."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import SpatialTransformer

from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet, LightweightDiffusionUNet

# state_dict of LightweightDiffusionUNet(channels=(4, 8), convs_per_level=1, norm_num_groups=2, num_class_embeds=3)
# as written by the attention-free network before cross-attention existed: old checkpoints must keep loading
LEGACY_KEYS = {
    "time_embed.0.weight": (16, 4), "time_embed.0.bias": (16,), "time_embed.2.weight": (16, 16),
    "time_embed.2.bias": (16,), "class_embedding.weight": (3, 16),
    "stem.conv.weight": (4, 1, 3, 3), "stem.conv.bias": (4,), "stem.norm.weight": (4,), "stem.norm.bias": (4,),
    "stem.emb_proj.weight": (4, 16), "stem.emb_proj.bias": (4,),
    "down_blocks.0.0.conv.weight": (4, 4, 3, 3), "down_blocks.0.0.conv.bias": (4,),
    "down_blocks.0.0.norm.weight": (4,), "down_blocks.0.0.norm.bias": (4,),
    "down_blocks.0.0.emb_proj.weight": (4, 16), "down_blocks.0.0.emb_proj.bias": (4,),
    "down_blocks.1.0.conv.weight": (8, 8, 3, 3), "down_blocks.1.0.conv.bias": (8,),
    "down_blocks.1.0.norm.weight": (8,), "down_blocks.1.0.norm.bias": (8,),
    "down_blocks.1.0.emb_proj.weight": (8, 16), "down_blocks.1.0.emb_proj.bias": (8,),
    "downsamplers.0.conv.weight": (8, 4, 3, 3), "downsamplers.0.conv.bias": (8,),
    "downsamplers.0.norm.weight": (8,), "downsamplers.0.norm.bias": (8,),
    "downsamplers.0.emb_proj.weight": (8, 16), "downsamplers.0.emb_proj.bias": (8,),
    "upsamplers.0.conv.weight": (4, 8, 3, 3), "upsamplers.0.conv.bias": (4,),
    "upsamplers.0.norm.weight": (4,), "upsamplers.0.norm.bias": (4,),
    "upsamplers.0.emb_proj.weight": (4, 16), "upsamplers.0.emb_proj.bias": (4,),
    "up_blocks.0.0.conv.weight": (4, 8, 3, 3), "up_blocks.0.0.conv.bias": (4,),
    "up_blocks.0.0.norm.weight": (4,), "up_blocks.0.0.norm.bias": (4,),
    "up_blocks.0.0.emb_proj.weight": (4, 16), "up_blocks.0.0.emb_proj.bias": (4,),
    "out_norm.weight": (4,), "out_norm.bias": (4,), "out_conv.weight": (1, 4, 3, 3), "out_conv.bias": (1,),
}  # fmt: skip

TINY_LW = {"channels": (8, 16, 16), "norm_num_groups": 4, "num_head_channels": 8}
TINY_MONAI = {"channels": (8, 16, 16), "norm_num_groups": 4, "num_res_blocks": 1,
              "attention_levels": (False, False, True), "num_head_channels": 8}  # fmt: skip
BACKBONES = {"lightweight": TINY_LW, "monai": TINY_MONAI}


def _randomise(net: torch.nn.Module) -> torch.nn.Module:
    """Give the zero-initialised output layers weights, so outputs depend on every input (labels included)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0 and p.ndim > 1:
                p.normal_(std=0.2)
    return net.eval()


def _wrapper(arch: str, mode: str, num_classes: int = 3, seed: int = 0) -> ClassConditionedDiffusionUNet:
    torch.manual_seed(seed)
    net = ClassConditionedDiffusionUNet(arch, mode, num_classes=num_classes, cross_attention_dim=12,
                                        network_kwargs=BACKBONES[arch])  # fmt: skip
    return _randomise(net)


# ---------------------------------------------------------------- LightweightDiffusionUNet cross-attention


def test_without_conditioning_the_state_dict_is_unchanged():
    net = LightweightDiffusionUNet(channels=(4, 8), convs_per_level=1, norm_num_groups=2, num_class_embeds=3)
    state = net.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == LEGACY_KEYS
    assert list(state) == list(LEGACY_KEYS)  # same order as well
    assert net.down_attentions is None and net.up_attentions is None and net.attention_levels == (False, False)
    # same seed, same weights whether the new arguments are left out or given as their defaults
    torch.manual_seed(0)
    a = LightweightDiffusionUNet(**TINY_LW).state_dict()
    torch.manual_seed(0)
    b = LightweightDiffusionUNet(**TINY_LW, with_conditioning=False, attention_levels=None).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and list(a) == list(b)


def test_cross_attention_blocks_are_monai_spatial_transformers_at_the_chosen_levels():
    net = LightweightDiffusionUNet(**TINY_LW, with_conditioning=True, cross_attention_dim=12)
    assert net.attention_levels == (False, False, True)  # default: the bottleneck only
    assert sorted(net.down_attentions) == ["2"] and len(net.up_attentions) == 0
    assert isinstance(net.down_attentions["2"], SpatialTransformer)
    block = net.down_attentions["2"].transformer_blocks[0]
    assert block.attn2.to_k.in_features == 12  # keys/values come from the context tokens
    net = LightweightDiffusionUNet(**TINY_LW, with_conditioning=True, cross_attention_dim=12,
                                   attention_levels=(False, True, True))  # fmt: skip
    assert sorted(net.down_attentions) == ["1", "2"] and sorted(net.up_attentions) == ["1"]
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    assert net(x, t, context=torch.randn(2, 3, 12)).shape == x.shape  # any number of tokens


def test_context_changes_the_output_and_reaches_every_attention_level():
    torch.manual_seed(0)
    net = _randomise(LightweightDiffusionUNet(**TINY_LW, with_conditioning=True, cross_attention_dim=12,
                                              attention_levels=(False, True, True)))  # fmt: skip
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    ctx = torch.randn(2, 1, 12)
    with torch.no_grad():
        out = net(x, t, context=ctx)
        assert torch.equal(out, net(x, t, context=ctx))
        assert not torch.allclose(out, net(x, t, context=ctx + 1.0))
        seen = []
        hooks = [m.register_forward_hook(lambda _m, _i, _o, n=n: seen.append(n))
                 for n, m in net.named_modules() if isinstance(m, SpatialTransformer)]  # fmt: skip
        net(x, t, context=ctx)
    for h in hooks:
        h.remove()
    assert seen == ["down_attentions.1", "down_attentions.2", "up_attentions.1"]  # encoder, bottleneck, decoder


@pytest.mark.parametrize(
    "kwargs, call, match",
    [
        ({}, {"context": torch.randn(1, 1, 12)}, "cross-attention"),
        ({"with_conditioning": True, "cross_attention_dim": 12}, {}, "context"),
    ],
)
def test_context_mismatch_is_clear(kwargs, call, match):
    net = LightweightDiffusionUNet(**TINY_LW, **kwargs)
    with pytest.raises(ValueError, match=match):
        net(torch.randn(1, 1, 8, 8), torch.tensor([1]), **call)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"with_conditioning": True}, "cross_attention_dim"),
        ({"cross_attention_dim": 12}, "with_conditioning"),
        ({"attention_levels": (False, True, True)}, "attention_levels"),
        ({"with_conditioning": True, "cross_attention_dim": 12, "attention_levels": (True, False)}, "one entry"),
        ({"with_conditioning": True, "cross_attention_dim": 12, "num_head_channels": 5}, "divisible"),
        ({"with_conditioning": True, "cross_attention_dim": 12, "num_head_channels": (8, 8)}, "num_head_channels"),
    ],
)
def test_cross_attention_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LightweightDiffusionUNet(**{**TINY_LW, **kwargs})


# ---------------------------------------------------------------- ClassConditionedDiffusionUNet


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
