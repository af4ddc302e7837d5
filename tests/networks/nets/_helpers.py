"""Helpers shared by the tests of :mod:`medsyn_monai.networks.nets`."""

from __future__ import annotations

import torch


def randomise_zero_weights(net: torch.nn.Module) -> torch.nn.Module:
    """Give the zero-initialised output layers weights, so outputs depend on every input (labels included); returns
    the network in eval mode."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0 and p.ndim > 1:
                p.normal_(std=0.2)
    return net.eval()
