"""Whether to train and sample in bfloat16 on the CPU: only where the CPU computes bfloat16 natively.

On CPUs with bfloat16 instructions (AVX-512 with BF16, AMX; oneDNN's bfloat16 kernels) autocast roughly doubles the
speed of the project's networks; on CPUs without them (AVX2 only, e.g. AMD EPYC before Zen 4) PyTorch emulates
bfloat16 and the same training step ran 28x slower than in float32 (1.0 vs 29 images/s, 64 px, 2 cores;
``benchmarks/bench_throughput.py`` prints the machine's own figures). ``cpu_bf16: "auto"`` therefore decides from the
CPU.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from medsyn_monai.utils.cli import as_bool

__all__ = ["AUTO", "cpu_has_bf16", "resolve_cpu_bf16"]

#: the value of ``cpu_bf16`` that decides from the CPU
AUTO = "auto"

logger = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """``True`` when PyTorch's oneDNN backend has native bfloat16 kernels for this CPU.

    Example:
        >>> isinstance(cpu_has_bf16(), bool)
        True
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_cpu_bf16(value: Any, name: str = "cpu_bf16") -> bool:
    """The ``cpu_bf16`` option as a bool: ``"auto"`` (or ``None``) is :func:`cpu_has_bf16`; ``true`` on a CPU without
    bfloat16 kernels is kept (a user's explicit choice) with a warning of its cost.

    Args:
        value: ``"auto"``, ``None`` or a boolean spelling (:func:`~medsyn_monai.utils.as_bool`).
        name: the option's key, for messages.

    Raises:
        ValueError: any other value.

    Example:
        >>> resolve_cpu_bf16("auto") == cpu_has_bf16(), resolve_cpu_bf16("false")
        (True, False)
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        native = cpu_has_bf16()
        logger.info(
            f"{name}=auto: bfloat16 autocast on the CPU {'on' if native else 'off'} (this CPU "
            f"{'has' if native else 'lacks'} bfloat16 instructions; {torch.backends.cpu.get_cpu_capability()})."
        )
        return native
    try:
        flag = as_bool(value, name)
    except ValueError:
        raise ValueError(f"{name}: expected 'auto' or a boolean (true/false), got {value!r}.") from None
    if flag and not cpu_has_bf16():
        logger.warning(
            f"{name}=true on a CPU without bfloat16 instructions ({torch.backends.cpu.get_cpu_capability()}): "
            "PyTorch emulates bfloat16 here, which is many times slower than float32 (28x measured for a training "
            f"step); set {name} to 'auto' or false."
        )
    return flag
