"""Helpers shared by the synthetic demo kinds of :mod:`medsyn_monai.apps.demo`.

Every kind module (``ct``, ``cells``, ``cxr``, ``derm``, ``histo``) imports from here and from no other kind module.
This module holds what the kinds have in common:

- argument checks whose errors name the argument (:func:`check_int`, :func:`check_size`, :func:`check_rng`,
  :func:`check_bool`);
- drawing primitives of the phantoms (:func:`smooth_noise`, :func:`blend`);
- the identity and description of a kind (:class:`DemoSpec`): the generator record stored in ``dataset.json``, the
  ``dataset.json`` fields and the ``README.md`` text;
- atomic, idempotent writing of a demo folder (:func:`write_demo_atomically`);
- the common skeleton of a PNG demo of class folders (:class:`ImageGroup`, :func:`class_groups`,
  :func:`write_png_demo`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "DemoSpec",
    "ImageGroup",
    "blend",
    "check_bool",
    "check_int",
    "check_rng",
    "check_size",
    "class_groups",
    "images_incomplete",
    "smooth_noise",
    "write_demo_atomically",
    "write_png_demo",
]

#: Name prefix of the temporary folders a demo is first written into (``.tmp_demo_<pid>_<hex>``).
_TMP_PREFIX = ".tmp_demo_"
#: Order of the fields of an image entry in ``dataset.json`` (a group without a label has no ``label`` field).
_ENTRY_KEYS = ("path", "class", "label", "index")


def check_int(name: str, value: Any, minimum: int) -> None:
    """Check that an argument is an integer (not a bool) no smaller than ``minimum``.

    Args:
        name: the argument's name, used in the error message.
        value: the value to check (``int`` or a numpy integer).
        minimum: the smallest value allowed.

    Raises:
        ValueError: when ``value`` is not an integer ``>= minimum``; the message names the argument.

    Example:
        >>> check_int("num_cases", 0, 1)
        Traceback (most recent call last):
        ...
        ValueError: num_cases must be an integer >= 1, got 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def check_size(size: Any, minimum: int) -> None:
    """Check the ``size`` argument of a phantom: an integer number of pixels per side, at least ``minimum``.

    Args:
        size: rows and columns of the image.
        minimum: the smallest size the phantom can draw.

    Raises:
        ValueError: when ``size`` is not an integer ``>= minimum``.

    Example:
        >>> check_size(16.0, 32)
        Traceback (most recent call last):
        ...
        ValueError: size must be an integer >= 32 (pixels per side), got 16.0.
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < minimum:
        raise ValueError(f"size must be an integer >= {minimum} (pixels per side), got {size!r}.")


def check_rng(rng: Any) -> None:
    """Check that ``rng`` is a :class:`numpy.random.Generator` (the phantoms draw everything from it).

    Raises:
        ValueError: when it is anything else, e.g. a seed (pass ``numpy.random.default_rng(seed)`` instead).

    Example:
        >>> check_rng(0)
        Traceback (most recent call last):
        ...
        ValueError: rng must be a numpy.random.Generator, got int.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}.")


def check_bool(name: str, value: Any) -> None:
    """Check that an argument is a bool (Python or numpy).

    Args:
        name: the argument's name, used in the error message.
        value: the value to check.

    Raises:
        ValueError: when ``value`` is not a bool; the message names the argument.

    Example:
        >>> check_bool("pneumonia", "yes")
        Traceback (most recent call last):
        ...
        ValueError: pneumonia must be a bool, got 'yes'.
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool, got {value!r}.")


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish low-frequency noise: a ``(cells + 1)^2`` random grid bilinearly upsampled to ``size^2``.

    Args:
        rng: the generator; exactly ``(cells + 1) ** 2`` standard normal values are drawn from it.
        size: rows and columns of the result.
        cells: number of grid cells per side (>= 1); larger means finer noise.

    Returns:
        A ``(size, size)`` ``float64`` array (the interpolation weights promote the ``float32`` grid).

    Example:
        >>> noise = smooth_noise(np.random.default_rng(0), 64, 4)
        >>> noise.shape, noise.dtype, bool(abs(noise[0, 0] - noise[0, 1]) < 0.5)
        ((64, 64), dtype('float64'), True)
    """
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) * (cells / size)
    i = np.minimum(t.astype(np.int64), cells - 1)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]  # (size, cells + 1)
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def blend(img: np.ndarray, alpha: np.ndarray, rgb: np.ndarray) -> None:
    """Alpha-blend a colour or an image into ``img`` in place: ``img = (1 - alpha) * img + alpha * rgb``.

    Args:
        img: ``(H, W, C)`` float image, modified in place.
        alpha: ``(H, W)`` opacity.
        rgb: a colour of shape ``(C,)`` or an image of shape ``(H, W, C)``.

    Example:
        >>> img = np.zeros((1, 2, 3), dtype=np.float32)
        >>> blend(img, np.array([[0.0, 0.5]], dtype=np.float32), np.ones(3, dtype=np.float32))
        >>> img[0, :, 0].tolist()
        [0.0, 0.5]
    """
    img += alpha[..., None] * (rgb - img)


@dataclass(frozen=True)
class DemoSpec:
    """The identity and the description of one demo kind: what its ``dataset.json`` and ``README.md`` say.

    Args:
        what: short name of the kind in messages, e.g. ``"chest X-ray"``.
        generator_name: the generator's identity in ``dataset.json``; never change it, it identifies the demo folders
            written by earlier releases.
        version: version of the generator; bump it when the output changes.
        classes: class names, in label order.
        min_size: the smallest ``size`` (pixels per side) the kind's phantom draws.
        name: ``name`` field of ``dataset.json``.
        description: ``description`` field of ``dataset.json``.
        modality: ``modality`` field of ``dataset.json``.
        readme: the ``README.md`` text, from the generator record and the number of images (or cases) per class.
        data_format: ``format`` field of ``dataset.json``.
        extra: further ``dataset.json`` fields, written after ``classes``.

    Example:
        >>> spec = DemoSpec("toy", "toy.create", "1.0", ("a", "b"), 8, "toy demo", "no data", "none", lambda g, c: "")
        >>> spec.generator(size=8, seed=0)
        {'name': 'toy.create', 'version': '1.0', 'parameters': {'size': 8, 'seed': 0}}
    """

    what: str
    generator_name: str
    version: str
    classes: tuple[str, ...]
    min_size: int
    name: str
    description: str
    modality: str
    readme: Callable[[dict, dict[str, int]], str]
    data_format: str = "png"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def generator(self, **parameters: Any) -> dict[str, Any]:
        """The generator record stored in ``dataset.json``: name, version and ``parameters`` (in the given order)."""
        return {"name": self.generator_name, "version": self.version, "parameters": parameters}

    def write_description(
        self, folder: Path, generator: dict[str, Any], counts: dict[str, int], items_key: str, items: list[dict]
    ) -> None:
        """Write ``README.md`` and ``dataset.json`` into ``folder``.

        Args:
            folder: where to write them (the temporary folder of :func:`write_demo_atomically`).
            generator: the generator record (see :meth:`generator`).
            counts: number of images (or cases) per class.
            items_key: name of the item list in ``dataset.json`` (``"images"`` or ``"cases"``); its length is
                written as ``num_<items_key>``.
            items: the item list.
        """
        meta = {
            "name": self.name,
            "description": self.description,
            "synthetic": True,
            "modality": self.modality,
            "format": self.data_format,
            "classes": list(self.classes),
            **self.extra,
            "class_counts": counts,
            f"num_{items_key}": len(items),
            items_key: items,
            "generator": generator,
            "version": self.version,
        }
        (folder / "README.md").write_text(self.readme(generator, counts), encoding="utf-8")
        (folder / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def images_incomplete(root: Path, meta: dict, expected: int) -> str | None:
    """Why a demo with the requested generator, listing ``meta["images"]``, is incomplete (``None`` if it is not).

    Args:
        root: the demo folder.
        meta: its ``dataset.json``.
        expected: the number of images the generator parameters ask for.

    Returns:
        The reason (to follow "Refusing to write the ... demo into ...: "), or ``None``.
    """
    images = meta.get("images", [])
    missing = [im["path"] for im in images if not (root / im["path"]).is_file()]
    if missing or len(images) != expected:
        return (
            f"it holds the same demo but it is incomplete ({len(missing)} listed image(s) missing). "
            f"Delete '{root}' and run again."
        )
    return None


def _is_stale_tmp(path: Path) -> bool:
    """Whether a ``.tmp_demo_<pid>_<hex>`` folder was left by a process that is gone (or is over a day old)."""
    try:
        pid = int(path.name[len(_TMP_PREFIX) :].split("_")[0])
    except ValueError:
        return True
    if pid == os.getpid():
        return False
    if os.name == "posix":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    return time.time() - path.stat().st_mtime > 86400


def _existing_demo_matches(
    root: Path, expected: dict, what: str, incomplete: Callable[[Path, dict], str | None]
) -> bool:
    """True if ``root`` holds a complete ``what`` demo made with the ``expected`` generator, False if it is empty.

    Raises a ``ValueError`` naming ``root`` when it holds anything else; ``incomplete(root, meta)`` returns why an
    identical demo is incomplete (or ``None``).
    """
    entries = [e for e in root.iterdir() if not e.name.startswith(".")]  # hidden files (.DS_Store, temp) aside
    if not entries:
        return False
    refuse = f"Refusing to write the {what} demo into '{root}'"
    meta_file = root / "dataset.json"
    if not meta_file.is_file():
        raise ValueError(
            f"{refuse}: the folder is not empty and holds no demo "
            f"(no dataset.json). Use an empty or new folder, or delete '{root}' if it is a partial demo."
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{refuse}: unreadable dataset.json ({exc}).") from exc
    if meta.get("generator") != expected:
        raise ValueError(
            f"{refuse}: it holds a different collection "
            f"(generator {meta.get('generator')!r}, requested {expected!r}). Use another folder or delete it."
        )
    problem = incomplete(root, meta)
    if problem:
        raise ValueError(f"{refuse}: {problem}")
    return True


def write_demo_atomically(
    root: str | Path,
    what: str,
    generator: dict,
    top_level: Sequence[str],
    write: Callable[[Path], None],
    incomplete: Callable[[Path, dict], str | None],
) -> Path:
    """Write a demo collection into ``root`` without ever leaving a half-written one that looks complete.

    ``write(tmp)`` fills a temporary folder inside ``root`` with the ``top_level`` entries, ``README.md`` and
    ``dataset.json`` (which records ``generator``); they are then moved into place, ``dataset.json`` last. A
    ``root`` that already holds the identical, complete demo is returned untouched; a non-empty ``root`` holding
    anything else is refused. Temporary folders left by dead processes are removed.

    Args:
        root: destination folder; must be absent, empty, or hold this very demo.
        what: short name of the demo kind in messages.
        generator: the generator record that ``dataset.json`` must hold for ``root`` to count as this demo.
        top_level: the entries ``write`` creates beside ``README.md`` and ``dataset.json``.
        write: fills the temporary folder it is given.
        incomplete: ``incomplete(root, meta)`` says why an existing demo with the same generator is incomplete, or
            returns ``None`` when it is complete.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: naming ``root``, when it is a file, a non-empty folder without ``dataset.json``, a demo with
            another generator record, or an incomplete copy of this demo.

    Example:
        >>> import tempfile
        >>> def write(tmp):
        ...     (tmp / "README.md").write_text("demo")
        ...     (tmp / "dataset.json").write_text('{"generator": {"name": "toy"}}')
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = write_demo_atomically(Path(tmp) / "toy", "toy", {"name": "toy"}, (), write, lambda r, m: None)
        ...     sorted(p.name for p in root.iterdir())
        ['README.md', 'dataset.json']
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"Refusing to write the {what} demo into '{root}': it exists and is not a folder.")
    root.mkdir(parents=True, exist_ok=True)
    if _existing_demo_matches(root, generator, what, incomplete):
        return root
    for stale in root.glob(_TMP_PREFIX + "*"):
        if stale.is_dir() and _is_stale_tmp(stale):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f"{_TMP_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write(tmp)
        if (root / "dataset.json").exists():  # a concurrent run finished first
            if _existing_demo_matches(root, generator, what, incomplete):
                return root
        for name in (*top_level, "README.md", "dataset.json"):  # dataset.json last: marks completion
            os.replace(tmp / name, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


@dataclass(frozen=True)
class ImageGroup:
    """One group of images of a PNG demo: ``count`` files ``<stem>_XXXX.png`` of one kind of phantom.

    Args:
        name: the ``class`` of its images in ``dataset.json``, also what the drawing function is told to draw.
        stem: path of its files without the ``_XXXX.png`` suffix, relative to the demo root, e.g. ``"normal/cxr"``.
        count: number of images.
        label: the class label, or ``None`` for unlabelled images (their entries get no ``label`` field).
    """

    name: str
    stem: str
    count: int
    label: int | None = None


def class_groups(classes: Sequence[str], prefix: str, count: int, folder: str = "") -> list[ImageGroup]:
    """One labelled :class:`ImageGroup` per class folder: ``[<folder>/]<class>/<prefix>_XXXX.png``, label = position.

    Example:
        >>> class_groups(("normal", "pneumonia"), "cxr", 3)[1]
        ImageGroup(name='pneumonia', stem='pneumonia/cxr', count=3, label=1)
    """
    parent = f"{folder}/" if folder else ""
    return [ImageGroup(cls, f"{parent}{cls}/{prefix}", count, label) for label, cls in enumerate(classes)]


def write_png_demo(
    root: str | Path,
    spec: DemoSpec,
    groups: Sequence[ImageGroup],
    draw: Callable[[np.random.Generator, str], np.ndarray],
    *,
    entry_keys: Sequence[str] = _ENTRY_KEYS,
    **parameters: int,
) -> Path:
    """Check the arguments of a PNG demo and write it atomically (:func:`write_demo_atomically`).

    Image ``j`` of group ``k`` is ``draw(numpy.random.default_rng([seed, len(groups) * j + k]), group.name)``, saved
    as ``<group.stem>_{j:04d}.png`` (8-bit grey for a 2D array, RGB for ``(H, W, 3)``), so the first images of a
    group do not depend on the counts. ``dataset.json`` lists every image (path, class, label, index), and
    ``README.md`` is ``spec.readme(generator, counts)``.

    Args:
        root: destination folder; must be absent, empty, or hold this very demo.
        spec: the demo kind.
        groups: the image groups, in seed order; the first path component of their stems are the demo's top-level
            folders.
        draw: draws one image from its generator and its group's name.
        entry_keys: order of the fields of an image entry in ``dataset.json``.
        parameters: the generator parameters, in their ``dataset.json`` order: image counts (integers >= 1),
            ``size`` (an integer >= ``spec.min_size``) and ``seed`` (an integer >= 0, required).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: on an invalid parameter (the message names it), or when ``root`` is a file or a non-empty folder
            that does not hold a complete, identical demo.

    Example:
        >>> import tempfile
        >>> spec = DemoSpec("toy", "toy.create", "1.0", ("dark", "light"), 2, "toy", "toy", "none", lambda g, c: "")
        >>> def draw(rng, name):
        ...     return np.full((2, 2), 200 if name == "light" else 20, dtype=np.uint8)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = write_png_demo(Path(tmp), spec, class_groups(spec.classes, "im", 2), draw, num=2, size=2, seed=0)
        ...     sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
        ['dark/im_0000.png', 'dark/im_0001.png', 'light/im_0000.png', 'light/im_0001.png']
    """
    for key, value in parameters.items():
        if key == "size":
            check_size(value, spec.min_size)
        else:
            check_int(key, value, 0 if key == "seed" else 1)
    generator = spec.generator(**{key: int(value) for key, value in parameters.items()})
    seed, num_groups = int(parameters["seed"]), len(groups)
    top_level = list(dict.fromkeys(group.stem.split("/")[0] for group in groups))

    def write(tmp: Path) -> None:
        images: list[dict[str, Any]] = []
        for k, group in enumerate(groups):
            (tmp / group.stem).parent.mkdir(parents=True, exist_ok=True)
            for j in range(group.count):
                index = num_groups * j + k
                path = f"{group.stem}_{j:04d}.png"
                Image.fromarray(draw(np.random.default_rng([seed, index]), group.name)).save(tmp / path, format="PNG")
                entry = {"path": path, "class": group.name, "label": group.label, "index": index}
                images.append({key: entry[key] for key in entry_keys if entry[key] is not None})
        spec.write_description(tmp, generator, {group.name: group.count for group in groups}, "images", images)

    total = sum(group.count for group in groups)
    return write_demo_atomically(
        root, spec.what, generator, top_level, write, lambda path, meta: images_incomplete(path, meta, total)
    )
