"""A lightweight diffusion U-Net that adds the time embedding after every convolution.

The seed method (a lightweight DDPM U-Net for COVID-19 CT synthesis) conditions a small, attention-free U-Net on the
diffusion time step by *adding* a projection of the time embedding to the feature maps after each convolution of the
down and up paths, instead of only inside residual blocks. Its ablations remove the skip connections (a plain
encoder-decoder), inject the time embedding only once at the input, or only in the encoder half. All four variants are
options of :class:`LightweightDiffusionUNet`.

For conditioning on a token sequence (e.g. a learned class token, see
:class:`~medsyn_monai.networks.nets.ClassConditionedDiffusionUNet`) the network can optionally insert MONAI's
cross-attention :class:`~monai.networks.nets.diffusion_model_unet.SpatialTransformer` blocks at chosen levels
(``with_conditioning=True``); without them it stays attention-free and unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.networks.nets.diffusion_model_unet import SpatialTransformer, get_timestep_embedding
from torch import nn
from torch.utils.checkpoint import checkpoint

from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.enums import TimeInjection

__all__ = ["LightweightDiffusionUNet"]


class _TimeConvBlock(nn.Module):
    """Convolution → GroupNorm → SiLU, then (optionally) ``+ Linear(SiLU(temb))`` broadcast over space."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        emb_dim: int | None,
        norm_num_groups: int,
        stride: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        conv_type = Conv[Conv.CONV, spatial_dims]
        self.conv = conv_type(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.norm = nn.GroupNorm(min(norm_num_groups, out_channels), out_channels)
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.emb_proj = nn.Linear(emb_dim, out_channels) if emb_dim is not None else None
        self.spatial_dims = spatial_dims

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.norm(self.conv(x))))
        if self.emb_proj is not None:
            h = h + self.emb_proj(F.silu(emb)).reshape(*emb.shape[:1], -1, *([1] * self.spatial_dims))
        return h


class LightweightDiffusionUNet(nn.Module):
    """Attention-free diffusion U-Net with the time embedding added after every down and up convolution.

    The network has ``len(channels)`` resolution levels. The input passes a stem convolution, then at every level
    ``convs_per_level`` 3x3 convolutions (GroupNorm, SiLU); levels are linked by stride-2 convolutions on the way down
    and by nearest-neighbour upsampling followed by a convolution on the way up, where the encoder features of the
    same level are concatenated (``skip_connections=True``). The last level is the bottleneck. After each
    convolution the sinusoidal time embedding (plus a class embedding when ``num_class_embeds`` is set), passed
    through SiLU and a per-convolution linear layer, is added to every feature map, in the places chosen by
    ``time_injection``:

    - ``"all"``: every convolution of the encoder, bottleneck and decoder (the proposed model);
    - ``"first"``: only the stem convolution, i.e. once at the input (the usual "add t to the input" baseline);
    - ``"encoder"``: stem, encoder and bottleneck convolutions, none in the decoder.

    With ``with_conditioning=True`` the network takes a ``context`` token sequence ``(B, T, cross_attention_dim)``:
    a MONAI :class:`~monai.networks.nets.diffusion_model_unet.SpatialTransformer` (GroupNorm, 1x1 projection,
    self-attention, cross-attention to ``context``, feed-forward, zero-initialised output projection, residual) follows
    the convolutions of every level marked in ``attention_levels``, in the encoder and again in the decoder (the last
    level, the bottleneck, has one). Without conditioning no attention module is built: parameters and
    ``state_dict`` keys are those of the attention-free network.

    The forward signature matches :class:`monai.networks.nets.DiffusionModelUNet`, so MONAI's schedulers, the
    project's inferers and every bundle accept either network unchanged.

    Reference:
        Lightweight diffusion U-Net for COVID-19 CT image synthesis (the "seed" of the ``ct_lightweight`` bundle):
        time embedding injected after each down/up convolution; ablations without skip connections, with a single
        injection, and with encoder-only injections.

    Args:
        spatial_dims: 2 or 3.
        in_channels: number of image channels.
        out_channels: number of output channels (same as ``in_channels`` for epsilon / v / sample prediction).
        channels: feature channels per resolution level; the image is downsampled ``len(channels) - 1`` times.
        convs_per_level: 3x3 convolutions per level (encoder, bottleneck and decoder alike).
        time_embed_dim: size of the time embedding; defaults to ``4 * channels[0]``.
        norm_num_groups: groups of the GroupNorm layers (capped at the channel count).
        time_injection: ``"all"``, ``"first"`` or ``"encoder"`` (see above).
        skip_connections: concatenate encoder features in the decoder; ``False`` gives a plain encoder-decoder
            (booleans here and in ``with_conditioning`` / ``attention_levels`` accept the command-line spellings of
            :func:`~medsyn_monai.utils.as_bool`).
        num_class_embeds: number of classes for class-conditional generation (a learned embedding added to the time
            embedding); ``None`` for an unconditional model.
        dropout: dropout after each activation.
        with_conditioning: add cross-attention blocks that attend to ``context`` (see above).
        cross_attention_dim: feature size of the ``context`` tokens; required with ``with_conditioning``.
        attention_levels: one bool per level, where cross-attention blocks go; default: the bottleneck only
            (``(False, ..., False, True)``). Only with ``with_conditioning``.
        num_head_channels: channels per attention head (an int, or one per level); the channels of every attention
            level must be divisible by it.
        transformer_num_layers: transformer layers per attention block.
        gradient_checkpointing: in training, keep only each convolution block's input and recompute its activations
            during the backward pass (``torch.utils.checkpoint``): 21-24 % less memory per image (measured at
            64-256 px) at the cost of one more forward pass (a third more FLOPs per step), which lets larger images or
            batches fit (``benchmarks/bench_memory.py``). Results are unchanged; no effect at inference.

    Raises:
        ValueError: on an unknown ``time_injection``, bad ``spatial_dims``, empty or non-positive ``channels``,
            ``convs_per_level < 1``, ``with_conditioning`` without ``cross_attention_dim`` (or the reverse),
            ``attention_levels`` without ``with_conditioning`` or of the wrong length, or channels of an attention
            level not divisible by ``num_head_channels``.

    Example:
        >>> import torch
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4)
        >>> net(torch.randn(2, 1, 16, 16), timesteps=torch.tensor([3, 500])).shape
        torch.Size([2, 1, 16, 16])
        >>> xnet = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4, with_conditioning=True,
        ...                                 cross_attention_dim=12, num_head_channels=8)
        >>> xnet(torch.randn(2, 1, 16, 16), torch.tensor([3, 500]), context=torch.randn(2, 1, 12)).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (32, 64, 128),
        convs_per_level: int = 2,
        time_embed_dim: int | None = None,
        norm_num_groups: int = 8,
        time_injection: str | TimeInjection = TimeInjection.ALL,
        skip_connections: bool = True,
        num_class_embeds: int | None = None,
        dropout: float = 0.0,
        with_conditioning: bool = False,
        cross_attention_dim: int | None = None,
        attention_levels: Sequence[bool] | None = None,
        num_head_channels: int | Sequence[int] = 8,
        transformer_num_layers: int = 1,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        skip_connections = as_bool(skip_connections, "skip_connections")
        with_conditioning = as_bool(with_conditioning, "with_conditioning")
        if attention_levels is not None:
            attention_levels = [as_bool(a, "attention_levels") for a in attention_levels]
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1 or any(c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of positive integers, got {channels}.")
        if convs_per_level < 1:
            raise ValueError(f"convs_per_level must be >= 1, got {convs_per_level}.")
        if str(time_injection) not in [t.value for t in TimeInjection]:
            options = [t.value for t in TimeInjection]
            raise ValueError(f"time_injection must be one of {options}, got {time_injection!r}.")
        if num_class_embeds is not None and num_class_embeds < 1:
            raise ValueError(f"num_class_embeds must be a positive integer or None, got {num_class_embeds}.")
        levels = self._attention_levels(
            channels, with_conditioning, cross_attention_dim, attention_levels, num_head_channels
        )
        #: the constructor arguments (JSON-ready), from which :func:`~medsyn_monai.networks.nets.network_from_config`
        #: rebuilds the network
        self.init_args = {
            "spatial_dims": spatial_dims, "in_channels": in_channels, "out_channels": out_channels,
            "channels": list(channels), "convs_per_level": convs_per_level, "time_embed_dim": time_embed_dim,
            "norm_num_groups": norm_num_groups, "time_injection": str(time_injection),
            "skip_connections": skip_connections, "num_class_embeds": num_class_embeds, "dropout": dropout,
            "with_conditioning": with_conditioning, "cross_attention_dim": cross_attention_dim,
            "attention_levels": attention_levels,
            "num_head_channels": num_head_channels if isinstance(num_head_channels, int) else list(num_head_channels),
            "transformer_num_layers": transformer_num_layers,
        }  # fmt: skip
        self.gradient_checkpointing = as_bool(gradient_checkpointing, "gradient_checkpointing")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = channels
        self.time_injection = TimeInjection(time_injection)
        self.skip_connections = skip_connections
        self.num_class_embeds = num_class_embeds
        self.with_conditioning = bool(with_conditioning)
        self.cross_attention_dim = cross_attention_dim
        self.attention_levels = tuple(levels[0]) if with_conditioning else tuple(False for _ in channels)
        self.block_out_channels = channels  # name used by MONAI's DiffusionModelUNet, for interoperability

        emb_dim = time_embed_dim or 4 * channels[0]
        self.time_embed_dim = emb_dim
        self.time_embed = nn.Sequential(nn.Linear(channels[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embedding = nn.Embedding(num_class_embeds, emb_dim) if num_class_embeds is not None else None

        enc_emb = emb_dim if self.time_injection in (TimeInjection.ALL, TimeInjection.ENCODER) else None
        dec_emb = emb_dim if self.time_injection == TimeInjection.ALL else None

        def block(cin: int, cout: int, emb: int | None, stride: int = 1) -> _TimeConvBlock:
            return _TimeConvBlock(spatial_dims, cin, cout, emb, norm_num_groups, stride=stride, dropout=dropout)

        self.stem = block(in_channels, channels[0], emb_dim)
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for i, ch in enumerate(channels):
            self.down_blocks.append(nn.ModuleList([block(ch, ch, enc_emb) for _ in range(convs_per_level)]))
            if i < len(channels) - 1:
                self.downsamplers.append(block(ch, channels[i + 1], enc_emb, stride=2))
        self.upsamplers = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            ch = channels[i]
            self.upsamplers.append(block(channels[i + 1], ch, dec_emb))
            first_in = 2 * ch if skip_connections else ch
            convs = [block(first_in, ch, dec_emb)] + [block(ch, ch, dec_emb) for _ in range(convs_per_level - 1)]
            self.up_blocks.append(nn.ModuleList(convs))
        # cross-attention blocks exist only with conditioning, so the attention-free network keeps its state_dict keys
        self.down_attentions: nn.ModuleDict | None = None
        self.up_attentions: nn.ModuleDict | None = None
        if with_conditioning:
            level_flags, head_channels = levels

            def attention(level: int) -> SpatialTransformer:
                ch = channels[level]
                return SpatialTransformer(
                    spatial_dims=spatial_dims,
                    in_channels=ch,
                    num_attention_heads=ch // head_channels[level],
                    num_head_channels=head_channels[level],
                    num_layers=transformer_num_layers,
                    norm_num_groups=min(norm_num_groups, ch),
                    cross_attention_dim=cross_attention_dim,
                )

            used = [i for i, flag in enumerate(level_flags) if flag]
            self.down_attentions = nn.ModuleDict({str(i): attention(i) for i in used})
            self.up_attentions = nn.ModuleDict({str(i): attention(i) for i in used if i < len(channels) - 1})
        self.out_norm = nn.GroupNorm(min(norm_num_groups, channels[0]), channels[0])
        self.out_conv = Conv[Conv.CONV, spatial_dims](channels[0], out_channels, kernel_size=3, padding=1)
        # zero-initialised output: the untrained network predicts 0, a stable start for diffusion training
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    @staticmethod
    def _attention_levels(
        channels: tuple[int, ...],
        with_conditioning: bool,
        cross_attention_dim: int | None,
        attention_levels: Sequence[bool] | None,
        num_head_channels: int | Sequence[int],
    ) -> tuple[list[bool], list[int]]:
        """Validate the cross-attention options; return the per-level flags and head channels."""
        if with_conditioning and cross_attention_dim is None:
            raise ValueError("with_conditioning=True needs cross_attention_dim (the feature size of the context).")
        if cross_attention_dim is not None and not with_conditioning:
            raise ValueError("cross_attention_dim is only used with with_conditioning=True.")
        if cross_attention_dim is not None and int(cross_attention_dim) < 1:
            raise ValueError(f"cross_attention_dim must be a positive integer, got {cross_attention_dim}.")
        if attention_levels is not None and not with_conditioning and any(attention_levels):
            raise ValueError(
                "attention_levels need with_conditioning=True: without conditioning the network is attention-free."
            )
        flags = (
            [False] * (len(channels) - 1) + [True] if attention_levels is None else [bool(a) for a in attention_levels]
        )
        if len(flags) != len(channels):
            raise ValueError(f"attention_levels needs one entry per level ({len(channels)}), got {len(flags)}.")
        if isinstance(num_head_channels, int):
            heads = [int(num_head_channels)] * len(channels)
        else:
            heads = [int(h) for h in num_head_channels]
        if len(heads) != len(channels) or any(h < 1 for h in heads):
            raise ValueError(
                f"num_head_channels must be a positive int or one per level ({len(channels)}), got {num_head_channels}."
            )
        if with_conditioning:
            bad = [(channels[i], heads[i]) for i, f in enumerate(flags) if f and channels[i] % heads[i]]
            if bad:
                raise ValueError(
                    f"channels of the attention levels must be divisible by num_head_channels, got (channels, head "
                    f"channels) {bad}."
                )
        return flags, heads

    def feature_point(self) -> tuple[str, int]:
        """The module whose output ends the down path (the input of the bottleneck convolutions) and its channels.

        The default alignment point of feature-aligned diffusion (see :func:`medsyn_monai.networks.utils.
        feature_point`): the last stride-2 convolution, ``channels[-1]`` features at the lowest resolution (the
        stem for a one-level network).
        """
        if len(self.downsamplers):
            return f"downsamplers.{len(self.downsamplers) - 1}", int(self.channels[-1])
        return "stem", int(self.channels[0])

    def middle_point(self) -> tuple[str, int]:
        """The module whose output ends the middle (bottleneck) stage, and its channels.

        The alignment point ``align_module="middle_block"`` of U-REPA (see :func:`medsyn_monai.networks.utils.
        middle_point`): the last convolution of the lowest level (``down_blocks.<last>.<last>``), or that level's
        cross-attention block when the network has one there; ``channels[-1]`` features at the lowest resolution.
        """
        last = len(self.channels) - 1
        if self.down_attentions is not None and str(last) in self.down_attentions:
            return f"down_attentions.{last}", int(self.channels[-1])
        return f"down_blocks.{last}.{len(cast(nn.ModuleList, self.down_blocks[last])) - 1}", int(self.channels[-1])

    def _embedding(self, x: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        t_emb = get_timestep_embedding(timesteps, self.channels[0]).to(dtype=x.dtype)
        emb = self.time_embed(t_emb)
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels must be given: the network was built with num_class_embeds.")
            emb = emb + self.class_embedding(class_labels.long().reshape(-1)).to(dtype=emb.dtype)
        elif class_labels is not None:
            raise ValueError("class_labels were given but the network has no class embedding (num_class_embeds=None).")
        return emb

    @staticmethod
    def _checkpointed(conv: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, checkpoint(conv, h, emb, use_reentrant=False))

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the diffusion target for noisy images ``x`` at ``timesteps``.

        Args:
            x: noisy images, ``(B, in_channels, *spatial)``; spatial sizes divisible by ``2 ** (len(channels) - 1)``.
            timesteps: ``(B,)`` integer (or float) time steps, or a scalar applied to the whole batch.
            context: ``(B, T, cross_attention_dim)`` tokens the cross-attention blocks attend to; required with
                ``with_conditioning``, must be ``None`` without.
            class_labels: ``(B,)`` class indices when the network is class-conditional.

        Returns:
            ``(B, out_channels, *spatial)`` prediction.
        """
        if context is not None and not self.with_conditioning:
            raise ValueError(
                "LightweightDiffusionUNet was built without cross-attention (with_conditioning=False); pass "
                "class_labels instead of context."
            )
        if self.with_conditioning and context is None:
            raise ValueError("the network was built with_conditioning=True: context tokens must be given.")
        factor = 2 ** (len(self.channels) - 1)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} must be divisible by {factor} for channels {self.channels}."
            )
        emb = self._embedding(x, timesteps, class_labels)
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        block = self._checkpointed if recompute else None

        h = self.stem(x, emb)
        skips = []
        for i, convs in enumerate(self.down_blocks):
            for conv in cast(nn.ModuleList, convs):
                h = block(conv, h, emb) if block else conv(h, emb)
            if self.down_attentions is not None and str(i) in self.down_attentions:
                h = self.down_attentions[str(i)](h, context=context)
            if i < len(self.downsamplers):
                skips.append(h)
                h = self.downsamplers[i](h, emb)
        for j, (up, convs) in enumerate(zip(self.upsamplers, self.up_blocks, strict=True)):
            h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"), emb)
            skip = skips.pop()
            if self.skip_connections:
                h = torch.cat([h, skip], dim=1)
            for conv in cast(nn.ModuleList, convs):
                h = block(conv, h, emb) if block else conv(h, emb)
            level = str(len(self.channels) - 2 - j)
            if self.up_attentions is not None and level in self.up_attentions:
                h = self.up_attentions[level](h, context=context)
        return self.out_conv(F.silu(self.out_norm(h)))
