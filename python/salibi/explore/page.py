"""The explorer page: one HTML file that opens from disk with no network.

Everything it needs is inside it: MapLibre GL JS and its styles, read at build time from the
pinned ``maplibre`` package on PyPI (py-maplibregl, which ships the library's bundle; MapLibre GL
JS is BSD-3-Clause, its licence header kept), the page's own scripts and styles
(``chips.js``: the WebGL layer of the chips, ``explore.js``: the page; ``explore.css``; beside
this module) and the rows as one JSON document whose
large columns are typed arrays in base64 (never one GeoJSON feature per chip): footprints as
float32 mercator offsets from a float64 origin, colours as uint8, modality and source as codes into
their name lists, neighbours as int32 rows and float32 similarities. A base map is a raster layer
of ``basemap`` tiles, shown only when they load (offline the chips are drawn on a plain
background, without an error).
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import InputError

__all__ = [
    "DEFAULT_BASEMAP",
    "MAPLIBRE_PACKAGE",
    "PAGE_FORMAT",
    "maplibre_assets",
    "packed",
    "render_page",
]

#: The PyPI package whose MapLibre GL JS bundle the page carries, and the version tested.
MAPLIBRE_PACKAGE, MAPLIBRE_PACKAGE_VERSION = "maplibre", "0.3.6"
_BUNDLE = ("srcjs/maplibre-gl.js", "srcjs/maplibre-gl.css")
#: Raster tiles under the chips when the page is online (``none``: no base map), and their credit.
DEFAULT_BASEMAP = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_ATTRIBUTION = "&copy; OpenStreetMap contributors"
#: A marker every page carries: an existing -o holding it may be replaced.
PAGE_FORMAT = "salibi-explore"
_HERE = Path(__file__).resolve().parent
#: The page's own scripts, beside this module, in the order they run.
_PAGE_SCRIPTS = ("chips.js", "explore.js")


def maplibre_assets() -> tuple[str, str, str]:
    """``(javascript, css, description)`` of MapLibre GL JS from the installed ``maplibre`` package
    (found without importing it)."""
    spec = importlib.util.find_spec(MAPLIBRE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"salibi explore needs the {MAPLIBRE_PACKAGE} package, which ships MapLibre GL JS: "
            f"pip install 'salibi[explore]' (or {MAPLIBRE_PACKAGE}=={MAPLIBRE_PACKAGE_VERSION})"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    try:
        script, style = ((root / name).read_text(encoding="utf-8") for name in _BUNDLE)
    except OSError as err:
        raise InputError(
            f"{root}: the {MAPLIBRE_PACKAGE} package has no MapLibre GL JS bundle ({err.strerror or err}); "
            f"pip install {MAPLIBRE_PACKAGE}=={MAPLIBRE_PACKAGE_VERSION}"
        ) from None
    found = re.search(r"maplibre-gl-js/blob/v([0-9.]+)/", script[:2000])
    version = importlib.metadata.version(MAPLIBRE_PACKAGE)
    what = f"MapLibre GL JS {found.group(1) if found else '(version unknown)'} from {MAPLIBRE_PACKAGE} {version}"
    return script, style, what


def packed(array: np.ndarray, dtype: str) -> str:
    """``array`` as little-endian ``dtype`` bytes in base64 (a typed array on the page)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def _json_for_script(document: Any) -> str:
    """JSON that cannot end its <script> element early (``<`` written as ``\\u003c``)."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _script_text(text: str) -> str:
    """Code inlined in a <script>: a ``</script`` inside it would end the element."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


def render_page(payload: dict[str, Any], title: str) -> str:
    """The whole page: MapLibre GL JS, the page's script and styles, and ``payload``."""
    library, library_style, _ = maplibre_assets()
    template = (_HERE / "explore.html").read_text(encoding="utf-8")
    parts = {
        "{{TITLE}}": html.escape(title),
        "{{FORMAT}}": PAGE_FORMAT,
        "/*{{MAPLIBRE_CSS}}*/": library_style.replace("</style", "<\\/style"),
        "/*{{EXPLORE_CSS}}*/": (_HERE / "explore.css").read_text(encoding="utf-8"),
        "/*{{MAPLIBRE_JS}}*/": _script_text(library),
        "/*{{DATA}}*/": _json_for_script(payload),
        "/*{{EXPLORE_JS}}*/": _script_text(
            "\n".join((_HERE / name).read_text(encoding="utf-8") for name in _PAGE_SCRIPTS)
        ),
    }
    pattern = re.compile("|".join(re.escape(key) for key in parts))
    return pattern.sub(lambda found: parts[found.group(0)], template)
