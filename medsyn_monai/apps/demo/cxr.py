"""Deterministic synthetic chest-radiograph demo collection: grey PNG phantoms in ``normal`` / ``pneumonia`` folders.

The demo (:func:`create_cxr_demo`) mimics the layout of a chest X-ray classification set such as PneumoniaMNIST
(MedMNIST v2) or the pediatric pneumonia radiographs it was made from: two class folders of 8-bit grey frontal (PA)
chest images. It exists so that the ``cxr_cfg`` bundle runs on a fresh machine without any download. It is a
**phantom**: a few smooth geometric shapes with radiograph-like brightness, not a simulation of X-ray physics, and no
patient or real image is involved. It only serves to exercise the pipeline (two visually separable classes).

The phantom (:func:`cxr_phantom`)
---------------------------------
Each image is drawn from its own generator; brighter means denser (more attenuation), as on a radiograph:

- a dark background (direct exposure) around a bright torso (soft tissue) with shoulders at the top;
- two dark lung fields (soft-edged ellipses, the patient's right lung on the image left, slightly larger), darker
  towards the apices and the periphery, with faint branching vessel markings fanning out from the hila;
- a bright mediastinum and spine in the middle (vertebrae as a periodic modulation), the heart shadow bulging to the
  image right (the patient's left) over the lower medial part of that lung, and domed diaphragms under the lungs;
- posterior ribs as faint bright arcs across each lung field, and clavicles near the top;
- random pose, size, exposure and contrast, smooth low-frequency shading and quantum-like white noise;
- ``pneumonia`` only: 1-3 patchy soft opacities (cloud-like brighter areas with fuzzy borders, made by thresholding
  smooth noise inside a soft blob) in one or both lungs, mostly in the middle and lower zones.

On disk, image ``j`` of class ``k`` (``k = 0`` normal, ``1`` pneumonia, i.e. sorted folder names) is
``root/<class>/cxr_{j:04d}.png``, drawn from ``numpy.random.default_rng([seed, 2 * j + k])``: the same arguments
always give the same pixels, and the first images do not depend on ``num_per_class``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .utils import DemoSpec, check_bool, check_rng, check_size, class_groups, smooth_noise, write_png_demo

__all__ = ["CXR_DEMO_VERSION", "CXR_DEMO_CLASSES", "cxr_phantom", "create_cxr_demo"]

#: Version of the chest X-ray demo generator; part of ``dataset.json``, bump it when the output changes.
CXR_DEMO_VERSION = "1.0"
#: Class folder names, in label order (sorted, as class-folder discovery orders them).
CXR_DEMO_CLASSES = ("normal", "pneumonia")

_MIN_SIZE = 28
# the generator's identity in dataset.json, kept from release 0.1 (module medsyn_monai.data.demo_cxr)
# so that demo folders written before the move to medsyn_monai.apps.demo stay valid
_GENERATOR_NAME = "medsyn_monai.data.demo_cxr.create_cxr_demo"


def _soft(signed: np.ndarray, width: float) -> np.ndarray:
    """Soft step: 1 where ``signed > 0`` (inside), 0 outside, a logistic ramp of about ``width`` across the edge."""
    return 1.0 / (1.0 + np.exp(-np.clip(signed / max(width, 1e-6), -30.0, 30.0)))


def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b: float, angle: float = 0.0) -> np.ndarray:
    """``1 - normalised radius`` of an ellipse: positive inside, 0 on the outline (coordinates in [-1, 1])."""
    c, s = math.cos(angle), math.sin(angle)
    du, dv = u - cu, v - cv
    x = (c * du + s * dv) / a
    y = (-s * du + c * dv) / b
    return 1.0 - np.sqrt(x * x + y * y)


def cxr_phantom(rng: np.random.Generator, size: int = 64, pneumonia: bool = False) -> np.ndarray:
    """Draw one synthetic frontal chest-radiograph-like phantom.

    Args:
        rng: the image's generator, e.g. ``numpy.random.default_rng([seed, index])``; equal generators give equal
            images.
        size: rows and columns (>= 28); all shapes scale with it.
        pneumonia: add 1-3 patchy soft opacities inside the lungs.

    Returns:
        A ``(size, size)`` ``uint8`` grey image (rows, columns): dark lungs in a bright torso on a dark background.

    Raises:
        ValueError: when ``rng`` is not a :class:`numpy.random.Generator`, ``size`` is not an integer >= 28 or
            ``pneumonia`` is not a bool.

    Example:
        >>> import numpy as np
        >>> img = cxr_phantom(np.random.default_rng([0, 1]), 64, pneumonia=True)
        >>> img.shape, img.dtype
        ((64, 64), dtype('uint8'))
        >>> int(img[32, 32]) > int(img[28, 14]) > int(img[2, 2])  # mediastinum > right lung > background
        True
        >>> np.array_equal(img, cxr_phantom(np.random.default_rng([0, 1]), 64, pneumonia=True))
        True
    """
    check_rng(rng)
    check_size(size, _MIN_SIZE)
    check_bool("pneumonia", pneumonia)
    size = int(size)
    uni = rng.uniform
    px = 2.0 / size  # one pixel in normalised units
    edge = 1.2 * px  # width of the soft edges
    coords = (np.arange(size, dtype=np.float64) + 0.5) * px - 1.0
    u, v = np.meshgrid(coords, coords)  # u: columns (left -> right), v: rows (top -> bottom), both in [-1, 1]

    # --- pose and anatomy parameters
    shift_u, shift_v = uni(-0.05, 0.05), uni(-0.05, 0.05)
    tilt = uni(-0.05, 0.05)
    scale = uni(0.92, 1.05)
    c, s = math.cos(tilt), math.sin(tilt)
    bu = (c * (u - shift_u) + s * (v - shift_v)) / scale  # body frame
    bv = (-s * (u - shift_u) + c * (v - shift_v)) / scale

    lung_b = uni(0.56, 0.64)
    lung_cv = uni(-0.1, -0.02)
    lungs = []
    for side in (-1.0, 1.0):  # image left (patient's right, larger), image right
        a = uni(0.3, 0.35) * (1.05 if side < 0 else 1.0)
        cu = side * uni(0.4, 0.45)
        lungs.append((cu, lung_cv + uni(-0.02, 0.02), a, lung_b * (1.02 if side < 0 else 0.97), side * uni(0.05, 0.15)))
    heart = (uni(0.08, 0.16), uni(0.34, 0.42), uni(0.3, 0.36), uni(0.24, 0.3), uni(-0.45, -0.25))

    # --- torso: dark background, bright soft tissue filling the frame, shoulders at the top corners
    width = uni(0.9, 0.98)
    torso = 1.0 - (np.abs(bu) / width) ** 4 - (np.abs(bv - 0.15) / 1.25) ** 4
    body = _soft(torso * 0.25, edge)
    tissue = uni(0.5, 0.58)
    img = 0.06 + body * tissue
    img += body * 0.05 * np.clip(bv + 0.3, 0.0, 1.0)  # denser towards the abdomen

    # --- lungs (dark): narrower apex than base, darker towards apices and periphery
    lung_mask = np.zeros_like(u)
    for cu, cv, a, b, angle in lungs:
        taper = 0.78 + 0.22 * np.clip((bv - cv) / b, -1.0, 1.0)
        inside = _ellipse(cu + (bu - cu) / taper, bv, cu, cv, a, b, angle)
        lung_mask = np.maximum(lung_mask, _soft(inside * 0.5, edge))
    depth = uni(0.32, 0.4)
    shade = 1.0 + 0.25 * np.clip(-bv, 0.0, 1.0) + 0.15 * np.clip(np.abs(bu) - 0.35, 0.0, 1.0)
    img -= lung_mask * depth * shade

    # vessel markings: faint branching lines fanning out from each hilum
    vessels = np.zeros_like(u)
    for cu, cv, *_ in lungs:
        hu, hv = cu * 0.45, cv + 0.08
        for _ in range(6):
            ang = uni(-0.9, 0.9) + (0.0 if cu > 0 else math.pi)
            length = uni(0.2, 0.38)
            du, dv = math.cos(ang), math.sin(ang) * 0.8
            t = np.clip((bu - hu) * du + (bv - hv) * dv, 0.0, length)
            dist = np.hypot(bu - (hu + t * du), bv - (hv + t * dv))
            vessels += np.exp(-((dist / (0.9 * px + 0.012)) ** 2)) * (1.0 - t / length)
    img += lung_mask * 0.06 * np.clip(vessels, 0.0, 1.5)

    # ribs: posterior arcs across each lung, faint and bright
    rib_profile = np.zeros_like(u)
    for k in range(9):
        v0 = -0.62 + k * uni(0.125, 0.135)
        bend = uni(0.5, 0.7)
        curve = v0 + bend * (np.abs(bu) - 0.1) ** 2 - 0.15 * np.abs(bu)
        rib_width = uni(0.02, 0.028)
        rib_profile += np.exp(-(((bv - curve) / rib_width) ** 2)) * (np.abs(bu) > 0.08)
    img += lung_mask * uni(0.035, 0.055) * np.clip(rib_profile, 0.0, 1.0)

    # --- mediastinum and spine (bright, centre), heart bulging to the image right, clavicles
    mediastinum = _soft(0.13 - np.abs(bu - 0.01) + 0.04 * np.clip(bv, 0.0, 1.0), edge) * (bv > -0.85)
    dense = 0.06 + tissue + uni(0.04, 0.08)
    img = np.maximum(img, body * mediastinum * dense)
    heart_mask = _soft(_ellipse(bu, bv, *heart) * 0.5, edge)
    img = np.maximum(img, body * heart_mask * dense)
    spine = _soft(0.055 - np.abs(bu), edge) * (bv > -0.9)
    vertebrae = 0.5 + 0.5 * np.cos(2 * math.pi * (bv - uni(0.0, 1.0)) / 0.13)
    img += spine * (0.06 + 0.04 * vertebrae) * body
    for side in (-1.0, 1.0):
        t = np.clip((bu * side - 0.08) / 0.5, 0.0, 1.0)
        curve = -0.66 - 0.08 * t + 0.05 * np.sin(math.pi * t)
        clav = np.exp(-(((bv - curve) / 0.025) ** 2)) * ((bu * side > 0.08) & (bu * side < 0.6))
        img += clav * 0.12 * body
    below = np.zeros_like(u)  # soft tissue under the diaphragm domes: bright
    for cu, cv, a, b, _angle in lungs:
        dome = cv + b * np.sqrt(np.clip(1.0 - ((bu - cu) / (a * 1.15)) ** 2, 0.0, 1.0)) * 0.92
        below = np.maximum(below, _soft(bv - dome, edge) * (np.abs(bu - cu) < a * 1.15))
    img += below * body * 0.03

    # --- pneumonia: patchy soft opacities inside the lungs
    if pneumonia:
        num = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        side_first = int(rng.integers(0, 2))
        for i in range(num):
            cu, cv, a, b, _ = lungs[(side_first + i) % 2 if uni() < 0.4 else side_first]
            ou = cu + uni(-0.45, 0.45) * a
            ov = cv + uni(-0.1, 0.65) * b  # mostly middle and lower zones
            r = uni(0.12, 0.2)
            blob = np.exp(-(((bu - ou) ** 2 + ((bv - ov) / uni(0.9, 1.4)) ** 2) / (2 * r * r)))
            patches = np.clip((smooth_noise(rng, size, max(4, size // 8)) + 0.4) * 1.6, 0.0, 1.0)
            img += lung_mask * (1.0 - heart_mask) * (1.0 - mediastinum) * blob * patches * uni(0.22, 0.34)

    # --- exposure, shading and noise
    img = img * uni(0.9, 1.1) + uni(-0.04, 0.04)
    img += 0.025 * smooth_noise(rng, size, 3)
    img += rng.normal(0.0, uni(0.008, 0.02), size=img.shape)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _readme(generator: dict, counts: dict[str, int]) -> str:
    par = generator["parameters"]
    return f"""# SYNTHETIC DEMO DATA - NOT PATIENT DATA

This folder holds a **synthetic** chest-radiograph-like collection: computed phantom images made by
`{generator["name"]}` (medsyn_monai chest X-ray demo generator version {generator["version"]}). No patient, X-ray
machine or real image was involved; nothing here is, or is derived from, patient data. It is a phantom of a few
smooth shapes, not a simulation of radiography: do not use it for any clinical or scientific claim. It exists only to
demonstrate and test the pipeline (e.g. the `cxr_cfg` bundle) without downloads.

## How it was made
Each image imitates a frontal (PA) chest radiograph: a bright torso on a dark background, two dark lung fields with
faint vessel markings, posterior ribs as faint bright arcs, clavicles, a bright mediastinum and spine, a heart
shadow bulging to the image right, domed diaphragms; pose, size, exposure and noise vary. Image `j` of class `k` is
drawn from `numpy.random.default_rng([seed, 2 * j + k])`.

## Classes
- `normal/` ({counts["normal"]} images, label 0): clear lungs.
- `pneumonia/` ({counts["pneumonia"]} images, label 1): 1-3 patchy soft opacities (brighter, fuzzy areas) in one or
  both lungs, mostly in the middle and lower zones.

## Format
8-bit grey PNG files `<class>/cxr_XXXX.png` of {par["size"]}x{par["size"]} pixels. `dataset.json` lists the images and
the generator parameters (num_per_class={par["num_per_class"]}, size={par["size"]}, seed={par["seed"]}).
"""


_SPEC = DemoSpec(
    what="chest X-ray",
    generator_name=_GENERATOR_NAME,
    version=CXR_DEMO_VERSION,
    classes=CXR_DEMO_CLASSES,
    min_size=_MIN_SIZE,
    name="medsyn_monai synthetic chest X-ray demo",
    description=(
        "SYNTHETIC DEMO DATA (computed chest-radiograph-like phantoms, not patient data): grey PNG images, "
        "class 'pneumonia' has 1-3 patchy soft opacities in the lungs, 'normal' none."
    ),
    modality="CR",
    readme=_readme,
)


def create_cxr_demo(root: str | Path, num_per_class: int = 200, size: int = 64, seed: int = 0) -> Path:
    """Write the synthetic chest-radiograph demo: grey PNG phantoms in ``normal`` / ``pneumonia`` class folders.

    Layout: ``root/normal/cxr_XXXX.png`` and ``root/pneumonia/cxr_XXXX.png``, plus ``root/README.md`` (which states
    that this is synthetic demo data) and ``root/dataset.json`` (name, description, classes, image list, generator
    parameters and version); written once and atomically
    (:func:`~medsyn_monai.apps.demo.utils.write_demo_atomically`).

    Args:
        root: destination folder; must be absent, empty, or hold this very demo.
        num_per_class: images per class (>= 1); image ``j`` of class ``k`` is :func:`cxr_phantom` drawn from
            ``numpy.random.default_rng([seed, 2 * j + k])``.
        size: rows and columns of every image (>= 28); every shape scales with it.
        seed: collection seed (>= 0); the same arguments always give identical pixels.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: on invalid arguments, or when ``root`` is a file or a non-empty folder that does not hold a
            complete, identical demo.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = create_cxr_demo(Path(tmp) / "cxr", num_per_class=2, size=32)
        ...     meta = json.loads((root / "dataset.json").read_text())
        ...     sorted(p.name for p in root.iterdir()), meta["classes"], meta["images"][1]["path"]
        (['README.md', 'dataset.json', 'normal', 'pneumonia'], ['normal', 'pneumonia'], 'normal/cxr_0001.png')
    """

    def draw(rng: np.random.Generator, cls_name: str) -> np.ndarray:
        return cxr_phantom(rng, size, pneumonia=cls_name == CXR_DEMO_CLASSES[1])

    groups = class_groups(CXR_DEMO_CLASSES, "cxr", num_per_class)
    return write_png_demo(root, _SPEC, groups, draw, num_per_class=num_per_class, size=size, seed=seed)
