/* Candela review page: Leaflet map (imagery before/after + change layer with opacity), legend,
 * histogram of change probability, sortable zone table (click a row: zoom to the zone).
 * Everything is served by the platform itself (no CDN). */
"use strict";

(function () {
  const fmt = (v, d = 2) =>
    v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toLocaleString("en", { maximumFractionDigits: d, minimumFractionDigits: d });

  /** titiler-core tile URL of a layer (``mask`` at threshold ``t``: the probability through the
   * registered ``candela_threshold`` algorithm). */
  function tileUrl(result, layer, t) {
    if (layer === "mask" && t !== undefined && t !== null) {
      return `${result.tiles.mask_at}&algorithm_params=${encodeURIComponent(JSON.stringify({ threshold: t }))}`;
    }
    return result.tiles[layer];
  }

  function boundsOf(bbox) {
    return L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]]);
  }

  /** A map with before/after imagery and the change layers; returns the handles. */
  function makeMap(el, result, opts = {}) {
    const map = L.map(el, { zoomSnap: 0.25, attributionControl: true });
    const common = { maxZoom: 19, minZoom: 3, tileSize: 256, crossOrigin: false, keepBuffer: 1 };
    // titiler answers 404 outside the raster: ask only for tiles over the result
    if (result.bbox) common.bounds = boundsOf(result.bbox);
    if (opts.basemap) {
      // configurable XYZ basemap (OpenStreetMap by default); offline its tiles just fail
      L.tileLayer(opts.basemap.url, { maxZoom: 19, attribution: opts.basemap.attribution, className: "basemap" }).addTo(map);
    }
    map.createPane("beforePane").style.zIndex = 250;
    map.createPane("afterPane").style.zIndex = 260;
    map.createPane("changePane").style.zIndex = 300;  // the change over both dates
    const layers = {
      before: L.tileLayer(tileUrl(result, "before"), { ...common, pane: "beforePane", attribution: "Sentinel-2 (Copernicus)" }),
      after: L.tileLayer(tileUrl(result, "after"), { ...common, pane: "afterPane", attribution: "Sentinel-2 (Copernicus)" }),
      probability: L.tileLayer(tileUrl(result, "probability"), { ...common, pane: "changePane", opacity: 0.8 }),
      mask: L.tileLayer(tileUrl(result, "mask"), { ...common, pane: "changePane", opacity: 0.8 }),
    };
    layers.before.addTo(map);
    layers.after.addTo(map);
    layers.after.setOpacity(opts.afterOpacity ?? 1);
    const change = opts.change ?? "probability";
    if (change !== "none") layers[change].addTo(map);
    if (result.bbox) {
      map.fitBounds(boundsOf(result.bbox));
      L.rectangle(boundsOf(result.bbox), { color: "#17324d", weight: 1, fill: false, interactive: false }).addTo(map);
    } else {
      map.setView([0, 0], 2);
    }
    L.control.scale({ imperial: false }).addTo(map);
    return { map, layers, change };
  }

  function legendHtml(legend) {
    if (legend.type === "ramp") {
      const stops = legend.stops
        .map((s) => `${s.color}${Math.round(Math.max(s.alpha, 0.15) * 255).toString(16).padStart(2, "0")} ${s.value * 100}%`)
        .join(", ");
      return `<div><b>${legend.title}</b></div><div class="legend-ramp" style="background: linear-gradient(to right, ${stops})"></div>` +
        `<div class="legend-scale"><span>0</span><span>0.5</span><span>1</span></div>`;
    }
    if (legend.type === "classes") {
      return `<div><b>${legend.title}</b></div>` +
        legend.classes.filter((c) => c.color !== "transparent")
          .map((c) => `<div><span class="swatch" style="background:${c.color}"></span>${c.label}</div>`).join("");
    }
    return `<div><b>${legend.title}</b></div>`;
  }

  async function getJson(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.description || `${r.status}`);
    return body;
  }

  function drawHistogram(el, h, threshold) {
    const W = 340, H = 150, pad = { l: 44, r: 8, t: 8, b: 30 };
    const max = Math.max(1, ...h.counts);
    const bw = (W - pad.l - pad.r) / h.counts.length;
    const y = (c) => pad.t + (H - pad.t - pad.b) * (1 - Math.log10(1 + c) / Math.log10(1 + max));
    let bars = "";
    h.counts.forEach((c, i) => {
      const x = pad.l + i * bw;
      const mid = (h.edges[i] + h.edges[i + 1]) / 2;
      const col = threshold !== null && mid >= threshold ? "#d7301f" : "#7a8fa6";
      bars += `<rect x="${x + 0.5}" y="${y(c)}" width="${bw - 1}" height="${H - pad.b - y(c)}" fill="${col}"><title>${h.edges[i].toFixed(2)}–${h.edges[i + 1].toFixed(2)}: ${c} px</title></rect>`;
    });
    let thr = "";
    if (threshold !== null && threshold !== undefined) {
      const tx = pad.l + threshold * (W - pad.l - pad.r);
      thr = `<line x1="${tx}" x2="${tx}" y1="${pad.t}" y2="${H - pad.b}" stroke="#000" stroke-dasharray="3,2"/><text x="${tx + 3}" y="${pad.t + 10}" font-size="10">threshold ${threshold}</text>`;
    }
    const axis = `<line x1="${pad.l}" x2="${W - pad.r}" y1="${H - pad.b}" y2="${H - pad.b}" stroke="#333"/>` +
      [0, 0.5, 1].map((v) => `<text x="${pad.l + v * (W - pad.l - pad.r)}" y="${H - pad.b + 14}" font-size="10" text-anchor="middle">${v}</text>`).join("") +
      `<text x="${(W + pad.l) / 2}" y="${H - 4}" font-size="10" text-anchor="middle">change probability</text>` +
      `<text x="4" y="${pad.t + 8}" font-size="10">${max.toLocaleString("en")}</text><text x="4" y="${H - pad.b}" font-size="10">0</text>` +
      `<text x="4" y="${(H - pad.b + pad.t) / 2}" font-size="9">px (log)</text>`;
    el.innerHTML = `<svg width="${W}" height="${H}" role="img" aria-label="histogram of change probability">${bars}${thr}${axis}</svg>` +
      `<div style="font-size:12px;color:#556">${h.pixels.toLocaleString("en")} valid pixels` + (h.sampled_every > 1 ? ` (sampled every ${h.sampled_every} px)` : "") + `</div>`;
  }

  function zoneTable(el, data, map) {
    const cols = [
      { key: "name", label: "zone", num: false },
      { key: "changed_area_ha", label: "changed ha", num: true },
      { key: "changed_fraction", label: "changed %", num: true, f: (v) => fmt(v === null ? null : 100 * v, 2) },
      { key: "valid_area_ha", label: "valid ha", num: true },
    ];
    let sortKey = "changed_area_ha", desc = true, highlight = null;
    const source = document.createElement("div");
    source.style.cssText = "font-size:12px;color:#556;margin-bottom:4px";
    source.textContent = `${data.zones.length} zones: ${data.source}`;
    const wrap = document.createElement("div");
    wrap.className = "scroll";
    const table = document.createElement("table");
    table.id = "zones-table";
    wrap.appendChild(table);
    el.replaceChildren(source, wrap);
    function render() {
      const rows = [...data.zones].sort((a, b) => {
        const va = a[sortKey], vb = b[sortKey];
        const c = typeof va === "string" ? String(va).localeCompare(String(vb)) : (va ?? -1) - (vb ?? -1);
        return desc ? -c : c;
      });
      table.innerHTML = "<thead><tr>" + cols.map((c) => `<th class="sortable${c.num ? " num" : ""}" data-key="${c.key}">${c.label}${c.key === sortKey ? (desc ? " ▼" : " ▲") : ""}</th>`).join("") + "</tr></thead>";
      const tb = document.createElement("tbody");
      rows.forEach((z) => {
        const tr = document.createElement("tr");
        tr.className = "zone";
        tr.dataset.id = z.id;
        tr.innerHTML = cols.map((c) => `<td class="${c.num ? "num" : ""}">${c.f ? c.f(z[c.key]) : c.num ? fmt(z[c.key]) : (z[c.key] || z.id)}</td>`).join("");
        tr.addEventListener("click", () => {
          table.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
          tr.classList.add("selected");
          if (highlight) highlight.remove();
          if (z.geometry) highlight = L.geoJSON(z.geometry, { style: { color: "#00e5ff", weight: 3, fill: false } }).addTo(map);
          if (z.bbox) map.fitBounds(boundsOf(z.bbox), { maxZoom: 17 });
        });
        tb.appendChild(tr);
      });
      table.appendChild(tb);
      table.querySelectorAll("th.sortable").forEach((th) => th.addEventListener("click", () => {
        const k = th.dataset.key;
        desc = k === sortKey ? !desc : k !== "name";
        sortKey = k;
        render();
      }));
    }
    render();
  }

  /** Changed area (ha) at threshold t from the stored histogram (bins of 0.05: exact at
   * the slider's steps), the area of one valid pixel from the statistics. */
  function areaAt(h, stats, t) {
    if (!h || !stats.valid_pixels || stats.valid_area_ha == null) return null;
    let px = 0;
    h.counts.forEach((c, i) => { if (h.edges[i] >= t - 1e-9) px += c; });
    return (px * stats.valid_area_ha) / stats.valid_pixels;
  }

  function cogUrl(result, layer) { return result.cog.replace("{layer}", layer); }

  /** Swipe: the "after" pane clipped to the right of the slider's position. */
  function swipe(map, value) {
    const pane = map.getPane("afterPane");
    const size = map.getSize();
    const nw = map.containerPointToLayerPoint([0, 0]);
    const x = nw.x + (size.x * value) / 100;
    pane.style.clip = value >= 100 ? "" : `rect(${nw.y}px, ${nw.x + size.x}px, ${nw.y + size.y}px, ${x}px)`;
  }

  function permalink(map, state) {
    const c = map.getCenter();
    return `#${map.getZoom().toFixed(2)}/${c.lat.toFixed(5)}/${c.lng.toFixed(5)}/${state.change}/${state.threshold}/${state.swipe}`;
  }

  function restore(hash) {
    const p = (hash || "").replace(/^#/, "").split("/");
    if (p.length < 3 || p.slice(0, 3).some((v) => Number.isNaN(Number(v)))) return null;
    return { zoom: Number(p[0]), lat: Number(p[1]), lng: Number(p[2]), change: p[3], threshold: p[4] ? Number(p[4]) : null, swipe: p[5] ? Number(p[5]) : null };
  }

  async function pixelValues(result, latlng) {
    const at = `${latlng.lng.toFixed(6)},${latlng.lat.toFixed(6)}`;
    const out = {};
    for (const layer of ["probability", "before", "after"]) {
      try {
        const v = await getJson(`${cogUrl(result, layer)}/point/${at}`);
        out[layer] = v;
      } catch (e) { out[layer] = { error: e.message }; }
    }
    return out;
  }

  function valuesHtml(v, latlng) {
    const row = (name, x) => {
      if (!x || x.error) return `<tr><td>${name}</td><td>${x ? x.error : "–"}</td></tr>`;
      const names = x.band_names || [];
      const vals = x.values.map((n, i) => `${names[i] && names.length > 1 ? names[i] + " " : ""}${fmt(n, name === "probability" ? 3 : 0)}`);
      return `<tr><td>${name}</td><td>${vals.join(", ")}</td></tr>`;
    };
    return `<b>${latlng.lat.toFixed(5)}, ${latlng.lng.toFixed(5)}</b><table class="pixel-values" id="pixel-values">` +
      row("probability", v.probability) + row("before", v.before) + row("after", v.after) + "</table>";
  }

  /** Draw a polygon (click vertices, double-click to finish) → titiler statistics of it. */
  function drawArea(map, result, out) {
    const pts = [];
    let line = null;
    out.textContent = "click the corners, double-click to finish";
    map.doubleClickZoom.disable();
    const add = (e) => {
      const last = pts[pts.length - 1];
      if (last && last.equals(e.latlng)) return;  // (the two clicks of the closing double click)
      pts.push(e.latlng);
      if (line) line.remove();
      // not interactive: the clicks (and the closing double click) stay the map's
      line = L.polyline(pts, { color: "#00e5ff", weight: 2, interactive: false }).addTo(map);
    };
    const finish = async () => {
      map.off("click", add);
      map.off("dblclick", finish);
      setTimeout(() => map.doubleClickZoom.enable(), 0);
      if (line) line.remove();
      if (pts.length < 3) { out.textContent = "an area needs three corners"; return; }
      const ring = [...pts, pts[0]].map((p) => [p.lng, p.lat]);
      L.polygon(pts, { color: "#00e5ff", weight: 2, fill: false, interactive: false }).addTo(map);
      const feature = { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [ring] } };
      try {
        const r = await fetch(`${cogUrl(result, "probability")}/statistics`, {
          method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" }, body: JSON.stringify(feature),
        });
        const body = await r.json();
        if (!r.ok) throw new Error(body.detail || body.description || r.status);
        const st = body.properties.statistics.b1;
        const m = await fetch(`${cogUrl(result, "mask")}/statistics`, {
          method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" }, body: JSON.stringify(feature),
        }).then((x) => (x.ok ? x.json() : null)).catch(() => null);
        const share = m ? m.properties.statistics.b1.mean : null;  // mask 1/0, nodata left out
        out.innerHTML = `area: mean probability <b>${fmt(st.mean, 3)}</b>, max ${fmt(st.max, 3)}` +
          (share == null ? "" : `, changed <b>${fmt(100 * share, 1)} %</b>`) + ` of ${Math.round(st.count).toLocaleString("en")} valid px`;
        out.dataset.mean = st.mean;
      } catch (e) { out.textContent = `statistics unavailable: ${e.message}`; }
    };
    map.on("click", add);
    map.on("dblclick", finish);
  }

  async function initReview(d) {
    const select = document.getElementById("result-select");
    let current = null;
    async function show(index) {
      const result = d.results[index];
      if (current) current.map.remove();
      const saved = restore(window.location.hash);
      current = makeMap("map", result, { basemap: d.basemap, change: saved && saved.change ? saved.change : "probability" });
      const { map, layers } = current;
      window.candelaMap = map;
      if (saved) map.setView([saved.lat, saved.lng], saved.zoom, { animate: false });
      // the requested AOI (dashed) and the result's footprint, with the share covered
      if (d.aoi) L.geoJSON(d.aoi, { style: { color: "#ffb000", weight: 2, dashArray: "6,4", fill: false }, interactive: false }).addTo(map);
      if (result.footprint) L.geoJSON(result.footprint, { style: { color: "#17324d", weight: 1.5, fill: false }, interactive: false }).addTo(map);
      const cov = document.getElementById("coverage");
      cov.textContent = result.coverage == null ? "" :
        `the result covers ${fmt(100 * result.coverage, 1)} % of the requested area (dashed: requested, solid: result)`;
      // change outlines: the change polygons, high contrast over any imagery
      let outlines = null;
      if (result.outlines) {
        getJson(result.outlines).then((gj) => {
          outlines = L.geoJSON(gj, { style: { color: "#00e5ff", weight: 1.5, fill: false }, interactive: false });
          if (document.getElementById("outlines").checked) outlines.addTo(map);
        }).catch(() => {});
      }
      // coordinates readout and pixel inspector (titiler point values)
      const coords = document.getElementById("coords");
      map.on("mousemove", (e) => { coords.textContent = `lat ${e.latlng.lat.toFixed(5)}, lon ${e.latlng.lng.toFixed(5)}`; });
      let inspecting = true;
      map.on("click", async (e) => {
        if (!inspecting) return;
        const v = await pixelValues(result, e.latlng);
        L.popup().setLatLng(e.latlng).setContent(valuesHtml(v, e.latlng)).openOn(map);
      });
      const controls = document.getElementById("controls");
      controls.querySelectorAll("input").forEach((i) => i.replaceWith(i.cloneNode(true)));
      const imagery = () => controls.querySelector("input[name=imagery]:checked").value;
      const opacity = controls.querySelector("#change-opacity");
      const setImagery = () => layers.after.setOpacity(imagery() === "after" ? 1 : 0);
      controls.querySelectorAll("input[name=imagery]").forEach((i) => i.addEventListener("change", setImagery));
      setImagery();
      const legendEl = document.getElementById("legend");
      const setChange = () => {
        const which = controls.querySelector("input[name=change]:checked").value;
        for (const k of ["probability", "mask"]) {
          if (k === which) layers[k].addTo(map); else layers[k].remove();
        }
        if (which !== "none") {
          layers[which].setOpacity(opacity.value / 100);
          legendEl.innerHTML = legendHtml(d.legends[which]);
        } else legendEl.innerHTML = "";
      };
      controls.querySelectorAll("input[name=change]").forEach((i) => i.addEventListener("change", setChange));
      opacity.addEventListener("input", () => { layers.probability.setOpacity(opacity.value / 100); layers.mask.setOpacity(opacity.value / 100); });
      controls.querySelector("#outlines").addEventListener("change", (e) => {
        if (!outlines) return;
        if (e.target.checked) outlines.addTo(map); else outlines.remove();
      });
      const state = { change: "probability", threshold: result.statistics.threshold ?? 0.5, swipe: 100 };
      if (saved && saved.change) controls.querySelectorAll("input[name=change]").forEach((i) => { i.checked = i.value === saved.change; });
      setChange();
      // swipe between the dates: before on the left of the line, after on the right
      const sw = controls.querySelector("#swipe");
      const doSwipe = () => {
        state.swipe = Number(sw.value);
        if (state.swipe < 100) { layers.before.addTo(map); layers.after.setOpacity(1); }
        swipe(map, state.swipe);
      };
      sw.addEventListener("input", doSwipe);
      map.on("move zoom resize", () => swipe(map, state.swipe));
      // the threshold slider: the mask re-rendered at that threshold, the changed area live
      const thrInput = controls.querySelector("#threshold");
      const thrValue = document.getElementById("threshold-value");
      const thrArea = document.getElementById("threshold-area");
      let hist = null;
      const setThreshold = () => {
        const t = Number(thrInput.value);
        state.threshold = t;
        thrValue.textContent = t.toFixed(2);
        const a = areaAt(hist, result.statistics, t);
        thrArea.textContent = a == null ? "–" : `${fmt(a, 1)} ha`;
        thrArea.dataset.ha = a == null ? "" : String(a);
        // (Leaflet's setUrl redraws at the map's fractional zoom, 13.25…: no such tile; added
        // again, the layer asks for its tiles at the rounded zoom)
        layers.mask.setUrl(tileUrl(result, "mask", t), true);
        if (map.hasLayer(layers.mask)) { layers.mask.remove(); layers.mask.addTo(map); }
        if (hist) drawHistogram(document.getElementById("histogram"), hist, t);
      };
      thrInput.value = String(saved && saved.threshold != null ? saved.threshold : state.threshold);
      thrInput.addEventListener("input", () => {
        const mask = controls.querySelector("input[name=change][value=mask]");
        if (!mask.checked) { mask.checked = true; setChange(); }
        setThreshold();
      });
      controls.querySelector("#draw-area").addEventListener("click", () => {
        inspecting = false;
        map.closePopup();  // (an open pixel popup would catch the corners' clicks)
        drawArea(map, result, document.getElementById("area-stats"));
        map.once("dblclick", () => setTimeout(() => { inspecting = true; }, 300));
      });
      const link = document.getElementById("permalink");
      const updateLink = () => {
        state.change = controls.querySelector("input[name=change]:checked").value;
        link.href = permalink(map, state);
        history.replaceState(null, "", link.href);
      };
      map.on("moveend", updateLink);
      controls.addEventListener("input", updateLink);
      controls.addEventListener("change", updateLink);
      if (saved && saved.swipe != null) { sw.value = String(saved.swipe); doSwipe(); }
      getJson(result.histogram_url).then((h) => { hist = h; setThreshold(); updateLink(); })
        .catch((e) => { document.getElementById("histogram").textContent = `histogram unavailable: ${e.message}`; setThreshold(); });
      getJson(result.zones_url).then((z) => zoneTable(document.getElementById("zones"), z, map))
        .catch((e) => { document.getElementById("zones").textContent = `zone statistics unavailable: ${e.message}`; });
      document.querySelectorAll(".result-block").forEach((b) => { b.hidden = b.dataset.index !== String(index); });
    }
    if (select) select.addEventListener("change", () => show(Number(select.value)));
    await show(0);
    document.body.dataset.ready = "1";
  }

  function initCompare(a, b) {
    const left = makeMap("map-a", a.results[0]);
    const right = makeMap("map-b", b.results[0]);
    let syncing = false;
    const sync = (src, dst) => src.map.on("move", () => {
      if (syncing) return;
      syncing = true;
      dst.map.setView(src.map.getCenter(), src.map.getZoom(), { animate: false });
      syncing = false;
    });
    sync(left, right);
    sync(right, left);
    const opacity = document.getElementById("change-opacity");
    opacity.addEventListener("input", () => [left, right].forEach((m) => m.layers.probability.setOpacity(opacity.value / 100)));
    document.body.dataset.ready = "1";
  }

  window.candela = { initReview, initCompare };
})();
