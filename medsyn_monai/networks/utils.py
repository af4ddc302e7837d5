"""Network utilities: reading intermediate features of a diffusion U-Net with a forward hook."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from monai.data import MetaTensor
from monai.networks.nets import DiffusionModelUNet
from monai.utils import StrEnum
from torch import nn
from torch.utils.hooks import RemovableHandle

from medsyn_monai.utils.enums import FeaturePoint

__all__ = ["FeatureHook", "HookTarget", "feature_channels", "feature_point", "middle_point"]


class HookTarget(StrEnum):
    """What a :class:`FeatureHook` records: the output or the input of its module."""

    OUTPUT = "output"
    INPUT = "input"


def feature_point(network: nn.Module) -> tuple[str, int]:
    """The end of a diffusion U-Net's down path: the module whose output feeds the middle (bottleneck) stage.

    This is the default alignment point of feature-aligned diffusion. Networks declare it through a
    ``feature_point()`` method returning ``(module name, channels)`` (the project's
    :class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet` and
    :class:`~medsyn_monai.networks.nets.ClassConditionedDiffusionUNet`); for MONAI's
    :class:`~monai.networks.nets.DiffusionModelUNet` it is the last down block (its hidden states, the input of
    ``middle_block``).

    Args:
        network: a diffusion U-Net.

    Returns:
        the name of the module in ``network.named_modules()`` and the number of channels of its output.

    Raises:
        ValueError: a network that declares no feature point (give the module name explicitly).

    Example:
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> feature_point(LightweightDiffusionUNet(2, 1, 1, channels=(8, 16, 32), norm_num_groups=4))
        ('downsamplers.1', 32)
    """
    monai_point = f"down_blocks.{len(network.down_blocks) - 1}" if isinstance(network, DiffusionModelUNet) else ""
    return _declared_point(network, "feature_point", monai_point, "default feature point")


def middle_point(network: nn.Module) -> tuple[str, int]:
    """The middle (bottleneck) stage of a diffusion U-Net: the module whose output ends it, at the lowest resolution.

    The alignment point of U-REPA (Tian et al. 2025, "U-REPA: Aligning Diffusion U-Nets to ViTs"), named
    ``align_module="middle_block"`` (:class:`~medsyn_monai.utils.enums.FeaturePoint`). Networks declare it through a
    ``middle_point()`` method returning ``(module name, channels)`` (the project's
    :class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet`: its last bottleneck convolution, or the bottleneck's
    attention block when there is one; :class:`~medsyn_monai.networks.nets.ClassConditionedDiffusionUNet`: its
    backbone's); for MONAI's :class:`~monai.networks.nets.DiffusionModelUNet` it is ``middle_block``.

    Args:
        network: a diffusion U-Net.

    Returns:
        the name of the module in ``network.named_modules()`` and the number of channels of its output.

    Raises:
        ValueError: a network that declares no middle point (give the module name explicitly).

    Example:
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> middle_point(LightweightDiffusionUNet(2, 1, 1, channels=(8, 16, 32), norm_num_groups=4))
        ('down_blocks.2.1', 32)
    """
    return _declared_point(network, "middle_point", "middle_block", "middle point")


def _declared_point(network: nn.Module, method: str, monai_module: str, what: str) -> tuple[str, int]:
    """``network.<method>()``'s ``(module name, channels)``; for MONAI's ``DiffusionModelUNet`` ``monai_module`` with
    its deepest channels; otherwise a ValueError naming ``what`` is missing."""
    declared = getattr(network, method, None)
    if callable(declared):
        name, channels = declared()
        return str(name), int(channels)
    if isinstance(network, DiffusionModelUNet):
        return monai_module, int(network.block_out_channels[-1])
    raise ValueError(
        f"{type(network).__name__} declares no {what} (a {method}() method): name the module whose output to use "
        "(align_module, one of dict(network.named_modules())) and its channels."
    )


def feature_channels(
    network: nn.Module, module_name: str | None = None, image_shape: Sequence[int] | None = None
) -> int:
    """Channels of the features a :class:`FeatureHook` on ``module_name`` records (e.g. the size a feature-alignment
    projection must produce).

    Known without running the network for the default point (:func:`feature_point`) and for modules with an
    ``out_channels`` attribute (convolutions, the project's blocks); otherwise one forward pass on a zero image of
    ``image_shape`` (in eval mode, without gradients, class label 0 for class-conditional networks) measures them.

    Args:
        network: the diffusion network.
        module_name: the hooked module (``None``: the default point).
        image_shape: ``(C, *spatial)`` of one image, for the forward pass when needed.

    Raises:
        ValueError: unknown module, or channels that cannot be known without ``image_shape``.

    Example:
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4)
        >>> feature_channels(net), feature_channels(net, "down_blocks.0.1", image_shape=(1, 8, 8))
        (16, 8)
    """
    hook = FeatureHook(network, module_name)
    try:
        if hook.channels is not None:
            return hook.channels
        if image_shape is None:
            raise ValueError(
                f"the channels of {hook.module_name!r} are not declared: give image_shape (C, *spatial) to measure."
            )
        param = next(network.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(1, *(int(s) for s in image_shape), device=device)
        extra = {}
        if getattr(network, "num_classes", None) or getattr(network, "num_class_embeds", None):
            extra["class_labels"] = torch.zeros(1, dtype=torch.long, device=device)
        was_training = network.training
        network.eval()
        try:
            with hook.recording(), torch.no_grad():
                network(x=x, timesteps=torch.zeros(1, dtype=torch.long, device=device), **extra)
        finally:
            network.train(was_training)
        if hook.channels is None:
            raise ValueError(f"the module {hook.module_name!r} was not called by the network's forward pass.")
        return hook.channels
    finally:
        hook.remove()


def _first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a tensor / sequence / mapping (module inputs and outputs), or ``None``."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


class FeatureHook:
    """Record the output (or input) of one module of a network during the forward passes inside :meth:`recording`.

    A forward hook stays registered for the life of the object (until :meth:`remove`) but records only inside a
    ``with hook.recording():`` block, so other forward passes of the same network (sampling, validation, an EMA
    copy made by ``copy.deepcopy``, which copies the hooks) never overwrite what the training step reads. Of a
    tuple or dictionary output (e.g. MONAI's down blocks return ``(hidden_states, residuals)``) the first tensor
    counts; if the module runs several times in one forward pass, the last call counts.

    Args:
        network: the network.
        module_name: a name of ``dict(network.named_modules())``; ``""`` is the network itself; ``None`` or
            ``"down_path"`` is the default point :func:`feature_point`; ``"middle_block"`` is the middle stage
            :func:`middle_point` (:class:`~medsyn_monai.utils.enums.FeaturePoint`; a module of that very name, e.g.
            MONAI's ``middle_block``, is taken as it is).
        target: ``"output"`` (default) or ``"input"`` of the module (the first tensor argument, or ``x`` / the
            first tensor of the keyword arguments), e.g. ``FeatureHook(net, "", "input")`` records the noisy input
            ``x_t`` of a diffusion network.

    Raises:
        ValueError: an unknown module name (the message lists candidates) or ``target``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
        >>> hook = FeatureHook(net, "0")
        >>> _ = net(torch.zeros(2, 1, 5, 5))
        >>> hook.features is None  # not recording
        True
        >>> with hook.recording():
        ...     _ = net(torch.zeros(2, 1, 5, 5))
        >>> tuple(hook.features.shape), hook.channels
        ((2, 4, 5, 5), 4)
    """

    def __init__(
        self, network: nn.Module, module_name: str | None = None, target: str | HookTarget = HookTarget.OUTPUT
    ) -> None:
        if str(target) not in [t.value for t in HookTarget]:
            raise ValueError(f"target must be one of {[t.value for t in HookTarget]}, got {target!r}.")
        self.target = HookTarget(target)
        declared: int | None = None
        modules = dict(network.named_modules())
        if module_name is None or (module_name == FeaturePoint.DOWN_PATH and module_name not in modules):
            module_name, declared = feature_point(network)
        elif module_name == FeaturePoint.MIDDLE_BLOCK and module_name not in modules:
            module_name, declared = middle_point(network)
        elif self.target == HookTarget.OUTPUT:  # a named module's output channels are known at a declared point
            for point in (feature_point, middle_point):
                try:
                    name, channels = point(network)
                except ValueError:
                    continue
                if name == module_name:
                    declared = channels
                    break
        if module_name not in modules:
            names = [n for n in modules if n]
            hint = [n for n in names if "block" in n or "down" in n or "mid" in n or "sampler" in n][:8] or names[:8]
            raise ValueError(
                f"unknown module_name {module_name!r} in {type(network).__name__}; valid names include {hint} "
                f"({len(names)} modules, see dict(network.named_modules())) and the named points "
                f"{[p.value for p in FeaturePoint]}."
            )
        self.module_name = module_name
        self.module = modules[module_name]
        out_channels = getattr(self.module, "out_channels", None)
        #: channels of the recorded features when known without a forward pass (declared point, ``out_channels``)
        self.channels: int | None = declared
        if self.channels is None and self.target == HookTarget.OUTPUT and isinstance(out_channels, int):
            self.channels = out_channels
        self._recording = False
        self._features: torch.Tensor | None = None
        self._handle: RemovableHandle | None
        if self.target == HookTarget.OUTPUT:
            self._handle = self.module.register_forward_hook(self._output_hook)
        else:
            self._handle = self.module.register_forward_pre_hook(self._input_hook, with_kwargs=True)

    def _record(self, value: Any) -> None:
        if not self._recording:
            return
        tensor = _first_tensor(value)
        if tensor is None:
            raise ValueError(f"the hooked module {self.module_name!r} produced no tensor to record.")
        self._features = tensor.as_tensor() if isinstance(tensor, MetaTensor) else tensor
        if self.channels is None and tensor.ndim >= 2:
            self.channels = int(tensor.shape[1])

    def _output_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._record(output)

    def _input_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        for key in ("x", "hidden_states"):  # networks take x=..., MONAI blocks hidden_states=...
            if isinstance(kwargs.get(key), torch.Tensor):
                return self._record(kwargs[key])
        return self._record(args if args else kwargs)

    @contextmanager
    def recording(self) -> Iterator[FeatureHook]:
        """Record inside the block; the features of an earlier block are forgotten when it starts."""
        self._features = None
        self._recording = True
        try:
            yield self
        finally:
            self._recording = False

    @property
    def features(self) -> torch.Tensor | None:
        """What the last forward pass inside :meth:`recording` recorded (``None`` before any)."""
        return self._features

    def clear(self) -> None:
        """Forget the recorded features."""
        self._features = None

    def remove(self) -> None:
        """Unregister the hook."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.clear()
