"""LightweightDiffusionUNet: shapes, time injection, skip connections, class embedding and cross-attention."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import SpatialTransformer

from medsyn_monai.networks.nets import LightweightDiffusionUNet
from tests.networks.nets._helpers import randomise_zero_weights

TINY = {"channels": (8, 16, 16), "norm_num_groups": 4}
TINY_LW = {**TINY, "num_head_channels": 8}  # with cross-attention


def _legacy_keys() -> dict[str, tuple[int, ...]]:
    """Names and shapes, in order, of the state_dict of ``LightweightDiffusionUNet(channels=(4, 8), convs_per_level=1,
    norm_num_groups=2, num_class_embeds=3)`` as written by the attention-free network before cross-attention existed:
    old checkpoints must keep loading."""
    emb = 16  # time embedding width: 4 * channels[0]
    keys = {"time_embed.0.weight": (emb, 4), "time_embed.0.bias": (emb,), "time_embed.2.weight": (emb, emb),
            "time_embed.2.bias": (emb,), "class_embedding.weight": (3, emb)}  # fmt: skip
    # every block: a 3x3 convolution (out, in channels), its group norm and the projection of the time embedding
    blocks = [("stem", 4, 1), ("down_blocks.0.0", 4, 4), ("down_blocks.1.0", 8, 8), ("downsamplers.0", 8, 4),
              ("upsamplers.0", 4, 8), ("up_blocks.0.0", 4, 8)]  # fmt: skip
    for name, out_ch, in_ch in blocks:
        keys.update({f"{name}.conv.weight": (out_ch, in_ch, 3, 3), f"{name}.conv.bias": (out_ch,),
                     f"{name}.norm.weight": (out_ch,), f"{name}.norm.bias": (out_ch,),
                     f"{name}.emb_proj.weight": (out_ch, emb), f"{name}.emb_proj.bias": (out_ch,)})  # fmt: skip
    keys.update({"out_norm.weight": (4,), "out_norm.bias": (4,), "out_conv.weight": (1, 4, 3, 3),
                 "out_conv.bias": (1,)})  # fmt: skip
    return keys


LEGACY_KEYS = _legacy_keys()


def _net(**kw) -> LightweightDiffusionUNet:
    torch.manual_seed(0)
    net = LightweightDiffusionUNet(**{**TINY, **kw})
    # the output conv is zero-initialised; give it weights so outputs depend on the whole network
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    return net.eval()


@pytest.mark.parametrize("time_injection", ["all", "first", "encoder"])
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shapes(time_injection, skip, spatial_dims):
    net = _net(spatial_dims=spatial_dims, in_channels=2, out_channels=2, time_injection=time_injection,
               skip_connections=skip)  # fmt: skip
    x = torch.randn(3, 2, *([8] * spatial_dims))
    out = net(x, torch.tensor([0, 10, 999]))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_zero_initialised_output():
    net = LightweightDiffusionUNet(**TINY)
    out = net(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]))
    assert torch.count_nonzero(out) == 0


def _time_sensitivity(net: LightweightDiffusionUNet, modules: list[torch.nn.Module]) -> list[bool]:
    """For each block, does its output change when only the time step changes?"""
    outputs: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(modules))}
    hooks = [m.register_forward_hook(lambda _m, _i, o, i=i: outputs[i].append(o.detach())) for i, m in
             enumerate(modules)]  # fmt: skip
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        net(x, torch.tensor([5]))
        net(x, torch.tensor([900]))
    for h in hooks:
        h.remove()
    return [not torch.allclose(o[0], o[1]) for o in outputs.values()]


def test_time_injection_places():
    for mode in ("all", "first", "encoder"):
        net = _net(time_injection=mode)
        enc = [net.stem] + [b for blocks in net.down_blocks for b in blocks] + list(net.downsamplers)
        dec = list(net.upsamplers) + [b for blocks in net.up_blocks for b in blocks]
        injects = [b.emb_proj is not None for b in enc + dec]
        if mode == "all":
            assert all(injects)
        elif mode == "first":
            assert injects == [True] + [False] * (len(enc) + len(dec) - 1)
        else:
            assert all(injects[: len(enc)]) and not any(injects[len(enc) :])
        # every block is time dependent once the embedding has entered
        assert all(_time_sensitivity(net, enc + dec))


def test_time_injection_changes_computation():
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    outs = {}
    for mode in ("all", "first", "encoder"):
        net = _net(time_injection=mode)
        with torch.no_grad():
            outs[mode] = net(x, t)
    assert not torch.allclose(outs["all"], outs["first"])
    assert not torch.allclose(outs["all"], outs["encoder"])
    # fewer injections -> fewer parameters
    counts = {m: sum(p.numel() for p in _net(time_injection=m).parameters()) for m in outs}
    assert counts["first"] < counts["encoder"] < counts["all"]


def test_skip_connections_change_computation():
    with_skip, no_skip = _net(skip_connections=True), _net(skip_connections=False)
    assert with_skip.up_blocks[0][0].conv.in_channels == 2 * no_skip.up_blocks[0][0].conv.in_channels
    # the decoder's last level really receives the encoder features: zeroing them changes the output with skips
    # and leaves it unchanged without skips (where they only feed the downsampler, which is left untouched here)
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([10])
    for net, expect_change in ((with_skip, True), (no_skip, False)):
        feats: dict[str, torch.Tensor] = {}

        def keep(module, inputs, output, feats=feats):
            feats["enc"] = output

        def feed_original(module, inputs, feats=feats):
            return (feats["enc"], *inputs[1:])

        def zero(module, inputs, output):
            return torch.zeros_like(output)

        with torch.no_grad():
            ref = net(x, t)
            h1 = net.down_blocks[0][-1].register_forward_hook(keep)
            net(x, t)
            h1.remove()
            # replay with the skip tensor zeroed but the downsampler fed the original features
            h2 = net.downsamplers[0].register_forward_pre_hook(feed_original)
            h3 = net.down_blocks[0][-1].register_forward_hook(zero)
            changed = net(x, t)
            h2.remove()
            h3.remove()
        assert (not torch.allclose(ref, changed)) == expect_change


def test_class_conditioning():
    net = _net(num_class_embeds=3)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([50, 50])
    with torch.no_grad():
        a = net(x, t, class_labels=torch.tensor([0, 0]))
        b = net(x, t, class_labels=torch.tensor([2, 2]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="class_labels must be given"):
        net(x, t)
    with pytest.raises(ValueError, match="no class embedding"):
        _net()(x, t, class_labels=torch.tensor([0, 1]))


def test_same_signature_as_monai():
    ours = _net(num_class_embeds=2)
    monai_net = DiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(8, 8), norm_num_groups=4,
                                   attention_levels=(False, False), num_res_blocks=1, num_class_embeds=2)  # fmt: skip
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1])
    for net in (ours, monai_net):
        assert net(x=x, timesteps=t, context=None, class_labels=y).shape == x.shape


def test_scalar_timestep_and_context_rejected():
    net = _net()
    assert net(torch.randn(2, 1, 8, 8), torch.tensor(5)).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="cross-attention"):
        net(torch.randn(2, 1, 8, 8), torch.tensor([1, 1]), context=torch.randn(2, 1, 4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"time_injection": "middle"}, "time_injection"),
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"channels": ()}, "channels"),
        ({"convs_per_level": 0}, "convs_per_level"),
        ({"num_class_embeds": 0}, "num_class_embeds"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LightweightDiffusionUNet(**{**TINY, **kwargs})


def test_indivisible_size():
    with pytest.raises(ValueError, match="divisible by 4"):
        _net()(torch.randn(1, 1, 10, 10), torch.tensor([1]))


def test_learns_a_batch():
    """A few optimisation steps on one batch reduce the denoising loss (the network can learn)."""
    torch.manual_seed(0)
    net = LightweightDiffusionUNet(**TINY).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, noise, t = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.tensor([100, 200, 300, 400])
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(net(x + noise, t), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------- cross-attention
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
    net = randomise_zero_weights(LightweightDiffusionUNet(**TINY_LW, with_conditioning=True, cross_attention_dim=12,
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


def test_gradient_checkpointing_gives_the_same_gradients_and_recomputes():
    """Checkpointing recomputes each convolution block in the backward pass (every block runs twice per training
    step) and leaves outputs and gradients unchanged; in eval mode or without gradients it does nothing."""
    torch.manual_seed(0)
    plain = LightweightDiffusionUNet(channels=(8, 16), norm_num_groups=4, num_class_embeds=2)
    torch.nn.init.normal_(plain.out_conv.weight, std=0.1)
    ckpt = LightweightDiffusionUNet(channels=(8, 16), norm_num_groups=4, num_class_embeds=2,
                                    gradient_checkpointing="true")  # fmt: skip
    ckpt.load_state_dict(plain.state_dict())
    x, t, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 50, 900]), torch.tensor([0, 1, 1])
    calls = []
    block = ckpt.down_blocks[0][0]
    block.register_forward_pre_hook(lambda *_: calls.append(1))  # the recomputation stops early: no post-hook
    grads = []
    for net in (plain, ckpt):
        net.train()
        net.zero_grad()
        out = net(x, t, class_labels=y)
        out.square().mean().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    assert len(calls) == 2  # forward + recomputation
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    calls.clear()
    with torch.no_grad():
        ckpt(x, t, class_labels=y)
    ckpt.eval()
    ckpt(x, t, class_labels=y)
    assert len(calls) == 2  # once per call
