/* Candela review page: Leaflet map (imagery before/after + change layer with opacity), legend,
 * histogram of change probability, sortable zone table (click a row: zoom to the zone).
 * Everything is served by the platform itself (no CDN). */
"use strict";

(function () {
  const fmt = (v, d = 2) =>
    v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toLocaleString("en", { maximumFractionDigits: d, minimumFractionDigits: d });

  function tileUrl(result, layer) {
    return result.tiles.replace("{layer}", layer);
  }

  function boundsOf(bbox) {
    return L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]]);
  }

  /** A map with before/after imagery and the change layers; returns the handles. */
  function makeMap(el, result, opts = {}) {
    const map = L.map(el, { zoomSnap: 0.25, attributionControl: true });
    const common = { maxZoom: 19, minZoom: 3, tileSize: 256, crossOrigin: false, keepBuffer: 1 };
    const layers = {
      before: L.tileLayer(tileUrl(result, "before"), { ...common, attribution: "Sentinel-2 (Copernicus)" }),
      after: L.tileLayer(tileUrl(result, "after"), { ...common, attribution: "Sentinel-2 (Copernicus)" }),
      probability: L.tileLayer(tileUrl(result, "probability"), { ...common, opacity: 0.8 }),
      mask: L.tileLayer(tileUrl(result, "mask"), { ...common, opacity: 0.8 }),
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

  async function initReview(d) {
    const select = document.getElementById("result-select");
    let current = null;
    async function show(index) {
      const result = d.results[index];
      if (current) current.map.remove();
      current = makeMap("map", result);
      const { map, layers } = current;
      window.candelaMap = map;
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
      setChange();
      const thr = result.statistics.threshold ?? null;
      getJson(result.histogram_url).then((h) => drawHistogram(document.getElementById("histogram"), h, thr))
        .catch((e) => { document.getElementById("histogram").textContent = `histogram unavailable: ${e.message}`; });
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
