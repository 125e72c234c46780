// salibi explore: the chips of an embeddings file on a MapLibre map (the data: #salibi-data).
// Chips are drawn by one WebGL custom layer from typed arrays; only the selected chip and its
// neighbours become GeoJSON (k + 1 features). Once drawn, <body data-rows> holds the number of
// chips drawn and, after a click, <body data-selected> the selected row.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("salibi-data").textContent);
  const body = document.body;
  const $ = (id) => document.getElementById(id);

  function bytes(text) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
    const raw = atob(text);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function typed(text, Type) {
    const raw = bytes(text);
    return new Type(raw.buffer, raw.byteOffset, raw.byteLength / Type.BYTES_PER_ELEMENT);
  }

  const n = data.rows, k = data.k;
  const corners = typed(data.corners, Float32Array); // n * 4 corners * (x, y), offsets from data.origin
  const colour = typed(data.colour, Uint8Array); // n * (r, g, b)
  const modality = typed(data.modality.codes, Uint32Array);
  const source = typed(data.source.codes, Uint32Array);
  const nearest = typed(data.neighbours, Int32Array); // n * k rows, -1 past the end
  const similarity = typed(data.similarity, Float32Array);
  const [ox, oy] = data.origin;

  // Per chip: drawn (has a footprint), its box and centre (for clicks).
  const drawn = new Uint8Array(n);
  const box = new Float32Array(n * 4); // xmin, ymin, xmax, ymax
  const centre = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const c = corners.subarray(i * 8, i * 8 + 8);
    if (!(Number.isFinite(c[0]) && Number.isFinite(c[1]))) continue;
    drawn[i] = 1;
    box[i * 4] = Math.min(c[0], c[2], c[4], c[6]);
    box[i * 4 + 1] = Math.min(c[1], c[3], c[5], c[7]);
    box[i * 4 + 2] = Math.max(c[0], c[2], c[4], c[6]);
    box[i * 4 + 3] = Math.max(c[1], c[3], c[5], c[7]);
    centre[i * 2] = (c[0] + c[2] + c[4] + c[6]) / 4;
    centre[i * 2 + 1] = (c[1] + c[3] + c[5] + c[7]) / 4;
  }
  const visible = new Uint8Array(n);
  let visibleCount = 0;
  let selected = -1;

  // -- the panel ----------------------------------------------------------------------------------
  const fmt = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
  const pct = (x) => (100 * x).toFixed(1) + " %";
  $("title").textContent = data.name;
  $("counts").textContent =
    `${data.drawn.toLocaleString("en")} of ${n.toLocaleString("en")} rows drawn` +
    (data.drawn < n ? ` (${(n - data.drawn).toLocaleString("en")} have no georeference)` : "") +
    `; ${data.dims}-dimensional embeddings`;
  $("space").innerHTML =
    data.space === "shared"
      ? "<b>Shared space</b>: neighbours of any modality (cross-modal)."
      : "<b>Encoder space</b>" +
        (data.spaceStated ? "" : " <span class=\"warn\">(the file states none: taken as encoder space)</span>") +
        ": neighbours within each chip's modality; embeddings of different encoders are not compared " +
        "(<code>salibi embed --space shared</code> makes rows comparable across modalities).";
  const chance = 1 / data.dims;
  ["red", "green", "blue"].forEach((name, c) => {
    const row = document.createElement("div");
    row.className = "bar";
    const ramp = document.createElement("span");
    ramp.className = "ramp";
    const rgb = [0, 0, 0];
    rgb[c] = 255;
    ramp.style.background = `linear-gradient(to right, rgb(0,0,0), rgb(${rgb.join(",")}))`;
    const text = document.createElement("span");
    text.textContent = `${name}: PC${c + 1}, ${pct(data.explained[c])} of the variance`;
    row.append(ramp, text);
    $("legend-bars").append(row);
  });
  $("legend-note").textContent =
    `Each channel stretched between its 2nd and 98th percentile. Reference: one of the ${data.dims} ` +
    `dimensions holds ${pct(chance)} of the variance when all are alike.`;
  const ref = data.reference;
  $("reference").textContent = Number.isFinite(ref.median)
    ? `Reference: two random rows (${ref.pairs.toLocaleString("en")} pairs, same pools) have similarity ` +
      `${fmt(ref.median, 4)} (median; 5-95 %: ${fmt(ref.low, 4)} to ${fmt(ref.high, 4)}).`
    : "";
  $("credits").textContent = "Drawn with MapLibre GL JS (BSD-3-Clause), carried inside this page.";

  // Filters: one box per modality, one source (or all).
  const modalityOn = data.modality.names.map(() => true);
  const modalityCount = new Uint32Array(data.modality.names.length);
  const sourceCount = new Uint32Array(data.source.names.length);
  for (let i = 0; i < n; i++) {
    if (!drawn[i]) continue;
    modalityCount[modality[i]]++;
    sourceCount[source[i]]++;
  }
  data.modality.names.forEach((name, m) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.value = name;
    box.dataset.modality = name;
    box.addEventListener("change", () => {
      modalityOn[m] = box.checked;
      applyFilters();
    });
    label.append(box, ` ${name} (${modalityCount[m].toLocaleString("en")})`);
    $("modalities").append(label);
  });
  const sourceSelect = $("source");
  sourceSelect.append(new Option(`all ${data.source.names.length.toLocaleString("en")} sources`, "-1"));
  data.source.names.forEach((name, s) =>
    sourceSelect.append(new Option(`${name} (${sourceCount[s].toLocaleString("en")})`, String(s)))
  );
  sourceSelect.addEventListener("change", applyFilters);

  function computeVisible() {
    const only = Number(sourceSelect.value);
    visibleCount = 0;
    for (let i = 0; i < n; i++) {
      const on = drawn[i] && modalityOn[modality[i]] && (only < 0 || source[i] === only);
      visible[i] = on ? 1 : 0;
      visibleCount += visible[i];
    }
  }

  // -- the map ------------------------------------------------------------------------------------
  const style = {
    version: 8,
    sources: {},
    layers: [{ id: "background", type: "background", paint: { "background-color": "#dde3e8" } }],
  };
  let basemapFailed = false;
  if (data.basemap) {
    style.sources.basemap = {
      type: "raster",
      tiles: [data.basemap.tiles],
      tileSize: 256,
      maxzoom: 19,
      attribution: data.basemap.attribution,
    };
    style.layers.push({ id: "basemap", type: "raster", source: "basemap", paint: { "raster-opacity": 0.85 } });
  }
  // A graticule every 10 degrees: where on Earth, with no base map.
  const graticule = [];
  for (let lon = -180; lon <= 180; lon += 10)
    graticule.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: [[lon, -85], [lon, 0], [lon, 85]] } });
  for (let lat = -80; lat <= 80; lat += 10)
    graticule.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: [[-180, lat], [0, lat], [180, lat]] } });
  style.sources.graticule = { type: "geojson", data: { type: "FeatureCollection", features: graticule } };
  style.layers.push({ id: "graticule", type: "line", source: "graticule", paint: { "line-color": "#b4bec6", "line-width": 1 } });
  const [west, south, east, north] = data.bounds;
  const map = new maplibregl.Map({
    container: "map",
    style: style,
    bounds: [[west, south], [east, north]],
    fitBoundsOptions: { padding: 40, maxZoom: 17 },
    attributionControl: data.basemap ? { compact: true } : false,
    preserveDrawingBuffer: true,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl(), "bottom-left");
  // A base map that cannot load (offline) is left out without a word; any other error is said.
  map.on("error", (event) => {
    const from = event.sourceId || (event.source && event.source.id);
    if (from === "basemap" || (event.error && String(event.error.url || "").startsWith(data.basemap && data.basemap.tiles.split("{")[0]))) {
      if (!basemapFailed && map.getLayer("basemap")) map.setLayoutProperty("basemap", "visibility", "none");
      basemapFailed = true;
      return;
    }
    console.error(event.error || event);
  });

  const chips = salibiChipsLayer(map, {
    n, corners, colour, centre, box, visible, origin: data.origin, dimmed: () => selected >= 0,
  });
  const MIN_PX = chips.minPx;
  // CSS pixels across the whole mercator world at the map's zoom.
  function worldPixels() {
    return 512 * Math.pow(2, map.getZoom());
  }

  function lngLat(x, y) {
    return new maplibregl.MercatorCoordinate(x + ox, y + oy).toLngLat();
  }
  function ring(i) {
    const c = corners.subarray(i * 8, i * 8 + 8);
    const points = [0, 1, 2, 3, 0].map((v) => {
      const p = lngLat(c[v * 2], c[v * 2 + 1]);
      return [p.lng, p.lat];
    });
    return [points];
  }
  function features(rows) {
    return {
      type: "FeatureCollection",
      features: rows.flatMap(([row, role, rank]) => {
        if (!drawn[row]) return [];
        const middle = lngLat(centre[row * 2], centre[row * 2 + 1]);
        const properties = { row: row, role: role, rank: rank };
        return [
          { type: "Feature", properties, geometry: { type: "Polygon", coordinates: ring(row) } },
          { type: "Feature", properties, geometry: { type: "Point", coordinates: [middle.lng, middle.lat] } },
        ];
      }),
    };
  }

  function applyFilters() {
    computeVisible();
    if (chips.gl) {
      chips.upload();
      map.triggerRepaint();
    }
    map.once("idle", () => {
      body.dataset.rows = String(visibleCount);
    });
    if (selected >= 0) select(selected);
  }

  // -- selection ----------------------------------------------------------------------------------
  function neighboursOf(row) {
    const out = [];
    for (let r = 0; r < k; r++) {
      const other = nearest[row * k + r];
      if (other >= 0) out.push([other, similarity[row * k + r]]);
    }
    return out;
  }

  function hitAt(point) {
    const m = maplibregl.MercatorCoordinate.fromLngLat(map.unproject(point));
    const x = m.x - ox, y = m.y - oy;
    const hits = [];
    for (let i = 0; i < n; i++) {
      if (!visible[i]) continue;
      if (x < box[i * 4] || x > box[i * 4 + 2] || y < box[i * 4 + 1] || y > box[i * 4 + 3]) continue;
      if (insideQuad(corners.subarray(i * 8, i * 8 + 8), x, y)) hits.push(i);
    }
    if (hits.length) return hits;
    // Chips drawn as MIN_PX squares: those whose square holds the point.
    const reach = MIN_PX / 2 / worldPixels();
    for (let i = 0; i < n; i++) {
      if (!visible[i]) continue;
      if (Math.abs(centre[i * 2] - x) <= reach && Math.abs(centre[i * 2 + 1] - y) <= reach) hits.push(i);
    }
    return hits;
  }

  function insideQuad(c, x, y) {
    let sign = 0;
    for (let v = 0; v < 4; v++) {
      const ax = c[v * 2], ay = c[v * 2 + 1], bx = c[((v + 1) % 4) * 2], by = c[((v + 1) % 4) * 2 + 1];
      const cross = (bx - ax) * (y - ay) - (by - ay) * (x - ax);
      if (cross !== 0) {
        if (sign === 0) sign = Math.sign(cross);
        else if (Math.sign(cross) !== sign) return false;
      }
    }
    return true;
  }

  function rowText(row) {
    return `${data.path[row]} (${data.modality.names[modality[row]]})`;
  }

  function select(row, here) {
    selected = row;
    body.dataset.selected = String(row);
    const found = neighboursOf(row);
    const marked = [[row, "selected", 0]].concat(found.map(([other], r) => [other, "neighbour", r + 1]));
    map.getSource("highlight").setData(features(marked));
    $("selection-hint").hidden = true;
    const selectedBox = $("selected");
    selectedBox.textContent = "";
    const head = document.createElement("p");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colour[row * 3]},${colour[row * 3 + 1]},${colour[row * 3 + 2]})`;
    head.append(swatch, `row ${row}: ${rowText(row)}`);
    head.title = `source: ${data.source.names[source[row]]}`;
    selectedBox.append(head);
    const others = (here || []).filter((other) => other !== row);
    if (others.length) {
      const also = document.createElement("p");
      also.className = "also hint";
      also.append("Also here: ");
      others.forEach((other) => {
        const link = document.createElement("a");
        link.href = "#";
        link.textContent = `row ${other} (${data.modality.names[modality[other]]})`;
        link.addEventListener("click", (event) => {
          event.preventDefault();
          select(other, here);
        });
        also.append(link);
      });
      selectedBox.append(also);
    }
    const table = $("neighbours");
    const rows = table.tBodies[0];
    rows.textContent = "";
    found.forEach(([other, score], r) => {
      const tr = document.createElement("tr");
      tr.dataset.row = String(other);
      tr.dataset.similarity = String(score);
      if (!visible[other]) {
        tr.className = "hidden";
        tr.title = drawn[other] ? "hidden by the filters" : "no georeference: not on the map";
      }
      const cells = [String(r + 1), fmt(score, 4), fmt(1 - score, 4), data.modality.names[modality[other]], data.path[other]];
      cells.forEach((value, c) => {
        const td = document.createElement("td");
        td.textContent = value;
        if (c === 4) td.className = "path";
        tr.append(td);
      });
      tr.addEventListener("click", () => {
        if (drawn[other]) map.easeTo({ center: lngLat(centre[other * 2], centre[other * 2 + 1]) });
        select(other);
      });
      rows.append(tr);
    });
    table.hidden = found.length === 0;
    $("command").textContent = data.command
      .replace("{row}", String(row))
      .replace("{modality}", data.modality.names[modality[row]]);
    map.triggerRepaint();
  }

  function clear() {
    selected = -1;
    delete body.dataset.selected;
    map.getSource("highlight").setData(features([]));
    $("neighbours").hidden = true;
    $("selected").textContent = "";
    $("command").textContent = "";
    $("selection-hint").hidden = false;
    map.triggerRepaint();
  }

  map.on("load", () => {
    computeVisible();
    map.addLayer(chips);
    map.addSource("highlight", { type: "geojson", data: features([]) });
    map.addLayer({
      id: "highlight-casing",
      type: "line",
      source: "highlight",
      filter: ["==", ["geometry-type"], "Polygon"],
      paint: { "line-color": "#000000", "line-width": 4 },
    });
    map.addLayer({
      id: "highlight-line",
      type: "line",
      source: "highlight",
      filter: ["==", ["geometry-type"], "Polygon"],
      paint: { "line-color": ["match", ["get", "role"], "selected", "#ffffff", "#ffd400"], "line-width": 2 },
    });
    map.addLayer({
      id: "highlight-point",
      type: "circle",
      source: "highlight",
      filter: ["==", ["geometry-type"], "Point"],
      paint: {
        "circle-radius": ["match", ["get", "role"], "selected", 6, 4],
        "circle-color": ["match", ["get", "role"], "selected", "#ffffff", "#ffd400"],
        "circle-stroke-color": "#000000",
        "circle-stroke-width": 1.5,
      },
    });
    map.on("click", (event) => {
      const hits = hitAt(event.point);
      if (hits.length) select(hits[hits.length - 1], hits);
      else clear();
    });
    map.once("idle", () => {
      body.dataset.rows = String(visibleCount);
    });
  });

  // For tests and scripts: where a chip is on screen, and selecting one as a click does.
  window.salibiExplore = {
    map: map,
    chipPoint(row) {
      const p = map.project(lngLat(centre[row * 2], centre[row * 2 + 1]));
      const rect = map.getCanvas().getBoundingClientRect();
      return [rect.left + p.x, rect.top + p.y];
    },
    neighbours: (row) => neighboursOf(row).map(([other]) => other),
    // Centre the map on a chip at a zoom; resolves once drawn.
    show(row, zoom) {
      return new Promise((resolve) => {
        map.once("idle", () => resolve(true));
        map.jumpTo({ center: lngLat(centre[row * 2], centre[row * 2 + 1]), zoom: zoom });
      });
    },
    select: (row) => select(row),
  };
})();
