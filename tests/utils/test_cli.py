"""medsyn_monai.utils.as_bool: command-line boolean spellings and their errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigParser

from medsyn_monai.utils import as_bool

REPO = Path(__file__).resolve().parents[2]


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


BUNDLES = sorted(p for p in (REPO / "bundles").iterdir() if (p / "configs").is_dir())


def _configs():
    return [p for b in BUNDLES for p in sorted((b / "configs").glob("*.json")) if p.name != "metadata.json"]


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize("path", _configs(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_bundle_booleans_are_parsed_in_one_place(path):
    """A boolean key reaches a component as it is (the component parses it with as_bool); an expression may read it
    only through the one as_bool of its config, never bare (a command-line "false" is a truthy string)."""
    config = json.loads(path.read_text())
    base = json.loads((path.parent / "train.json").read_text())
    keys = {k for k, v in {**base, **config}.items() if isinstance(v, bool)}
    for key in keys:
        for s in _strings(config):
            if s == f"@{key}" or not s.startswith("$"):
                continue
            bare = re.findall(rf"(.{{0,8}})@{key}(?![\w#])", s)
            assert all(before.endswith("as_bool(") for before in bare), f"{path.name}: {key!r} read bare in {s!r}"
    wrappers = [s for s in _strings(config) if "as_bool(" in s]
    assert len(wrappers) <= 1, f"{path.name} parses booleans in {len(wrappers)} places: {wrappers}"
    assert not any("strip().lower()" in s for s in _strings(config)), path


@pytest.mark.parametrize("value, expected", [("false", False), ("TRUE", True), ("Off", False)])
def test_parsed_config_value(value, expected, tiny_ct_demo):
    """The strings python-fire hands over ("false", ...) reach the network as real bools; typos stop the run."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "ct_lightweight" / "configs" / "train.json"))
    parser.update({"skip_connections": value, "conditional": "no", "augment": value, "dataset_dir": str(tiny_ct_demo)})
    network = parser.get_parsed_content("network_def")
    assert network.skip_connections is expected and network.num_class_embeds is None
    assert parser.get_parsed_content("train#augmentation").enabled is expected
    parser["skip_connections"] = "flase"
    with pytest.raises(RuntimeError) as err:
        parser.get_parsed_content("network_def", lazy=False)
    assert "skip_connections: expected a boolean" in str(err.value.__cause__)
