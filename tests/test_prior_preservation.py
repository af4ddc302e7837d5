"""Few-shot fine-tuning building blocks: prior-preservation batches, prior images generated once, new class slots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler
from torch.utils.data import DataLoader

from medsyn_monai.apps.fewshot import FewShotSetup, PriorImageGenerator, add_class_slot
from medsyn_monai.apps.fewshot.prior_images import PRIOR_MANIFEST_NAME
from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.data import LoadMedicalImage, PriorPreservationDataset, prior_preservation_collate
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import LightweightDiffusionUNet
from medsyn_monai.utils import save_model_info

# ------------------------------------------------------------------ PriorPreservationDataset


def _items(n: int, value: float) -> list[dict]:
    return [{"image": torch.full((1, 4, 4), value + i), "case_id": f"c{value}_{i}"} for i in range(n)]


def test_items_labels_weights_and_length():
    ds = PriorPreservationDataset(_items(3, 0), _items(10, 100), instance_label=2, class_label=1, prior_loss_weight=0.7)
    assert len(ds) == 10  # the larger set
    item = ds[4]
    inst, prior = item["instance"], item["prior"]
    assert inst["image"][0, 0, 0].item() == 4 % 3 and prior["image"][0, 0, 0].item() == 104
    assert inst["label"].item() == 2 and prior["label"].item() == 1
    assert inst["label"].dtype == torch.long and prior["loss_weight"].dtype == torch.float32
    assert inst["loss_weight"].item() == 1.0 and prior["loss_weight"].item() == pytest.approx(0.7)
    assert not inst["is_prior"] and prior["is_prior"]
    assert len(PriorPreservationDataset(_items(3, 0), _items(10, 100), 2, 1, num_repeats=5)) == 15
    plain = PriorPreservationDataset(_items(3, 0), None, 0, 0, num_repeats=4)
    assert len(plain) == 12 and "prior" not in plain[11] and not plain.with_prior_preservation
    with pytest.raises(IndexError):
        ds[10]


def test_every_batch_holds_instance_and_prior_images():
    seen = []

    def mark(entry):  # the transform runs on every entry, after labels and weights are set
        seen.append(bool(entry["is_prior"]))
        return {**entry, "image": entry["image"] * 2}

    ds = PriorPreservationDataset(_items(4, 0), _items(9, 100), instance_label=3, class_label=0,
                                  prior_loss_weight=0.5, transform=mark)  # fmt: skip
    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=ds.collate_fn,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    batches = list(loader)
    assert len(batches) == 3 and sum(b["image"].shape[0] for b in batches) == 2 * 9
    for b in batches:
        n = b["image"].shape[0] // 2
        assert b["label"].tolist() == [3] * n + [0] * n
        assert b["loss_weight"].tolist() == [1.0] * n + [0.5] * n
        assert b["is_prior"].tolist() == [False] * n + [True] * n
        assert (b["image"][:n] < 2 * 100).all() and (b["image"][n:] >= 2 * 100).all()  # transformed (x2)
        assert len(b["case_id"]) == 2 * n
    assert seen.count(True) == seen.count(False) == 9


def test_collate_keeps_common_keys_and_rejects_bad_items():
    items = [{"instance": {"image": torch.zeros(1, 2, 2), "label": 1, "extra": 1},
              "prior": {"image": torch.ones(1, 2, 2), "label": 0}}]  # fmt: skip
    batch = prior_preservation_collate(items)
    assert sorted(batch) == ["image", "label"]
    with pytest.raises(ValueError, match="at least one"):
        prior_preservation_collate([])
    with pytest.raises(ValueError, match="PriorPreservationDataset items"):
        prior_preservation_collate([{"image": torch.zeros(1)}])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"instance_data": []}, "instance_data is empty"),
        ({"class_data": []}, "class_data is empty"),
        ({"prior_loss_weight": -1.0}, "loss weights"),
        ({"num_repeats": 0}, "num_repeats"),
        ({"instance_label": -1}, "non-negative"),
        ({"transform": 3}, "transform must be callable"),
    ],
)
def test_dataset_arguments(kwargs, match):
    args = {"instance_data": _items(2, 0), "class_data": _items(2, 9), "instance_label": 1, "class_label": 0}
    with pytest.raises(ValueError, match=match):
        PriorPreservationDataset(**{**args, **kwargs})


# ------------------------------------------------------------------ PriorImageGenerator


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


# ------------------------------------------------------------------ new class slot


def test_add_class_slot_rows():
    w = torch.arange(12.0).reshape(3, 4)  # 2 classes + null
    grown = add_class_slot(w, parent_label=0)
    assert grown.shape == (4, 4)
    assert torch.equal(grown[:2], w[:2]) and torch.equal(grown[2], w[0]) and torch.equal(grown[3], w[2])
    legacy = add_class_slot(w, parent_label=2, has_null=False)  # 3 classes, no null row
    assert torch.equal(legacy[:3], w) and torch.equal(legacy[3], w[2])
    with pytest.raises(ValueError, match="not one of the table's 2 class rows"):
        add_class_slot(w, parent_label=2)  # the null row is not a class
    with pytest.raises(ValueError, match="rows, dim"):
        add_class_slot(torch.zeros(3), 0)


def _conditional_nets():
    from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet

    kw = {"channels": (4, 8), "norm_num_groups": 4}
    monai_kw = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": (8, 8),
                "attention_levels": (False, False), "num_res_blocks": 1, "norm_num_groups": 4}  # fmt: skip
    return {
        "lightweight": lambda k: LightweightDiffusionUNet(2, 1, 1, num_class_embeds=k + 1, **kw),
        "monai": lambda k: DiffusionModelUNet(num_class_embeds=k + 1, **monai_kw),
        "wrapper_cross_attention": lambda k: ClassConditionedDiffusionUNet(
            "lightweight", "cross_attention", num_classes=k, cross_attention_dim=8, network_kwargs=kw
        ),
    }


@pytest.mark.parametrize("kind", ["lightweight", "monai", "wrapper_cross_attention"])
def test_new_class_slot_grows_the_embedding_and_keeps_old_rows(tmp_path, kind):
    build = _conditional_nets()[kind]
    torch.manual_seed(0)
    base = build(2)
    torch.save({"network": base.state_dict(), "ema": base.state_dict(), "trainer": {}}, tmp_path / "checkpoint.pt")
    save_model_info(tmp_path, class_names=["melanoma", "nevus"], num_classes=2, null_class_label=2, bundle="x")
    setup = FewShotSetup(tmp_path / "checkpoint.pt", instance_class="blue_nevus", parent_class="nevus")
    assert setup.num_classes == 3 and setup.num_class_embeds == 4 and setup.null_class_label == 3
    net = setup.load_base_weights(build(setup.num_classes))
    old, new = base.state_dict(), net.state_dict()
    tables = [k for k in new if new[k].shape != old[k].shape]
    assert tables and all(k.endswith("embedding.weight") for k in tables)
    for k in tables:
        assert new[k].shape[0] == 4
        assert torch.equal(new[k][:2], old[k][:2])  # the old classes keep indices and rows
        assert torch.equal(new[k][2], old[k][1])  # the new slot starts as the parent class
        assert torch.equal(new[k][3], old[k][2])  # the null row moved to the end
    assert all(torch.equal(new[k], old[k]) for k in new if k not in tables)
    # so the new class first predicts exactly what the parent class did, and the null label is unchanged
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 400])
    with torch.no_grad():
        new_out = net(x, t, class_labels=torch.tensor([2, 3]))
        assert torch.allclose(new_out, base(x, t, class_labels=torch.tensor([1, 2])))
    info = setup.model_info(prior_loss_weight=1.0)
    assert info["class_names"] == ["melanoma", "nevus", "blue_nevus"] and info["null_class_label"] == 3
    assert info["fewshot"]["new_slot"] and info["fewshot"]["prior_loss_weight"] == 1.0 and info["bundle"] == "x"


def test_existing_class_and_setup_errors(tmp_path):
    net = LightweightDiffusionUNet(2, 1, 1, channels=(4, 8), norm_num_groups=4, num_class_embeds=3)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    save_model_info(tmp_path, class_names=["melanoma", "nevus"], num_classes=2, null_class_label=2)
    setup = FewShotSetup(tmp_path / "model.pt", instance_class="nevus")
    assert not setup.new_slot and setup.instance_label == setup.parent_label == 1 and setup.num_classes == 2
    loaded = setup.load_base_weights(LightweightDiffusionUNet(2, 1, 1, channels=(4, 8), norm_num_groups=4,
                                                              num_class_embeds=3))  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="set parent_class"):
        FewShotSetup(tmp_path / "model.pt", instance_class="blue_nevus")
    with pytest.raises(ValueError, match="not a class of the base model"):
        FewShotSetup(tmp_path / "model.pt", instance_class="blue_nevus", parent_class="wart")
    wrong = FewShotSetup(tmp_path / "model.pt", instance_class="blue_nevus", parent_class="nevus")
    with pytest.raises(ValueError, match="no class embedding with 4 rows"):
        wrong.load_base_weights(LightweightDiffusionUNet(2, 1, 1, channels=(4, 8), norm_num_groups=4,
                                                         num_class_embeds=3))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="model_info.json not found"):
        FewShotSetup(tmp_path / "nope" / "model.pt", "nevus")
    save_model_info(tmp_path / "u", class_names=None, num_classes=None)
    with pytest.raises(ValueError, match="unconditional"):
        FewShotSetup(tmp_path / "u" / "model.pt", instance_class="x")
    (tmp_path / "m").mkdir()
    save_model_info(tmp_path / "m", class_names=["a", "b"], num_classes=2, null_class_label=2)
    with pytest.raises(FileNotFoundError, match="train the class-conditional base model first"):
        FewShotSetup(tmp_path / "m" / "model.pt", "a").load_base_weights(net)


def test_load_base_entry(tmp_path):
    net = LightweightDiffusionUNet(2, 1, 1, channels=(4, 8), norm_num_groups=4, num_class_embeds=3)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    save_model_info(tmp_path, class_names=["a", "b"], num_classes=2, null_class_label=2)
    setup = FewShotSetup(tmp_path / "model.pt", "a")
    projection = torch.nn.Linear(3, 2)
    assert not setup.load_base_entry(projection)  # no checkpoint.pt
    saved = torch.nn.Linear(3, 2)
    full = {"network": net.state_dict(), "projection": saved.state_dict(), "trainer": {}}
    torch.save(full, tmp_path / "checkpoint.pt")
    assert setup.load_base_entry(projection) and torch.equal(projection.weight, saved.weight)
    assert not setup.load_base_entry(projection, name="other")
    with pytest.raises(RuntimeError, match="does not fit"):
        setup.load_base_entry(torch.nn.Linear(4, 2))


class _PaintByLabel:
    """A deterministic stand-in for a diffusion sampler: image value = generator label (records the labels asked)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def generate(self, num_samples=None, labels=None, seed=None):
        self.asked = list(labels)
        images = torch.stack([torch.full((1, 4, 4), float(c)) for c in labels])
        return images, torch.as_tensor(labels)


def test_synthetic_augmentation_counts_and_label_mapping():
    from medsyn_monai.apps.evaluation import SyntheticAugmentationStudy

    train = [{"image": torch.zeros(1, 4, 4), "label": torch.tensor(c)} for c in [0, 0, 0, 1]]
    gen = _PaintByLabel()
    ev = SyntheticAugmentationStudy(lambda: torch.nn.Linear(1, 2), train, train, gen, ["mel", "nev"],
                                        generator_labels=[5, 7], synthetic_fraction=0.5)  # fmt: skip
    assert ev.synthetic_counts() == [3, 1]  # real class proportions, as many synthetic as real images
    images, labels = ev.synthetic_set()
    assert labels.tolist() == [0, 0, 0, 1] and gen.asked == [5, 5, 5, 7]  # generator indices of the classes
    assert images[:, 0, 0, 0].tolist() == [5.0, 5.0, 5.0, 7.0]
    third = SyntheticAugmentationStudy(lambda: torch.nn.Linear(1, 2), train, train, gen, ["mel", "nev"],
                                           synthetic_fraction=0.25)  # fmt: skip
    assert third.synthetic_counts() == [1, 0]  # round(3 / 3), round(1 / 3)
    with pytest.raises(ValueError, match="synthetic_fraction"):
        SyntheticAugmentationStudy(lambda: None, train, train, gen, ["a", "b"], synthetic_fraction=1.0)
    with pytest.raises(ValueError, match="generator_labels has 1"):
        SyntheticAugmentationStudy(lambda: None, train, train, gen, ["a", "b"], generator_labels=[0])
