"""medsyn_monai.utils.as_bool: command-line boolean spellings and their errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigParser

from medsyn_monai.utils import as_bool

REPO = Path(__file__).resolve().parents[1]


TRUE_VALUES = [True, "true", "True", "TRUE", " true\n", "yes", "Yes", "on", "ON", "1", 1, np.bool_(True), np.int64(1)]
FALSE_VALUES = [
    False,
    "false",
    "False",
    "FALSE",
    "  false ",
    "no",
    "NO",
    "off",
    "Off",
    "0",
    0,
    np.bool_(False),
    np.int8(0),
]


@pytest.mark.parametrize("value", TRUE_VALUES)
def test_true_spellings(value):
    assert as_bool(value, "flag") is True


@pytest.mark.parametrize("value", FALSE_VALUES)
def test_false_spellings(value):
    assert as_bool(value, "flag") is False


@pytest.mark.parametrize("value", ["flase", "maybe", "", "t", "y", "2", 2, -1, 0.5, 1.0, None, "none", [True], b"true"])
def test_rejected_values_name_the_key(value):
    with pytest.raises(ValueError) as err:
        as_bool(value, "skip_connections")
    msg = str(err.value)
    assert msg.startswith("skip_connections: ") and repr(value) in msg
    for spelling in ("true/false", "yes/no", "on/off", "1/0"):
        assert spelling in msg


def test_without_name_and_allow_none():
    with pytest.raises(ValueError, match=r"^expected a boolean .*got 'maybe'"):
        as_bool("maybe")
    assert as_bool(None, "guidance", allow_none=True) is None
    assert as_bool(" Null ", allow_none=True) is None and as_bool("NONE", allow_none=True) is None
    assert as_bool("false", allow_none=True) is False
    with pytest.raises(ValueError, match="or none"):
        as_bool("nope", "guidance", allow_none=True)


BUNDLES = ("ct_lightweight", "cell_ddpm", "cxr_cfg", "histo_feature_aligned")
LEFT_OUT = {"metadata.json", "train_fewshot.json"}  # train_fewshot.json: converted separately


def _bundle_configs():
    return [
        p for b in BUNDLES for p in sorted((REPO / "bundles" / b / "configs").glob("*.json")) if p.name not in LEFT_OUT
    ]


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize("path", _bundle_configs(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_bundle_booleans_go_through_as_bool(path):
    """Every top-level boolean key of the bundle configs is read through as_bool wherever it is referenced."""
    config = json.loads(path.read_text())
    keys = [k for k, v in config.items() if isinstance(v, bool)]
    assert keys, path
    for key in keys:
        for s in (s for k, v in config.items() if k != key for s in _strings(v)):
            bare = re.findall(rf"(.{{0,8}})@{key}(?![\w#])", s)
            assert all(before.endswith("as_bool(") for before in bare), f"{path.name}: {key!r} without as_bool in {s!r}"
    assert not any("strip().lower()" in s for s in _strings(config)), path


@pytest.mark.parametrize("value, expected", [("false", False), ("TRUE", True), ("Off", False)])
def test_parsed_config_value(value, expected):
    """The strings python-fire hands over ("false", ...) reach the network as real bools; typos stop the run."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "ct_lightweight" / "configs" / "train.json"))
    parser["skip_connections"] = value
    assert parser.get_parsed_content("model_info#skip_connections") is expected
    parser["skip_connections"] = "flase"
    with pytest.raises(RuntimeError) as err:
        parser.get_parsed_content("model_info#skip_connections", lazy=False)
    assert "skip_connections: expected a boolean" in str(err.value.__cause__)
