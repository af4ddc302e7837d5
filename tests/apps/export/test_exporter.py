"""SyntheticExporter: PNG / NIfTI / DICOM class folders with a provenance manifest, read back as a data set by the
project's loaders (same image in every format), seeded per class, never overwriting an earlier export."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler

from medsyn_monai.apps.export import MANIFEST_FIELDS, SyntheticExporter
from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.data import ImageCollection, LoadMedicalImage
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import LightweightDiffusionUNet
from medsyn_monai.utils import file_sha256
from tests._helpers import tiny_unet

CT_INFO = {"bundle": "ct_lightweight", "intensity_range": [-160.0, 240.0]}


def _sampler(tmp_path, channels=1, num_classes=2, **kwargs) -> DiffusionSampler:
    if channels == 1:
        net = tiny_unet(num_classes=num_classes)
    else:
        net = LightweightDiffusionUNet(in_channels=3, out_channels=3, channels=(8, 16), norm_num_groups=4,
                                       num_class_embeds=num_classes)  # fmt: skip
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    ckpt = tmp_path / "models" / "model.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), ckpt)
    sched = DDIMScheduler(100)
    names = ["lesion", "normal"] if num_classes else None
    return DiffusionSampler(net, ConditionalDiffusionInferer(sched), sched, ckpt, tmp_path / "unused", 1,
                            (channels, 12, 8), batch_size=2, num_inference_steps=4, class_names=names,
                            verbose=False, **kwargs)  # fmt: skip


def test_export_all_formats_round_trip(tmp_path):
    sampler = _sampler(tmp_path, nifti_range=(-160.0, 240.0))
    out = tmp_path / "run" / "export"
    rows = SyntheticExporter(sampler, out, "all", num_samples_per_class=3, modality="CT", model_info=CT_INFO).run()
    assert len(rows) == 2 * 3 * 3  # classes x images x formats
    with open(out / "manifest.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(MANIFEST_FIELDS) and len(table) == len(rows)
    first = table[0]
    assert first["file"] == "png/lesion/synthetic_lesion_00000.png" and first["format"] == "png"
    assert first["checkpoint"] == "model.pt" and first["checkpoint_sha256"] == file_sha256(sampler.ckpt_path)
    assert (first["bundle"], first["scheduler"], first["num_inference_steps"]) == ("ct_lightweight", "DDIMScheduler",
                                                                                  "4")  # fmt: skip
    assert float(first["guidance_scale"]) == 1.0 and first["torch_version"] == torch.__version__
    assert {r["seed"] for r in table if r["class_name"] == "normal"} == {"1"}  # seed + class index
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["synthetic"] is True and manifest["export"]["modality"] == "CT"
    assert manifest["export"]["png_bits"] == 16 and len(manifest["files"]) == len(rows)
    text = (out / "manifest.csv").read_text() + (out / "manifest.json").read_text()
    assert str(tmp_path) not in text  # no absolute path

    # read back with the project's loaders: a labelled collection per format, the same images in each
    load = LoadMedicalImage()
    for fmt in ("png", "nifti", "dicom"):
        collection = ImageCollection(out / fmt, val_fraction=0, test_fraction=0)
        assert collection.class_names == ["lesion", "normal"] and len(collection) == 6, fmt
    hu = {}
    for fmt, ext in (("nifti", ".nii.gz"), ("dicom", ".dcm"), ("png", ".png")):
        hu[fmt] = load(out / fmt / "normal" / f"synthetic_normal_00002{ext}")
        assert hu[fmt].shape == (1, 12, 8), fmt
    assert hu["dicom"].meta["modality"] == "CT"
    torch.testing.assert_close(hu["dicom"], hu["nifti"], atol=0.5, rtol=0)  # HU, quantised to 1 HU
    png_hu = -160 + hu["png"] / 65535 * 400
    torch.testing.assert_close(png_hu, hu["nifti"], atol=0.01, rtol=0)  # 16-bit PNG

    # a second export of one class into another folder: the same images of that class (per-class seeds)
    SyntheticExporter(sampler, tmp_path / "again", "nifti", 3, class_names=["normal"], model_info=CT_INFO).run()
    assert sorted(p.name for p in (tmp_path / "again" / "nifti").iterdir()) == ["normal"]
    again = load(tmp_path / "again" / "nifti" / "normal" / "synthetic_normal_00002.nii.gz")
    torch.testing.assert_close(again, hu["nifti"])


def test_export_rgb_unconditional_and_png_only(tmp_path):
    sampler = _sampler(tmp_path, channels=3, num_classes=None)
    out = tmp_path / "export"
    rows = SyntheticExporter(sampler, out, "png", num_samples_per_class=2, modality="XC",
                             model_info={"bundle": "derm_dreambooth"}).run()  # fmt: skip
    assert [r["file"] for r in rows] == ["png/synthetic_00000.png", "png/synthetic_00001.png"]
    assert rows[0]["class_name"] == "" and rows[0]["label"] == ""
    image = LoadMedicalImage()(out / "png" / "synthetic_00001.png")
    assert image.shape == (3, 12, 8) and image.meta["bit_depth"] == 8
    assert len(ImageCollection(out / "png", val_fraction=0, test_fraction=0)) == 2
    with pytest.raises(ValueError, match="png_bits=16 needs grey-scale images"):
        SyntheticExporter(sampler, tmp_path / "x", "png", png_bits=16, model_info={})


def test_export_errors_write_nothing(tmp_path):
    sampler = _sampler(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.png").write_bytes(b"earlier export")
    with pytest.raises(FileExistsError, match="already holds files .* never overwrites"):
        SyntheticExporter(sampler, tmp_path / "busy", "png", 1, model_info={}).run()
    assert (tmp_path / "busy" / "keep.png").read_bytes() == b"earlier export"
    with pytest.raises(ValueError, match=r"class_names \['tumour'\]: not classes of the model \['lesion', 'normal'\]"):
        SyntheticExporter(sampler, tmp_path / "e", class_names=["tumour"], model_info={})
    with pytest.raises(ValueError, match="export_format must be one of"):
        SyntheticExporter(sampler, tmp_path / "e", "jpeg", model_info={})
    with pytest.raises(ValueError, match="num_samples_per_class must be >= 1"):
        SyntheticExporter(sampler, tmp_path / "e", num_samples_per_class=0, model_info={})
    with pytest.raises(ValueError, match="the model is unconditional"):
        SyntheticExporter(_sampler(tmp_path / "u", num_classes=None), tmp_path / "e", class_names=["a"], model_info={})
    with pytest.raises(ValueError, match="CT export needs intensity_range"):
        SyntheticExporter(sampler, tmp_path / "e", "dicom", 1, modality="CT", model_info={}).run()
    assert not (tmp_path / "e").exists()
