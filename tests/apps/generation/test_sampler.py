"""DiffusionSampler: PNG and NIfTI files of the same image, seeded reproducibility, clear argument errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDIMScheduler
from PIL import Image

from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import LightweightDiffusionUNet
from tests._helpers import tiny_unet


def test_sampler_writes_png_nifti(tmp_path):
    net = tiny_unet(num_classes=2)
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    sched = DDIMScheduler(100)

    def sampler(out, seed=0, **kw):
        return DiffusionSampler(tiny_unet(num_classes=2), ConditionalDiffusionInferer(sched), sched,
                                tmp_path / "model.pt", out, num_samples=5, image_shape=(1, 8, 12), batch_size=2,
                                num_inference_steps=4, class_names=["normal", "lesion"], seed=seed,
                                nifti_range=(-160, 240), verbose=False, **kw)  # fmt: skip

    rows = sampler(tmp_path / "s1").run()
    assert [r["class_name"] for r in rows] == ["normal", "lesion", "normal", "lesion", "normal"]
    png = Image.open(tmp_path / "s1" / "sample_00001_lesion.png")
    assert png.size == (8, 12) and png.mode == "L"  # PIL size is (width=x, height=y)
    nii = nib.load(tmp_path / "s1" / "sample_00001_lesion.nii.gz").get_fdata()
    assert nii.shape == (8, 12) and nii.min() >= -160 - 1e-3 and nii.max() <= 240 + 1e-3
    # PNG and NIfTI hold the same image
    png_vals = torch.tensor(np.array(png), dtype=torch.float32).T / 255
    assert torch.allclose(png_vals, torch.tensor((nii + 160) / 400, dtype=torch.float32), atol=1 / 255 + 1e-3)
    assert (tmp_path / "s1" / "grid.png").is_file() and (tmp_path / "s1" / "samples.csv").is_file()
    # the same seed reproduces the images, another seed does not
    sampler(tmp_path / "s2").run()
    sampler(tmp_path / "s3", seed=1).run()
    a, b, c = (nib.load(tmp_path / s / "sample_00000_normal.nii.gz").get_fdata() for s in ("s1", "s2", "s3"))
    assert (a == b).all() and not (a == c).all()


def test_sampler_errors(tmp_path):
    sched = DDIMScheduler(100)
    s = DiffusionSampler(tiny_unet(), ConditionalDiffusionInferer(sched), sched, tmp_path / "missing.pt", tmp_path, 2,
                         (1, 8, 8))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="train.json"):
        s.run()
    torch.save(LightweightDiffusionUNet(channels=(8, 32), norm_num_groups=4).state_dict(), tmp_path / "other.pt")
    s = DiffusionSampler(tiny_unet(), ConditionalDiffusionInferer(sched), sched, tmp_path / "other.pt", tmp_path, 2,
                         (1, 8, 8))  # fmt: skip
    with pytest.raises(RuntimeError, match="does not fit"):
        s.run()
    with pytest.raises(ValueError, match=r"class_labels \[3\]: not classes of the model, whose classes are \['a'\]"):
        DiffusionSampler(tiny_unet(), None, sched, "x", tmp_path, 2, (1, 8, 8), class_names=["a"], class_labels=[3])
    with pytest.raises(ValueError, match=r"class_labels \['c'\]: not classes"):
        DiffusionSampler(
            tiny_unet(), None, sched, "x", tmp_path, 2, (1, 8, 8), class_names=["a", "b"], class_labels=["c"]
        )
    by_name = DiffusionSampler(tiny_unet(), None, sched, "x", tmp_path, 2, (1, 8, 8), class_names=["a", "b"],
                               class_labels=["b"], num_samples_per_class=3)  # fmt: skip
    assert by_name.class_labels == [1] and by_name.num_samples == 3
    with pytest.raises(ValueError, match="num_samples_per_class"):
        DiffusionSampler(tiny_unet(), None, sched, "x", tmp_path, 2, (1, 8, 8), num_samples_per_class=0)
