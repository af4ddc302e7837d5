"""Helpers shared by the benchmark scripts: bundle commands in a subprocess and the real data of ``../shared/data``.

The scripts run as ``python benchmarks/<script>.py``, so this folder is the first entry of ``sys.path`` and they import
this module as ``_common``. A bundle's ``train.json`` and ``inference.json`` stand alone; every other config is a
MONAI model-zoo overlay that runs stacked on the bundle's ``train.json`` (:func:`config_files`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "REPO",
    "SHARED_DATA",
    "STANDALONE_CONFIGS",
    "MEDNIST_ZIP",
    "BundleRunError",
    "config_files",
    "machine_summary",
    "markdown_table",
    "mednist",
    "run_bundle",
    "shared_data",
]

#: the repository root (the folder the bundle commands run in unless told otherwise)
REPO = Path(__file__).resolve().parents[1]
#: the project's real data for benchmarks (see its README.md); never copied into the repository
SHARED_DATA = REPO.parent / "shared" / "data"
#: the configs that run alone; every other config of a bundle is an overlay on its ``train.json``
STANDALONE_CONFIGS = ("train", "inference")
#: the MedNIST archive inside :data:`SHARED_DATA`
MEDNIST_ZIP = "mednist64/MedNIST_64x64_500.zip"


class BundleRunError(RuntimeError):
    """A bundle command that exited with a non-zero status.

    Attributes:
        returncode: the exit status of the command.
        seconds: its wall time.
    """

    def __init__(self, message: str, returncode: int, seconds: float) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.seconds = seconds


def config_files(bundle: str, config: str) -> list[str]:
    """The ``--config_file`` list of one config of ``bundles/<bundle>``: the config alone for ``train`` and
    ``inference``, else the overlay stacked on ``train.json`` (as the MONAI model zoo does).

    Args:
        bundle: the bundle's folder name, e.g. ``"cxr_cfg"``.
        config: the config's name with or without ``.json``, e.g. ``"evaluate"``.

    Returns:
        the absolute paths of the config files, in the order they are read.

    Example:
        >>> [Path(p).name for p in config_files("cxr_cfg", "evaluate.json")]
        ['train.json', 'evaluate.json']
    """
    name = config.removesuffix(".json")
    configs = REPO / "bundles" / bundle / "configs"
    names = [name] if name in STANDALONE_CONFIGS else ["train", name]
    return [str(configs / f"{n}.json") for n in names]


def _argument(value: Any) -> str:
    """A value as python-fire (the parser of ``monai.bundle run``) reads it back: literals for booleans, ``None``
    and lists, the plain string otherwise (numbers, paths, names)."""
    if isinstance(value, (list, tuple)):
        return repr([str(v) if isinstance(v, os.PathLike) else v for v in value])
    if isinstance(value, bool) or value is None:
        return repr(value)
    return str(value)


def _shell_word(arg: str) -> str:
    """``arg`` as one shell word for the log: unchanged when safe, else in double quotes (as the bundle docs write
    ``--config_file "['train.json','evaluate.json']"``), or ``shlex.quote`` for what double quotes do not protect."""
    quoted = shlex.quote(arg)
    if quoted == arg or any(c in arg for c in '"$`\\!'):
        return quoted
    return f'"{arg}"'


def run_bundle(bundle: str, config: str, log: Path, cwd: Path = REPO, **overrides: Any) -> float:
    """Run one config of a bundle with ``python -m monai.bundle run`` in a subprocess.

    The command line (overlays stacked on ``train.json``, see :func:`config_files`) and everything the command prints
    are appended to ``log``.

    Args:
        bundle: the bundle's folder name, e.g. ``"histo_feature_aligned"``.
        config: the config's name, e.g. ``"train_expert"`` (``.json`` optional).
        log: the log file (appended to; its folder must exist).
        cwd: the folder the command runs in (relative paths of the configs, e.g. the demo data, are read there).
        overrides: config keys and their values, e.g. ``output_dir=Path("/tmp/run"), max_epochs=2``.

    Returns:
        the wall time of the command in seconds.

    Raises:
        BundleRunError: the command exited with a non-zero status (the message names the log).
    """
    files = config_files(bundle, config)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files[0] if len(files) == 1 else repr(files)]
    for key, value in overrides.items():
        cmd += [f"--{key}", _argument(value)]
    start = time.perf_counter()
    with open(log, "a") as f:
        f.write(" ".join(map(_shell_word, cmd)) + "\n")
        f.flush()
        returncode = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd).returncode
    seconds = time.perf_counter() - start
    if returncode != 0:
        raise BundleRunError(f"{bundle}/{config} failed (exit {returncode}); see {log}", returncode, seconds)
    return seconds


def output_folder(path: Path, log_name: str = "commands.log") -> tuple[Path, Path]:
    """A benchmark's output folder (created, absolute) and the log file in it that :func:`run_bundle` appends to."""
    out = Path(path).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out, out / log_name


def shared_data(path_arg: str | Path | None = None, default: str = "", option: str = "--dataset-dir") -> Path:
    """The real data a benchmark needs: ``path_arg`` when given, else ``default`` inside :data:`SHARED_DATA`.

    Args:
        path_arg: the path given on the command line (``None``: the shared copy).
        default: the path of the data inside :data:`SHARED_DATA`, e.g. ``"pneumoniamnist/pneumoniamnist.npz"``.
        option: the command-line option that takes another copy (named in the message).

    Returns:
        the absolute path.

    Raises:
        SystemExit: the path does not exist (the message names it, the shared folder and ``option``).
    """
    path = Path(path_arg) if path_arg is not None else SHARED_DATA / default
    if path_arg is not None and not path.exists():
        raise SystemExit(f"real data not found at {path} (given by {option}).")
    if not path.exists():
        raise SystemExit(
            f"real data not found at {path}: the benchmarks read them from {SHARED_DATA} (see its README.md); "
            f"pass {option} to use another copy."
        )
    return path.resolve()


def mednist(data_dir: Path, classes: Sequence[str] | None = None, archive: str | Path | None = None) -> Path:
    """MedNIST (6 classes, 500 grey 64x64 JPEGs each) unzipped into ``data_dir``, once.

    Args:
        data_dir: where to unzip, outside the repository (the shared data are never copied into the project).
        classes: keep only these class folders (a separate copy, e.g. the base classes of a few-shot study);
            ``None``: all six classes.
        archive: the MedNIST zip file (``None``: the copy in :data:`SHARED_DATA`).

    Returns:
        the folder of class folders.

    Raises:
        SystemExit: the archive is absent (see :func:`shared_data`), or ``classes`` names a class it lacks.
    """
    full = Path(data_dir) / "mednist64"
    if not full.is_dir():  # unzipped beside, then renamed: an interrupted run leaves no half-filled folder
        partial = full.with_name(full.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(shared_data(archive, MEDNIST_ZIP, option="--mednist-zip")) as z:
            z.extractall(partial)
        partial.rename(full)
    if classes is None:
        return full
    unknown = sorted(set(classes) - {p.name for p in full.iterdir() if p.is_dir()})
    if unknown:
        raise SystemExit(f"MedNIST has no class {unknown}; its classes are the folders of {full}.")
    subset = Path(data_dir) / ("mednist64_" + "_".join(sorted(classes)))
    if not subset.is_dir():
        partial = subset.with_name(subset.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for name in classes:
            shutil.copytree(full / name, partial / name)
        partial.rename(subset)
    return subset


def machine_summary() -> str:
    """One line naming this machine's CPU, its vector capability, bfloat16 support, threads and PyTorch version, so
    that every printed figure says where it was measured (bfloat16 speed differs by an order of magnitude between
    CPUs with and without bfloat16 instructions)."""
    import platform

    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = "native bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no native bf16"
    return (f"{model}, {torch.backends.cpu.get_cpu_capability()}, {bf16}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}")  # fmt: skip


def markdown_table(rows: Sequence[dict[str, Any]], header: Sequence[str], float_format: str = ".4g") -> str:
    """``rows`` as a Markdown table of the columns ``header`` (floats with ``float_format``)."""

    def cell(value: Any) -> str:
        return format(value, float_format) if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)
