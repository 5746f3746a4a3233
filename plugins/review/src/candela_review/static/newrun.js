/* Candela "New run" page: draw a rectangle or a polygon (or upload a GeoJSON / GeoPackage
 * area) on a Leaflet map, pick
 * the dates among the products catalogued over it, the model and the zones, and start the run
 * (POST /new: validated by the workflow's model, triggered through Airflow as the caller). */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function init() {
    const form = $("newrun");
    const base = form.dataset.base;
    const data = JSON.parse($("newrun-data").textContent);
    const map = L.map("map", { zoomSnap: 0.25 }).setView([46.5, 2.5], 5);
    if (data.basemap) {
      L.tileLayer(data.basemap.url, { maxZoom: 19, attribution: data.basemap.attribution }).addTo(map);
    }
    // where the catalogue has data (offline, without a basemap, the only landmark): the
    // footprints of the catalogued products, the map opened on them
    const footprints = L.layerGroup().addTo(map);
    async function showCatalogue() {
      const q = new URLSearchParams({ bbox: "-180,-90,180,90", collection: $("collection").value });
      const r = await fetch(`${base}/new/products?${q}`, { headers: { accept: "application/json" } });
      if (!r.ok) return;
      const found = (await r.json()).products;
      footprints.clearLayers();
      let all = null;
      for (const p of found) {
        const [w, s, e, n] = p.footprint;
        const b = L.latLngBounds([s, w], [n, e]);
        all = all ? all.extend(b) : b;
        L.rectangle(b, { color: "#3388ff", weight: 1, dashArray: "4 4", fillOpacity: 0.04, interactive: false })
          .bindTooltip(`${p.date} ${p.tile || ""}`).addTo(footprints);
      }
      $("catalogue-text").textContent = found.length
        ? `Dashed: the ${found.length} products catalogued for ${$("collection").value}.`
        : `No product catalogued for ${$("collection").value} (add some with candela catalog).`;
      if (all && !shape) map.fitBounds(all, { padding: [20, 20] });
    }
    showCatalogue();
    window.candelaNewRunMap = map;
    let shape = null;  // the AOI drawn on the map
    let drawing = false;
    let corner = null;

    let aoiLabel = "";
    function setArea(bbox, aoi, layer, label) {
      aoiLabel = label || "";
      if (shape) map.removeLayer(shape);
      shape = layer;
      $("bbox").value = bbox ? JSON.stringify(bbox) : "";
      $("aoi").value = aoi ? JSON.stringify(aoi) : "";
      if (shape) {
        shape.addTo(map);
        map.fitBounds(shape.getBounds(), { padding: [20, 20] });
      }
      const b = bbox || (shape ? boundsArray(shape.getBounds()) : null);
      $("aoi-text").textContent = b
        ? `${aoi ? aoiLabel || "Uploaded area" : "Rectangle"}: west ${b[0].toFixed(4)}, south ${b[1].toFixed(4)}, east ${b[2].toFixed(4)}, north ${b[3].toFixed(4)}`
        : "No area yet.";
      loadProducts(b);
    }

    const boundsArray = (bb) => [bb.getWest(), bb.getSouth(), bb.getEast(), bb.getNorth()].map((v) => Number(v.toFixed(5)));

    // drag-to-draw a rectangle
    $("draw").addEventListener("click", () => {
      drawing = true;
      map.dragging.disable();
      map.getContainer().style.cursor = "crosshair";
      $("draw").disabled = true;
    });
    map.on("mousedown", (e) => {
      if (!drawing) return;
      corner = e.latlng;
      if (shape) map.removeLayer(shape);
      shape = L.rectangle(L.latLngBounds(corner, corner), { color: "#ff00ff", weight: 2, fill: false }).addTo(map);
    });
    map.on("mousemove", (e) => {
      if (drawing && corner) shape.setBounds(L.latLngBounds(corner, e.latlng));
    });
    map.on("mouseup", (e) => {
      if (!drawing || !corner) return;
      const bounds = L.latLngBounds(corner, e.latlng);
      drawing = false;
      corner = null;
      map.dragging.enable();
      map.getContainer().style.cursor = "";
      $("draw").disabled = false;
      const rect = shape;
      shape = null;
      map.removeLayer(rect);
      const bbox = boundsArray(bounds);
      setArea(bbox, null, L.rectangle(bounds, { color: "#ff00ff", weight: 2, fill: false }));
    });
    $("clear-aoi").addEventListener("click", () => setArea(null, null, null));

    // click-to-draw a polygon: each click a corner, a double click closes it
    let corners = null;
    let sketch = null;
    const addCorner = (e) => {
      const last = corners[corners.length - 1];
      if (last && last.equals(e.latlng)) return;  // (the two clicks of the closing double click)
      corners.push(e.latlng);
      if (sketch) map.removeLayer(sketch);
      sketch = L.polyline(corners, { color: "#ff00ff", weight: 2, dashArray: "4 4", interactive: false }).addTo(map);
    };
    const closePolygon = () => {
      map.off("click", addCorner);
      map.off("dblclick", closePolygon);
      setTimeout(() => map.doubleClickZoom.enable(), 0);
      map.getContainer().style.cursor = "";
      $("draw-polygon").disabled = false;
      if (sketch) map.removeLayer(sketch);
      sketch = null;
      const pts = corners;
      corners = null;
      if (pts.length < 3) {
        showError({ description: "a polygon needs at least three corners", fields: { bbox: "fewer than three corners" } });
        return;
      }
      const ring = [...pts, pts[0]].map((p) => [Number(p.lng.toFixed(6)), Number(p.lat.toFixed(6))]);
      const geometry = { type: "Polygon", coordinates: [ring] };
      const layer = L.polygon(pts, { color: "#ff00ff", weight: 2, fill: false });
      setArea(null, geometry, layer, `Polygon of ${pts.length} corners`);
    };
    $("draw-polygon").addEventListener("click", () => {
      corners = [];
      map.doubleClickZoom.disable();
      map.getContainer().style.cursor = "crosshair";
      $("draw-polygon").disabled = true;
      $("aoi-text").textContent = "Click the corners of the area; double-click the last one.";
      map.on("click", addCorner);
      map.on("dblclick", closePolygon);
    });

    // an uploaded area (GeoJSON or GeoPackage, any declared CRS): read by the platform, merged
    // into one WGS 84 geometry, drawn and sent as the run's `aoi`
    $("aoi-file").addEventListener("change", async (ev) => {
      const file = ev.target.files[0];
      if (!file) return;
      const r = await fetch(`${base}/new/aoi?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
      const body = await r.json();
      if (!r.ok) {
        showError({ description: body.description || `error ${r.status}`, fields: { aoi: body.description || "refused" } });
        return;
      }
      const layer = L.geoJSON(body.geometry, { style: { color: "#ff00ff", weight: 2, fill: false } });
      setArea(null, body.geometry, layer, `${file.name} (${body.features} feature${body.features === 1 ? "" : "s"})`);
    });

    // the products catalogued over the area: pick before and after
    async function loadProducts(b) {
      const box = $("products");
      if (!b) {
        box.innerHTML = '<p class="note">Draw an area to see its products.</p>';
        return;
      }
      const q = new URLSearchParams({ bbox: b.join(","), collection: $("collection").value });
      const r = await fetch(`${base}/new/products?${q}`, { headers: { accept: "application/json" } });
      const body = await r.json();
      if (!r.ok) {
        box.textContent = body.description || `error ${r.status}`;
        return;
      }
      if (!body.products.length) {
        box.innerHTML = '<p class="note">No product catalogued over this area for this collection (catalogue some with <code>candela catalog</code>).</p>';
        return;
      }
      const rows = body.products.map((p, i) =>
        `<tr data-date="${p.date}" data-tile="${p.tile || ""}"><td><input type="radio" name="pick-before" value="${i}"></td>` +
        `<td><input type="radio" name="pick-after" value="${i}"></td><td>${p.date}</td><td>${p.tile || "–"}</td>` +
        `<td>${p.cloud_cover === null ? "–" : Number(p.cloud_cover).toFixed(0) + " %"}</td></tr>`);
      box.innerHTML = `<table id="product-table"><tr><th>before</th><th>after</th><th>date</th><th>tile</th><th>cloud</th></tr>${rows.join("")}</table>`;
      box.querySelectorAll("input[type=radio]").forEach((el) => el.addEventListener("change", pickDates));
    }

    function pickDates() {
      const rowOf = (name) => {
        const el = document.querySelector(`input[name=${name}]:checked`);
        return el ? el.closest("tr") : null;
      };
      const a = rowOf("pick-before");
      const b = rowOf("pick-after");
      if (a) $("start").value = a.dataset.date;
      if (b) $("end").value = b.dataset.date;
      if (a && b && a.dataset.tile && a.dataset.tile === b.dataset.tile) $("tile").value = a.dataset.tile;
    }
    $("collection").addEventListener("change", () => {
      showCatalogue();
      loadProducts($("bbox").value ? JSON.parse($("bbox").value) : shape ? boundsArray(shape.getBounds()) : null);
    });

    const describe = () => {
      const opt = $("model").selectedOptions[0];
      $("model-description").textContent = opt ? opt.dataset.description : "";
    };
    $("model").addEventListener("change", describe);
    describe();

    // zones uploaded: stored by the platform, then named by their URI
    $("zones-file").addEventListener("change", async (ev) => {
      const file = ev.target.files[0];
      if (!file) return;
      const r = await fetch(`${base}/new/zones?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
      const body = await r.json();
      if (!r.ok) {
        showError({ description: body.description, fields: { zones: body.description } });
        return;
      }
      const opt = new Option(`${body.name} (uploaded, ${body.features} zones)`, body.uri, true, true);
      $("zones").add(opt);
    });

    function showError(body) {
      const box = $("form-error");
      box.hidden = false;
      box.textContent = body.description || "refused";
      document.querySelectorAll(".field").forEach((p) => {
        const reason = (body.fields || {})[p.dataset.field] || (body.fields || {})[p.dataset.fieldAlt];
        p.classList.toggle("bad", Boolean(reason));
        p.querySelector(".reason").textContent = reason ? `: ${reason}` : "";
      });
    }

    function conf() {
      const out = {};
      for (const name of ["collection", "start", "end", "tile", "model", "zones", "threshold"]) {
        const v = form.elements[name].value.trim();
        if (v) out[name] = v;
      }
      for (const name of ["max_cloud", "tile_size_km"]) {
        const v = form.elements[name].value.trim();
        if (v) out[name] = Number(v);
      }
      if (out.threshold && out.threshold !== "auto" && !Number.isNaN(Number(out.threshold))) out.threshold = Number(out.threshold);
      if ($("aoi").value) {
        out.aoi = JSON.parse($("aoi").value);
        out.bbox = null;  // the uploaded area replaces the default box
      } else if ($("bbox").value) out.bbox = JSON.parse($("bbox").value);
      return out;
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("form-error").hidden = true;
      document.querySelectorAll(".field").forEach((p) => {
        p.classList.remove("bad");
        p.querySelector(".reason").textContent = "";
      });
      if (!$("bbox").value && !$("aoi").value) {
        showError({ description: "draw or upload the area first", fields: { bbox: "no area" } });
        return;
      }
      $("submit").disabled = true;
      $("submit-state").textContent = "starting…";
      try {
        const r = await fetch(`${base}/new`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json" },
          body: JSON.stringify(conf()),
        });
        const body = await r.json();
        if (r.ok) {
          $("submit-state").textContent = `started ${body.run_id}`;
          window.location.assign(body.href);
          return;
        }
        showError(body);
      } catch (err) {
        showError({ description: String(err) });
      }
      $("submit").disabled = false;
      $("submit-state").textContent = "";
    });
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
