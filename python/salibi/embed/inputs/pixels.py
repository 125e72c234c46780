"""Pixels for the model: reading the routed bands of a raster window, normalising them, and padding
and cutting them into windows of patches (steps 5-6 of :mod:`salibi.embed`).

Invalid pixels (NaN, the file's nodata value, GDAL's mask e.g. a PNG alpha band) become 0 after
normalisation, the band mean; bands filled by ``--fill-missing mean`` are 0 everywhere. Images are
padded with zeros at the bottom and right to a multiple of the patch size, never cropped; the
tokens of padding patches are left out of every mean.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from salibi.embed.inputs.routing import BandRoute, ModalitySpec

__all__ = ["invalid_fraction", "normalise", "pad_to_patches", "read_routed", "to_windows", "window_layout"]


def read_routed(ds: Any, route: BandRoute, is_complex: bool, window: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The routed bands of ``ds`` (over ``window``, else whole) in the encoder's order:
    ``(values (C, h, w) float32, invalid (C, h, w) bool)``; a filled band is 0 and valid.
    Complex pixels become intensity ``|z|^2``, as ``salibi align`` stores SLC."""
    from rasterio.errors import NodataShadowWarning

    real = [i for i in route.indexes if i > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)  # nodata and an alpha band: GDAL uses nodata, as we do
        data = ds.read(real, window=window, masked=True)
    values, invalid = np.ma.getdata(data), np.ma.getmaskarray(data)
    if is_complex:
        values = values.real.astype(np.float32) ** 2 + values.imag.astype(np.float32) ** 2
    else:
        values = values.astype(np.float32, copy=False)
    invalid = invalid | ~np.isfinite(values)
    if len(real) == len(route.indexes):
        return values, invalid
    shape = (len(route.indexes), *values.shape[1:])
    out, out_invalid = np.zeros(shape, np.float32), np.zeros(shape, bool)
    at = [k for k, i in enumerate(route.indexes) if i > 0]
    out[at], out_invalid[at] = values, invalid
    return out, out_invalid


def invalid_fraction(invalid: np.ndarray, filled: tuple[bool, ...]) -> float:
    """Share of pixels invalid in some band that was read (filled bands are not read)."""
    read = [k for k, f in enumerate(filled) if not f]
    return float(invalid[read].any(axis=0).mean()) if read else 0.0


def normalise(
    values: np.ndarray, invalid: np.ndarray, spec: ModalitySpec, filled: tuple[bool, ...] = ()
) -> tuple[np.ndarray, bool]:
    """``(x - mean) / std`` per band with the checkpoint's statistics (per image and band when it
    has none: the second value says so); invalid pixels and filled bands set to 0 (the mean)."""
    per_image = spec.mean is None or spec.std is None
    if per_image:
        valid = np.where(invalid, np.nan, values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-invalid bands
            mean = np.nan_to_num(np.nanmean(valid, axis=(-2, -1)))
            std = np.nan_to_num(np.nanstd(valid, axis=(-2, -1)))
    else:
        mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    out = (values - mean.astype(np.float32)[..., None, None]) / std[..., None, None]
    out[invalid] = 0.0
    for k, fill in enumerate(filled):
        if fill:
            out[..., k, :, :] = 0.0
    return out.astype(np.float32, copy=False), per_image


def window_layout(height: int, width: int, patch: int, window_patches: int) -> tuple[int, int, int, int]:
    """``(window rows, window cols, patch rows per window, patch cols per window)`` for an image:
    equal windows, as few as fit ``window_patches`` x ``window_patches`` patches."""
    rows_p, cols_p = -(-height // patch), -(-width // patch)
    n_rows, n_cols = -(-rows_p // window_patches), -(-cols_p // window_patches)
    return n_rows, n_cols, -(-rows_p // n_rows), -(-cols_p // n_cols)


def to_windows(image: np.ndarray, patch: int, window_patches: int) -> tuple[Any, Any]:
    """(C, H, W) -> zero-padded windows (W, C, h, w) and their token masks (W, N) as tensors."""
    import torch

    c, h, w = image.shape
    n_rows, n_cols, wr, wc = window_layout(h, w, patch, window_patches)
    full = np.zeros((c, n_rows * wr * patch, n_cols * wc * patch), np.float32)
    full[:, :h, :w] = image
    # tokens holding at least one image pixel: padding stays out of the mean
    rows_p, cols_p = -(-h // patch), -(-w // patch)
    token_valid = np.zeros((n_rows * wr, n_cols * wc), bool)
    token_valid[:rows_p, :cols_p] = True
    windows = full.reshape(c, n_rows, wr * patch, n_cols, wc * patch).transpose(1, 3, 0, 2, 4)
    windows = windows.reshape(n_rows * n_cols, c, wr * patch, wc * patch)
    masks = token_valid.reshape(n_rows, wr, n_cols, wc).transpose(0, 2, 1, 3).reshape(n_rows * n_cols, wr * wc)
    keep = masks.any(axis=1)  # a window of padding only adds nothing
    return torch.from_numpy(np.ascontiguousarray(windows[keep])), torch.from_numpy(np.ascontiguousarray(masks[keep]))


def pad_to_patches(image: np.ndarray, patch: int) -> tuple[Any, Any]:
    """(C, H, W) -> one zero-padded (C, H', W') tensor, H' and W' multiples of ``patch``, and its
    (N,) token mask (tokens holding image pixels): a whole chip for the cross-modal encoder."""
    import torch

    c, h, w = image.shape
    rows_p, cols_p = -(-h // patch), -(-w // patch)
    full = np.zeros((c, rows_p * patch, cols_p * patch), np.float32)
    full[:, :h, :w] = image
    return torch.from_numpy(full), torch.ones(rows_p * cols_p, dtype=torch.bool)
