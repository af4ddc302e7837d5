"""Deterministic synthetic "histology-like" demo collection: grey texture tiles in 8 tissue-named classes, as PNG.

The demo (:func:`create_histo_demo`) borrows the class names and the folder layout of colorectal-cancer tissue tile
collections such as NCT-CRC-HE-100K (Kather et al. 2019): one folder per tissue type holding small tiles. It exists
so that the ``histo_feature_aligned`` bundle runs on a fresh machine without any download. **It is not histology**:
the tiles are procedural textures, distinguishable by construction, that only exercise the pipeline (expert
classifier, class-conditional diffusion, feature alignment, generation accuracy). No tissue, slide, scanner or real
image is involved.

The textures (:func:`histo_phantom`)
------------------------------------
Every tile is a grey image (bright = unstained, as H&E tiles converted to grey: nuclei dark, lumina and fat bright),
drawn from its own generator with vectorised numpy. Sizes are in pixels of a 64-pixel tile and scale with ``size``:

- ``adipose``: large empty polygons (a Voronoi tessellation of 5-12 seeds) with bright interiors and thin grey
  membranes, a few flat nuclei on the membranes;
- ``background``: almost blank bright tiles with faint smooth shading and noise;
- ``debris``: a mottled mid-grey necrotic ground with many irregular fragments of all sizes and dark pyknotic dots;
- ``lymphocytes``: densely packed small, round, very dark nuclei (radius about 1.6 px) on a light ground;
- ``mucus``: pale, wispy, low-contrast streaks (stretched smooth noise) with a few scattered cells;
- ``muscle``: long parallel fibres at a random angle (oriented stripes) with cigar-shaped nuclei along them;
- ``normal_mucosa``: 2-4 round glands (crypts), each a bright lumen surrounded by a regular ring of basal nuclei,
  in a lighter stroma;
- ``tumour``: crowded, large, irregular nuclei of uneven darkness and size in a darker cellular ground, with
  irregular slit-like lumina.

On disk, image ``j`` of class ``k`` (``k`` = position in :data:`HISTO_DEMO_CLASSES`, the sorted folder names) is
``root/<class>/tile_{j:04d}.png``, drawn from ``numpy.random.default_rng([seed, 8 * j + k])``: the same arguments
always give the same pixels, and the first images do not depend on ``num_per_class``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .utils import DemoSpec, check_rng, check_size, class_groups, smooth_noise, write_png_demo

__all__ = ["HISTO_DEMO_VERSION", "HISTO_DEMO_CLASSES", "histo_phantom", "create_histo_demo"]

#: Version of the histology-like demo generator; part of ``dataset.json``, bump it when the output changes.
HISTO_DEMO_VERSION = "1.0"
#: Class folder names, in label order (sorted, as class-folder discovery orders them).
HISTO_DEMO_CLASSES = (
    "adipose",
    "background",
    "debris",
    "lymphocytes",
    "mucus",
    "muscle",
    "normal_mucosa",
    "tumour",
)

_MIN_SIZE = 32
# the generator's identity in dataset.json, kept from release 0.1 (module medsyn_monai.data.demo_histo)
# so that demo folders written before the move to medsyn_monai.apps.demo stay valid
_GENERATOR_NAME = "medsyn_monai.data.demo_histo.create_histo_demo"


class _Canvas:
    """A grey float image with anti-aliased ellipse stamping restricted to each shape's bounding box."""

    def __init__(self, size: int, value: np.ndarray | float) -> None:
        self.size = size
        self.img = np.broadcast_to(np.asarray(value, dtype=np.float32), (size, size)).copy()

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, angle: float, value: float, opacity: float = 1.0
    ) -> None:
        """Blend an anti-aliased ellipse (semi-axes ``rx`` along ``angle``, ``ry`` across) towards ``value``."""
        r = max(rx, ry) + 1.5
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, self.size)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, self.size)
        if x0 >= x1 or y0 >= y1:
            return
        y, x = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        c, s = math.cos(angle), math.sin(angle)
        u = (c * (x - cx) + s * (y - cy)) / max(rx, 1e-3)
        v = (c * (y - cy) - s * (x - cx)) / max(ry, 1e-3)
        rho = np.sqrt(u * u + v * v)
        alpha = np.clip((1.0 - rho) * min(rx, ry) + 0.5, 0.0, 1.0) * opacity
        patch = self.img[y0:y1, x0:x1]
        patch += alpha * (value - patch)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(coords, coords)  # x: column, y: row (pixel centres)


def _adipose(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    x, y = _grid(size)
    n = int(rng.integers(5, 13))
    seeds = rng.uniform(-0.1 * size, 1.1 * size, size=(n, 2)).astype(np.float32)
    d2 = (x[None] - seeds[:, 0, None, None]) ** 2 + (y[None] - seeds[:, 1, None, None]) ** 2
    order = np.argsort(d2, axis=0)[:2]  # the two nearest seeds of every pixel
    first, second = np.take_along_axis(d2, order, axis=0)
    separation = np.linalg.norm(seeds[order[1]] - seeds[order[0]], axis=-1)  # (size, size)
    border = (second - first) / (2 * np.maximum(separation, 1e-3))  # distance to the Voronoi border
    width = rng.uniform(0.7, 1.1) * s
    membrane = np.clip(1.0 - border / width, 0.0, 1.0)
    canvas = _Canvas(size, rng.uniform(0.9, 0.96) + 0.01 * smooth_noise(rng, size, 4))
    canvas.img += membrane * (rng.uniform(0.5, 0.62) - canvas.img)
    for _ in range(int(rng.integers(0, 4))):  # flat nuclei lying on membranes
        for _try in range(20):
            px, py = rng.uniform(0, size, 2)
            if membrane[min(int(py), size - 1), min(int(px), size - 1)] > 0.5:
                canvas.ellipse(px, py, 2.6 * s, 1.0 * s, rng.uniform(0, math.pi), rng.uniform(0.3, 0.42))
                break
    return canvas.img


def _background(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    img = rng.uniform(0.9, 0.97) + rng.uniform(0.005, 0.02) * smooth_noise(rng, size, 3)
    return img.astype(np.float32)


def _debris(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    ground = rng.uniform(0.62, 0.72) + 0.06 * smooth_noise(rng, size, 8) + 0.04 * smooth_noise(rng, size, 16)
    canvas = _Canvas(size, ground)
    area = (size / 64.0) ** 2
    for _ in range(int(rng.integers(25, 45) * area)):  # irregular fragments: several overlapping ellipses
        cx, cy = rng.uniform(0, size, 2)
        value = rng.uniform(0.35, 0.62)
        for _lobe in range(int(rng.integers(1, 4))):
            px, py = cx + rng.uniform(-2, 2) * s, cy + rng.uniform(-2, 2) * s
            rx, ry = rng.uniform(0.8, 3.2) * s, rng.uniform(0.5, 1.8) * s
            canvas.ellipse(px, py, rx, ry, rng.uniform(0, math.pi), value, rng.uniform(0.6, 1.0))
    for _ in range(int(rng.integers(10, 25) * area)):  # pyknotic dots
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(0.6, 1.3) * s
        canvas.ellipse(cx, cy, r, r, 0.0, rng.uniform(0.12, 0.3))
    return canvas.img


def _lymphocytes(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    canvas = _Canvas(size, rng.uniform(0.72, 0.82) + 0.03 * smooth_noise(rng, size, 6))
    spacing = rng.uniform(3.6, 4.4) * s  # jittered lattice: densely packed, rarely overlapping
    n = int(size / spacing) + 1
    for i in range(n):
        for j in range(n):
            if rng.uniform() < 0.08:
                continue
            cx = (j + 0.5 + rng.uniform(-0.3, 0.3)) * spacing
            cy = (i + 0.5 + rng.uniform(-0.3, 0.3)) * spacing
            r = rng.uniform(1.35, 1.85) * s
            canvas.ellipse(cx, cy, r * rng.uniform(1.0, 1.15), r, rng.uniform(0, math.pi), rng.uniform(0.1, 0.22))
    return canvas.img


def _mucus(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    x, y = _grid(size)
    angle = rng.uniform(0, math.pi)
    c, sn = math.cos(angle), math.sin(angle)
    along, across = c * x + sn * y, -sn * x + c * y
    warp = 3.0 * s * smooth_noise(rng, size, 3)
    wisps = np.sin(2 * math.pi * (across + warp) / (rng.uniform(5.0, 9.0) * s) + rng.uniform(0, 2 * math.pi))
    wisps = wisps * (0.5 + 0.5 * np.sin(2 * math.pi * along / (rng.uniform(20, 40) * s)))
    img = rng.uniform(0.8, 0.88) + 0.04 * wisps + 0.02 * smooth_noise(rng, size, 5)
    canvas = _Canvas(size, img)
    for _ in range(int(rng.integers(0, 4))):  # a few floating cells
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(1.2, 2.0) * s
        canvas.ellipse(cx, cy, r, r, 0.0, rng.uniform(0.45, 0.6))
    return canvas.img


def _muscle(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    x, y = _grid(size)
    angle = rng.uniform(0, math.pi)
    c, sn = math.cos(angle), math.sin(angle)
    across = -sn * x + c * y
    period = rng.uniform(3.0, 4.2) * s
    bend = 1.5 * s * smooth_noise(rng, size, 2)
    stripes = np.sin(2 * math.pi * (across + bend) / period)
    ground = rng.uniform(0.5, 0.6) + 0.08 * stripes + 0.02 * smooth_noise(rng, size, 8)
    canvas = _Canvas(size, ground)
    for _ in range(int(rng.integers(8, 16) * (size / 64.0) ** 2)):  # cigar-shaped nuclei along the fibres
        cx, cy = rng.uniform(0, size, 2)
        canvas.ellipse(cx, cy, rng.uniform(3.5, 5.5) * s, rng.uniform(0.8, 1.1) * s, angle + rng.uniform(-0.1, 0.1),
                       rng.uniform(0.22, 0.34))  # fmt: skip
    return canvas.img


def _normal_mucosa(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    canvas = _Canvas(size, rng.uniform(0.66, 0.74) + 0.03 * smooth_noise(rng, size, 6))
    for _ in range(int(rng.integers(8, 14) * (size / 64.0) ** 2)):  # sparse stromal cells
        cx, cy = rng.uniform(0, size, 2)
        canvas.ellipse(cx, cy, 1.3 * s, 0.9 * s, rng.uniform(0, math.pi), rng.uniform(0.35, 0.45))
    glands: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(2, 5))):
        for _try in range(30):  # non-overlapping round crypts
            r = rng.uniform(9.0, 13.0) * s
            cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
            if all(math.hypot(cx - gx, cy - gy) > r + gr + 2 * s for gx, gy, gr in glands):
                glands.append((cx, cy, r))
                break
    for cx, cy, r in glands:
        ecc = rng.uniform(0.9, 1.1)
        rot = rng.uniform(0, math.pi)
        canvas.ellipse(cx, cy, r * ecc, r / ecc, rot, rng.uniform(0.8, 0.86))  # pale epithelium (cytoplasm)
        canvas.ellipse(cx, cy, 0.45 * r * ecc, 0.45 * r / ecc, rot, rng.uniform(0.93, 0.98))  # bright lumen
        count = int(2 * math.pi * 0.82 * r / (2.9 * s))
        phase = rng.uniform(0, 2 * math.pi)
        for k in range(count):  # one regular ring of basal nuclei, perpendicular to the basement membrane
            t = phase + 2 * math.pi * k / count
            px, py = cx + 0.82 * r * math.cos(t), cy + 0.82 * r * math.sin(t)
            canvas.ellipse(px, py, 1.7 * s, 0.95 * s, t, rng.uniform(0.2, 0.28))
    return canvas.img


def _tumour(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    x, y = _grid(size)
    canvas = _Canvas(size, rng.uniform(0.52, 0.6) + 0.05 * smooth_noise(rng, size, 8))
    for _ in range(int(rng.integers(1, 4))):  # irregular slit-like lumina
        canvas.ellipse(rng.uniform(0, size), rng.uniform(0, size), rng.uniform(5, 11) * s, rng.uniform(1.0, 2.2) * s,
                       rng.uniform(0, math.pi), rng.uniform(0.82, 0.92))  # fmt: skip
    for _ in range(int(rng.integers(45, 70) * (size / 64.0) ** 2)):  # crowded pleomorphic nuclei
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(2.2, 4.0) * s
        value = rng.uniform(0.12, 0.4)
        canvas.ellipse(cx, cy, r * rng.uniform(1.0, 1.6), r, rng.uniform(0, math.pi), value, rng.uniform(0.75, 1.0))
        if rng.uniform() < 0.5:  # irregular outline: a second overlapping lobe
            canvas.ellipse(cx + rng.uniform(-1.5, 1.5) * s, cy + rng.uniform(-1.5, 1.5) * s, r * 0.7, r * 0.6,
                           rng.uniform(0, math.pi), value)  # fmt: skip
        if rng.uniform() < 0.3:  # prominent nucleolus
            canvas.ellipse(cx, cy, 0.7 * s, 0.7 * s, 0.0, value * 0.4)
    return canvas.img


_PAINTERS: dict[str, Callable[[np.random.Generator, int, float], np.ndarray]] = {
    "adipose": _adipose,
    "background": _background,
    "debris": _debris,
    "lymphocytes": _lymphocytes,
    "mucus": _mucus,
    "muscle": _muscle,
    "normal_mucosa": _normal_mucosa,
    "tumour": _tumour,
}


def histo_phantom(rng: np.random.Generator, tissue: str, size: int = 64) -> np.ndarray:
    """Draw one synthetic histology-like grey tile of a tissue class (a procedural texture, not histology).

    Args:
        rng: the tile's generator, e.g. ``numpy.random.default_rng([seed, index])``; equal generators give equal
            tiles.
        tissue: one of :data:`HISTO_DEMO_CLASSES`.
        size: rows and columns of the tile (>= 32); structures scale with it (sizes are given for 64 pixels).

    Returns:
        An ``(size, size)`` ``uint8`` grey image (rows, columns); bright is unstained.

    Raises:
        ValueError: when ``rng`` is not a :class:`numpy.random.Generator`, ``tissue`` is unknown or ``size`` is not an
            integer >= 32.

    Example:
        >>> import numpy as np
        >>> fat = histo_phantom(np.random.default_rng([0, 0]), "adipose")
        >>> lym = histo_phantom(np.random.default_rng([0, 3]), "lymphocytes")
        >>> fat.shape, fat.dtype, bool(fat.mean() > lym.mean())
        ((64, 64), dtype('uint8'), True)
    """
    check_rng(rng)
    if tissue not in _PAINTERS:
        raise ValueError(f"unknown tissue {tissue!r}; choose one of {list(HISTO_DEMO_CLASSES)}.")
    check_size(size, _MIN_SIZE)
    size = int(size)
    img = _PAINTERS[tissue](rng, size, size / 64.0)
    img = img + rng.normal(0.0, rng.uniform(0.008, 0.02), size=img.shape).astype(np.float32)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


_DESCRIPTIONS = {
    "adipose": "large empty polygons with thin grey membranes",
    "background": "almost blank bright tile",
    "debris": "mottled ground with irregular fragments and dark dots",
    "lymphocytes": "densely packed small round very dark nuclei",
    "mucus": "pale wispy low-contrast streaks",
    "muscle": "long parallel fibres with cigar-shaped nuclei",
    "normal_mucosa": "round glands: bright lumen, regular ring of basal nuclei",
    "tumour": "crowded large irregular nuclei, slit-like lumina",
}


def _readme(generator: dict, counts: dict[str, int]) -> str:
    par = generator["parameters"]
    classes = "\n".join(
        f"- `{name}/` ({counts[name]} images, label {k}): {_DESCRIPTIONS[name]}."
        for k, name in enumerate(HISTO_DEMO_CLASSES)
    )
    return f"""# SYNTHETIC DEMO DATA - NOT PATIENT DATA, NOT HISTOLOGY

This folder holds a **synthetic** collection of procedural grey textures made by `{generator["name"]}`
(medsyn_monai histology-like demo generator version {generator["version"]}). No patient, tissue, slide, scanner or
real image was involved; nothing here is, or is derived from, patient data, and the textures are **not histology**:
they only borrow the class names of colorectal tissue tile collections (e.g. NCT-CRC-HE-100K) and are
distinguishable by construction. Do not use them for any clinical or scientific claim: they exist only to
demonstrate and test the training pipeline (e.g. the `histo_feature_aligned` bundle) without downloads.

## Classes
{classes}

Image `j` of class `k` is drawn from `numpy.random.default_rng([seed, 8 * j + k])`.

## Format
8-bit grey PNG files `<class>/tile_XXXX.png` of {par["size"]}x{par["size"]} pixels. `dataset.json` lists the images
and the generator parameters (num_per_class={par["num_per_class"]}, size={par["size"]}, seed={par["seed"]}).
"""


_SPEC = DemoSpec(
    what="histo",
    generator_name=_GENERATOR_NAME,
    version=HISTO_DEMO_VERSION,
    classes=HISTO_DEMO_CLASSES,
    min_size=_MIN_SIZE,
    name="medsyn_monai synthetic histology-like demo",
    description=(
        "SYNTHETIC DEMO DATA (procedural grey textures named after colorectal tissue types; not histology, "
        "not patient data): 8 distinguishable texture classes for exercising the pipeline."
    ),
    modality="microscopy (synthetic textures)",
    readme=_readme,
)


def create_histo_demo(root: str | Path, num_per_class: int = 50, size: int = 64, seed: int = 0) -> Path:
    """Write the synthetic histology-like demo: grey PNG texture tiles in 8 tissue-named class folders.

    Layout: ``root/<class>/tile_XXXX.png`` for every class of :data:`HISTO_DEMO_CLASSES`, plus ``root/README.md``
    (which states that this is synthetic demo data and not histology) and ``root/dataset.json`` (name, description,
    classes, image list, generator parameters and version); written once and atomically
    (:func:`~medsyn_monai.apps.demo.utils.write_demo_atomically`).

    Args:
        root: destination folder; must be absent, empty, or hold this very demo.
        num_per_class: images per class (>= 1); image ``j`` of class ``k`` is :func:`histo_phantom` drawn from
            ``numpy.random.default_rng([seed, 8 * j + k])``.
        size: rows and columns of every tile (>= 32); structures are drawn for 64 pixels and scale with it.
        seed: collection seed (>= 0); the same arguments always give identical pixels.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: on invalid arguments, or when ``root`` is a file or a non-empty folder that does not hold a
            complete, identical demo.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = create_histo_demo(Path(tmp) / "histo", num_per_class=1, size=32)
        ...     meta = json.loads((root / "dataset.json").read_text())
        ...     len(list(root.rglob("*.png"))), meta["classes"][:3], meta["synthetic"]
        (8, ['adipose', 'background', 'debris'], True)
    """
    groups = class_groups(HISTO_DEMO_CLASSES, "tile", num_per_class)
    return write_png_demo(
        root,
        _SPEC,
        groups,
        lambda rng, tissue: histo_phantom(rng, tissue, size),
        num_per_class=num_per_class,
        size=size,
        seed=seed,
    )
