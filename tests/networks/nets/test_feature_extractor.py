from __future__ import annotations

import pytest
import torch

from medsyn_monai.metrics import frechet_distance
from medsyn_monai.networks.nets import ExpertClassifier, FeatureExtractor
from medsyn_monai.utils import UnsafeCheckpointError
from tests._helpers import save_crafted_pickle


def test_expert_features_and_fid_known_answers():
    torch.manual_seed(0)
    expert = ExpertClassifier("resnet18", in_channels=1, num_classes=2, image_size=32, network_kwargs={})
    fx = FeatureExtractor(expert)
    images = torch.rand(12, 1, 16, 16) * 2 - 1
    feats = fx.extract(images)
    assert feats.shape == (12, expert.feature_dim)
    assert torch.allclose(feats, expert.eval().features(images), atol=1e-5)
    assert frechet_distance(feats, feats) < 1e-3  # a set with itself
    assert frechet_distance(feats, fx.extract(torch.ones(12, 1, 16, 16))) > 0.0


def test_ranges_channels_resize_and_pooling():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x  # (B, C, H, W) -> pooled to (B, C)

    fx = FeatureExtractor(Probe(), image_size=8, model_in_channels=3, model_range=(0.0, 255.0))
    out = fx(torch.full((2, 1, 4, 4), 1.0))
    assert seen["x"].shape == (2, 3, 8, 8) and torch.allclose(seen["x"], torch.full_like(seen["x"], 255.0))
    assert out.shape == (2, 3) and torch.allclose(out, torch.full((2, 3), 255.0))


def test_torchscript_file_and_pickled_module_refused(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 3), torch.nn.ReLU())
    torch.jit.save(torch.jit.script(net), tmp_path / "fx.ts")
    torch.save(net, tmp_path / "fx.pt")  # a pickled module: loading it would run arbitrary code
    x = torch.randn(3, 1, 8, 8)
    ref = FeatureExtractor(net)(x)
    assert torch.allclose(FeatureExtractor(path=tmp_path / "fx.ts")(x), ref, atol=1e-6)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load feature extractor file .*fx\.pt.*TorchScript"):
        FeatureExtractor(path=tmp_path / "fx.pt")
    crafted = save_crafted_pickle(tmp_path / "crafted.pt", tmp_path / "code_ran")
    with pytest.raises(UnsafeCheckpointError, match="arbitrary code"):
        FeatureExtractor(path=crafted)
    assert not (tmp_path / "code_ran").exists()  # refused before any of its code ran
    # a loader of dict batches
    loader = [{"image": x[:2]}, {"image": x[2:]}]
    assert torch.allclose(FeatureExtractor(net).extract(loader), ref, atol=1e-6)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        FeatureExtractor()
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        FeatureExtractor(path=tmp_path / "inception.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="weights without a network"):
        FeatureExtractor(path=tmp_path / "state.pt")
    with pytest.raises(ValueError, match="no images"):
        FeatureExtractor(torch.nn.Identity()).extract([])


def test_rgb_to_grey_uses_bt601_and_grey_to_rgb_repeats():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x

    rgb = torch.rand(2, 3, 4, 4)
    FeatureExtractor(Probe(), model_in_channels=1)(rgb)
    expected = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert seen["x"].shape == (2, 1, 4, 4) and torch.allclose(seen["x"][:, 0], expected, atol=1e-6)
    FeatureExtractor(Probe(), model_in_channels=3)(rgb[:, :1])
    assert seen["x"].shape == (2, 3, 4, 4) and torch.equal(seen["x"][:, 0], seen["x"][:, 2])


def test_frozen_and_from_expert_checkpoint(tmp_path):
    from medsyn_monai.utils import save_model_info

    torch.manual_seed(0)
    expert = ExpertClassifier("resnet18", in_channels=3, num_classes=2, image_size=16)
    fx = FeatureExtractor(expert.train())
    assert not expert.training and not any(p.requires_grad for p in expert.parameters())
    fx.train()  # stays frozen: BatchNorm statistics never drift
    assert not expert.training and fx.feature_dim == 512
    torch.save(expert.state_dict(), tmp_path / "best_model.pt")
    with pytest.raises(FileNotFoundError, match="train_expert.json"):
        FeatureExtractor.from_expert_checkpoint(tmp_path / "best_model.pt")  # no model_info.json beside it
    save_model_info(tmp_path, name="resnet18", in_channels=3, num_classes=2, expert_input_size=16)
    loaded = FeatureExtractor.from_expert_checkpoint(tmp_path / "best_model.pt")
    assert loaded.model_in_channels == 3 and loaded.feature_dim == 512
    grey = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.allclose(loaded(grey), fx(grey.expand(-1, 3, -1, -1)), atol=1e-5)


def test_feature_map_of_an_expert_and_of_other_models():
    torch.manual_seed(0)
    expert = ExpertClassifier("resnet18", in_channels=1, num_classes=2, image_size=64, network_kwargs={})
    fx = FeatureExtractor(expert)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    fmap = fx.feature_map(images)
    assert fmap.shape == (2, 512, 2, 2) and not fmap.requires_grad
    assert torch.allclose(fmap.mean(dim=(2, 3)), fx(images), atol=1e-5)  # pooled forward unchanged
    conv = FeatureExtractor(torch.nn.Conv2d(1, 4, 3, padding=1), image_size=8)
    assert conv.feature_map(torch.zeros(3, 1, 4, 4)).shape == (3, 4, 8, 8)
    pooled = FeatureExtractor(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5)))
    assert pooled(torch.zeros(2, 1, 4, 4)).shape == (2, 5)
    with pytest.raises(ValueError, match="pooled features of shape \\(2, 5\\).*feature_map"):
        pooled.feature_map(torch.zeros(2, 1, 4, 4))
