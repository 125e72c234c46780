"""The GEO-Bench-2 datasets salibi evaluates, each as the official reader (``geobenchv2`` 0.9) loads
it, and those it skips with the reason.

Every fact here comes from ``geobench_v2/datasets/<name>.py`` (item positions, band orders,
label columns and remaps, time steps), ``geobench_v2/datasets/sensor_util.py`` (band registries)
or ``geobench_v2/generate_benchmark/<name>.py`` (what the files hold); the vocabulary is in
:mod:`salibi.eval.geobench2_conventions`. Nominal GSDs are the datasets' published ones and are
used where a payload has no trustworthy georeference.
"""

from __future__ import annotations

from salibi.eval.geobench2_conventions import (
    Band,
    Convention,
    Label,
    Source,
    as_classes,
    burn_scars_mask,
    colour_bands,
    flair2_mask,
    kuro_siwo_mask,
    landsat8_bands,
    plus_one,
    sentinel1_bands,
    sentinel2_bands,
)

__all__ = ["CONVENTIONS", "SKIPPED"]

_S2_12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
_S2_10 = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
_HLS = ("B02", "B03", "B04", "B8A", "B11", "B12")
_BUILDINGS = ("background", "no-building", "building")
_WORLDVIEW = (
    Band("coastal", "SpectralBand", 0.44),
    Band("blue", "SpectralBand", 0.48),
    Band("green", "SpectralBand", 0.56),
    Band("yellow", "SpectralBand", 0.59),
    Band("red", "SpectralBand", 0.66),
    Band("red_edge", "SpectralBand", 0.73),
    Band("nir1", "SpectralBand", 0.84, ("nir",)),
    Band("nir2", "SpectralBand", 0.91),
)


def _files(name: str, parts: int = 0) -> tuple[str, ...]:
    if not parts:
        return (f"geobench_{name}.tortilla",)
    return tuple(f"geobench_{name}.{i:04d}.part.tortilla" for i in range(parts))


_TABLE = (
    Convention(
        "benv2",
        "GeoBenchBENV2",
        _files("benv2"),
        Label(
            "multilabel",
            (
                "Urban fabric",
                "Industrial or commercial units",
                "Arable land",
                "Permanent crops",
                "Pastures",
                "Complex cultivation patterns",
                "Land principally occupied by agriculture, with significant areas of natural vegetation",
                "Agro-forestry areas",
                "Broad-leaved forest",
                "Coniferous forest",
                "Mixed forest",
                "Natural grassland and sparsely vegetated areas",
                "Moors, heathland and sclerophyllous vegetation",
                "Transitional woodland, shrub",
                "Beaches, dunes, sands",
                "Inland wetlands",
                "Coastal wetlands",
                "Inland waters",
                "Marine waters",
            ),  # fmt: skip
            column="labels",
            by_name=True,
        ),
        (
            # generate_benchmark/benv2.py stacks VH then VV; the reader calls them VV, VH.
            Source("s1", "sentinel1", 0, sentinel1_bands("VH", "VV", official=("VV", "VH")), 10.0),
            # The S2 GeoTIFF is 120 px at 10 m but carries B01's 60 m geotransform: nominal GSD.
            Source("s2", "sentinel2", 1, sentinel2_bands(*_S2_12), 10.0, gsd_from_georeference=False),
        ),
    ),
    Convention(
        "so2sat",
        "GeoBenchSo2Sat",
        _files("so2sat"),
        Label(
            "classification",
            (
                "Compact high-rise",
                "Compact middle-rise",
                "Compact low-rise",
                "Open high-rise",
                "Open middle-rise",
                "Open low-rise",
                "Lightweight low-rise",
                "Large low-rise",
                "Sparsely built",
                "Heavy industry",
                "Dense Trees",
                "Scattered trees",
                "Bush, scrub",
                "Low plants",
                "Bare rock or paved",
                "Bare soil or sand",
                "Water",
            ),  # fmt: skip
            column="labels",
        ),
        (
            # The generator keeps "01 - VH.Real" and "03 - VV.Real" in sorted key order: real parts, VH first.
            Source(
                "s1",
                "sentinel1",
                0,
                sentinel1_bands("VH.Real", "VV.Real", official=("VV", "VH")),
                10.0,
                gsd_from_georeference=False,
            ),
            Source("s2", "sentinel2", 1, sentinel2_bands(*_S2_10), 10.0, gsd_from_georeference=False),
        ),
        notes=("the payloads carry no georeference (nominal 10 m)", "S1 holds real parts of complex backscatter"),
    ),
    Convention(
        "treesatai",
        "GeoBenchTreeSatAI",
        _files("treesatai"),
        Label(
            "multilabel",
            (
                "Abies",
                "Acer",
                "Alnus",
                "Betula",
                "Cleared",
                "Fagus",
                "Fraxinus",
                "Larix",
                "Picea",
                "Pinus",
                "Populus",
                "Prunus",
                "Pseudotsuga",
                "Quercus",
                "Tilia",
            ),  # fmt: skip
            column="species_labels",
            by_name=True,
        ),
        (
            # The generator copies TreeSatAI's CIR files (NIR, G, B, R; sensor_util's TREESATAI order);
            # the reader's RGBN registry calls them red, green, blue, nir.
            Source(
                "aerial",
                "aerial",
                0,
                colour_bands("nir", "green", "blue", "red", official=("red", "green", "blue", "nir")),
                0.2,
            ),
            Source("s1", "sentinel1", 1, sentinel1_bands("VV", "VH", "VV/VH"), 10.0),
            Source(
                "s2",
                "sentinel2",
                2,
                sentinel2_bands("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09"),
                10.0,
            ),
        ),
        unused={"sentinel time series": "the reader's include_ts is off by default"},
    ),
    Convention(
        "forestnet",
        "GeoBenchForestnet",
        _files("forestnet"),
        Label(
            "classification",
            (
                "Oil palm plantation",
                "Timber plantation",
                "Other large-scale plantations",
                "Grassland/shrubland",
                "Small-scale agriculture",
                "Small-scale mixed plantation",
                "Small-scale oil palm plantation",
                "Mining",
                "Fish pond",
                "Logging road",
                "Secondary forest",
                "Other",
            ),  # fmt: skip
            column="labels",
        ),
        (
            Source(
                "landsat8",
                "landsat8",
                0,
                landsat8_bands(2, 3, 4, 5, 6, 7, official=_HLS),
                15.0,
                gsd_from_georeference=False,
            ),
        ),
        notes=(
            "Landsat-8 bands 2-7 under Sentinel-2 names in the reader; the generator writes each image "
            "transposed (C, W, H), read as stored as the official reader does",
        ),
    ),
    Convention(
        "burn_scars",
        "GeoBenchBurnScars",
        _files("burn_scars"),
        Label("segmentation", ("Background", "Burn Scar"), item=1, remap=burn_scars_mask),
        (Source("hls", "hls", 0, sentinel2_bands(*_HLS), 30.0),),
    ),
    Convention(
        "cloudsen12",
        "GeoBenchCloudSen12",
        _files("cloudsen12"),
        Label("segmentation", ("clear", "thick cloud", "thin cloud", "cloud shadow"), item=1, remap=as_classes),
        (Source("s2", "sentinel2", 0, sentinel2_bands(*_S2_12), 10.0),),
    ),
    Convention(
        "flair2",
        "GeoBenchFLAIR2",
        _files("flair2"),
        Label(
            "segmentation",
            (
                "building",
                "previous surface",
                "impervious surface",
                "bare soil",
                "water",
                "coniferous",
                "deciduous",
                "brushwood",
                "vineyard",
                "herbaceous vegetation",
                "agricultural land",
                "plowed land",
                "other",
            ),  # fmt: skip
            item=1,
            remap=flair2_mask,
        ),
        (
            Source(
                "aerial",
                "aerial",
                0,
                (*colour_bands("red", "green", "blue", "nir"), Band("elevation", "ElevationBand")),
                0.2,
            ),
        ),
        unused={"elevation": "the fifth band of the aerial item; no salibi encoder takes elevation"},
    ),
    Convention(
        "fotw",
        "GeoBenchFieldsOfTheWorld",
        _files("fotw"),
        Label("segmentation", ("background", "field", "field-boundary"), item=3, remap=as_classes),
        (
            Source(
                "win_a",
                "sentinel2",
                0,
                (
                    Band("B04", "Sentinel2", 0.665, ("red",), "red"),
                    Band("B03", "Sentinel2", 0.56, ("green",), "green"),
                    Band("B02", "Sentinel2", 0.49, ("blue",), "blue"),
                    Band("B08", "Sentinel2", 0.842, ("nir",), "nir"),
                ),
                10.0,
            ),
        ),
        unused={
            "win_b": "the second acquisition window; salibi encodes one image per modality (window A)",
            "instance_mask": "instance segmentation target",
        },
        notes=("band order red, green, blue, nir as geobenchv2's FOTW registry reads it",),
    ),
    Convention(
        "kuro_siwo",
        "GeoBenchKuroSiwo",
        _files("kuro_siwo"),
        Label("segmentation", ("No Data", "No Water", "Permanent Water", "Flood"), item=4, remap=kuro_siwo_mask),
        (
            Source(
                "post",
                "sentinel1",
                2,
                sentinel1_bands("VV", "VH"),
                10.0,
                gsd_from_georeference=False,
                valid_item=5,
            ),
        ),
        unused={
            "pre_1, pre_2": "the two pre-event images; salibi encodes one image per modality (the post-event one)",
            "dem": "no salibi encoder takes elevation",
        },
    ),
    Convention(
        "spacenet2",
        "GeoBenchSpaceNet2",
        _files("spacenet2"),
        Label("segmentation", _BUILDINGS, item=2, remap=plus_one),
        (
            Source("worldview", "worldview", 0, _WORLDVIEW, 0.3),
            Source("pan", "worldview", 1, (Band("pan", "SpectralBand", 0.54),), 0.3),
        ),
        unused={"instance_mask": "instance segmentation target"},
    ),
    Convention(
        "spacenet7",
        "GeoBenchSpaceNet7",
        _files("spacenet7"),
        Label("segmentation", _BUILDINGS, item=1, remap=plus_one),
        # The reader's default band order stops at blue: a fourth band, when present, is not read.
        (Source("planet", "planet", 0, colour_bands("red", "green", "blue"), 4.0, gsd_from_georeference=False),),
    ),
    Convention(
        "dynamic_earthnet",
        "GeoBenchDynamicEarthNet",
        _files("dynamic_earthnet", 3),
        Label(
            "segmentation",
            (
                "Impervious surfaces",
                "Agriculture",
                "Forest & other vegetation",
                "Wetlands",
                "Soil",
                "Water",
                "Snow & ice",
            ),
            item="label",
            remap=as_classes,
        ),
        (
            # temporal_setting "single": the first Planet image (position 0), stored B, G, R, NIR.
            Source("planet", "planet", "planet*", colour_bands("blue", "green", "red", "nir"), 3.0),
            Source(
                "s2",
                "sentinel2",
                "s2",
                sentinel2_bands("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B10", "B11", "B12"),
                10.0,
            ),
        ),
        unused={
            "s1": "the official reader does not read it (its band order is not stated)",
            "planet time series": "temporal_setting 'single' reads the first Planet image only",
        },
    ),
    Convention(
        "pastis",
        "GeoBenchPASTIS",
        _files("pastis", 3),
        Label(
            "segmentation",
            (
                "background",
                "meadow",
                "soft_winter_wheat",
                "corn",
                "winter_barley",
                "winter_rapeseed",
                "spring_barley",
                "sunflower",
                "grapevine",
                "beet",
                "winter_triticale",
                "winter_durum_wheat",
                "fruits_vegetables_flowers",
                "potatoes",
                "leguminous_fodder",
                "soybeans",
                "orchard",
                "mixed_cereal",
                "sorghum",
                "void_label",
            ),  # fmt: skip
            item=3,
            remap=as_classes,
            hdf5_index=0,
        ),
        (
            # num_time_steps=1: the first step of each (T, C, H, W) series.
            Source("s2", "sentinel2", 0, sentinel2_bands(*_S2_10), 10.0, gsd_from_georeference=False, step=0),
            Source("s1_asc", "sentinel1", 1, sentinel1_bands("VV", "VH", "VV/VH"), 10.0, False, step=0),
            Source("s1_desc", "sentinel1", 2, sentinel1_bands("VV", "VH", "VV/VH"), 10.0, False, step=0),
        ),
        unused={"instance": "instance segmentation target", "time series": "num_time_steps=1: the first step"},
    ),
)

#: Dataset name -> how it is read.
CONVENTIONS: dict[str, Convention] = {c.name: c for c in _TABLE}

#: GEO-Bench-2 datasets (geobenchv2 0.9 classes) salibi does not evaluate, with the reason.
SKIPPED: dict[str, str] = {
    "caffe": (
        "its one band is SAR amplitude from several missions (ERS, Envisat, RADARSAT-1, ALOS, TerraSAR-X, "
        "TanDEM-X, Sentinel-1) with HH or VV polarisation, which the files do not record; the sar encoder's "
        "VV/VH bands cannot be matched to it"
    ),
    "biomassters": "regression (above-ground biomass); salibi's protocols classify and segment",
    "everwatch": "object detection (bird bounding boxes); salibi's protocols classify and segment",
    "nzcattle": "object detection (cattle bounding boxes); salibi's protocols classify and segment",
    "substation": "instance segmentation and detection (boxes and masks); salibi's protocols classify and segment",
    "spacenet6": "not one of the GEO-Bench-2 tasks salibi implements (its conventions are not checked)",
    "spacenet8": "not one of the GEO-Bench-2 tasks salibi implements (its conventions are not checked)",
}
