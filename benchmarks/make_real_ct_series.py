"""Write the real CT data of ``../shared/data/ct/`` as DICOM series in several transfer syntaxes.

The shared data holds one real CT volume as a NumPy array (``stent.npz``, 256 x 128 x 128, HU clipped at 0) and one
real CT DICOM slice (``dicom_file01.dcm``, 512 x 512, Catphan phantom). This script turns the volume into four
"cases" (consecutive 64-slice blocks), each a DICOM series in a different transfer syntax — uncompressed, RLE
lossless, JPEG 2000 lossless, JPEG-LS lossless — and copies the real slice as a fifth, single-slice series, so that
the bundles can be run on real CT pixel data stored the ways hospitals store it::

    python benchmarks/make_real_ct_series.py /tmp/real_ct
    python -m monai.bundle run --config_file bundles/ct_lightweight/configs/train.json \
        --dataset_dir /tmp/real_ct --output_dir runs/ct_real
    python -m monai.bundle run --config_file bundles/ct_lightweight/configs/inference.json --output_dir runs/ct_real

``train.json`` and ``inference.json`` stand alone. The cases carry no class labels, so the model is unconditional and
the overlays stacked on ``train.json`` that need an expert classifier (``train_expert.json``, then ``evaluate.json``)
have nothing to learn from here.

File names are shuffled relative to slice order (readers must sort by ImagePositionPatient). The output goes outside
the project: never commit the shared data.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
from _common import shared_data
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

SYNTAXES = {
    "uncompressed": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000": JPEG2000Lossless,
    "jpegls": JPEGLSLossless,
}


def _slice_dataset(pixels: np.ndarray, case: str, index: int, study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[case, str(index)])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Anonymous^Stent", "STENT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=["stent-frame"])
    ds.Modality, ds.SeriesDescription = "CT", f"stent CT {case}"
    ds.InstanceNumber = index + 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0.0, 0.0, float(index) * 1.0]
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 1.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.PixelData = (pixels.astype(np.int32) + 1024).astype(np.uint16).tobytes()
    return ds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="folder to create (must not exist or be empty)")
    parser.add_argument("--ct-dir", type=Path, default=None,
                        help="folder with stent.npz and dicom_file01.dcm (default: ct/ of ../shared/data)")  # fmt: skip
    args = parser.parse_args()
    shared = shared_data(args.ct_dir, "ct", option="--ct-dir")
    if args.output.exists() and any(args.output.iterdir()):
        print(f"{args.output} is not empty", file=sys.stderr)
        return 1
    volume = np.load(shared / "stent.npz")["arr_0"]  # (z, y, x), HU clipped at 0
    rng = np.random.default_rng(0)
    study = generate_uid(entropy_srcs=["stent-study"])
    for block, (name, syntax) in enumerate(SYNTAXES.items()):
        case = f"stent_{block}_{name}"
        folder = args.output / case
        folder.mkdir(parents=True)
        series = generate_uid(entropy_srcs=[case])
        order = rng.permutation(64)
        for i in range(64):
            ds = _slice_dataset(volume[block * 64 + i], case, i, study, series)
            if syntax != ExplicitVRLittleEndian:
                ds.compress(syntax)
            ds.save_as(folder / f"IM{order[i]:04d}.dcm", enforce_file_format=True)
        print(f"wrote {folder} (64 slices, {syntax.name})")
    single = args.output / "catphan_single_slice"
    single.mkdir()
    shutil.copy(shared / "dicom_file01.dcm", single / "IM0001.dcm")
    print(f"wrote {single} (the real 512 x 512 CT slice)")
    # check: everything decodes
    for f in sorted(args.output.rglob("*.dcm")):
        pydicom.dcmread(f).pixel_array  # noqa: B018
    return 0


if __name__ == "__main__":
    sys.exit(main())
