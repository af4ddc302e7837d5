"""The string enumerations: exported, plain-string compatible, MONAI's prediction types, and every option that a
bundle config sets by default is a member."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from monai.networks.schedulers.ddim import DDIMPredictionType
from monai.networks.schedulers.ddpm import DDPMPredictionType
from monai.utils import StrEnum

from medsyn_monai.utils import enums

REPO = Path(__file__).resolve().parents[2]
ENUMS = [cls for _, cls in inspect.getmembers(enums, inspect.isclass) if cls.__module__ == enums.__name__]
# the top-level keys of the bundle configs that name an option, and the enumeration of that option
CONFIG_KEYS = {
    "align_direction": enums.AlignmentDirection,
    "architecture": enums.DiffusionArchitecture,
    "class_conditioning": enums.ClassConditioning,
    "classifier_network": enums.ExpertNetwork,
    "ct_window": enums.CTWindowPreset,
    "expert_input": enums.ExpertInput,
    "expert_network": enums.ExpertNetwork,
    "loss_type": enums.LossType,
    "prediction_type": enums.PredictionType,
    "projection": enums.AlignmentProjection,
    "reference_split": enums.Split,
    "scheduler_type": enums.SchedulerType,
    "test_split": enums.Split,
    "time_injection": enums.TimeInjection,
}


def test_every_enumeration_is_an_exported_str_enum():
    assert sorted(c.__name__ for c in ENUMS) == sorted(enums.__all__)
    for cls in ENUMS:
        assert issubclass(cls, StrEnum), cls
        values = [m.value for m in cls]
        # command-line friendly: lower-case identifiers, no two members alike
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", v) for v in values), values
        assert len(set(values)) == len(values) and len(values) >= 2, cls


@pytest.mark.parametrize("cls", ENUMS, ids=lambda c: c.__name__)
def test_plain_strings_and_members_are_interchangeable(cls):
    for member in cls:
        assert cls(member.value) is member and member == member.value and str(member) == member.value
        assert f"{member}" == member.value and json.dumps(member) == f'"{member.value}"'
    with pytest.raises(ValueError, match=f"'no_such_option' is not a valid {cls.__name__}"):
        cls("no_such_option")


def test_prediction_types_are_monai_s():
    assert {p.value for p in enums.PredictionType} == {p.value for p in DDPMPredictionType}
    assert {p.value for p in enums.PredictionType} == {p.value for p in DDIMPredictionType}


def _bundle_configs() -> list[Path]:
    return sorted(p for p in (REPO / "bundles").glob("*/configs/*.json") if p.name != "metadata.json")


@pytest.mark.skipif(not _bundle_configs(), reason="no bundles folder beside the tests")
def test_bundle_config_options_are_members():
    checked = set()
    for path in _bundle_configs():
        config = json.loads(path.read_text())
        for key, cls in CONFIG_KEYS.items():
            value = config.get(key)
            if isinstance(value, str) and not value.startswith(("$", "@", "%")):
                assert value in [m.value for m in cls], (
                    f"{path.relative_to(REPO)}: {key}={value!r} is no {cls.__name__}"
                )
                checked.add(key)
    # the mapping above is not stale: every key of it is set by some bundle
    assert checked == set(CONFIG_KEYS), f"no bundle sets {sorted(set(CONFIG_KEYS) - checked)}"
