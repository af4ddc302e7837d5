"""SyntheticDicomWriter: Secondary Capture marked synthetic, HU rescale for CT, one series per class, fresh UIDs,
readable by pydicom and highdicom without warnings."""

from __future__ import annotations

import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medsyn_monai.apps.export import SYNTHETIC_CONVERSION_TYPE, SyntheticDicomWriter


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning of pydicom or highdicom fails the test
        ds = pydicom.dcmread(path)
        image = hd.imread(path)
        ds.pixel_array  # noqa: B018 - decodes
    return ds, image


def test_ct_series_marked_synthetic_in_hu(tmp_path):
    writer = SyntheticDicomWriter("ct_lightweight", "ct model.pt sha256 abc", modality="CT",
                                  intensity_range=(-160.0, 240.0))  # fmt: skip
    x = np.linspace(-1, 1, 6 * 4, dtype=np.float32).reshape(1, 6, 4)  # (C, X, Y)
    paths = [writer.write(x, tmp_path / f"{c}_{i}.dcm", c, seed=7) for c in ("lesion", "normal") for i in range(2)]
    datasets = [_read(p)[0] for p in paths]
    ds = datasets[0]
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert ds.ConversionType == SYNTHETIC_CONVERSION_TYPE == "SYN"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.BurnedInAnnotation == "NO"
    assert ds.PatientName == "SYNTHETIC^ct_lightweight" and ds.PatientID == "SYNTHETIC-ct_lightweight"
    assert ds.PatientIdentityRemoved == "YES" and "synthetic" in ds.DeidentificationMethod
    assert "SYNTHETIC" in ds.ImageComments and "ct model.pt" in ds.ImageComments and "Seed: 7" in ds.ImageComments
    assert ds.Modality == "CT" and ds.RescaleType == "HU" and ds.BitsAllocated == 16
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert ds.pixel_array.shape == (4, 6)  # rows = y, columns = x
    np.testing.assert_allclose(hu, (-160 + (x[0] + 1) / 2 * 400).T, atol=0.5)
    # one study, one series per class, every instance its own UID
    assert len({d.StudyInstanceUID for d in datasets}) == 1
    assert [d.SeriesInstanceUID == datasets[0].SeriesInstanceUID for d in datasets] == [True, True, False, False]
    assert [int(d.InstanceNumber) for d in datasets] == [1, 2, 1, 2]
    assert len({d.SOPInstanceUID for d in datasets}) == 4
    # a second export: fresh study UID
    again = SyntheticDicomWriter("ct_lightweight", "m", modality="CT", intensity_range=(-160, 240))
    assert pydicom.dcmread(again.write(x, tmp_path / "b.dcm", "lesion", 0)).StudyInstanceUID != ds.StudyInstanceUID


def test_rgb_and_16_bit_grey(tmp_path):
    rgb = SyntheticDicomWriter("derm_dreambooth", "m", modality="XC")
    ds, image = _read(rgb.write(np.zeros((3, 5, 5), np.float32), tmp_path / "rgb.dcm", None, 0))
    assert ds.PhotometricInterpretation == "RGB" and ds.BitsAllocated == 8 and ds.pixel_array.shape == (5, 5, 3)
    assert int(ds.pixel_array[0, 0, 0]) == 128 and "Unconditional" in ds.ImageComments
    dx = SyntheticDicomWriter("cxr_cfg", "m", modality="dx")
    ds, _ = _read(dx.write(np.ones((1, 5, 5), np.float32), tmp_path / "dx.dcm", "normal", 0))
    assert ds.Modality == "DX" and ds.BitsAllocated == 16 and int(ds.pixel_array.max()) == 65535
    assert "RescaleType" not in ds
    gm = SyntheticDicomWriter("cell_ddpm", "m", modality="GM")
    ds, _ = _read(gm.write(-np.ones((1, 5, 5), np.float32), tmp_path / "gm.dcm", "a", 0))
    assert ds.BitsAllocated == 8 and int(ds.pixel_array.max()) == 0


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="CT export needs intensity_range"):
        SyntheticDicomWriter("b", "m", modality="CT")
    with pytest.raises(ValueError, match="modality must be a DICOM modality code"):
        SyntheticDicomWriter("b", "m", modality="C T")
    with pytest.raises(ValueError, match="high > low"):
        SyntheticDicomWriter("b", "m", modality="CT", intensity_range=(5, 5))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        SyntheticDicomWriter("b", "m").write(np.zeros((2, 4, 4)), tmp_path / "x.dcm", None, 0)
    assert not list(tmp_path.iterdir())
