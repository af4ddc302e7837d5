"""Deterministic synthetic dermoscopy-like demo collection: RGB skin-lesion images as PNG files.

The demo (:func:`create_derm_demo`) exists so that the ``derm_dreambooth`` bundle (class-conditional training, then
few-shot fine-tuning on a handful of images of a rare lesion type) runs on a fresh machine without any download. It
is a *drawing*, not dermoscopy: no patient, camera or real image is involved, and nothing learnt from it says
anything about real skin lesions.

The phantom (:func:`derm_phantom`)
----------------------------------
Each image is drawn from its own generator and painted with vectorised numpy:

- skin background: a random skin tone (light to medium), smooth low-frequency mottling, fine grain, a faint reddish
  blotch and a dark circular vignette of random strength (as the round field of view of a dermatoscope);
- 0-3 hairs: thin dark quadratic Bézier curves crossing the image, drawn over the lesion as well;
- one pigmented lesion whose outline is an ellipse perturbed by harmonics of the polar angle:

  - ``nevus`` (benign naevus): round to slightly oval, smooth and regular border, one uniform brown with a faint
    darker centre and a fine texture; roughly symmetric; 17-27 % of the image side in radius;
  - ``melanoma``: larger (22-33 %), irregular border (strong low and high harmonics), off-centre, asymmetric
    (one side darker), several colours (dark brown / black, light brown, blue-grey, red, whitish regression areas)
    in blotches;
  - ``blue_nevus`` (the few-shot *instance* type): small (11-16 %), round, smooth, homogeneous steel-blue / blue-grey
    with a darker centre and a soft edge.

On disk (:func:`create_derm_demo`): ``root/lesions/<class>/derm_{j:04d}.png`` for the two training classes
(``melanoma`` = label 0, ``nevus`` = label 1, sorted folder names) and ``root/instance/blue_nevus_{j:04d}.png`` for
the few-shot instance images, plus ``README.md`` and ``dataset.json``. Image ``j`` of kind ``k`` (0 melanoma,
1 nevus, 2 blue naevus) is drawn from ``numpy.random.default_rng([seed, 3 * j + k])``, so the first images do not
depend on the counts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .utils import DemoSpec, ImageGroup, blend, check_rng, check_size, class_groups, smooth_noise, write_png_demo

__all__ = [
    "DERM_DEMO_VERSION",
    "DERM_DEMO_CLASSES",
    "DERM_DEMO_INSTANCE",
    "DERM_LESION_KINDS",
    "derm_phantom",
    "create_derm_demo",
]

#: Version of the derm demo generator; part of ``dataset.json``, bump it when the output changes.
DERM_DEMO_VERSION = "1.0"
#: Training class folder names (under ``lesions/``), in label order (sorted, as class-folder discovery orders them).
DERM_DEMO_CLASSES = ("melanoma", "nevus")
#: Lesion type of the few-shot instance images (``instance/``).
DERM_DEMO_INSTANCE = "blue_nevus"
#: Lesion kinds :func:`derm_phantom` draws; the index is ``k`` in the per-image generator seed.
DERM_LESION_KINDS = ("melanoma", "nevus", "blue_nevus")

_MIN_SIZE = 32
# the generator's identity in dataset.json, kept from release 0.1 (module medsyn_monai.data.demo_derm)
# so that demo folders written before the move to medsyn_monai.apps.demo stay valid
_GENERATOR_NAME = "medsyn_monai.data.demo_derm.create_derm_demo"
_HAIR_RGB = np.array([0.13, 0.09, 0.07], dtype=np.float32)
_MELANOMA_PALETTE = np.array(
    [
        [0.20, 0.12, 0.09],  # dark brown / black
        [0.55, 0.36, 0.24],  # light brown
        [0.42, 0.47, 0.56],  # blue-grey veil
        [0.70, 0.36, 0.33],  # red (vascular)
        [0.84, 0.79, 0.76],  # whitish regression
    ],
    dtype=np.float32,
)


def _lesion_mask(
    x: np.ndarray,
    y: np.ndarray,
    cx: float,
    cy: float,
    radius: float,
    ecc: float,
    angle: float,
    harmonics: list[tuple[int, float, float]],
    edge: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft mask of a harmonically perturbed ellipse and the normalised radius (0 centre, 1 outline)."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    u = (c * dx + s * dy) / (radius * (1 + ecc))
    v = (c * dy - s * dx) / (radius * (1 - ecc))
    phi = np.arctan2(v, u)
    wobble = np.ones_like(phi)
    for k, amp, phase in harmonics:
        wobble += amp * np.cos(k * phi + phase)
    rho = np.sqrt(u * u + v * v) / np.maximum(wobble, 0.3)
    mask = np.clip((1.0 - rho) * radius / edge + 0.5, 0.0, 1.0)
    return mask.astype(np.float32), rho.astype(np.float32)


def _hair(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Opacity of one hair: a thin quadratic Bézier curve from one image side to another."""
    u = rng.uniform

    def side_point() -> np.ndarray:
        side, t = int(rng.integers(4)), u(0.0, size)
        return np.array([(0.0, t), (size, t), (t, 0.0), (t, size)][side], dtype=np.float32)

    p0, p2 = side_point(), side_point()
    p1 = (p0 + p2) / 2 + rng.normal(0.0, 0.25 * size, 2).astype(np.float32)
    t = np.linspace(0.0, 1.0, 48, dtype=np.float32)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # (48, 2) as (x, y)
    d2 = (x[None] - pts[:, 0, None, None]) ** 2 + (y[None] - pts[:, 1, None, None]) ** 2
    d = np.sqrt(d2.min(axis=0))
    width = u(0.35, 0.7) * max(size / 64.0, 1.0)
    return (np.clip(width - d + 0.5, 0.0, 1.0) * u(0.7, 0.95)).astype(np.float32)


def derm_phantom(rng: np.random.Generator, size: int = 64, kind: str = "nevus") -> np.ndarray:
    """Draw one synthetic dermoscopy-like image of a pigmented skin lesion.

    Args:
        rng: the image's generator, e.g. ``numpy.random.default_rng([seed, index])``; equal generators give equal
            images.
        size: rows and columns (>= 32); every length scales with it.
        kind: ``"nevus"``, ``"melanoma"`` or ``"blue_nevus"`` (:data:`DERM_LESION_KINDS`; see the module docstring).

    Returns:
        An ``(size, size, 3)`` ``uint8`` RGB image (rows, columns, channels).

    Raises:
        ValueError: when ``rng`` is not a :class:`numpy.random.Generator`, ``size`` is not an integer >= 32 or
            ``kind`` is unknown.

    Example:
        >>> import numpy as np
        >>> img = derm_phantom(np.random.default_rng([0, 2]), 64, kind="blue_nevus")
        >>> img.shape, img.dtype, bool(img[32, 32, 2] > img[32, 32, 0])  # bluish centre
        ((64, 64, 3), dtype('uint8'), True)
        >>> np.array_equal(img, derm_phantom(np.random.default_rng([0, 2]), 64, kind="blue_nevus"))
        True
    """
    check_rng(rng)
    check_size(size, _MIN_SIZE)
    if kind not in DERM_LESION_KINDS:
        raise ValueError(f"kind must be one of {list(DERM_LESION_KINDS)}, got {kind!r}.")
    size = int(size)
    u = rng.uniform
    coords = np.arange(size, dtype=np.float32) + 0.5
    x, y = np.meshgrid(coords, coords)  # x: column, y: row (pixel centres)

    # --- skin: tone, mottling, grain, a faint reddish blotch, dermatoscope vignette
    tone = u(0.0, 1.0)
    light = np.array([0.94, 0.78, 0.68], dtype=np.float32)
    dark = np.array([0.74, 0.53, 0.41], dtype=np.float32)
    skin = light + tone * (dark - light)
    img = np.broadcast_to(skin, (size, size, 3)).copy()
    img *= (1.0 + 0.035 * smooth_noise(rng, size, 5) + 0.015 * smooth_noise(rng, size, 16))[..., None]
    bx, by, br = u(0.2, 0.8) * size, u(0.2, 0.8) * size, u(0.2, 0.4) * size
    blotch = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * br * br)) * u(0.0, 0.25)
    blend(img, blotch.astype(np.float32), np.array([0.85, 0.52, 0.50], dtype=np.float32))
    r_norm = np.sqrt((x - size / 2) ** 2 + (y - size / 2) ** 2) / (size / 2)
    vignette = u(0.0, 0.6) * np.clip((r_norm - u(0.95, 1.15)) / 0.25, 0.0, 1.0) ** 1.5
    img *= (1.0 - vignette)[..., None].astype(np.float32)

    # --- lesion geometry
    if kind == "nevus":
        radius, ecc, edge = u(0.17, 0.27) * size, u(0.0, 0.15), u(0.8, 1.4)
        harmonics = [(k, u(0.0, 0.03), u(0.0, 2 * math.pi)) for k in (2, 3, 4)]
        shift = 0.06
    elif kind == "melanoma":
        radius, ecc, edge = u(0.22, 0.33) * size, u(0.05, 0.25), u(0.7, 1.6)
        harmonics = [(k, u(0.04, 0.12), u(0.0, 2 * math.pi)) for k in (2, 3, 4, 5)]
        harmonics += [(k, u(0.01, 0.035), u(0.0, 2 * math.pi)) for k in (7, 9, 11, 13)]
        shift = 0.12
    else:  # blue naevus
        radius, ecc, edge = u(0.11, 0.16) * size, u(0.0, 0.08), u(1.6, 2.6)
        harmonics = [(k, u(0.0, 0.02), u(0.0, 2 * math.pi)) for k in (2, 3)]
        shift = 0.08
    angle = u(0.0, math.pi)
    cx = size / 2 + u(-1, 1) * shift * size
    cy = size / 2 + u(-1, 1) * shift * size
    edge *= max(size / 64.0, 1.0)
    mask, rho = _lesion_mask(x, y, cx, cy, radius, ecc, angle, harmonics, edge)

    # --- lesion colour
    if kind == "nevus":
        brown = np.array([u(0.40, 0.55), u(0.24, 0.33), u(0.15, 0.23)], dtype=np.float32)
        shade = 1.0 - u(0.05, 0.15) * np.clip(1.0 - rho, 0.0, 1.0) + 0.04 * smooth_noise(rng, size, 12)
        colour = brown * shade[..., None]
        opacity = u(0.85, 0.95)
    elif kind == "melanoma":
        num_colours = int(rng.integers(3, 6))
        chosen = np.concatenate([[0], 1 + rng.permutation(4)[: num_colours - 1]])  # always some dark brown
        palette = _MELANOMA_PALETTE[chosen] * rng.uniform(0.9, 1.1, (num_colours, 1)).astype(np.float32)
        fields = np.stack([smooth_noise(rng, size, int(rng.integers(3, 7))) for _ in range(num_colours)])
        ga = u(0.0, 2 * math.pi)  # asymmetry: one side favours the darkest colour
        gradient = ((x - cx) * math.cos(ga) + (y - cy) * math.sin(ga)) / radius
        fields[0] += u(0.8, 1.6) * gradient
        weights = np.exp(3.0 * (fields - fields.max(axis=0, keepdims=True)))
        weights /= weights.sum(axis=0, keepdims=True)
        colour = np.einsum("khw,kc->hwc", weights, palette).astype(np.float32)
        colour *= (1.0 + 0.06 * smooth_noise(rng, size, 14))[..., None]
        opacity = u(0.88, 0.97)
    else:
        blue = np.array([u(0.28, 0.36), u(0.34, 0.42), u(0.46, 0.56)], dtype=np.float32)
        shade = 1.0 - u(0.12, 0.25) * np.clip(1.0 - rho, 0.0, 1.0) ** 1.5 + 0.02 * smooth_noise(rng, size, 10)
        colour = blue * shade[..., None]
        opacity = u(0.85, 0.95)
    blend(img, (mask * opacity).astype(np.float32), colour)

    # --- hairs over skin and lesion, then sensor noise
    for _ in range(int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1]))):
        blend(img, _hair(rng, x, y, size), _HAIR_RGB * u(0.8, 1.2))
    img += rng.normal(0.0, u(0.005, 0.015), size=img.shape).astype(np.float32)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _readme(generator: dict, counts: dict[str, int]) -> str:
    par = generator["parameters"]
    return f"""# SYNTHETIC DEMO DATA - NOT PATIENT DATA

This folder holds a **synthetic** dermoscopy-like collection: computed drawings made by `{generator["name"]}`
(medsyn_monai derm demo generator version {generator["version"]}). No patient, skin, dermatoscope or real image was
involved; nothing here is, or is derived from, patient data. Do not use it for any clinical or scientific claim: it
exists only to exercise the training and few-shot pipeline (the `derm_dreambooth` bundle) without downloads.

## How it was made
Each image is a skin-toned background (random tone, mottling, grain, a faint reddish blotch, a dark circular
vignette), 0-3 dark hairs and one pigmented lesion whose outline is an ellipse perturbed by harmonics of the polar
angle. Image `j` of kind `k` (0 melanoma, 1 nevus, 2 blue naevus) is drawn from
`numpy.random.default_rng([seed, 3 * j + k])`.

## Classes (`lesions/`, the training data: `--dataset_dir <this folder>/lesions`)
- `melanoma/` ({counts["melanoma"]} images, label 0): larger, irregular border, asymmetric, several colours (dark
  brown / black, light brown, blue-grey, red, whitish areas).
- `nevus/` ({counts["nevus"]} images, label 1): round or slightly oval, regular border, one uniform brown.

## Few-shot instance (`instance/`, `--instance_dir <this folder>/instance`)
- {counts["blue_nevus"]} images of a *blue naevus*-like lesion: small, round, smooth, homogeneous steel-blue /
  blue-grey with a darker centre. This type is absent from `lesions/`; the few-shot fine-tuning learns it.

## Format
8-bit RGB PNG files of {par["size"]}x{par["size"]} pixels: `lesions/<class>/derm_XXXX.png`,
`instance/blue_nevus_XXXX.png`. `dataset.json` lists the images and the generator parameters
(num_per_class={par["num_per_class"]}, num_instance={par["num_instance"]}, size={par["size"]}, seed={par["seed"]}).
"""


_SPEC = DemoSpec(
    what="derm",
    generator_name=_GENERATOR_NAME,
    version=DERM_DEMO_VERSION,
    classes=DERM_DEMO_CLASSES,
    min_size=_MIN_SIZE,
    name="medsyn_monai synthetic dermoscopy demo",
    description=(
        "SYNTHETIC DEMO DATA (computed drawings of pigmented skin lesions, not patient data): RGB PNG images; "
        "lesions/melanoma (irregular, multicoloured, asymmetric), lesions/nevus (round, uniform brown), and "
        "instance/ (a few blue-naevus-like lesions for few-shot fine-tuning)."
    ),
    modality="dermoscopy",
    readme=_readme,
    extra={"instance": DERM_DEMO_INSTANCE},
)


def create_derm_demo(
    root: str | Path, num_per_class: int = 60, num_instance: int = 5, size: int = 64, seed: int = 0
) -> Path:
    """Write the synthetic dermoscopy demo: two lesion classes for training and a few instance images.

    Layout: ``root/lesions/melanoma/derm_XXXX.png``, ``root/lesions/nevus/derm_XXXX.png`` (class folders: point a
    bundle's ``dataset_dir`` at ``root/lesions``), ``root/instance/blue_nevus_XXXX.png`` (the few-shot images: the
    ``instance_dir``), ``root/README.md`` (which states that this is synthetic demo data) and ``root/dataset.json``
    (classes, image list, generator parameters and version); written once and atomically
    (:func:`~medsyn_monai.apps.demo.utils.write_demo_atomically`).

    Args:
        root: destination folder; must be absent, empty, or hold this very demo.
        num_per_class: images per training class (>= 1).
        num_instance: few-shot instance images (>= 1); image ``j`` of kind ``k`` (:data:`DERM_LESION_KINDS`) is
            :func:`derm_phantom` drawn from ``numpy.random.default_rng([seed, 3 * j + k])``.
        size: rows and columns of every image (>= 32); every length scales with it.
        seed: collection seed (>= 0); the same arguments always give identical pixels.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: on invalid arguments, or when ``root`` is a file or a non-empty folder that does not hold a
            complete, identical demo.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = create_derm_demo(Path(tmp) / "derm", num_per_class=2, num_instance=1, size=32)
        ...     sorted(p.name for p in root.iterdir()), sorted(p.name for p in (root / "lesions").iterdir())
        (['README.md', 'dataset.json', 'instance', 'lesions'], ['melanoma', 'nevus'])
    """
    groups = [
        *class_groups(DERM_DEMO_CLASSES, "derm", num_per_class, folder="lesions"),
        ImageGroup(DERM_DEMO_INSTANCE, f"instance/{DERM_DEMO_INSTANCE}", num_instance),
    ]
    return write_png_demo(
        root,
        _SPEC,
        groups,
        lambda rng, kind: derm_phantom(rng, size, kind=kind),
        entry_keys=("path", "class", "index", "label"),  # the order of release 0.1
        num_per_class=num_per_class,
        num_instance=num_instance,
        size=size,
        seed=seed,
    )
