"""OptionalCompose: MONAI's Compose when enabled, the identity when switched off from the command line."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import Compose, Flipd, Lambda, Lambdad, RandFlipd

from medsyn_monai.transforms import OptionalCompose

add_one, double = Lambda(lambda x: x + 1), Lambda(lambda x: 2 * x)


@pytest.mark.parametrize("enabled, expected", [(True, 8), ("yes", 8), ("ON", 8), ("1", 8), ("off", 3), ("0", 3)])
def test_command_line_spellings(enabled, expected):
    assert OptionalCompose([add_one, double], enabled=enabled)(3) == expected  # in order: (3 + 1) * 2


def test_bad_switch_names_the_key():
    with pytest.raises(ValueError, match=r"^enabled: expected a boolean .*got 'maybe'"):
        OptionalCompose([add_one], enabled="maybe")


def test_disabled_returns_the_input_itself():
    item = {"image": torch.arange(4.0).view(1, 2, 2), "label": 1}
    flip = RandFlipd("image", prob=1.0, spatial_axis=0)
    assert OptionalCompose([flip], enabled=False)(item) is item
    assert torch.equal(item["image"], torch.arange(4.0).view(1, 2, 2))
    flipped = OptionalCompose([flip], enabled=True)(dict(item))
    torch.testing.assert_close(flipped["image"].as_tensor(), torch.tensor([[[2.0, 3.0], [0.0, 1.0]]]))


def test_compose_arguments_and_call_range_when_enabled():
    chain = OptionalCompose([add_one, double, add_one])
    assert chain(3, start=1) == 7 and chain(3, end=2) == 8 and chain(3, start=1, end=2) == 6
    assert OptionalCompose([add_one, double], enabled=False)(3, start=1) == 3
    # other Compose arguments are passed on: a list is mapped item by item unless map_items=False
    assert OptionalCompose([double])([1, 2]) == [2, 4]
    assert OptionalCompose([double], map_items=False)([1, 2]) == [1, 2, 1, 2]


def test_switched_off_inside_a_larger_pipeline():
    """Nested in a plain Compose (e.g. a dataset's transform), the switch holds, also after MONAI flattens it."""
    pipeline = Compose(
        [OptionalCompose([Lambdad("x", lambda v: 10 * v)], enabled="false"), Lambdad("x", lambda v: v + 1)]
    )
    assert pipeline({"x": 2}) == {"x": 3} and pipeline.flatten()({"x": 2}) == {"x": 3}
    pipeline.transforms[0].enabled = True
    assert pipeline({"x": 2}) == {"x": 21}


def test_random_transforms_follow_the_seed():
    data = {"image": torch.arange(16.0).view(1, 4, 4)}
    outs = []
    for _ in range(2):
        aug = OptionalCompose([RandFlipd("image", prob=0.5, spatial_axis=i) for i in range(2)])
        aug.set_random_state(seed=3)
        outs.append(torch.stack([aug(dict(data))["image"].as_tensor() for _ in range(6)]))
    torch.testing.assert_close(outs[0], outs[1])
    assert len({tuple(o.flatten().tolist()) for o in outs[0]}) > 1  # the flips do vary between calls


def test_disabled_stays_disabled_when_flattened_or_inverted():
    """A switched-off pipeline applied nothing, so flattening keeps it off and inverting leaves the data as it is."""
    item = {"image": torch.arange(4.0).view(1, 2, 2)}
    flip = Flipd("image", spatial_axis=0)
    off = OptionalCompose([Compose([flip]), flip], enabled=False)
    flat = off.flatten()
    assert isinstance(flat, OptionalCompose) and not flat.enabled and list(flat.transforms) == [flip, flip]
    assert flat(item) is item
    assert off.inverse(item) is item
    # switched on: MONAI's flatten and inverse
    on = OptionalCompose([flip])
    assert type(on.flatten()) is Compose
    flipped = on(dict(item))
    torch.testing.assert_close(on.inverse(flipped)["image"].as_tensor(), item["image"])
