/* Candela "EO image mining" page: open a session for a category (area, dates, dataset, an
 * example patch), answer the batch the model asks about (yes / no / skip), follow its estimated
 * precision / recall, see the retrieved patches on the map, save the category to the knowledge
 * base, query the mining views in SQL (POST /mine/sql). */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const fmt = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2));
  let data, base, map, layer, session = null;
  const answers = new Map();

  async function call(method, path, body) {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: { accept: "application/json", "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const doc = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(doc.description || doc.detail || `${r.status}`);
    return doc;
  }

  function showError(text) {
    const e = $("form-error");
    e.textContent = text || "";
    e.hidden = !text;
  }

  function render(state) {
    session = state.session;
    answers.clear();
    $("labelling").hidden = false;
    $("what").textContent = session.category;
    const last = state.iterations[state.iterations.length - 1] || {};
    $("iteration").textContent = session.iteration;
    $("answers").textContent = last.n_yes === undefined ? "–" : `${last.n_yes} / ${last.n_no} / ${last.n_skip}`;
    $("precision").textContent = fmt(last.est_precision);
    $("recall").textContent = fmt(last.est_recall);
    $("retrieved").textContent = state.retrieved.length;
    const prog = $("progress");
    prog.dataset.iteration = session.iteration;
    prog.dataset.precision = last.est_precision ?? "";
    prog.dataset.recall = last.est_recall ?? "";
    prog.dataset.retrieved = state.retrieved.length;
    const grid = $("batch");
    grid.replaceChildren();
    for (const p of state.batch) {
      const card = document.createElement("div");
      card.className = "card";
      card.dataset.patch = p.id;
      const img = document.createElement("img");
      img.src = p.quicklook;
      img.alt = `patch ${p.id}`;
      card.append(img, document.createTextNode(`#${p.id} ${p.dataset}`), document.createElement("br"));
      for (const a of ["yes", "no", "skip"]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = a;
        b.className = `answer-${a}`;
        b.addEventListener("click", () => {
          answers.set(p.id, a);
          card.dataset.answer = a;
          $("send").disabled = answers.size === 0;
        });
        card.append(b);
      }
      grid.append(card);
    }
    $("send").disabled = true;
    layer.clearLayers();
    let bounds = null;
    for (const p of state.retrieved) {
      const g = L.geoJSON(p.footprint, { style: { color: "#1a7f37", weight: 1, fillOpacity: 0.35 } })
        .bindTooltip(`#${p.id} p=${p.p_yes}`);
      g.addTo(layer);
      bounds = bounds ? bounds.extend(g.getBounds()) : g.getBounds();
    }
    for (const p of state.batch) {
      const g = L.geoJSON(p.footprint, { style: { color: "#f0a000", weight: 2, fill: false } });
      g.addTo(layer);
      bounds = bounds ? bounds.extend(g.getBounds()) : g.getBounds();
    }
    if (bounds) map.fitBounds(bounds, { padding: [20, 20], maxZoom: 16 });
    document.body.dataset.ready = "1";
  }

  const SHOWN = 20; // search results per search

  function searchQuery() {
    const q = new URLSearchParams({ limit: SHOWN });
    if ($("bbox").value.trim()) q.set("bbox", $("bbox").value.trim());
    if ($("start-date").value) q.set("start", $("start-date").value);
    if ($("end-date").value) q.set("end", $("end-date").value);
    if ($("dataset").value.trim()) q.set("dataset", $("dataset").value.trim());
    return q;
  }

  // search results: each card can start "similar to this one" or become the session's example
  async function search(q, what) {
    showError("");
    $("search-panel").hidden = false;
    $("search-state").textContent = "searching…";
    let found;
    try {
      found = (await call("GET", `/mine/patches?${q}`)).patches;
    } catch (e) {
      $("search-state").textContent = e.message;
      return;
    }
    $("search-state").textContent = `${found.length} ${what}`;
    const grid = $("results");
    grid.replaceChildren();
    for (const p of found) {
      const card = document.createElement("div");
      card.className = "card";
      card.dataset.patch = p.id;
      const img = document.createElement("img");
      img.src = p.quicklook;
      img.alt = `patch ${p.id}`;
      card.append(img, document.createTextNode(`#${p.id} ${p.acquired ? p.acquired.slice(0, 10) : p.dataset}`), document.createElement("br"));
      const similar = document.createElement("button");
      similar.type = "button";
      similar.className = "similar";
      similar.textContent = "similar";
      similar.addEventListener("click", () => search(new URLSearchParams({ similar_to: p.id, limit: SHOWN }), `nearest to #${p.id}`));
      const use = document.createElement("button");
      use.type = "button";
      use.className = "use";
      use.textContent = "example";
      use.addEventListener("click", () => {
        $("example").value = p.id;
      });
      card.append(similar, use);
      grid.append(card);
    }
  }

  async function open(category) {
    showError("");
    const body = { category };
    const bbox = $("bbox").value.trim();
    if (bbox) body.bbox = bbox.split(",").map(Number);
    if ($("start-date").value) body.start = $("start-date").value;
    if ($("end-date").value) body.end = $("end-date").value;
    if ($("dataset").value.trim()) body.dataset = $("dataset").value.trim();
    if ($("example").value) body.example_patch_id = Number($("example").value);
    try {
      render(await call("POST", "/mine/sessions", body));
      $("search-panel").hidden = true; // the session's batches take over
    } catch (e) {
      showError(e.message);
    }
  }

  async function send() {
    const labels = [...answers].map(([patch_id, label]) => ({ patch_id, label }));
    $("send-state").textContent = "learning…";
    try {
      render(await call("POST", `/mine/sessions/${session.id}/labels`, { labels }));
      $("send-state").textContent = "";
    } catch (e) {
      $("send-state").textContent = e.message;
    }
  }

  async function runSql() {
    $("sql-state").textContent = "running…";
    const out = $("sql-result");
    out.replaceChildren();
    try {
      const doc = await call("POST", "/mine/sql", { sql: $("sql").value });
      const table = document.createElement("table");
      const head = table.insertRow();
      for (const c of doc.columns) head.insertCell().outerHTML = `<th>${c.replace(/[<&]/g, "")}</th>`;
      for (const row of doc.rows) {
        const tr = table.insertRow();
        for (const v of row) tr.insertCell().textContent = typeof v === "object" ? JSON.stringify(v) : v;
      }
      out.append(table);
      $("sql-state").textContent = `${doc.rows.length} row(s)${doc.truncated ? " (truncated)" : ""}`;
    } catch (e) {
      $("sql-state").textContent = e.message;
    }
  }

  function init() {
    data = JSON.parse($("mining-data").textContent);
    base = data.base;
    map = L.map("map", { zoomSnap: 0.25 }).setView([40, 0], 4);
    if (data.basemap) L.tileLayer(data.basemap.url, { maxZoom: 19, attribution: data.basemap.attribution }).addTo(map);
    layer = L.layerGroup().addTo(map);
    window.candelaMiningMap = map;
    $("start").addEventListener("submit", (ev) => {
      ev.preventDefault();
      open($("category").value.trim());
    });
    for (const a of document.querySelectorAll(".resume")) {
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        $("category").value = a.dataset.category;
        open(a.dataset.category);
      });
    }
    $("send").addEventListener("click", send);
    $("search").addEventListener("click", () => search(searchQuery(), "patches"));
    $("run-sql").addEventListener("click", runSql);
    $("export").addEventListener("click", async () => {
      $("export-state").textContent = "saving…";
      try {
        const r = await call("POST", `/mine/sessions/${session.id}/annotation`);
        $("export-state").textContent = `${r.members} patch(es) in graph ${r.graph}`;
        $("export-state").dataset.members = r.members;
      } catch (e) {
        $("export-state").textContent = e.message;
      }
    });
    document.body.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", init);
})();
