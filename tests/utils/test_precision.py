"""resolve_cpu_bf16: 'auto' follows the CPU's bfloat16 support, booleans are kept (true on a CPU without bfloat16
warns), anything else fails; the inferer takes 'auto'."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.utils import precision
from medsyn_monai.utils.precision import cpu_has_bf16, resolve_cpu_bf16


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu(monkeypatch, native, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: native)
    with caplog.at_level(logging.INFO, logger="medsyn_monai.utils.precision"):
        assert resolve_cpu_bf16("auto") is native and resolve_cpu_bf16(" AUTO ") is native
        assert resolve_cpu_bf16(None) is native
    assert f"bfloat16 autocast on the CPU {'on' if native else 'off'}" in caplog.text
    assert ConditionalDiffusionInferer(DDPMScheduler(10), cpu_bf16="auto").cpu_bf16 is native


def test_explicit_values_are_kept_and_true_without_support_warns(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.utils.precision"):
        assert resolve_cpu_bf16("false") is False and not caplog.text
        assert resolve_cpu_bf16(True) is True
    assert "cpu_bf16=true on a CPU without bfloat16 instructions" in caplog.text and "'auto' or false" in caplog.text
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    caplog.clear()
    assert resolve_cpu_bf16("yes") is True and not caplog.records


def test_bad_values():
    with pytest.raises(ValueError, match="cpu_bf16: expected 'auto' or a boolean"):
        resolve_cpu_bf16("fast")


def test_detection_matches_torch():
    assert cpu_has_bf16() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
