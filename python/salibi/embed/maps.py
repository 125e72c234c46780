"""Pictures of an embeddings output (``salibi map``).

- :func:`projection_map`: every row (or one ``modality``) projected to 2-D and drawn as a
  scatter plot PNG, coloured by k-means cluster or by a column (``modality``, ``source``,
  ``bands``, ``gsd``). UMAP (``umap-learn``, the optional extra ``salibi[umap]``) when installed,
  else PCA -- ``method="auto"`` says which it used.
- :func:`scene_map`: the rows of one scene (``source``) laid on their chip grid: three principal
  components of their embeddings as red, green and blue (each stretched between its 2nd and 98th
  percentile), one pixel per stride, centred on its chip; chips without a row are transparent.
  A GeoTIFF (``.tif``) with the chips' CRS and geotransform, or a PNG with a world file
  (``.pgw``) and the CRS in ``.png.aux.xml``, which GDAL reads back.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salibi.embed.output.embeddings import Embeddings, read_embeddings
from salibi.errors import InputError
from salibi.fileio import staging_file, write_atomic
from salibi.vocabulary import MAP_COLOUR_COLUMNS, MAP_METHODS

__all__ = ["COLOUR_COLUMNS", "METHODS", "MapSummary", "principal_colours", "project", "projection_map", "scene_map"]

METHODS = MAP_METHODS
COLOUR_COLUMNS = MAP_COLOUR_COLUMNS
SCENE_SUFFIXES = (".tif", ".tiff", ".png")


@dataclass
class MapSummary:
    output: Path
    rows: int
    method: str  # umap, pca, or "pca (3 components)" for a scene map
    notes: list[str] = field(default_factory=list)
    side_files: list[Path] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"wrote {self.output}: {self.rows} rows, {self.method}"]
        lines += [f"  also {p}" for p in self.side_files]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _rows(table: Embeddings, modality: str | None, source: str | None = None) -> np.ndarray:
    keep = np.ones(len(table), bool)
    if modality is not None:
        keep &= np.asarray(table.modality, dtype=object) == modality
    if source is not None:
        keep &= np.asarray(table.source, dtype=object) == source
    return np.flatnonzero(keep)


def project(vectors: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str, list[str]]:
    """``(N, 2)`` coordinates of ``vectors``, the method used and notes (the fallback, say)."""
    if method not in METHODS:
        raise InputError(f"--method {method}: expected {', '.join(METHODS)}")
    notes = []
    if method in ("auto", "umap"):
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise InputError(
                    "--method umap: umap-learn is not installed; pip install 'salibi[umap]', or use --method pca"
                ) from None
            notes.append("umap-learn is not installed (pip install 'salibi[umap]'): projected with PCA instead")
        else:
            # Seeded for a reproducible map, which UMAP runs on one thread: said here, not warned about.
            neighbours = min(15, max(2, len(vectors) - 1))
            reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=neighbours, n_jobs=1)
            return np.asarray(reducer.fit_transform(vectors)), "umap", notes
    return _pca(vectors, 2), "pca", notes


def _pca(vectors: np.ndarray, components: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    vectors = np.asarray(vectors, np.float64)
    n = min(components, vectors.shape[0], vectors.shape[1])
    out = np.zeros((vectors.shape[0], components))
    if n > 0 and vectors.shape[0] > 1:
        out[:, :n] = PCA(n_components=n, random_state=0).fit_transform(vectors)
    return out


def principal_colours(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3)`` uint8 red, green, blue: the first three principal components of ``vectors``, each
    stretched between its 2nd and 98th percentile; and the share of the variance each explains."""
    from sklearn.decomposition import PCA

    vectors = np.asarray(vectors, np.float64)
    n = min(3, vectors.shape[0], vectors.shape[1])
    components, explained = np.zeros((vectors.shape[0], 3)), np.zeros(3)
    if n > 0 and vectors.shape[0] > 1:
        pca = PCA(n_components=n, random_state=0)
        components[:, :n] = pca.fit_transform(vectors)
        explained[:n] = np.nan_to_num(pca.explained_variance_ratio_)
    low, high = np.percentile(components, 2, axis=0), np.percentile(components, 98, axis=0)
    scaled = np.clip((components - low) / np.where(high > low, high - low, 1.0), 0, 1) * 255
    return np.rint(scaled).astype(np.uint8), explained


def projection_map(
    output: str | os.PathLike[str],
    image: str | os.PathLike[str],
    method: str = "auto",
    colour_by: str = "cluster",
    clusters: int = 8,
    modality: str | None = None,
) -> MapSummary:
    """A 2-D projection of the rows of ``output`` as a scatter plot PNG at ``image``."""
    if colour_by not in COLOUR_COLUMNS:
        raise InputError(f"--color-by {colour_by}: expected {', '.join(COLOUR_COLUMNS)}")
    table = read_embeddings(output)
    rows = _rows(table, modality)
    if len(rows) < 2:
        raise InputError(
            f"{output}: {len(rows)} row(s){f' of modality {modality}' if modality else ''}; a map needs two or more"
        )
    coords, used, notes = project(table.embedding[rows], method)
    values, title = _colours(table, rows, colour_by, clusters)
    image = Path(image)
    _draw_scatter(image, coords, values, title, f"{len(rows)} rows of {Path(output).name}, {used.upper()}")
    return MapSummary(image, len(rows), used, notes)


def _colours(table: Embeddings, rows: np.ndarray, colour_by: str, clusters: int) -> tuple[np.ndarray, str]:
    if colour_by == "cluster":
        from sklearn.cluster import KMeans

        k = max(1, min(clusters, len(rows)))
        labels = KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(table.embedding[rows].astype(np.float64))
        return np.array([f"cluster {label}" for label in labels], dtype=object), f"k-means, {k} clusters"
    if colour_by == "gsd":
        return table.gsd[rows].astype(np.float64), "GSD (m/px)"
    return np.asarray([getattr(table, colour_by)[i] for i in rows], dtype=object), colour_by


def _draw_scatter(image: Path, coords: np.ndarray, values: np.ndarray, legend: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 7), dpi=120)
    try:
        if values.dtype.kind == "f":
            points = axes.scatter(coords[:, 0], coords[:, 1], c=values, s=8, cmap="viridis")
            figure.colorbar(points, ax=axes, label=legend)
        else:
            names = sorted(set(values.tolist()))
            palette = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
            for k, name in enumerate(names):
                at = values == name
                axes.scatter(coords[at, 0], coords[at, 1], s=8, color=palette(k % palette.N), label=str(name)[:40])
            if len(names) <= 20:
                axes.legend(title=legend, fontsize="small", markerscale=2, loc="best")
        axes.set_title(title)
        axes.set_xticks([])
        axes.set_yticks([])
        with staging_file(image) as temporary:
            figure.savefig(temporary, format="png", bbox_inches="tight")
    finally:
        plt.close(figure)


# -- a scene's chips on their grid ---------------------------------------------------------------


def scene_map(
    output: str | os.PathLike[str],
    image: str | os.PathLike[str],
    source: str | None = None,
    modality: str | None = None,
) -> MapSummary:
    """Three principal components of one scene's chip embeddings on its chip grid (module docstring)."""
    image = Path(image)
    if image.suffix.lower() not in SCENE_SUFFIXES:
        raise InputError(f"-o {image}: a scene map is a GeoTIFF (.tif) or a PNG (.png)")
    table = read_embeddings(output)
    sources = sorted(set(table.source))
    if source is None:
        if len(sources) != 1:
            raise InputError(f"{output} holds {len(sources)} sources; name one with --scene ({', '.join(sources[:5])})")
        source = sources[0]
    elif source not in sources:
        raise InputError(f"--scene {source}: no rows of it in {output} (sources: {', '.join(sources[:5])})")
    modalities = sorted({table.modality[i] for i in _rows(table, None, source)})
    if modality is None and len(modalities) > 1:  # an aligned set with --per-modality rows: the fused ones
        if "joint" not in modalities:
            raise InputError(
                f"--scene {source}: rows of several modalities ({', '.join(modalities)}); choose one with --modality"
            )
        modality = "joint"
    rows = _rows(table, modality, source)
    bounds = table.bounds[rows]
    if not len(rows) or not np.isfinite(bounds).all():
        raise InputError(f"--scene {source}: its rows have no georeference to lay them on a grid")
    if len(set(table.crs[i] for i in rows)) > 1:
        raise InputError(f"--scene {source}: its rows lie on several CRSs")
    pixels, transform = _on_grid(table, rows, bounds)
    side_files = _write_scene(image, pixels, transform, table.crs[rows[0]])
    return MapSummary(image, len(rows), "pca (3 components as red, green, blue)", side_files=side_files)


def _on_grid(table: Embeddings, rows: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, tuple[float, ...]]:
    """(4, H, W) uint8 RGBA of three principal components, and the geotransform (a, b, c, d, e, f)."""
    chip = float(np.median(bounds[:, 2] - bounds[:, 0]))
    stride = float(table.attrs.get("stride_m") or math.nan)  # no chip grid (tiles, aligned sets): from the bounds
    if not (math.isfinite(stride) and stride > 0):
        steps = np.diff(np.unique(np.round(bounds[:, 0], 6)))
        stride = float(steps.min()) if len(steps) else chip
    left, top = float(bounds[:, 0].min()), float(bounds[:, 3].max())
    cols = np.rint((bounds[:, 0] - left) / stride).astype(int)
    lines = np.rint((top - bounds[:, 3]) / stride).astype(int)
    pixels = np.zeros((4, lines.max() + 1, cols.max() + 1), np.uint8)
    pixels[:3, lines, cols] = principal_colours(table.embedding[rows])[0].T
    pixels[3, lines, cols] = 255
    offset = (chip - stride) / 2  # a pixel per stride, centred on its chip
    return pixels, (stride, 0.0, left + offset, 0.0, -stride, top - offset)


def _write_scene(image: Path, pixels: np.ndarray, transform: tuple[float, ...], crs: str) -> list[Path]:
    if image.suffix.lower() in (".tif", ".tiff"):
        import rasterio
        from affine import Affine

        with staging_file(image) as temporary:
            profile = dict(
                driver="GTiff",
                width=pixels.shape[2],
                height=pixels.shape[1],
                count=4,
                dtype="uint8",
                crs=crs or None,
                transform=Affine(*transform),
                photometric="RGB",
                compress="deflate",
            )
            with rasterio.open(temporary, "w", **profile) as out:
                out.write(pixels)
                from rasterio.enums import ColorInterp

                out.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
        return []
    from PIL import Image

    with staging_file(image) as temporary:
        Image.fromarray(np.moveaxis(pixels, 0, -1), mode="RGBA").save(temporary, format="PNG")
    a, b, c, d, e, f = transform
    # A world file gives the centre of the top-left pixel.
    world = image.with_suffix(".pgw")
    write_atomic(world, "\n".join(f"{v:.10f}" for v in (a, d, b, e, c + a / 2, f + e / 2)) + "\n")
    side = [world]
    if crs:
        aux = image.with_name(image.name + ".aux.xml")
        write_atomic(aux, f"<PAMDataset>\n  <SRS>{_xml_escape(crs)}</SRS>\n</PAMDataset>\n")
        side.append(aux)
    return side


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
