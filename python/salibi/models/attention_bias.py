"""Scale-ALiBi attention biases on the model's device, built once per batch, for either backend.

The Rust core (:mod:`salibi.bias`) computes and caches the ground-distance tables; for the
``sdpa`` backend this module puts them on the model's device (once per geometry, device and
dtype) and turns them into the additive ``attn_mask`` that
:func:`torch.nn.functional.scaled_dot_product_attention` takes:

    bias[b, h, i, j] = -m_h * distance(token q_i of sample b, token k_j of sample b) / L

A :class:`TokenGeometry` describes the chips of one forward call: one :class:`PatchGrid` per
modality, all on the same ground footprint with their top-left corner at the common origin
``(0, 0)`` (``scale-alibi``), or each in its own patch units, centred on one another
(``alibi``: :func:`patch_unit_grid`). Tokens of all modalities are numbered globally (modality ``m``'s patch ``i``, in
row-major order, is token ``offsets[m] + i``), so any set of tokens -- the kept tokens of one
modality, or the joint SAR + low-res tokens of the fusion encoder -- is a ``(B, k)`` tensor of
global ids, and the bias between two such sets is the sub-table at those ids of one cached
``(N_total, N_total)`` table (never a full table repeated per batch element). Unmasked calls
use ids of shape ``(1, N)`` and get a bias of shape ``(1, H, N, M)`` that broadcasts over the
batch; :meth:`TokenGeometry.full_bias` caches those (unmasked encoding, the MAE decoder).

On the CPU in float32, a bias between two token sets that each lie in one modality's grid is
built by the core straight from the kept tokens (:func:`salibi.bias.masked_scale_alibi_bias`,
the same float32 products, about twice as fast as gathering from the table); elsewhere (CUDA,
reduced precision, sets spanning modalities) the table is gathered on the device.

For the ``flex`` backend (:mod:`salibi.models.flex`) nothing of size ``nq * nk`` is built: a
bias is a :class:`~salibi.models.flex.FlexBias`, the kept tokens' centres divided by ``L``
(gathered from one cached ``(2, N_total)`` tensor) and ``-m_h``; the kernel computes the rest.

Chips of different GSDs in one batch (:meth:`TokenGeometry.per_sample`: each chip's own ground
GSD, e.g. web-mercator tiles at different latitudes): a sample's distances are those of a *unit*
geometry -- the same patch grids with its first modality at 1 m per pixel and the others at their
ratio to it -- times that first GSD. Samples are grouped by those ratios (one group when every
chip of the batch has the same shape of geometry, as the tiles of one archive set do); each group's
unit geometry is an ordinary, cached :class:`TokenGeometry`, so the tables are built once per
shape of geometry, not once per chip, and a batch's biases cost one multiplication more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch

from salibi.bias import PatchGrid, alibi_slopes, ground_distance_table, masked_scale_alibi_bias
from salibi.models.flex import FlexBias

__all__ = [
    "TokenGeometry",
    "cache_clear",
    "cache_info",
    "device_cached",
    "negative_slopes",
    "patch_unit_grid",
    "set_cache_limit",
]


def patch_unit_grid(rows: int, cols: int, patch_px: int) -> PatchGrid:
    """A chip's patch grid in its own patch units, centred on the origin: the GSD-blind convention
    of the ``alibi`` variant's bias and of the ``sincos`` variant's embedding coordinates.

    A patch is ``patch_px`` units wide (GSD 1), so with ``L = patch_px`` distances count patches;
    the grid's centre is at ``(0, 0)``, so the grids of all chips of one sample (one footprint)
    are centred on one another whatever their GSDs: the centre patches of a 3 x 3 and a 1 x 1
    grid are at distance 0. Both backends take the grid as it is (the ``sdpa`` tables and the
    core's masked biases from its origin, the ``flex`` coordinates from :meth:`PatchGrid.centres`).
    Scale-ALiBi needs no such convention: its grids lie on the ground, where chips of one
    footprint coincide.
    """
    return PatchGrid(rows, cols, patch_px, 1.0, (-cols * patch_px / 2.0, rows * patch_px / 2.0))


class _DeviceCache:
    """A bounded (bytes), thread-safe LRU of device tensors keyed by geometry."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        # Outside the lock (building may take a while; a racing twin is harmless), and never as
        # an inference tensor, which autograd could not use later.
        with torch.inference_mode(False), torch.no_grad():
            value = build()
        size = value.numel() * value.element_size()
        with self._lock:
            if key not in self._entries and size <= self.max_bytes:
                self._entries[key] = value
                self._bytes += size
                self._evict()
        return value

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()

    def info(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


_CACHE = _DeviceCache(max_bytes=512 * 2**20)


def cache_info() -> dict[str, int]:
    """Hits, misses, entries and bytes of the device-tensor cache (all devices together)."""
    return _CACHE.info()


def cache_clear() -> None:
    """Drop every cached device tensor."""
    _CACHE.clear()


def set_cache_limit(max_bytes: int) -> None:
    """Bound the device-tensor cache (default 512 MiB over all devices)."""
    with _CACHE._lock:
        _CACHE.max_bytes = int(max_bytes)
        _CACHE._evict()


def device_cached(key: Hashable, build: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``build()``'s tensor, cached under ``key`` (which must name device and dtype)."""
    return _CACHE.get(key, build)


def negative_slopes(heads: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``-m_h`` for ``heads`` heads (Press et al.'s slopes, from the core), shape ``(H,)``."""
    return _CACHE.get(
        ("slopes", heads, str(device), dtype),
        lambda: torch.from_numpy(-alibi_slopes(heads)).to(device=device, dtype=dtype),
    )


class TokenGeometry:
    """The patch grids of one forward call, and the attention biases between their tokens.

    ``grids`` maps modality -> :class:`PatchGrid` (placed by the variant: on the ground, or
    centred in patch units by :func:`patch_unit_grid`); ``ref_length`` is the one reference
    length ``L`` (metres) used for every bias of the call; ``dtype`` is the
    dtype of the attention queries (``sdpa`` biases are built in it); ``backend`` the attention
    backend the biases are for: ``sdpa`` (tensors) or ``flex`` (:class:`FlexBias`).
    """

    def __init__(
        self,
        grids: Mapping[str, PatchGrid],
        ref_length: float,
        device: torch.device,
        dtype: torch.dtype,
        backend: str = "sdpa",
    ) -> None:
        if backend not in ("sdpa", "flex"):
            raise ValueError(f"backend {backend!r}: expected 'sdpa' or 'flex' (resolve 'auto' first)")
        self.grids = dict(grids)
        self.ref_length = float(ref_length)
        self.device = torch.device(device)
        self.dtype = dtype
        self.backend = backend
        self.offsets: dict[str, int] = {}
        total = 0
        for modality, grid in self.grids.items():
            self.offsets[modality] = total
            total += grid.num_patches
        self.num_tokens = total
        self._key = (tuple(self.grids.items()), self.ref_length, str(self.device), dtype)
        #: per-sample geometries (see per_sample): (unit geometry, its samples) and each sample's scale
        self._groups: list[tuple[TokenGeometry, torch.Tensor]] = []
        self._scale: torch.Tensor | None = None

    @classmethod
    def per_sample(
        cls,
        shapes: Mapping[str, tuple[int, int]],
        patch_px: int,
        gsd: Mapping[str, np.ndarray],
        ref_length: float,
        device: torch.device,
        dtype: torch.dtype,
        backend: str = "sdpa",
    ) -> TokenGeometry:
        """The geometry of a batch whose chips have their own GSDs: ``shapes`` modality -> patch grid
        (rows, cols), ``gsd`` modality -> ``(B,)`` metres per pixel of each sample's chip. Each
        sample's biases equal those of a :class:`TokenGeometry` built for it alone."""
        names = list(shapes)
        values = {m: np.asarray(gsd[m], np.float64).reshape(-1) for m in names}
        batch = len(values[names[0]])
        reference = values[names[0]]
        # Round the ratios: a batch of one shape of geometry must not split into groups over 1e-16.
        ratios = np.stack([np.round(values[m] / reference, 12) for m in names], axis=1)  # (B, M)
        shapes_of, group_of = np.unique(ratios, axis=0, return_inverse=True)
        geometry = cls(
            {m: PatchGrid(r, c, patch_px, float(reference[0])) for m, (r, c) in shapes.items()},
            ref_length,
            device,
            dtype,
            backend,
        )
        for g, ratio in enumerate(shapes_of):
            unit = cls(  # float32: the scale is applied before the biases are rounded to ``dtype``
                {m: PatchGrid(r, c, patch_px, float(q)) for (m, (r, c)), q in zip(shapes.items(), ratio)},
                ref_length,
                device,
                torch.float32,
                backend,
            )
            rows = torch.from_numpy(np.flatnonzero(group_of.reshape(-1) == g)).to(geometry.device)
            geometry._groups.append((unit, rows))
        geometry._scale = torch.tensor(reference, device=geometry.device, dtype=torch.float32)
        assert geometry._scale.shape == (batch,)
        return geometry

    @property
    def batch_scaled(self) -> bool:
        """Whether the samples of the batch have their own GSDs (:meth:`per_sample`)."""
        return self._scale is not None

    def __repr__(self) -> str:
        grids = ", ".join(f"{m}={g.rows}x{g.cols}@{g.gsd:g}" for m, g in self.grids.items())
        per_sample = f", {len(self._groups)} group(s) of per-sample GSDs" if self._groups else ""
        return f"TokenGeometry({grids}, L={self.ref_length:g} m, {self.backend}{per_sample})"

    # -- tables -------------------------------------------------------------------------------

    def table(self) -> torch.Tensor:
        """``(N_total, N_total)`` distance / L between all tokens of the call, on the device.

        Assembled from the core's cached per-pair tables and uploaded once per geometry,
        device and dtype.
        """
        return _CACHE.get(("table", *self._key), self._build_table)

    def _build_table(self) -> torch.Tensor:
        grids = list(self.grids.values())
        blocks = [[ground_distance_table(q, k, self.ref_length) for k in grids] for q in grids]
        table = np.block(blocks) if len(grids) > 1 else np.array(blocks[0][0])  # a writable copy
        return torch.from_numpy(table).to(device=self.device, dtype=self.dtype)

    def positions(self) -> torch.Tensor:
        """``(2, N_total)`` float32 x and y of every token's centre divided by ``L``, on the
        device: the coordinates the flex kernel computes distances from. Cached."""
        return _CACHE.get(("positions", *self._key[:3]), self._build_positions)

    def _build_positions(self) -> torch.Tensor:
        centres = np.concatenate([grid.centres() for grid in self.grids.values()]) / self.ref_length  # (N_total, 2)
        return torch.from_numpy(np.ascontiguousarray(centres.T)).to(device=self.device, dtype=torch.float32)

    # -- token ids ----------------------------------------------------------------------------

    def ids(self, modality: str, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Global ids of ``modality``'s tokens: all of them ``(1, N)``, or the kept ``(B, k)``.

        ``keep`` holds per-sample patch indices into the modality's own row-major grid.
        """
        offset = self.offsets[modality]
        if keep is None:
            n = self.grids[modality].num_patches
            return torch.arange(offset, offset + n, device=self.device).unsqueeze(0)
        return keep + offset

    # -- biases -------------------------------------------------------------------------------

    def bias(self, query_ids: torch.Tensor, key_ids: torch.Tensor, heads: int) -> torch.Tensor | FlexBias:
        """``(B, H, nq, nk)`` bias between token sets given by global ids ``(B|1, nq)``, ``(B|1, nk)``
        (``sdpa``), or the tokens' coordinates for the kernel (``flex``).

        Batch dimensions of 1 broadcast; the result has batch 1 when both are 1 (batch B with
        per-sample GSDs).
        """
        if self._scale is not None:
            return self._scaled(lambda unit, q, k: unit.bias(q, k, heads), query_ids, key_ids)
        if self.backend == "flex":
            return self._flex_bias(query_ids, key_ids, heads)
        if self.device.type == "cpu" and self.dtype == torch.float32 and query_ids.shape[0] == key_ids.shape[0]:
            query, key = self._in_one_grid(query_ids), self._in_one_grid(key_ids)
            if query is not None and key is not None:  # the core builds it from the kept tokens
                return torch.from_numpy(
                    masked_scale_alibi_bias(query[0], key[0], heads, query[1], key[1], self.ref_length)
                )
        distance = self.table()[query_ids.unsqueeze(-1), key_ids.unsqueeze(-2)]  # (B, nq, nk)
        slopes = negative_slopes(heads, self.device, self.dtype).view(1, heads, 1, 1)
        out = _aligned((distance.shape[0], heads, *distance.shape[1:]), self.device, self.dtype)
        return torch.mul(distance.unsqueeze(1), slopes, out=out)

    def _in_one_grid(self, ids: torch.Tensor) -> tuple[PatchGrid, np.ndarray] | None:
        """The grid holding every token of ``ids`` (CPU), and the ids as its patch indices; or None."""
        if ids.numel() == 0:
            return None
        first, last = int(ids.min()), int(ids.max())
        for modality, grid in self.grids.items():
            offset = self.offsets[modality]
            if offset <= first and last < offset + grid.num_patches:
                return grid, (ids - offset).numpy()
        return None

    def full_bias(self, query: str | Sequence[str], key: str | Sequence[str], heads: int) -> torch.Tensor | FlexBias:
        """``(1, H, Nq, Nk)`` bias between all tokens of one modality, or of consecutive ones (in
        the geometry's order), and another: unmasked inference and the decoder. Cached (``sdpa``;
        ``flex`` needs only the coordinates)."""
        query, key = _names(query), _names(key)
        if self._scale is not None:
            ids = torch.arange(self.num_tokens, device=self.device).unsqueeze(0)  # (1, N_total)
            return self._scaled(
                lambda unit, q, k: unit.full_bias(query, key, heads), ids[:, self._span(query)], ids[:, self._span(key)]
            )
        if self.backend == "flex":
            ids = torch.arange(self.num_tokens, device=self.device).unsqueeze(0)  # (1, N_total)
            return self._flex_bias(ids[:, self._span(query)], ids[:, self._span(key)], heads)
        return _CACHE.get(("bias", *self._key, query, key, heads), lambda: self._full_bias(query, key, heads))

    def _span(self, modalities: tuple[str, ...]) -> slice:
        names = list(self.grids)
        first = names.index(modalities[0])
        if tuple(names[first : first + len(modalities)]) != modalities:
            raise ValueError(f"modalities {modalities} are not consecutive in this geometry ({names})")
        last = modalities[-1]
        return slice(self.offsets[modalities[0]], self.offsets[last] + self.grids[last].num_patches)

    def _full_bias(self, query: tuple[str, ...], key: tuple[str, ...], heads: int) -> torch.Tensor:
        block = self.table()[self._span(query), self._span(key)]
        slopes = negative_slopes(heads, self.device, self.dtype).view(1, heads, 1, 1)
        return torch.mul(block, slopes, out=_aligned((1, heads, *block.shape), self.device, self.dtype))

    def _scaled(
        self,
        unit_bias: Callable[[TokenGeometry, torch.Tensor, torch.Tensor], torch.Tensor | FlexBias],
        query_ids: torch.Tensor,
        key_ids: torch.Tensor,
    ) -> torch.Tensor | FlexBias:
        """The per-sample bias: each group's unit bias (``unit_bias(unit, query_ids, key_ids)``) for
        its samples, times each sample's scale; batch B."""
        assert self._scale is not None
        scale = self._scale
        batch = scale.shape[0]

        def rows_of(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return ids if ids.shape[0] == 1 else ids[rows]

        parts = [
            (unit_bias(unit, rows_of(query_ids, rows), rows_of(key_ids, rows)), rows) for unit, rows in self._groups
        ]
        if self.backend == "flex":
            coordinates = []
            for axis in ("query_x", "query_y", "key_x", "key_y"):
                first = getattr(parts[0][0], axis)
                out = first.new_empty((batch, first.shape[-1]))
                for bias, rows in parts:
                    out[rows] = getattr(bias, axis)
                coordinates.append(out * scale.view(batch, 1))
            slopes = parts[0][0].slopes  # type: ignore[union-attr]
            return FlexBias(coordinates[0], coordinates[1], coordinates[2], coordinates[3], slopes)
        unit = parts[0][0]
        assert isinstance(unit, torch.Tensor)
        out = _aligned((batch, *unit.shape[1:]), self.device, self.dtype)
        if len(parts) > 1:
            unit = unit.new_empty((batch, *unit.shape[1:]))
            for bias, rows in parts:
                unit[rows] = bias  # type: ignore[assignment]
        return torch.mul(unit, scale.view(batch, 1, 1, 1), out=out)

    def _flex_bias(self, query_ids: torch.Tensor, key_ids: torch.Tensor, heads: int) -> FlexBias:
        positions = self.positions()
        query, key = positions[:, query_ids], positions[:, key_ids]  # (2, B|1, nq), (2, B|1, nk)
        slopes = negative_slopes(heads, self.device, torch.float32)  # (H,)
        return FlexBias(query[0], query[1], key[0], key[1], slopes)


def _aligned(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An empty tensor whose rows start every 16 elements: CUDA's memory-efficient attention
    wants the mask's last dimension aligned, and would otherwise pad a copy in every layer."""
    *lead, n = shape
    return torch.empty(*lead, -(-n // 16) * 16, device=device, dtype=dtype)[..., :n]


def _names(modalities: str | Sequence[str]) -> tuple[str, ...]:
    return (modalities,) if isinstance(modalities, str) else tuple(modalities)
