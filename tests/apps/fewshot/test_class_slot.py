"""Class-slot surgery for few-shot fine-tuning: add_class_slot and FewShotSetup on the base model's weights."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet

from medsyn_monai.apps.fewshot import FewShotSetup, add_class_slot
from medsyn_monai.networks.nets import ClassConditionedDiffusionUNet, LightweightDiffusionUNet
from medsyn_monai.utils import save_model_info


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
