"""BadFileError, DataValidationError and handle_problems: messages, pickling, raise or skip with a CSV report."""

from __future__ import annotations

import csv
import logging
import pickle

import pytest

from medsyn_monai.data.errors import BadFileError, DataValidationError, handle_problems

LOGGER = "medsyn_monai.data.errors"
PROBLEMS = [BadFileError("/d/a.dcm", "not a DICOM file"), BadFileError("/d/b.png", "truncated", stage="load")]


def _rows(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_bad_file_error_stage_and_pickling(tmp_path):
    err = BadFileError(tmp_path / "x.nii.gz", "cannot read: EOF", stage="load")
    assert isinstance(err, ValueError) and err.path == str(tmp_path / "x.nii.gz") and err.stage == "load"
    assert str(err) == f"{tmp_path / 'x.nii.gz'}: cannot read: EOF"
    copy = pickle.loads(pickle.dumps(err))  # e.g. raised in a data loader worker process
    assert type(copy) is BadFileError and (copy.path, copy.reason, copy.stage) == (err.path, err.reason, "load")
    assert str(copy) == str(err)
    with pytest.raises(ValueError, match=r"stage must be one of \('discovery', 'load'\), got 'loading'"):
        BadFileError("a.png", "x", stage="loading")


def test_data_validation_error_messages():
    err = DataValidationError(PROBLEMS, "dataset_dir '/d'", "/out/bad_files.csv")
    lines = str(err).splitlines()
    assert lines[0] == "2 bad files in dataset_dir '/d':"
    assert lines[1:3] == ["  /d/a.dcm: not a DICOM file", "  /d/b.png: truncated"]
    assert "--skip_bad_files true" in lines[3] and lines[3].endswith("to /out/bad_files.csv")
    assert isinstance(err, ValueError) and err.problems == PROBLEMS and err.report_path == "/out/bad_files.csv"
    # no report path: the hint says how to get one
    assert str(DataValidationError(PROBLEMS[:1])).splitlines()[-1].endswith("to a CSV report (set report_path)")
    assert str(DataValidationError(PROBLEMS[:1])).startswith("1 bad file in the dataset:")
    # a message of its own (e.g. no usable image at all): the problems still follow it, without the hint
    custom = DataValidationError(PROBLEMS[1:], message="no image left in '/d'")
    assert str(custom) == "no image left in '/d'\n  /d/b.png: truncated"
    assert str(DataValidationError(message="empty folder")) == "empty folder" and custom.report_path is None


def test_handle_problems_raises_with_every_problem(tmp_path, caplog):
    report = tmp_path / "out" / "bad.csv"
    with caplog.at_level(logging.ERROR, logger=LOGGER), pytest.raises(DataValidationError) as info:
        handle_problems(PROBLEMS, skip_bad_files=False, report_path=report, context="dataset_dir '/d'")
    assert info.value.problems == PROBLEMS and str(report) in str(info.value)
    assert str(info.value) in caplog.text  # logged too (a log file keeps the whole list)
    assert not (tmp_path / "out").exists()  # nothing is written when raising


def test_handle_problems_skips_logs_and_reports(tmp_path, caplog):
    handle_problems([], skip_bad_files=False, report_path=tmp_path / "none.csv", context="x")
    assert not (tmp_path / "none.csv").exists()  # no problem: no report
    report = tmp_path / "out" / "sub" / "bad.csv"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        handle_problems(iter(PROBLEMS), skip_bad_files=True, report_path=report, context="dataset_dir '/d'")
    assert _rows(report) == [
        ["path", "stage", "reason"],
        ["/d/a.dcm", "discovery", "not a DICOM file"],
        ["/d/b.png", "load", "truncated"],
    ]
    assert "skipping bad file in dataset_dir '/d' (load): /d/b.png: truncated" in caplog.text
    assert f"2 bad file(s) skipped in dataset_dir '/d'; list written to {report}" in caplog.text
    # load-time problems appended to the discovery report: one header
    late = [BadFileError("/d/c,1.png", 'bad "quote"', stage="load")]
    handle_problems(late, skip_bad_files=True, report_path=report, context="x", append=True)
    assert len(_rows(report)) == 4 and _rows(report)[-1] == ["/d/c,1.png", "load", 'bad "quote"']
    # without append the report is replaced
    handle_problems(late, skip_bad_files=True, report_path=report, context="x")
    assert _rows(report) == [["path", "stage", "reason"], ["/d/c,1.png", "load", 'bad "quote"']]
    # append to a report that does not exist yet (or is empty) writes the header
    fresh = tmp_path / "fresh.csv"
    fresh.touch()
    handle_problems(late, skip_bad_files=True, report_path=fresh, context="x", append=True)
    assert _rows(fresh)[0] == ["path", "stage", "reason"] and len(_rows(fresh)) == 2


def test_handle_problems_skip_without_report(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        handle_problems(PROBLEMS, skip_bad_files=True, report_path=None, context="x")
    assert list(tmp_path.iterdir()) == [] and caplog.text.count("skipping bad file in x") == 2


def test_handle_problems_report_paths_relative_to_the_data_set(tmp_path, caplog):
    root = tmp_path / "data"
    problems = [
        BadFileError(root / "a" / "x.png", "truncated", stage="load"),
        BadFileError(f"{root / 'm.npz'}:train_images[3]", "unknown label 5"),
        BadFileError(tmp_path / "data_2" / "y.png", "not found"),  # beside the data set (a common name prefix only)
        BadFileError("relative/z.png", "not found"),
    ]
    report = tmp_path / "out" / "bad.csv"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        handle_problems(problems, skip_bad_files=True, report_path=report, context="x", report_root=root)
    assert [row[0] for row in _rows(report)[1:]] == [
        "a/x.png",
        "m.npz:train_images[3]",
        str(tmp_path / "data_2" / "y.png"),  # outside the data set: left as it is
        "relative/z.png",
    ]
    assert f"{root / 'a' / 'x.png'}: truncated" in caplog.text  # the log keeps the full paths
