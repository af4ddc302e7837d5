"""PriorImageGenerator: the base model's class-prior images generated once, reused, and refused when stale."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler

from medsyn_monai.apps.fewshot import PriorImageGenerator
from medsyn_monai.apps.fewshot.prior_images import PRIOR_MANIFEST_NAME
from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.data import LoadMedicalImage
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import LightweightDiffusionUNet
from medsyn_monai.utils import save_model_info


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    """A tiny class-conditional RGB model (2 classes + null row) with random weights, saved as models/model.pt."""
    models = tmp_path_factory.mktemp("base") / "models"
    models.mkdir()
    torch.manual_seed(0)
    net = LightweightDiffusionUNet(2, 3, 3, channels=(4, 8), norm_num_groups=4, num_class_embeds=3)
    torch.nn.init.normal_(net.out_conv.weight, std=0.05)  # not the zero output of a fresh network
    torch.save(net.state_dict(), models / "model.pt")
    save_model_info(models, class_names=["melanoma", "nevus"], num_classes=2, null_class_label=2, in_channels=3)
    return models / "model.pt"


def _sampler(ckpt: Path, out: Path, guidance_scale: float = 1.0) -> DiffusionSampler:
    net = LightweightDiffusionUNet(2, 3, 3, channels=(4, 8), norm_num_groups=4, num_class_embeds=3)
    scheduler = DDIMScheduler(num_train_timesteps=20)
    inferer = ConditionalDiffusionInferer(scheduler, null_class_label=2)
    return DiffusionSampler(net, inferer, scheduler, ckpt, out / "unused", num_samples=1, image_shape=(3, 8, 8),
                            batch_size=3, num_inference_steps=4, class_names=["melanoma", "nevus"],
                            guidance_scale=guidance_scale, verbose=False)  # fmt: skip


def _load(path: Path) -> torch.Tensor:
    return torch.as_tensor(LoadMedicalImage()(str(path))).float() / 127.5 - 1.0


def test_prior_images_generated_once_and_reused(base_model, tmp_path):
    class_dir = tmp_path / "prior" / "nevus"
    gen = PriorImageGenerator(_sampler(base_model, tmp_path, 2.0), class_dir, num_class_images=5, class_label=1, seed=3)
    files = gen.run()
    assert [p.name for p in files] == [f"prior_{i:05d}.png" for i in range(5)] and gen.generated == files
    manifest = json.loads((class_dir / PRIOR_MANIFEST_NAME).read_text())
    assert manifest["class_name"] == "nevus" and manifest["class_label"] == 1
    assert {e["guidance_scale"] for e in manifest["images"]} == {2.0}  # the settings of each image are recorded
    assert len({e["weights_sha256"] for e in manifest["images"]}) == 1
    assert [e["file"] for e in manifest["images"]] == [p.name for p in files]
    images = torch.stack([_load(p) for p in files])
    assert images.shape == (5, 3, 8, 8) and images.std(dim=0).mean() > 0.01  # different noise, different images
    mtimes = {p.name: os.stat(p).st_mtime_ns for p in class_dir.iterdir()}

    again = PriorImageGenerator(_sampler(base_model / "missing.pt", tmp_path), class_dir, 5, 1, seed=3)
    assert again.run() == files and again.generated == []  # nothing generated, the (missing) weights not even loaded
    assert {p.name: os.stat(p).st_mtime_ns for p in class_dir.iterdir()} == mtimes

    # a partially filled class_dir only gets the missing images, identical to those of the full run (DDIM, per-image
    # noise seeds)
    partial = tmp_path / "partial"
    partial.mkdir()
    for i in (0, 2, 4):
        (partial / files[i].name).write_bytes(files[i].read_bytes())
    (partial / "real_nevus.png").write_bytes(files[0].read_bytes())  # any image file counts
    gen2 = PriorImageGenerator(_sampler(base_model, tmp_path, 2.0), partial, num_class_images=5, class_label=1, seed=3)
    out = gen2.run()
    assert sorted(p.name for p in gen2.generated) == ["prior_00001.png"]
    assert len(out) == 5 and (partial / "prior_00001.png") in out
    assert torch.allclose(_load(partial / "prior_00001.png"), _load(files[1]), atol=2 / 255)
    # a larger request adds only the difference
    gen3 = PriorImageGenerator(_sampler(base_model, tmp_path, 2.0), class_dir, 7, class_label=1, seed=3)
    assert len(gen3.run()) == 7 and [p.name for p in gen3.generated] == ["prior_00005.png", "prior_00006.png"]
    assert len(json.loads((class_dir / PRIOR_MANIFEST_NAME).read_text())["images"]) == 7


def test_prior_images_match_the_sampler_model_and_class(base_model, tmp_path):
    """The written PNG is the base model's sample for the class (same noise), in the orientation MONAI reads back."""
    sampler = _sampler(base_model, tmp_path, 2.0)
    gen = PriorImageGenerator(sampler, tmp_path / "p", num_class_images=2, class_label=0, seed=1)
    files = gen.run()
    sampler.load_weights()
    direct = gen.sample([0, 1])
    assert torch.allclose(_load(files[1]), direct[1], atol=1.01 / 127.5)
    other_class = PriorImageGenerator(sampler, tmp_path / "q", 2, class_label=1, seed=1)
    assert not torch.allclose(other_class.sample([0, 1]), direct, atol=0.05)
    # non-square RGB tensor (C, x, y) -> PNG -> LoadMedicalImage gives the same tensor
    t = torch.linspace(-1, 1, 3 * 5 * 7).reshape(3, 5, 7)
    PriorImageGenerator.save_png(t, tmp_path / "t.png")
    back = _load(tmp_path / "t.png")
    assert back.shape == (3, 5, 7) and torch.allclose(back, t, atol=1.01 / 127.5)


def test_prior_image_generator_errors(base_model, tmp_path):
    sampler = _sampler(base_model, tmp_path)
    with pytest.raises(ValueError, match="num_class_images"):
        PriorImageGenerator(sampler, tmp_path / "x", 0, 1)
    with pytest.raises(ValueError, match="out of range"):
        PriorImageGenerator(sampler, tmp_path / "x", 2, 2)
    sampler.class_names = None
    with pytest.raises(ValueError, match="class-conditional"):
        PriorImageGenerator(sampler, tmp_path / "x", 2, 0)
    d = tmp_path / "other"
    PriorImageGenerator(_sampler(base_model, tmp_path), d, 1, class_label=0).run()
    with pytest.raises(ValueError, match="holds prior images of class 'melanoma', not 'nevus'"):
        PriorImageGenerator(_sampler(base_model, tmp_path), d, 2, class_label=1).run()
    sampler = _sampler(base_model, tmp_path)
    sampler.image_shape = (2, 8, 8)
    with pytest.raises(ValueError, match="grey or RGB"):
        PriorImageGenerator(sampler, tmp_path / "x", 2, 0)


def test_prior_images_of_other_base_weights_are_refused(base_model, tmp_path):
    """Images generated by earlier base weights (the base model was retrained) are not silently reused."""
    class_dir = tmp_path / "prior"
    PriorImageGenerator(_sampler(base_model, tmp_path), class_dir, 2, class_label=1).run()
    retrained = tmp_path / "retrained" / "model.pt"
    retrained.parent.mkdir()
    state = torch.load(base_model, weights_only=True)
    state["out_conv.bias"] = state["out_conv.bias"] + 0.5
    torch.save(state, retrained)
    before = sorted(p.name for p in class_dir.iterdir())
    with pytest.raises(ValueError, match="generated by other base weights.*Delete them"):
        PriorImageGenerator(_sampler(retrained, tmp_path), class_dir, 3, class_label=1).run()
    assert sorted(p.name for p in class_dir.iterdir()) == before  # nothing deleted or overwritten
    # images put there by hand (not in the manifest) are reused with any base weights
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "real_1.png").write_bytes((class_dir / "prior_00000.png").read_bytes())
    gen = PriorImageGenerator(_sampler(retrained, tmp_path), manual, 2, class_label=1)
    assert [p.name for p in gen.run()] == ["prior_00000.png", "real_1.png"] and len(gen.generated) == 1
