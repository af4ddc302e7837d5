"""Deterministic synthetic cell-microscopy demo collection: RGB crops of stained red blood cells, as PNG files.

The demo (:func:`create_cells_demo`) mimics the layout and look of the NIH malaria cell images (thin blood smear,
Giemsa stain, one segmented red blood cell per crop): two class folders, ``parasitized`` and ``uninfected``, of 8-bit
RGB PNG crops. It exists so that the ``cell_ddpm`` bundle runs on a fresh machine without any download. No patient,
microscope or real image is involved.

The phantom (:func:`cells_phantom`)
-----------------------------------
Each crop is drawn from its own generator and painted with vectorised numpy:

- one roughly elliptical cell (random mean radius 33-42 % of the crop, shrunk where its outline would reach the
  border, eccentricity, rotation, centre jitter) whose outline is made slightly irregular by low-order harmonics of
  the polar angle; edges are anti-aliased over a pixel;
- pinkish-red cytoplasm (random staining hue and intensity, red always the strongest channel) with a paler centre
  (biconcave disc), a slightly darker rim, a smooth linear illumination gradient, smooth low-frequency texture and
  white noise;
- exact black (0, 0, 0) background outside the cell, as in the black padding of the NIH crops; the cell never
  touches the crop border (a one-pixel black frame at least);
- faint small artefacts (slightly darker or paler pinkish spots, red still above blue) in either class, so that "any
  dark spot" does not tell the classes apart;
- parasitized cells only: 1-3 dark purple Giemsa-stained inclusions (blue above red, dark) inside the cell, each
  either a *ring form* (thin purple ring with a dark chromatin dot) or an irregular *trophozoite* blob with darker
  chromatin; uninfected cells never get them.

On disk, image ``j`` of class ``k`` (``k = 0`` parasitized, ``1`` uninfected, i.e. sorted folder names) is
``root/<class>/cell_{j:04d}.png``, drawn from ``numpy.random.default_rng([seed, 2 * j + k])``: the same arguments
always give the same pixels, and the first images do not depend on ``num_per_class``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .utils import DemoSpec, blend, check_bool, check_rng, check_size, class_groups, smooth_noise, write_png_demo

__all__ = ["CELLS_DEMO_VERSION", "CELLS_DEMO_CLASSES", "cells_phantom", "create_cells_demo"]

#: Version of the cell demo generator; part of ``dataset.json``, bump it when the output changes.
CELLS_DEMO_VERSION = "1.0"
#: Class folder names, in label order (sorted, as class-folder discovery orders them).
CELLS_DEMO_CLASSES = ("parasitized", "uninfected")

_MIN_SIZE = 32
# the generator's identity in dataset.json, kept from release 0.1 (module medsyn_monai.data.demo_cells)
# so that demo folders written before the move to medsyn_monai.apps.demo stay valid
_GENERATOR_NAME = "medsyn_monai.data.demo_cells.create_cells_demo"
_PARASITE_RGB = np.array([0.36, 0.16, 0.50], dtype=np.float32)  # dark Giemsa purple
_CHROMATIN_RGB = np.array([0.25, 0.08, 0.38], dtype=np.float32)  # darker chromatin dot


def _disc(x: np.ndarray, y: np.ndarray, cx: float, cy: float, radius: float) -> np.ndarray:
    """Anti-aliased disc (1 inside, 0 outside, one-pixel linear ramp across the rim); lengths in pixels."""
    d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    return np.clip(radius - d + 0.5, 0.0, 1.0)


def cells_phantom(rng: np.random.Generator, size: int = 64, parasitized: bool = False) -> np.ndarray:
    """Draw one synthetic Giemsa-stained red blood cell crop.

    Args:
        rng: the image's generator, e.g. ``numpy.random.default_rng([seed, index])``; equal generators give equal
            images.
        size: rows and columns of the crop (>= 32); the cell scales with it, inclusions and spots scale with it above
            64 pixels and keep their 64-pixel size below.
        parasitized: paint 1-3 dark purple inclusions (ring forms or trophozoites) inside the cell.

    Returns:
        An ``(size, size, 3)`` ``uint8`` RGB image (rows, columns, channels): a pinkish cell on an exactly black
        background, the border rows and columns always black.

    Raises:
        ValueError: when ``rng`` is not a :class:`numpy.random.Generator`, ``size`` is not an integer >= 32 or
            ``parasitized`` is not a bool.

    Example:
        >>> import numpy as np
        >>> img = cells_phantom(np.random.default_rng([0, 0]), 64, parasitized=True)
        >>> img.shape, img.dtype, img[0].max(), img[32, 32, 0] > img[32, 32, 2]
        ((64, 64, 3), dtype('uint8'), np.uint8(0), np.True_)
        >>> np.array_equal(img, cells_phantom(np.random.default_rng([0, 0]), 64, parasitized=True))
        True
    """
    check_rng(rng)
    check_size(size, _MIN_SIZE)
    check_bool("parasitized", parasitized)
    size = int(size)
    u = rng.uniform
    s = max(size / 64.0, 1.0)  # inclusion/spot scale (pixels at 64 px -> pixels here), never below the 64 px sizes

    # --- cell geometry: ellipse with a slightly irregular outline, kept off the border (>= 1 black pixel)
    radius = u(0.33, 0.42) * size
    ecc = u(0.0, 0.12)
    angle = u(0.0, math.pi)
    harmonics = [(k, u(0.0, 0.05 / 4), u(0.0, 2 * math.pi)) for k in (2, 3, 4, 5)]
    stretch = (1 + ecc) * (1 + sum(h[1] for h in harmonics))  # farthest outline point / radius
    radius = min(radius, (size / 2 - 1.0) / stretch - 0.5)  # the anti-aliased edge ends 0.5 * stretch further
    a, b = radius * (1 + ecc), radius * (1 - ecc)
    room = max(0.0, size / 2 - 1.0 - stretch * (radius + 0.5))  # border pixel centres are at size / 2 - 0.5
    cx = size / 2 + u(-1, 1) * min(room, 0.05 * size)
    cy = size / 2 + u(-1, 1) * min(room, 0.05 * size)

    coords = np.arange(size, dtype=np.float32) + 0.5
    x, y = np.meshgrid(coords, coords)  # x: column, y: row (pixel centres)
    c, sn = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    cu = (c * dx + sn * dy) / a
    cv = (c * dy - sn * dx) / b
    phi = np.arctan2(cv, cu)
    wobble = np.ones_like(phi)
    for k, amp, phase in harmonics:
        wobble += amp * np.cos(k * phi + phase)
    rho = np.sqrt(cu * cu + cv * cv) / wobble  # 0 at the centre, 1 on the outline
    mask = np.clip((1.0 - rho) * radius + 0.5, 0.0, 1.0)

    # --- cytoplasm: staining hue/intensity, pale centre, darker rim, illumination, texture, noise
    red = u(0.76, 0.92)
    green = u(0.58, 0.7)
    base = np.array([red, red * green, red * min(0.82, green + u(0.03, 0.14))], dtype=np.float32)
    pale_rgb = np.array([0.97, 0.88, 0.9], dtype=np.float32)
    pale = u(0.25, 0.55) * np.exp(-((rho / u(0.3, 0.5)) ** 2))
    rim = u(0.08, 0.2) * np.exp(-(((1.0 - rho) / 0.15) ** 2))
    img = np.broadcast_to(base, (size, size, 3)).copy()
    blend(img, pale.astype(np.float32), pale_rgb)
    gx, gy = u(-0.12, 0.12), u(-0.12, 0.12)
    shade = (1.0 - rim) * (1.0 + gx * (x / size - 0.5) * 2 + gy * (y / size - 0.5) * 2) * u(0.88, 1.04)
    shade = shade + u(0.01, 0.03) * smooth_noise(rng, size, 6)
    img *= shade[..., None].astype(np.float32)

    def inside_point(max_rho: float) -> tuple[float, float]:
        """A random point of the cell at normalised radius <= ``max_rho`` (pixel coordinates)."""
        r, t = max_rho * math.sqrt(u()), u(0.0, 2 * math.pi)
        pu, pv = r * math.cos(t) * a, r * math.sin(t) * b
        return cx + c * pu - sn * pv, cy + sn * pu + c * pv

    # --- faint artefacts (both classes): small, slightly darker or paler pinkish spots, red stays above blue
    num_artefacts = int(rng.choice(4, p=[0.35, 0.35, 0.2, 0.1] if not parasitized else [0.55, 0.3, 0.1, 0.05]))
    for _ in range(num_artefacts):
        px, py = inside_point(0.8)
        spot = _disc(x, y, px, py, u(0.8, 2.2) * s) * u(0.5, 0.9)
        if u() < 0.65:
            dark = u(0.6, 0.82)
            tint = img * np.array([dark, dark * u(0.88, 1.0), dark * u(0.88, 1.0)], dtype=np.float32)
        else:
            tint = img + (pale_rgb - img) * 0.5
        blend(img, spot, tint)

    # --- parasites: 1-3 dark purple inclusions inside the cell
    if parasitized:
        for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):
            stain = _PARASITE_RGB * u(0.8, 1.15) * np.array([1.0, u(0.85, 1.15), 1.0], dtype=np.float32)
            opacity = u(0.82, 0.95)
            if u() < 0.55:  # ring form: thin ring and a chromatin dot on it
                ring_r = u(2.2, 3.6) * s
                px, py = inside_point(max(0.0, 0.72 - (ring_r + 1.5) / radius))
                d = np.sqrt((x - px) ** 2 + (y - py) ** 2)
                ring = np.exp(-(((d - ring_r) / (u(0.6, 0.9) * s)) ** 2)) * opacity * u(0.6, 0.85)
                blend(img, (ring * mask).astype(np.float32), stain)
                t = u(0.0, 2 * math.pi)
                dot = _disc(x, y, px + ring_r * math.cos(t), py + ring_r * math.sin(t), u(1.3, 1.9) * s)
                blend(img, (dot * mask * max(opacity, 0.9)).astype(np.float32), _CHROMATIN_RGB * u(0.85, 1.15))
            else:  # trophozoite: irregular blob of 2-4 lobes with darker chromatin
                px, py = inside_point(max(0.0, 0.7 - 6.0 * s / radius))
                field = np.zeros((size, size), dtype=np.float32)
                for _lobe in range(int(rng.integers(2, 5))):
                    lx, ly = px + u(-2.5, 2.5) * s, py + u(-2.5, 2.5) * s
                    sigma = u(1.2, 2.2) * s
                    field += np.exp(-((x - lx) ** 2 + (y - ly) ** 2) / (2 * sigma * sigma))
                blob = np.clip((field - 0.45) * 4.0, 0.0, 1.0)
                mottle = 1.0 + 0.12 * smooth_noise(rng, size, max(4, size // 4))
                blend(img, (blob * mask * opacity).astype(np.float32), stain * mottle[..., None])
                chrom = _disc(x, y, px + u(-1.5, 1.5) * s, py + u(-1.5, 1.5) * s, u(0.9, 1.4) * s)
                blend(img, (chrom * blob * mask * opacity).astype(np.float32), _CHROMATIN_RGB)

    img += rng.normal(0.0, u(0.006, 0.018), size=img.shape).astype(np.float32)
    img *= mask[..., None]  # black outside the cell, anti-aliased outline
    out = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    out[mask <= 0.0] = 0
    return out


def _readme(generator: dict, counts: dict[str, int]) -> str:
    par = generator["parameters"]
    return f"""# SYNTHETIC DEMO DATA - NOT PATIENT DATA

This folder holds a **synthetic** cell-microscopy collection: computed images made by `{generator["name"]}`
(medsyn_monai cells demo generator version {generator["version"]}). No patient, blood sample, microscope or real
image was involved; nothing here is, or is derived from, patient data. Do not use it for any clinical or scientific
claim: it exists only to demonstrate and test the training pipeline (e.g. the `cell_ddpm` bundle) without downloads.

## How it was made
Each image imitates a crop of one Giemsa-stained red blood cell from a thin blood smear (like the NIH malaria cell
images): an irregular elliptical cell with pinkish-red cytoplasm, a paler centre and a darker rim, a smooth
illumination gradient, texture and noise, on an exactly black background. Staining, size, shape and position vary.
Both classes may contain faint small artefacts. Image `j` of class `k` is drawn from
`numpy.random.default_rng([seed, 2 * j + k])`.

## Classes
- `parasitized/` ({counts["parasitized"]} images, label 0): 1-3 dark purple inclusions inside the cell (ring forms with
  a chromatin dot, or irregular trophozoite blobs).
- `uninfected/` ({counts["uninfected"]} images, label 1): no inclusion.

## Format
8-bit RGB PNG files `<class>/cell_XXXX.png` of {par["size"]}x{par["size"]} pixels. `dataset.json` lists the images and
the generator parameters (num_per_class={par["num_per_class"]}, size={par["size"]}, seed={par["seed"]}).
"""


_SPEC = DemoSpec(
    what="cells",
    generator_name=_GENERATOR_NAME,
    version=CELLS_DEMO_VERSION,
    classes=CELLS_DEMO_CLASSES,
    min_size=_MIN_SIZE,
    name="medsyn_monai synthetic cells demo",
    description=(
        "SYNTHETIC DEMO DATA (computed Giemsa-stained red blood cell crops, not patient data): RGB PNG "
        "images, class 'parasitized' has 1-3 dark purple inclusions inside the cell, 'uninfected' none."
    ),
    modality="microscopy",
    readme=_readme,
)


def create_cells_demo(root: str | Path, num_per_class: int = 200, size: int = 64, seed: int = 0) -> Path:
    """Write the synthetic cell-microscopy demo: RGB PNG crops in ``parasitized`` / ``uninfected`` class folders.

    Layout: ``root/parasitized/cell_XXXX.png`` and ``root/uninfected/cell_XXXX.png``, plus ``root/README.md`` (which
    states that this is synthetic demo data) and ``root/dataset.json`` (name, description, classes, image list,
    generator parameters and version); written once and atomically
    (:func:`~medsyn_monai.apps.demo.utils.write_demo_atomically`).

    Args:
        root: destination folder; must be absent, empty, or hold this very demo.
        num_per_class: images per class (>= 1); image ``j`` of class ``k`` is :func:`cells_phantom` drawn from
            ``numpy.random.default_rng([seed, 2 * j + k])``.
        size: rows and columns of every crop (>= 32); the cell scales with it.
        seed: collection seed (>= 0); the same arguments always give identical pixels.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: on invalid arguments, or when ``root`` is a file or a non-empty folder that does not hold a
            complete, identical demo.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = create_cells_demo(Path(tmp) / "cells", num_per_class=2, size=32)
        ...     sorted(p.name for p in root.iterdir()), len(list(root.rglob("*.png")))
        (['README.md', 'dataset.json', 'parasitized', 'uninfected'], 4)
    """

    def draw(rng: np.random.Generator, cls_name: str) -> np.ndarray:
        return cells_phantom(rng, size, parasitized=cls_name == CELLS_DEMO_CLASSES[0])

    groups = class_groups(CELLS_DEMO_CLASSES, "cell", num_per_class)
    return write_png_demo(root, _SPEC, groups, draw, num_per_class=num_per_class, size=size, seed=seed)
