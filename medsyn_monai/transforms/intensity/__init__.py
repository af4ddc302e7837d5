"""Intensity transforms: CT windowing, X-ray normalisation, MONOCHROME1 inversion, colour to grey, range scaling."""

from __future__ import annotations

from .array import CTWindow, InvertMonochrome1, RandCTWindow, RGBToGrey, ScaleToRange, XRayNormalize
from .dictionary import (
    CTWindowD,
    CTWindowd,
    CTWindowDict,
    InvertMonochrome1D,
    InvertMonochrome1d,
    InvertMonochrome1Dict,
    RandCTWindowD,
    RandCTWindowd,
    RandCTWindowDict,
    RGBToGreyD,
    RGBToGreyd,
    RGBToGreyDict,
    ScaleToRangeD,
    ScaleToRanged,
    ScaleToRangeDict,
    XRayNormalizeD,
    XRayNormalized,
    XRayNormalizeDict,
)

__all__ = [
    "CTWindow",
    "RandCTWindow",
    "InvertMonochrome1",
    "XRayNormalize",
    "RGBToGrey",
    "ScaleToRange",
    "CTWindowd",
    "CTWindowD",
    "CTWindowDict",
    "RandCTWindowd",
    "RandCTWindowD",
    "RandCTWindowDict",
    "InvertMonochrome1d",
    "InvertMonochrome1D",
    "InvertMonochrome1Dict",
    "XRayNormalized",
    "XRayNormalizeD",
    "XRayNormalizeDict",
    "RGBToGreyd",
    "RGBToGreyD",
    "RGBToGreyDict",
    "ScaleToRanged",
    "ScaleToRangeD",
    "ScaleToRangeDict",
]
