"""Degenerate images and exact duplicates across splits, with warnings that name them."""

from __future__ import annotations

import logging

import pytest
import torch

from medsyn_monai.data import DataQualityReport, degenerate_kind, exact_duplicates, image_names


def test_degenerate_kinds():
    line = torch.linspace(-1, 1, 8)
    rows_equal = line[:, None].expand(8, 8)[None]  # varies along x only: every displayed row the same
    assert degenerate_kind(torch.full((1, 8, 8), 0.3)) == "constant"
    assert degenerate_kind(rows_equal) == "stretched row"
    assert degenerate_kind(rows_equal.transpose(-1, -2)) == "stretched column"
    assert degenerate_kind(rows_equal + 1e-5 * torch.rand(1, 8, 8)) == "stretched row"  # within the tolerance
    assert degenerate_kind(torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))) is None


def test_exact_duplicates_and_report(caplog):
    g = torch.Generator().manual_seed(0)
    train = torch.rand(4, 1, 6, 6, generator=g)
    test = torch.cat([train[2:3].clone(), torch.rand(1, 1, 6, 6, generator=g), torch.zeros(1, 1, 6, 6)])
    groups = exact_duplicates({"train": train, "test": test})
    assert groups == [[("train", 2), ("test", 0)]]
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.data.quality"):
        report = DataQualityReport({"train": (train, list("abcd")), "test": (test, ["x", "y", "z"])}).warn("my data")
    summary = report.summary()
    assert summary["degenerate"] == {"train": 0, "test": 1} and summary["exact_duplicates_across_sets"] == 1
    assert summary["exact_duplicates"] == [[{"set": "train", "image": "c"}, {"set": "test", "image": "x"}]]
    assert "my data: 1 degenerate image(s)" in caplog.text and "z (constant)" in caplog.text
    assert "1 across sets" in caplog.text and "train:c = test:x" in caplog.text
    with pytest.raises(ValueError, match="2 images but 1 names"):
        DataQualityReport({"a": (train[:2], ["one"])})


def test_image_names_of_slices():
    class Slices:
        images = torch.zeros(3, 1, 2, 2)
        case_ids = ["ct/case_1", "ct/case_1", "ct/case_2"]
        num_slices_per_case = {"ct/case_1": 2, "ct/case_2": 1}

    assert image_names(Slices()) == ["ct/case_1#slice0", "ct/case_1#slice1", "ct/case_2"]
