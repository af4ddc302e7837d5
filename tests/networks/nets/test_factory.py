"""network_config / network_from_config: JSON round trip of every recorded network, overrides, and the allowlist."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser
from torch import nn

from medsyn_monai.networks.nets import (
    ClassConditionedDiffusionUNet,
    ExpertClassifier,
    LightweightDiffusionUNet,
    network_config,
    network_from_config,
)
from tests._helpers import tiny_unet
from tests.networks.nets._helpers import randomise_zero_weights

TINY_BACKBONE = {"channels": (8, 16), "norm_num_groups": 4, "num_head_channels": 8}
TINY_VIT = {"hidden_size": 16, "mlp_dim": 32, "num_layers": 1, "num_heads": 2}


def _unet() -> nn.Module:
    return randomise_zero_weights(tiny_unet(num_classes=3))


def _cfg_unet() -> nn.Module:
    torch.manual_seed(0)
    net = ClassConditionedDiffusionUNet("lightweight", "cross_attention", 2, 8, network_kwargs=TINY_BACKBONE)
    return randomise_zero_weights(net)


def _expert() -> nn.Module:
    torch.manual_seed(0)
    return ExpertClassifier("vit", 1, 3, image_size=(8, 16), dropout=0.1, network_kwargs=TINY_VIT).eval()


def _outputs(net: nn.Module) -> torch.Tensor:
    x = torch.linspace(-1, 1, 2 * 8 * 16).view(2, 1, 8, 16)
    with torch.no_grad():
        if isinstance(net, ExpertClassifier):
            return net(x)
        return net(x, torch.tensor([3, 700]), class_labels=torch.tensor([0, 1]))


@pytest.mark.parametrize("build", [_unet, _cfg_unet, _expert], ids=["lightweight", "class_conditioned", "expert"])
def test_json_round_trip_rebuilds_the_trained_network(build):
    net = build()
    config = json.loads(json.dumps(network_config(net)))  # what model_info.json stores
    assert config["_target_"] == f"medsyn_monai.networks.nets.{type(net).__name__}"
    rebuilt = network_from_config(config)
    assert type(rebuilt) is type(net) and network_config(rebuilt) == config
    rebuilt.load_state_dict(net.state_dict())  # strict: the same parameters and shapes
    torch.testing.assert_close(_outputs(rebuilt.eval()), _outputs(net))
    # MONAI's config parser builds the same network from the record (it is a valid bundle component)
    parsed = ConfigParser({"network": config}).get_parsed_content("network")
    assert type(parsed) is type(net) and network_config(parsed) == config


def test_overrides_replace_recorded_arguments():
    config = network_config(tiny_unet(num_classes=2))
    wider = network_from_config(config, num_class_embeds=5, channels=[4, 8])
    assert wider.class_embedding.num_embeddings == 5 and wider.init_args["channels"] == [4, 8]
    assert config["num_class_embeds"] == 2 and config["channels"] == [8, 16]  # the config is not changed
    expert = network_from_config(network_config(_expert()), num_classes=4)
    assert expert.head.out_features == 4 and expert.init_args["network_kwargs"] == TINY_VIT


class SubclassedUNet(LightweightDiffusionUNet):
    """Records its arguments (inherited), but is not one of the allowed classes."""


def test_network_config_refuses_networks_that_cannot_be_rebuilt():
    recorded = nn.Linear(2, 2)
    recorded.init_args = {"in_features": 2, "out_features": 2}  # records arguments, but is not an allowed class
    for net in (nn.Linear(2, 2), recorded, SubclassedUNet(channels=(8, 16), norm_num_groups=4)):
        with pytest.raises(ValueError) as info:
            network_config(net)
        msg = str(info.value)
        assert msg.startswith(f"{type(net).__name__} is not one of the networks that record their arguments")
        assert "medsyn_monai.networks.nets.ExpertClassifier" in msg


@pytest.mark.parametrize(
    "target",
    [
        "torch.nn.Linear",
        "os.system",
        "medsyn_monai.networks.nets.lightweight_unet.LightweightDiffusionUNet",  # the module path is not the record
        "medsyn_monai.networks.nets.FeatureExtractor",  # a project network that records nothing
        "$print('x')",
    ],
)
def test_network_from_config_builds_allowed_classes_only(target):
    with pytest.raises(ValueError) as info:
        network_from_config({"_target_": target, "in_features": 2, "out_features": 2})
    msg = str(info.value)
    assert msg.startswith(f"unknown network {target!r} in the config; known: [")
    assert "'medsyn_monai.networks.nets.LightweightDiffusionUNet'" in msg


def test_network_from_config_needs_a_target():
    for config in ({"channels": [8, 16]}, ["medsyn_monai.networks.nets.ExpertClassifier"], None):
        with pytest.raises(ValueError, match=r"^a network config needs a '_target_' naming one of \[") as info:
            network_from_config(config)
        assert repr(config) in str(info.value)
