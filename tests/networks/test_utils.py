"""FeatureHook, feature_point and middle_point: which features a diffusion U-Net exposes for alignment, recorded when
asked."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet, LightweightDiffusionUNet
from medsyn_monai.networks.utils import FeatureHook, feature_channels, feature_point, middle_point

SHAPE = (1, 16, 16)


def _lightweight(num_classes=None):
    torch.manual_seed(0)
    return LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4, num_class_embeds=num_classes)


def _monai(num_classes=None):
    torch.manual_seed(0)
    return DiffusionModelUNet(2, 1, 1, channels=(8, 16), attention_levels=(False, False), num_res_blocks=1,
                              norm_num_groups=4, num_class_embeds=num_classes)  # fmt: skip


def _reference(network, x, t, take_input_of=None, take_output_of=None, **kwargs):
    """What an independent hook sees: the first tensor of a module's output, or the positional/``hidden_states``
    input of a module."""
    store = {}
    modules = dict(network.named_modules())

    def output_hook(module, args, out):
        store["f"] = out[0] if isinstance(out, tuple) else out

    def input_hook(module, args, kwargs):
        store["f"] = args[0] if args else kwargs["hidden_states"]

    if take_output_of is not None:
        handle = modules[take_output_of].register_forward_hook(output_hook)
    else:
        handle = modules[take_input_of].register_forward_pre_hook(input_hook, with_kwargs=True)
    with torch.no_grad():
        network(x, t, **kwargs)
    handle.remove()
    return store["f"]


@pytest.mark.parametrize(
    "factory, point, bottleneck_input",
    [
        # lightweight: the output of the last stride-2 convolution is the input of the bottleneck convolutions
        (_lightweight, ("downsamplers.0", 16), "down_blocks.1.0"),
        # MONAI: the last down block's hidden states are the input of the middle block
        (_monai, ("down_blocks.1", 16), "middle_block"),
    ],
)
def test_default_point_is_the_bottleneck_input(factory, point, bottleneck_input):
    net = factory()
    assert feature_point(net) == point
    x, t = torch.randn(3, *SHAPE), torch.tensor([1, 50, 900])
    hook = FeatureHook(net)
    assert hook.module_name == point[0] and hook.channels == 16
    with torch.no_grad():
        net(x, t)
    assert hook.features is None  # records only inside recording()
    with hook.recording(), torch.no_grad():
        net(x, t)
    assert torch.equal(hook.features, _reference(net, x, t, take_input_of=bottleneck_input))
    hook.remove()
    assert hook.features is None and all(not m._forward_hooks for m in net.modules())


def test_named_point_input_target_and_wrapper():
    net = _lightweight()
    x, t = torch.randn(2, *SHAPE), torch.tensor([3, 4])
    named = FeatureHook(net, "down_blocks.0.1")
    inputs = FeatureHook(net, "", target="input")
    assert named.channels is None and inputs.module is net
    with named.recording(), inputs.recording(), torch.no_grad():
        net(x=x, timesteps=t)
    assert named.channels == 8 and torch.equal(named.features, _reference(net, x, t, take_output_of="down_blocks.0.1"))
    assert torch.equal(inputs.features, x)
    kwargs = {"channels": (8, 16), "attention_levels": (False, False), "num_res_blocks": 1, "norm_num_groups": 4}
    wrapped = ClassConditionedDiffusionUNet("monai", "embedding", num_classes=2, network_kwargs=kwargs)
    assert feature_point(wrapped) == ("backbone.down_blocks.1", 16)
    hook = FeatureHook(wrapped)
    labels = torch.tensor([0, 2])
    with hook.recording(), torch.no_grad():
        wrapped(x, t, class_labels=labels)
    ref = _reference(wrapped, x, t, take_input_of="backbone.middle_block", class_labels=labels)
    assert torch.equal(hook.features, ref)


def test_copies_and_other_passes_do_not_overwrite():
    """An EMA copy made by deepcopy carries the hook, but only the recording block of the trained network counts."""
    net = _lightweight()
    hook = FeatureHook(net)
    ema = copy.deepcopy(net)
    x, t = torch.randn(2, *SHAPE), torch.tensor([1, 2])
    with hook.recording(), torch.no_grad():
        net(x, t)
        recorded = hook.features.clone()
    with torch.no_grad():
        ema(torch.randn(2, *SHAPE), t)
        net(torch.randn(2, *SHAPE), t)
    assert torch.equal(hook.features, recorded)


def test_errors():
    net = _lightweight()
    with pytest.raises(ValueError, match="unknown module_name 'nope'.*down"):
        FeatureHook(net, "nope")
    with pytest.raises(ValueError, match="target"):
        FeatureHook(net, "stem", target="gradient")
    with pytest.raises(ValueError, match="declares no default feature point"):
        FeatureHook(nn.Sequential(nn.Conv2d(1, 1, 1)))
    one_level = LightweightDiffusionUNet(2, 1, 1, channels=(8,), norm_num_groups=4)
    assert feature_point(one_level) == ("stem", 8)


@pytest.mark.parametrize(
    "factory, point, middle_output_of",
    [
        # lightweight: the last convolution of the lowest level ends the bottleneck (its output, upsampled, feeds the
        # first upsampler)
        (_lightweight, ("down_blocks.1.1", 16), "upsamplers.0"),
        # MONAI: the output of middle_block is the input of the first up block
        (_monai, ("middle_block", 16), "up_blocks.0"),
    ],
)
def test_middle_block_is_the_bottleneck_output(factory, point, middle_output_of):
    """``"middle_block"`` names the middle stage of both U-Nets (and of the class-conditional wrapper)."""
    net = factory()
    assert middle_point(net) == point
    hook = FeatureHook(net, "middle_block")
    assert (hook.module_name, hook.channels) == point and feature_channels(net, "middle_block") == 16
    x, t = torch.randn(2, *SHAPE), torch.tensor([1, 700])
    with hook.recording(), torch.no_grad():
        net(x, t)
    assert hook.features.shape == (2, 16, 8, 8)
    following = _reference(net, x, t, take_input_of=middle_output_of)
    if following.shape[-1] == 16:  # the lightweight U-Net upsamples before its upsampler's convolution
        following = following[..., ::2, ::2]
    assert torch.equal(hook.features, following)
    assert FeatureHook(net, "down_path").module_name == feature_point(net)[0]  # the default point, by name


@pytest.mark.parametrize("architecture", ["lightweight", "monai"])
def test_middle_block_of_the_class_conditional_wrapper(architecture):
    kwargs = {"channels": (8, 16), "norm_num_groups": 4}
    if architecture == "monai":
        kwargs.update(attention_levels=(False, False), num_res_blocks=1)
    wrapped = ClassConditionedDiffusionUNet(architecture, "embedding", num_classes=2, network_kwargs=kwargs)
    name = "backbone.down_blocks.1.1" if architecture == "lightweight" else "backbone.middle_block"
    assert wrapped.middle_point() == (name, 16) and FeatureHook(wrapped, "middle_block").module_name == name
    # with cross-attention at the bottleneck the lightweight middle stage ends with its attention block
    attending = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4, with_conditioning=True,
                                         cross_attention_dim=4, num_head_channels=8)  # fmt: skip
    assert middle_point(attending) == ("down_attentions.1", 16)
    with pytest.raises(ValueError, match="declares no middle point"):
        FeatureHook(nn.Sequential(nn.Conv2d(1, 1, 1)), "middle_block")
