"""A Compose that a command-line switch can turn off (e.g. ``--augment false``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.transforms import Compose

from medsyn_monai.utils.cli import as_bool

__all__ = ["OptionalCompose"]


class OptionalCompose(Compose):
    """MONAI's :class:`~monai.transforms.Compose`, or the identity when ``enabled`` is false.

    Bundle configs declare their data augmentation as one ``OptionalCompose`` with ``"enabled": "@augment"``, so the
    ``augment`` key switches it from the command line (``--augment false``, any of the spellings of
    :func:`~medsyn_monai.utils.as_bool`) without an expression in the config.

    Args:
        transforms: the transforms, applied in order when enabled.
        enabled: apply them (``True``) or return the input unchanged (``False``).
        kwargs: other :class:`~monai.transforms.Compose` arguments.

    Example:
        >>> from monai.transforms import Lambda
        >>> double = Lambda(lambda x: 2 * x)
        >>> OptionalCompose([double])(3), OptionalCompose([double], enabled="false")(3)
        (6, 3)
    """

    def __init__(self, transforms: Sequence[Callable] | Callable | None = None, enabled: bool = True, **kwargs: Any):
        super().__init__(transforms, **kwargs)
        self.enabled = as_bool(enabled, "enabled")

    def __call__(self, input_: Any, start: int = 0, end: int | None = None, threading: bool = False, lazy=None) -> Any:
        if not self.enabled:
            return input_
        return super().__call__(input_, start=start, end=end, threading=threading, lazy=lazy)

    def flatten(self) -> Compose:
        """Nested plain ``Compose`` objects inlined; a disabled one stays disabled."""
        flat = super().flatten()
        if self.enabled:
            return flat
        return OptionalCompose(flat.transforms, enabled=False, map_items=self.map_items, unpack_items=self.unpack_items)

    def inverse(self, data: Any) -> Any:
        """Undo the transforms; when disabled nothing was applied, so ``data`` is returned unchanged."""
        if not self.enabled:
            return data
        return super().inverse(data)
