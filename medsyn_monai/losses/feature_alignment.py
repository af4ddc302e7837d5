"""Feature alignment of a diffusion U-Net with a frozen expert classifier (feature-aligned diffusion, REPA)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from torch import nn
from torch.utils.hooks import RemovableHandle

from medsyn_monai.networks.nets.classifiers import ExpertClassifier
from medsyn_monai.utils.enums import AlignmentDirection, AlignmentProjection, ExpertInput
from medsyn_monai.utils.model_info import MODEL_INFO_NAME, load_model_info

__all__ = ["FeatureAlignmentLoss"]

# attributes through which a wrapper network exposes the diffusion U-Net it wraps (searched in this order)
_WRAPPED = ("backbone", "network", "unet", "model")
_GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as medsyn_monai.transforms.RGBToGrey


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


def _pool(features: torch.Tensor) -> torch.Tensor:
    """Average a channel-first feature map ``(B, C, *spatial)`` over space to ``(B, C)`` (``(B, C)`` unchanged)."""
    if features.ndim < 2:
        raise ValueError(f"diffusion features must be (B, C[, *spatial]), got shape {tuple(features.shape)}.")
    features = features.as_tensor() if isinstance(features, MetaTensor) else features
    return features.float().mean(dim=tuple(range(2, features.ndim))) if features.ndim > 2 else features.float()


def _inner_network(network: nn.Module) -> tuple[nn.Module, str]:
    """The diffusion U-Net inside (possibly nested) wrappers, and its name prefix in ``network.named_modules()``."""
    prefix = ""
    for _ in range(4):
        if hasattr(network, "middle_block") or hasattr(network, "down_blocks"):
            break
        for attr in _WRAPPED:
            inner = getattr(network, attr, None)
            if isinstance(inner, nn.Module):
                network, prefix = inner, f"{prefix}{attr}."
                break
        else:
            break
    return network, prefix


def _num_class_embeds(network: nn.Module) -> int | None:
    for net in (network, _inner_network(network)[0]):
        for attr in ("num_class_embeds", "num_classes"):
            value = getattr(net, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


class FeatureAlignmentLoss(nn.Module):
    """Cosine alignment of a diffusion U-Net's features with a frozen expert classifier's features.

    Feature-aligned diffusion (the seed method of the ``histo_feature_aligned`` bundle) adds to the denoising loss a
    term that pulls the diffusion network's down-path features towards the features a trained expert classifier
    extracts from the *noisy* input ``x_t``, through a trainable projection ``W_p`` and a cosine loss:

    ``L_align = mean_i (1 - cos(W_p(a_i), b_i))``

    with ``(a, b) = (expert features, diffusion features)`` for ``direction="expert_to_diffusion"`` (the seed's
    code: expert features are projected to the diffusion feature size) or ``(diffusion, expert)`` for
    ``"diffusion_to_expert"`` (REPA, Yu et al. 2024, "Representation Alignment for Generation: Training Diffusion
    Transformers Is Easier Than You Think", which aligns to features of the *clean* image, ``expert_input="clean"``,
    with a 3-layer SiLU MLP, ``projection="mlp"``). Both feature vectors are spatially average-pooled.

    **Diffusion features** are taken by forward hooks on the diffusion network (:meth:`attach`):

    - ``module_name=None`` (default): the output of the down path, i.e. the input of the middle block. For MONAI's
      :class:`~monai.networks.nets.DiffusionModelUNet` this is the input of ``middle_block`` (a forward-pre-hook);
      for :class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet` the input of the bottleneck, i.e. of its
      first convolution ``down_blocks.<L-1>.0`` (the output of the last stride-2 convolution, ``channels[-1]``
      features at the lowest resolution). A wrapper (e.g. :class:`~medsyn_monai.networks.nets.
      ClassConditionedDiffusionUNet`) is searched through its ``backbone`` / ``network`` / ``unet`` / ``model``
      attribute (``backbone.middle_block`` etc.).
    - any other name of ``dict(network.named_modules())``: the *output* of that module (the first tensor of a tuple
      output, e.g. the hidden states of a MONAI down block). If the module runs several times in one forward pass,
      the last call counts.

    **Expert features**: the expert (an :class:`~medsyn_monai.networks.nets.ExpertClassifier` or any module with
    ``features(x) -> (B, D)``) sees the network's input ``x_t`` (``expert_input="noisy"``, recorded by a
    forward-pre-hook on the network) or the clean images ``x_0`` (``"clean"``), bilinearly resized to the expert's
    ``image_size`` and converted to its ``in_channels`` (grey repeated to RGB, RGB to grey with BT.601 weights);
    intensities are passed unchanged (the project convention is ``[-1, 1]`` for clean images; noisy inputs have
    about unit variance, as the seed method feeds them). Expert features are computed without gradients.

    **The expert stays frozen**: ``requires_grad_(False)`` and ``eval()`` are applied at construction and the
    expert is switched back to ``eval()`` by :meth:`train` and before every use, so BatchNorm statistics never
    drift. It is held outside the module tree: :meth:`parameters` (what the optimizer gets) and
    :meth:`state_dict` (what checkpoints save) contain the projection only; ``.to()`` moves the expert along.

    Dimensions are fixed at construction (lazily created parameters would be missed by the optimizer):
    ``expert_dim`` defaults to ``expert.feature_dim``; ``diffusion_dim`` is either given or inferred by one dry
    run of ``network`` on a zero image of ``image_shape`` (without gradients, in eval mode, with class label 0 for
    class-conditional networks). The hooks of that dry run are removed again: :class:`~medsyn_monai.engines.
    DiffusionTrainer` attaches the loss to its network for the duration of ``run()``.

    Args:
        expert: trained classifier with ``features(x)``; frozen here.
        network: the diffusion network, used to check ``module_name`` and to infer ``diffusion_dim`` (optional when
            ``diffusion_dim`` is given); the projection is put on its device.
        image_shape: ``(C, *spatial)`` of the training images, for the dry run.
        module_name: network module whose features are aligned (see above); ``None`` for the default point.
        expert_input: ``"noisy"`` (default) or ``"clean"`` (:class:`~medsyn_monai.utils.enums.ExpertInput`).
        projection: ``"linear"`` (default) or ``"mlp"`` (:class:`~medsyn_monai.utils.enums.AlignmentProjection`).
        direction: ``"expert_to_diffusion"`` (default) or ``"diffusion_to_expert"``
            (:class:`~medsyn_monai.utils.enums.AlignmentDirection`).
        diffusion_dim: channels of the diffusion features (inferred from ``network`` when ``None``).
        expert_dim: length of the expert features (default ``expert.feature_dim``).
        hidden_dim: width of the MLP projection (default: the larger of the two dimensions).
        center: subtract the batch mean from the projected and the target features before the cosine (a
            correlation of the features across the batch). Without it (the seed method and REPA) a projection can
            make the loss vanish with a constant output, its bias, pointing along the mean of the other features,
            which carries no per-image information; with it only per-image variation counts. Needs batches of at
            least 2 images.

    Raises:
        ValueError: unknown option, unknown ``module_name`` (the message lists valid names), missing dimensions,
            an expert without ``features``, or a failed dry run.

    Example:
        >>> import torch
        >>> from medsyn_monai.networks.nets import ExpertClassifier, LightweightDiffusionUNet
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4)
        >>> expert = ExpertClassifier("resnet18", in_channels=1, num_classes=2, image_size=16)
        >>> align = FeatureAlignmentLoss(expert, net, image_shape=(1, 16, 16))
        >>> align.diffusion_dim, align.expert_dim, sorted(align.state_dict())
        (16, 512, ['projection.bias', 'projection.weight'])
        >>> with align.attached(net):
        ...     _ = net(torch.randn(2, 1, 16, 16), torch.tensor([10, 500]))
        ...     loss = align.recorded_loss()
        >>> 0.0 <= loss.item() <= 2.0, align.expert.training
        (True, False)
    """

    def __init__(
        self,
        expert: nn.Module,
        network: nn.Module | None = None,
        image_shape: Sequence[int] | None = None,
        module_name: str | None = None,
        expert_input: str | ExpertInput = ExpertInput.NOISY,
        projection: str | AlignmentProjection = AlignmentProjection.LINEAR,
        direction: str | AlignmentDirection = AlignmentDirection.EXPERT_TO_DIFFUSION,
        diffusion_dim: int | None = None,
        expert_dim: int | None = None,
        hidden_dim: int | None = None,
        center: bool = False,
    ) -> None:
        super().__init__()
        for value, enum, name in (
            (expert_input, ExpertInput, "expert_input"),
            (projection, AlignmentProjection, "projection"),
            (direction, AlignmentDirection, "direction"),
        ):
            if str(value) not in [e.value for e in enum]:
                raise ValueError(f"{name} must be one of {[e.value for e in enum]}, got {value!r}.")
        if not callable(getattr(expert, "features", None)):
            raise ValueError(f"expert must have a features(x) method (e.g. ExpertClassifier), got {type(expert)}.")
        self.expert_input = ExpertInput(expert_input)
        self.projection_type = AlignmentProjection(projection)
        self.direction = AlignmentDirection(direction)
        self.module_name = module_name
        self.center = bool(center)
        # the expert lives outside the module tree: not in parameters(), state_dict() or train()
        object.__setattr__(self, "_expert", expert)
        expert.requires_grad_(False)
        expert.eval()
        self._handles: list[RemovableHandle] = []
        self._attached_ref: weakref.ref[nn.Module] | None = None  # not a submodule: no parameters, no state
        self._features: torch.Tensor | None = None
        self._network_input: torch.Tensor | None = None

        expert_dim = expert_dim if expert_dim is not None else getattr(expert, "feature_dim", None)
        if expert_dim is None:
            raise ValueError("expert_dim is needed: the expert has no feature_dim attribute.")
        if network is not None:
            self._resolve(network)  # checks module_name early, with the list of valid names
        if diffusion_dim is None:
            if network is None or image_shape is None:
                raise ValueError("give diffusion_dim, or network and image_shape to infer it by a dry run.")
            diffusion_dim = self._infer_diffusion_dim(network, image_shape)
        if int(diffusion_dim) < 1 or int(expert_dim) < 1:
            raise ValueError(f"feature dimensions must be positive, got {diffusion_dim} and {expert_dim}.")
        self.diffusion_dim = int(diffusion_dim)
        self.expert_dim = int(expert_dim)
        if self.direction == AlignmentDirection.EXPERT_TO_DIFFUSION:
            in_dim, out_dim = self.expert_dim, self.diffusion_dim
        else:
            in_dim, out_dim = self.diffusion_dim, self.expert_dim
        if self.projection_type == AlignmentProjection.LINEAR:
            self.projection: nn.Module = nn.Linear(in_dim, out_dim)
        else:
            hidden = int(hidden_dim) if hidden_dim is not None else max(in_dim, out_dim)
            if hidden < 1:
                raise ValueError(f"hidden_dim must be positive, got {hidden_dim}.")
            self.projection = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out_dim)
            )
        param = next(network.parameters(), None) if network is not None else None
        if param is not None:
            self.projection.to(param.device)

    @classmethod
    def from_expert_checkpoint(
        cls,
        expert_ckpt: str | Path,
        network: nn.Module | None = None,
        image_shape: Sequence[int] | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> FeatureAlignmentLoss:
        """Build the loss around an expert trained by a bundle's ``train_expert.json``.

        The expert is rebuilt from the ``model_info.json`` beside ``expert_ckpt`` (network ``name``, ``in_channels``,
        ``num_classes``, ``expert_input_size``) and its weights are loaded from ``expert_ckpt``.

        Args:
            expert_ckpt: the expert's weights, e.g. ``<output_dir>/models/expert/best_model.pt``.
            network: the diffusion network (see the class arguments).
            image_shape: ``(C, *spatial)`` of the training images.
            device: device of the expert (default: the network's device, else the CPU).
            kwargs: other arguments of :class:`FeatureAlignmentLoss` (``module_name``, ``expert_input``, ...).

        Raises:
            FileNotFoundError: ``expert_ckpt`` or its ``model_info.json`` does not exist.
        """
        path = Path(expert_ckpt)
        if not path.is_file() or not (path.parent / MODEL_INFO_NAME).is_file():
            raise FileNotFoundError(
                f"expert checkpoint {path} (with {MODEL_INFO_NAME} beside it) not found: train the expert first "
                "(the bundle's train_expert.json), point expert_ckpt at it, or train the baseline without feature "
                "alignment (--feature_alignment false)."
            )
        info = load_model_info(path)
        expert = ExpertClassifier(
            info["name"],
            in_channels=info["in_channels"],
            num_classes=info["num_classes"],
            image_size=info.get("expert_input_size", info.get("image_size")),
            pretrained_path=path,
        )
        if device is None:
            param = next(network.parameters(), None) if network is not None else None
            device = param.device if param is not None else "cpu"
        return cls(expert.to(device), network=network, image_shape=image_shape, **kwargs)

    # ------------------------------------------------------------------ expert, frozen
    @property
    def expert(self) -> nn.Module:
        """The frozen expert classifier (always in eval mode)."""
        return self._expert  # type: ignore[return-value]

    def train(self, mode: bool = True) -> FeatureAlignmentLoss:
        """Set the projection's training mode; the expert stays in eval mode whatever ``mode`` is."""
        super().train(mode)
        self._expert.eval()
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> FeatureAlignmentLoss:
        self._expert._apply(fn)  # .to(), .cuda(), .float() ... move the expert along
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return (
            f"module_name={self.module_name!r}, expert_input={self.expert_input.value!r}, "
            f"direction={self.direction.value!r}, diffusion_dim={self.diffusion_dim}, expert_dim={self.expert_dim}, "
            f"center={self.center}"
        )

    # ------------------------------------------------------------------ hooks
    def _resolve(self, network: nn.Module) -> tuple[nn.Module, bool]:
        """The hooked module of ``network`` and whether its input (True) or its output (False) is taken."""
        modules = dict(network.named_modules())
        if self.module_name is None:
            inner, prefix = _inner_network(network)
            if hasattr(inner, "middle_block"):  # MONAI DiffusionModelUNet: input of the middle block
                return modules[f"{prefix}middle_block"], True
            down = getattr(inner, "down_blocks", None)
            if isinstance(down, nn.ModuleList) and len(down) and isinstance(down[-1], nn.ModuleList) and len(down[-1]):
                # LightweightDiffusionUNet: input of the bottleneck's first convolution (output of the down path)
                return modules[f"{prefix}down_blocks.{len(down) - 1}.0"], True
            raise ValueError(
                f"no default alignment point in {type(network).__name__} (neither a middle_block nor a "
                "LightweightDiffusionUNet bottleneck): set module_name, e.g. one of "
                f"{[n for n in modules if n][:8]}."
            )
        if self.module_name not in modules or self.module_name == "":
            names = [n for n in modules if n]
            hint = [n for n in names if "block" in n or "down" in n or "mid" in n][:8] or names[:8]
            raise ValueError(
                f"unknown module_name {self.module_name!r} in {type(network).__name__}; valid names include "
                f"{hint} ({len(names)} modules, see dict(network.named_modules()))."
            )
        return modules[self.module_name], False

    def _record_features(self, value: Any) -> None:
        features = _first_tensor(value)
        if features is None:
            raise ValueError(f"the hooked module {self.module_name!r} produced no tensor to align.")
        self._features = _pool(features)

    def _input_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        for key in ("hidden_states", "x"):  # MONAI blocks take hidden_states=..., networks x=...
            if not args and isinstance(kwargs.get(key), torch.Tensor):
                return self._record_features(kwargs[key])
        self._record_features(args if args else kwargs)

    def _output_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._record_features(output)

    def _network_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = kwargs.get("x") if "x" in kwargs else (args[0] if args else None)
        self._network_input = x.detach() if isinstance(x, torch.Tensor) else None

    @property
    def attached_network(self) -> nn.Module | None:
        """The network the hooks are on, or ``None``."""
        return self._attached_ref() if self._attached_ref is not None else None

    @property
    def is_attached(self) -> bool:
        return self.attached_network is not None

    def attach(self, network: nn.Module) -> FeatureAlignmentLoss:
        """Register the hooks on ``network`` (its chosen module and its input); replaces an earlier attachment.

        Args:
            network: the diffusion network being trained (not a ``torch.compile`` wrapper's copy: the module itself).

        Returns:
            ``self``.

        Raises:
            ValueError: unknown ``module_name``.
        """
        module, take_input = self._resolve(network)
        self.detach()
        if take_input:
            self._handles.append(module.register_forward_pre_hook(self._input_pre_hook, with_kwargs=True))
        else:
            self._handles.append(module.register_forward_hook(self._output_hook))
        self._handles.append(network.register_forward_pre_hook(self._network_pre_hook, with_kwargs=True))
        self._attached_ref = weakref.ref(network)
        return self

    def detach(self) -> None:
        """Remove the hooks and forget the recorded features."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._attached_ref = None
        self.clear()

    def clear(self) -> None:
        """Forget the features and input recorded by the last forward pass."""
        self._features = None
        self._network_input = None

    @contextmanager
    def attached(self, network: nn.Module) -> Iterator[FeatureAlignmentLoss]:
        """Context manager: hooks on ``network`` inside the block (a no-op when already attached to it)."""
        if self.attached_network is network:
            yield self
            return
        self.attach(network)
        try:
            yield self
        finally:
            self.detach()

    @property
    def recorded_features(self) -> torch.Tensor | None:
        """Pooled ``(B, diffusion_dim)`` features of the last forward pass of the attached network."""
        return self._features

    @property
    def recorded_input(self) -> torch.Tensor | None:
        """The attached network's last input ``x_t`` (detached)."""
        return self._network_input

    def _infer_diffusion_dim(self, network: nn.Module, image_shape: Sequence[int]) -> int:
        shape = tuple(int(s) for s in image_shape)
        if len(shape) < 2 or min(shape) < 1:
            raise ValueError(f"image_shape must be (C, *spatial) with positive sizes, got {image_shape!r}.")
        param = next(network.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(1, *shape, device=device)
        timesteps = torch.zeros(1, dtype=torch.long, device=device)
        labels = torch.zeros(1, dtype=torch.long, device=device)
        attempts = [{"class_labels": labels}, {}] if _num_class_embeds(network) is not None else [{}]
        was_training = network.training
        network.eval()
        error: Exception | None = None
        try:
            with self.attached(network), torch.no_grad():
                for extra in attempts:
                    try:
                        network(x=x, timesteps=timesteps, **extra)
                        error = None
                        break
                    except Exception as e:  # e.g. a class-conditional network without labels
                        error = e
                features = self._features
        finally:
            network.train(was_training)
        if error is not None or features is None:
            raise ValueError(
                f"could not infer diffusion_dim by a dry run of {type(network).__name__} on shape {(1, *shape)}: "
                f"{error or 'the hooked module was not called'}. Pass diffusion_dim explicitly."
            ) from error
        return int(features.shape[1])

    # ------------------------------------------------------------------ loss
    def expert_images(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` as the expert takes them: its channel count and ``image_size`` (bilinear resize).

        Args:
            images: ``(B, C, H, W)`` images (clean or noisy).

        Returns:
            ``(B, expert.in_channels, *expert.image_size)`` float tensor.
        """
        x = images.as_tensor() if isinstance(images, MetaTensor) else images
        x = x.float()
        if x.ndim != 4:
            raise ValueError(f"the expert takes 2D images (B, C, H, W), got shape {tuple(x.shape)}.")
        channels = int(getattr(self.expert, "in_channels", x.shape[1]))
        if x.shape[1] != channels:
            if x.shape[1] == 1:
                x = x.expand(-1, channels, -1, -1)
            elif x.shape[1] == 3 and channels == 1:
                w = torch.tensor(_GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
                x = (x * w).sum(dim=1, keepdim=True)
            else:
                raise ValueError(f"cannot convert {x.shape[1]}-channel images for an expert with {channels} channels.")
        size = getattr(self.expert, "image_size", None)
        if size is not None:
            size = (int(size),) * 2 if isinstance(size, int) else tuple(int(s) for s in size)
            if tuple(x.shape[2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return x

    def expert_features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen expert features ``(B, expert_dim)`` of ``images`` (no gradients, expert in eval mode)."""
        self._expert.eval()
        with torch.no_grad():
            features = self.expert.features(self.expert_images(images))  # type: ignore[operator]
        return features.float().reshape(features.shape[0], -1)

    def forward(self, diffusion_features: torch.Tensor, expert_images: torch.Tensor) -> torch.Tensor:
        """Alignment loss ``mean_i(1 - cos(W_p(a_i), b_i))``.

        Args:
            diffusion_features: ``(B, diffusion_dim[, *spatial])`` diffusion network features (pooled here).
            expert_images: ``(B, C, H, W)`` images shown to the expert (``x_t`` or ``x_0``).

        Returns:
            scalar loss in ``[0, 2]``.
        """
        diff = _pool(diffusion_features)
        if diff.shape[1] != self.diffusion_dim:
            raise ValueError(f"diffusion features have {diff.shape[1]} channels, expected {self.diffusion_dim}.")
        expert = self.expert_features(expert_images)
        if expert.shape[1] != self.expert_dim:
            raise ValueError(f"expert features have {expert.shape[1]} values, expected {self.expert_dim}.")
        if expert.shape[0] != diff.shape[0]:
            raise ValueError(f"{diff.shape[0]} diffusion feature vectors but {expert.shape[0]} expert images.")
        expert = expert.to(diff.device)
        if self.direction == AlignmentDirection.EXPERT_TO_DIFFUSION:
            projected, target = self.projection(expert).float(), diff.float()
        else:
            projected, target = self.projection(diff).float(), expert.float()
        if self.center:
            if projected.shape[0] < 2:
                raise ValueError("center=True needs batches of at least 2 images (the batch mean is subtracted).")
            projected, target = projected - projected.mean(0, keepdim=True), target - target.mean(0, keepdim=True)
        return (1.0 - F.cosine_similarity(projected, target, dim=1, eps=1e-8)).mean()

    def recorded_loss(self, clean_images: torch.Tensor | None = None) -> torch.Tensor:
        """Alignment loss of the attached network's last forward pass, then forget the recorded tensors.

        Args:
            clean_images: the clean images ``x_0`` of that pass; required with ``expert_input="clean"``.

        Returns:
            scalar loss (differentiable with respect to the network and the projection).

        Raises:
            RuntimeError: nothing recorded (not attached, or no forward pass since the last call).
            ValueError: ``expert_input="clean"`` without ``clean_images``.
        """
        features, noisy = self._features, self._network_input
        if features is None:
            raise RuntimeError(
                "no diffusion features recorded: attach(network) and run the network's forward pass first."
            )
        if self.expert_input == ExpertInput.CLEAN:
            if clean_images is None:
                raise ValueError("expert_input='clean' needs the clean images x_0.")
            images = clean_images
        else:
            if noisy is None:
                raise RuntimeError("the network's input x_t was not recorded (pass it as x or first argument).")
            images = noisy
        if images.shape[0] != features.shape[0]:
            raise ValueError(f"{images.shape[0]} images for {features.shape[0]} recorded feature vectors.")
        self.clear()
        return self(features, images)
