"""Tests of :mod:`medsyn_monai.apps.demo.utils`: the helpers every demo kind shares."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsyn_monai.apps.demo import utils
from medsyn_monai.apps.demo.utils import (
    DemoSpec,
    ImageGroup,
    blend,
    check_bool,
    check_int,
    check_rng,
    check_size,
    class_groups,
    images_incomplete,
    smooth_noise,
    write_demo_atomically,
    write_png_demo,
)

GENERATOR = {"name": "tests.toy", "version": "1.0", "parameters": {"seed": 0}}


def _readme(generator: dict, counts: dict[str, int]) -> str:
    return f"# SYNTHETIC toy demo by {generator['name']}: {counts}\n"


SPEC = DemoSpec(
    what="toy",
    generator_name="tests.toy",
    version="1.0",
    classes=("dark", "light"),
    min_size=4,
    name="toy demo",
    description="SYNTHETIC toy",
    modality="none",
    readme=_readme,
)


class _Writer:
    """A ``write`` callback of :func:`write_demo_atomically` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, tmp: Path) -> None:
        self.calls += 1
        (tmp / "data").mkdir()
        (tmp / "data" / "x.txt").write_text("x")
        (tmp / "README.md").write_text("readme")
        (tmp / "dataset.json").write_text(json.dumps({"generator": GENERATOR}))


def _complete(root: Path, meta: dict) -> str | None:
    return None


def _write(root: Path, writer: _Writer | None = None, incomplete=_complete) -> Path:
    return write_demo_atomically(root, "toy", GENERATOR, ("data",), writer or _Writer(), incomplete)


def _draw(rng: np.random.Generator, name: str) -> np.ndarray:
    """A 4x4 image: grey for the class ``dark`` / ``light``, RGB otherwise; one random value in the corner."""
    img = np.full((4, 4), 20 if name == "dark" else 200, dtype=np.uint8)
    img[0, 0] = rng.integers(0, 256)
    return img if name in ("dark", "light") else np.stack([img] * 3, axis=-1)


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "2", None])
def test_check_int_names_the_argument(value):
    with pytest.raises(ValueError, match=rf"^num_cases must be an integer >= 1, got {value!r}\.$"):
        check_int("num_cases", value, 1)


def test_check_int_accepts_integers():
    for value in (1, 5, np.int64(3), np.uint8(1)):
        check_int("num_cases", value, 1)
    check_int("seed", 0, 0)


@pytest.mark.parametrize("size", [27, 16.0, True, "64"])
def test_check_size_names_size_and_its_minimum(size):
    with pytest.raises(ValueError, match=rf"^size must be an integer >= 28 \(pixels per side\), got {size!r}\.$"):
        check_size(size, 28)
    check_size(28, 28)
    check_size(np.int32(64), 28)


def test_check_rng_and_check_bool():
    with pytest.raises(ValueError, match=r"^rng must be a numpy\.random\.Generator, got int\.$"):
        check_rng(0)
    with pytest.raises(ValueError, match="got RandomState"):
        check_rng(np.random.RandomState(0))
    check_rng(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^pneumonia must be a bool, got 1\.$"):
        check_bool("pneumonia", 1)
    check_bool("pneumonia", np.bool_(True))
    check_bool("pneumonia", False)


def test_smooth_noise_is_smooth_deterministic_and_draws_a_fixed_amount():
    rng = np.random.default_rng(3)
    noise = smooth_noise(rng, 64, 4)
    assert noise.shape == (64, 64) and noise.dtype == np.float64
    np.testing.assert_array_equal(noise, smooth_noise(np.random.default_rng(3), 64, 4))
    # exactly (cells + 1)^2 normal values are drawn: the generator continues as after that draw
    reference = np.random.default_rng(3)
    reference.standard_normal((5, 5))
    assert rng.uniform() == reference.uniform()
    # low frequency: neighbouring pixels differ much less than the field varies
    assert np.abs(np.diff(noise, axis=1)).mean() < 0.2 * noise.std()  # white noise: ~1.1 * std
    # zero mean over many fields
    fields = np.stack([smooth_noise(np.random.default_rng(i), 16, 2) for i in range(200)])
    assert abs(fields.mean()) < 0.1 and 0.3 < fields.std() < 1.5


def test_blend_in_place():
    img = np.zeros((2, 2, 3), dtype=np.float32)
    alpha = np.array([[0.0, 1.0], [0.25, 0.5]], dtype=np.float32)
    blend(img, alpha, np.array([1.0, 2.0, 4.0], dtype=np.float32))
    np.testing.assert_allclose(img[0, 0], [0, 0, 0])
    np.testing.assert_allclose(img[0, 1], [1, 2, 4])
    np.testing.assert_allclose(img[1, 0], [0.25, 0.5, 1.0])
    other = np.full((2, 2, 3), 8.0, dtype=np.float32)  # an image instead of a colour
    blend(img, np.full((2, 2), 0.5, dtype=np.float32), other)
    np.testing.assert_allclose(img[0, 1], [4.5, 5, 6])


def test_demo_spec_generator_and_description(tmp_path: Path):
    spec = dataclasses.replace(SPEC, data_format="npz", extra={"instance": "blue"})
    generator = spec.generator(num=2, seed=1)
    assert generator == {"name": "tests.toy", "version": "1.0", "parameters": {"num": 2, "seed": 1}}
    assert list(generator["parameters"]) == ["num", "seed"]  # the order given
    spec.write_description(tmp_path, generator, {"dark": 1, "light": 1}, "cases", [{"case": 0}, {"case": 1}])
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert list(meta) == [
        "name",
        "description",
        "synthetic",
        "modality",
        "format",
        "classes",
        "instance",
        "class_counts",
        "num_cases",
        "cases",
        "generator",
        "version",
    ]
    assert meta["synthetic"] is True and meta["format"] == "npz" and meta["classes"] == ["dark", "light"]
    assert meta["num_cases"] == 2 and meta["generator"] == generator and meta["version"] == "1.0"
    assert (tmp_path / "dataset.json").read_text().endswith("}\n")
    assert (tmp_path / "README.md").read_text() == "# SYNTHETIC toy demo by tests.toy: {'dark': 1, 'light': 1}\n"


def test_images_incomplete(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(b"")
    meta = {"images": [{"path": "a.png"}, {"path": "b.png"}]}
    assert "incomplete (1 listed image(s) missing)" in images_incomplete(tmp_path, meta, 2)
    (tmp_path / "b.png").write_bytes(b"")
    assert images_incomplete(tmp_path, meta, 2) is None
    assert f"Delete '{tmp_path}'" in images_incomplete(tmp_path, meta, 3)  # the list is shorter than requested


def test_write_demo_atomically_writes_and_moves_dataset_json_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    moved = []
    real_replace = os.replace

    def replace(src, dst):
        moved.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(utils.os, "replace", replace)
    root = _write(tmp_path / "new" / "toy")  # parents are created
    assert moved == ["data", "README.md", "dataset.json"]
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "data", "dataset.json"]
    assert (root / "data" / "x.txt").read_text() == "x"


def test_write_demo_atomically_reuses_an_identical_complete_demo(tmp_path: Path):
    root = _write(tmp_path / "toy")
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    mtimes = [p.stat().st_mtime_ns for p in files]
    writer = _Writer()
    assert _write(root, writer) == root
    assert writer.calls == 0  # nothing was drawn or written again
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp_demo_")]
    # the same generator but incomplete: refused with the reason, not silently accepted
    with pytest.raises(ValueError, match=r"Refusing to write the toy demo into '.*toy': 1 file missing"):
        _write(root, incomplete=lambda path, meta: "1 file missing")


def test_write_demo_atomically_refuses_a_foreign_folder(tmp_path: Path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    writer = _Writer()
    with pytest.raises(ValueError, match=rf"Refusing to write the toy demo into '{foreign}'.*no dataset\.json"):
        _write(foreign, writer)
    assert writer.calls == 0 and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    (foreign / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable dataset.json"):
        _write(foreign)
    (foreign / "dataset.json").write_text(json.dumps({"generator": {**GENERATOR, "version": "0.9"}}))
    with pytest.raises(ValueError, match=r"different collection .*'0\.9'.*Use another folder"):
        _write(foreign)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        _write(tmp_path / "afile")


def test_write_demo_atomically_removes_stale_temporary_folders(tmp_path: Path):
    root = tmp_path / "toy"
    dead = root / ".tmp_demo_999999999_dead"  # no such process
    garbled = root / ".tmp_demo_x_y"  # no process id at all
    alive = root / f".tmp_demo_{os.getppid()}_live"  # a running process (this one's parent): still writing
    mine = root / f".tmp_demo_{os.getpid()}_mine"
    for folder in (dead, garbled, alive, mine):
        folder.mkdir(parents=True)
        (folder / "partial.txt").write_text("partial")
    _write(root)
    assert not dead.exists() and not garbled.exists()
    assert alive.is_dir() and mine.is_dir()
    assert (root / "dataset.json").is_file()


def test_write_demo_atomically_interrupted_or_beaten_by_a_concurrent_run(tmp_path: Path):
    def failing(tmp: Path) -> None:
        (tmp / "data").mkdir()
        raise KeyboardInterrupt("simulated interruption")

    root = tmp_path / "toy"
    with pytest.raises(KeyboardInterrupt):
        _write(root, failing)
    assert list(root.iterdir()) == []  # the temporary folder was removed, nothing was moved in

    def beaten(tmp: Path) -> None:
        _Writer()(tmp)
        _Writer()(root)  # another process finishes the same demo meanwhile
        (root / "data" / "x.txt").write_text("theirs")

    assert _write(root, beaten) == root
    assert (root / "data" / "x.txt").read_text() == "theirs"  # theirs is kept, ours discarded
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "data", "dataset.json"]


def test_class_groups():
    assert class_groups(("melanoma", "nevus"), "derm", 3, folder="lesions") == [
        ImageGroup("melanoma", "lesions/melanoma/derm", 3, 0),
        ImageGroup("nevus", "lesions/nevus/derm", 3, 1),
    ]
    assert class_groups(("a",), "im", 1)[0].stem == "a/im"
    assert ImageGroup("blue", "instance/blue", 2).label is None


def test_write_png_demo_layout_seeds_and_entries(tmp_path: Path):
    groups = [*class_groups(SPEC.classes, "im", 2, folder="train"), ImageGroup("rgb", "extra/rgb", 1)]
    root = write_png_demo(tmp_path / "png", SPEC, groups, _draw, num=2, other=1, size=4, seed=7)
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "dataset.json", "extra", "train"]
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["generator"] == {
        "name": "tests.toy",
        "version": "1.0",
        "parameters": {"num": 2, "other": 1, "size": 4, "seed": 7},
    }
    assert meta["class_counts"] == {"dark": 2, "light": 2, "rgb": 1} and meta["num_images"] == 5
    # image j of group k comes from default_rng([seed, len(groups) * j + k])
    assert [(im["path"], im["index"]) for im in meta["images"]] == [
        ("train/dark/im_0000.png", 0),
        ("train/dark/im_0001.png", 3),
        ("train/light/im_0000.png", 1),
        ("train/light/im_0001.png", 4),
        ("extra/rgb_0000.png", 2),
    ]
    assert meta["images"][0] == {"path": "train/dark/im_0000.png", "class": "dark", "label": 0, "index": 0}
    assert meta["images"][-1] == {"path": "extra/rgb_0000.png", "class": "rgb", "index": 2}  # no label
    for im in meta["images"]:
        with Image.open(root / im["path"]) as png:
            assert png.format == "PNG" and png.mode == ("RGB" if im["class"] == "rgb" else "L")
            expected = _draw(np.random.default_rng([7, im["index"]]), im["class"])
            np.testing.assert_array_equal(np.asarray(png), expected)
    assert (root / "README.md").read_text().startswith("# SYNTHETIC toy demo by tests.toy")


def test_write_png_demo_entry_order_and_incomplete_demo(tmp_path: Path):
    groups = class_groups(SPEC.classes, "im", 1)
    root = write_png_demo(
        tmp_path / "png", SPEC, groups, _draw, entry_keys=("path", "class", "index", "label"), num=1, size=4, seed=0
    )
    meta = json.loads((root / "dataset.json").read_text())
    assert [list(im) for im in meta["images"]] == [["path", "class", "index", "label"]] * 2
    (root / "light" / "im_0000.png").unlink()
    with pytest.raises(ValueError, match=r"incomplete \(1 listed image\(s\) missing\)"):
        write_png_demo(root, SPEC, groups, _draw, num=1, size=4, seed=0)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"num": 0, "size": 4, "seed": 0}, "num must be an integer >= 1"),
        ({"num": 1, "size": 3, "seed": 0}, r"size must be an integer >= 4 \(pixels per side\)"),
        ({"num": 1, "size": 4, "seed": -1}, "seed must be an integer >= 0"),
        ({"num": 1, "size": 4.0, "seed": 0}, "size must be an integer"),
    ],
)
def test_write_png_demo_bad_parameters(tmp_path: Path, params: dict, match: str):
    with pytest.raises(ValueError, match=match):
        write_png_demo(tmp_path / "bad", SPEC, class_groups(SPEC.classes, "im", params["num"]), _draw, **params)
    assert not (tmp_path / "bad").exists()
