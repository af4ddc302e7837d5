"""ExpertClassifier: every MONAI network, resizing, features and local pretrained weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import resnet18

from medsyn_monai.networks.nets.classifiers import ExpertClassifier
from tests._helpers import save_crafted_pickle

TINY_VIT = {"hidden_size": 32, "mlp_dim": 64, "num_layers": 1, "num_heads": 2}
SMALL_RESNET = {"widen_factor": 0.25}
# narrow variants keep the tests fast; the canonical widths are checked in test_canonical_feature_dims
CASES = [
    ("resnet18", SMALL_RESNET, 128),
    ("resnet50", SMALL_RESNET, 512),
    ("densenet121", {"init_features": 16, "growth_rate": 8}, 256),
    ("vit", TINY_VIT, 32),
]


@pytest.mark.parametrize("name,kwargs,dim", CASES)
@pytest.mark.parametrize("channels", [1, 3])
def test_logits_features_and_resize(name, kwargs, dim, channels):
    torch.manual_seed(0)
    net = ExpertClassifier(name, in_channels=channels, num_classes=3, image_size=32, network_kwargs=kwargs).eval()
    assert net.feature_dim == dim
    x32 = torch.rand(2, channels, 32, 32) * 2 - 1
    x16 = torch.rand(2, channels, 16, 16) * 2 - 1
    with torch.no_grad():
        logits, feats = net(x32), net.features(x32)
        assert logits.shape == (2, 3) and feats.shape == (2, dim)
        assert torch.isfinite(logits).all() and torch.isfinite(feats).all()
        # the logits are the head applied to the features (dropout is inactive in eval mode)
        torch.testing.assert_close(logits, net.head(feats))
        # a 16-px input is resized (bilinear) to image_size inside forward
        resized = F.interpolate(x16, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        torch.testing.assert_close(net(x16), net(resized))
        assert net.features(x16).shape == (2, dim)


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet50", 2048), ("densenet121", 1024)])
def test_canonical_feature_dims(name, dim):
    net = ExpertClassifier(name, in_channels=1, num_classes=2, image_size=32).eval()
    with torch.no_grad():
        assert net.feature_dim == dim and net.features(torch.zeros(1, 1, 32, 32)).shape == (1, dim)


def test_non_square_image_size_and_vit_patch_size():
    net = ExpertClassifier("vit", 1, 2, image_size=(24, 40), network_kwargs=TINY_VIT).eval()
    assert net.backbone.patch_embedding.n_patches == (24 // 8) * (40 // 8)  # 8 = largest of 16/8/4/2 dividing both
    with torch.no_grad():
        assert net(torch.zeros(3, 1, 12, 20)).shape == (3, 2)
    net16 = ExpertClassifier("vit", 1, 2, image_size=32, network_kwargs=TINY_VIT)
    assert net16.backbone.patch_embedding.n_patches == 4
    with pytest.raises(ValueError, match="patch size"):
        ExpertClassifier("vit", 1, 2, image_size=33, network_kwargs=TINY_VIT)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown expert network"):
        ExpertClassifier("alexnet", 1, 2, image_size=32)
    with pytest.raises(ValueError, match="in_channels"):
        ExpertClassifier("resnet18", 2, 2, image_size=32)
    with pytest.raises(ValueError, match="num_classes"):
        ExpertClassifier("resnet18", 1, 1, image_size=32)
    for num_classes in (None, True, 2.5, "2"):  # e.g. the class count of an unlabelled data set
        with pytest.raises(ValueError) as info:
            ExpertClassifier("resnet18", 1, num_classes, image_size=32)
        assert str(info.value) == f"num_classes must be an integer >= 2, got {num_classes!r}: a classifier needs " \
            "labelled data of at least 2 classes."  # fmt: skip
    with pytest.raises(ValueError, match="dropout"):
        ExpertClassifier("resnet18", 1, 2, image_size=32, dropout=1.0)
    with pytest.raises(ValueError, match="image_size"):
        ExpertClassifier("resnet18", 1, 2, image_size=(32, 32, 32))
    assert ExpertClassifier("resnet18", 1, np.int64(3), image_size=32, network_kwargs=SMALL_RESNET).num_classes == 3
    net = ExpertClassifier("resnet18", 1, 2, image_size=32, network_kwargs=SMALL_RESNET)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.zeros(1, 3, 32, 32))


def test_dropout_only_in_training():
    net = ExpertClassifier("resnet18", 1, 2, image_size=32, dropout=0.5, network_kwargs=SMALL_RESNET)
    x = torch.rand(4, 1, 32, 32)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x))
    assert net.dropout.p == 0.5


def test_pretrained_state_dict_round_trip(tmp_path):
    torch.manual_seed(1)
    net = ExpertClassifier("resnet18", 1, 2, image_size=32, network_kwargs=SMALL_RESNET).eval()
    path = tmp_path / "expert.pt"
    torch.save(net.state_dict(), path)
    torch.manual_seed(2)
    fresh = ExpertClassifier("resnet18", 1, 2, image_size=32, network_kwargs=SMALL_RESNET).eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(fresh(x), net(x))  # different initialisation
        loaded = ExpertClassifier(
            "resnet18", 1, 2, image_size=32, pretrained_path=path, network_kwargs=SMALL_RESNET
        ).eval()
        torch.testing.assert_close(loaded(x), net(x))
        torch.testing.assert_close(loaded.features(x), net.features(x))
    # a checkpoint dictionary holding the state dict under "state_dict" (e.g. "module."-prefixed by DDP)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, wrapped)
    again = ExpertClassifier("resnet18", 1, 2, image_size=32, pretrained_path=wrapped, network_kwargs=SMALL_RESNET)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), net(x))


def test_pretrained_bare_monai_network_and_torchscript(tmp_path):
    torch.manual_seed(3)
    monai_net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=2, widen_factor=0.25).eval()
    path = tmp_path / "monai_resnet.pt"
    torch.save(monai_net.state_dict(), path)
    expert = ExpertClassifier("resnet18", 1, 2, image_size=32, pretrained_path=path, network_kwargs=SMALL_RESNET)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(expert.eval()(x), monai_net(x))  # MONAI's fc became the expert's head

    vit = ExpertClassifier("vit", 1, 2, image_size=16, network_kwargs=TINY_VIT).eval()
    scripted = tmp_path / "vit_ts.pt"
    torch.jit.save(torch.jit.trace(vit, torch.zeros(1, 1, 16, 16)), scripted)
    from_ts = ExpertClassifier("vit", 1, 2, image_size=16, pretrained_path=scripted, network_kwargs=TINY_VIT).eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(from_ts(x), vit(x))


def test_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        ExpertClassifier("resnet18", 1, 2, image_size=32, pretrained_path=tmp_path / "missing.pt")
    three = ExpertClassifier("resnet18", 1, 3, image_size=32, network_kwargs=SMALL_RESNET)
    path = tmp_path / "three_classes.pt"
    torch.save(three.state_dict(), path)
    with pytest.raises(RuntimeError, match=r"do not fit .*2 shape mismatches"):
        ExpertClassifier("resnet18", 1, 2, image_size=32, pretrained_path=path, network_kwargs=SMALL_RESNET)
    with pytest.raises(RuntimeError, match="do not fit"):  # other architecture: wrong keys
        ExpertClassifier("vit", 1, 3, image_size=32, pretrained_path=path, network_kwargs=TINY_VIT)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read"):
        ExpertClassifier("resnet18", 1, 2, image_size=32, pretrained_path=garbage, network_kwargs=SMALL_RESNET)
    marker = tmp_path / "code_ran"
    crafted = save_crafted_pickle(tmp_path / "crafted.pt", marker, key="state_dict")
    with pytest.raises(RuntimeError, match=f"cannot read pretrained weights from {crafted}: refused to load"):
        ExpertClassifier("resnet18", 1, 2, image_size=32, pretrained_path=crafted, network_kwargs=SMALL_RESNET)
    assert not marker.exists()
    not_state = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_state)
    with pytest.raises(RuntimeError, match="no state_dict"):
        ExpertClassifier("resnet18", 1, 2, image_size=32, pretrained_path=not_state, network_kwargs=SMALL_RESNET)


@pytest.mark.parametrize("name,kwargs,dim", CASES)
def test_feature_map_is_the_map_before_pooling(name, kwargs, dim):
    """The spatial features of spatial feature alignment: the last map before pooling (its spatial mean is the pooled
    features of the convolutional experts), the normalised patch tokens on their grid for the ViT."""
    torch.manual_seed(0)
    size = (64, 32) if name != "vit" else (24, 40)
    net = ExpertClassifier(name, in_channels=1, num_classes=3, image_size=size, network_kwargs=kwargs).eval()
    x = torch.rand(2, 1, 16, 16) * 2 - 1  # resized to image_size inside
    with torch.no_grad():
        fmap, feats = net.feature_map(x), net.features(x)
    if name == "vit":  # patch 8: a 3 x 5 grid of tokens, the class token left out
        assert fmap.shape == (2, dim, 3, 5)
        tokens = []
        net.backbone.norm.register_forward_hook(lambda m, args, out: tokens.append(out))
        with torch.no_grad():
            net.features(x)
        torch.testing.assert_close(fmap[:, :, 1, 2], tokens[0][:, 1 + 1 * 5 + 2])  # row-major grid
    else:  # 1/32 of the input size
        assert fmap.shape == (2, dim, 2, 1)
        torch.testing.assert_close(fmap.mean(dim=(2, 3)), feats)
    if name != "vit":  # feature_map leaves no hook behind
        assert all(not m._forward_hooks for m in net.modules())
