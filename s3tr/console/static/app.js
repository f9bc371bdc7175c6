/* s3tr instructor console: vanilla JavaScript + SVG, no library, no request outside this origin.
 * Every call goes to the /api/v1 instructor endpoints with "Authorization: Bearer <token>";
 * the token lives in sessionStorage (this tab only). */
"use strict";

(() => {
  const API = "/api/v1";
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "s3tr.console.token";

  const CONTROLS = {
    crop_group: "Groupe de culture déclaré",
    min_activity: "Activité minimale sur prairie",
    grassland_not_ploughed: "Prairie permanente non retournée",
    fallow: "Jachère non fauchée ni travaillée",
  };
  const STATES = {
    open: "Ouvert",
    photo_requested: "Photo demandée",
    photo_received: "Photo reçue",
    decided: "Décidé",
    cancelled: "Annulé",
  };
  const FLAGS = { green: "vert", orange: "orange", red: "rouge" };
  const ACTIONS = {
    case_opened: "Dossier ouvert",
    case_updated: "Dossier mis à jour par le traitement de nuit",
    case_decided: "Décision de l'instructeur",
    case_open: "Dossier rouvert",
    case_photo_requested: "Photo demandée",
    case_photo_received: "Photo reçue",
    case_assigned: "Dossier attribué",
    case_cancelled: "Dossier annulé",
    photo_requested: "Photo demandée",
    photo_received: "Photo reçue",
    field_visit: "Visite sur place",
    declaration_corrected: "Déclaration corrigée",
    declaration_loaded: "Déclaration chargée",
  };
  const INDICES = [
    ["ndvi", "NDVI (végétation)", "#1e6b34"],
    ["ndmi", "NDMI (humidité)", "#0b5cad"],
    ["ndwi", "NDWI (eau)", "#6a3d9a"],
    ["bsi", "BSI (sol nu)", "#8a4b00"],
    ["ndti", "NDTI (végétation sèche)", "#b08d00"],
  ];
  const EVENTS = {
    mowing: "fauche",
    bare_soil: "sol nu",
    ploughing: "labour",
    harvest: "récolte",
    grazing: "pâturage",
  };
  const REASONS = {
    no_evidence: "aucune donnée",
    too_small: "parcelle trop petite",
    not_enough_observations: "trop peu d'observations",
    cloudy_gap_too_long: "période nuageuse trop longue",
    marker_not_enough_data: "marqueur sans assez de données",
    conflicting_markers: "marqueurs contradictoires",
    window_not_over: "période de contrôle non terminée",
    activity_detected: "activité détectée",
    mowing_detected: "fauche détectée",
    no_activity_detected: "aucune activité détectée",
    no_activity_seen: "aucune activité observée",
    activity_uncertain: "activité incertaine",
    mowing_straddles_window: "fauche à cheval sur la période de contrôle",
    crop_group_confirmed: "groupe de culture confirmé",
    crop_group_contradicted: "groupe de culture contredit",
    crop_group_uncertain: "groupe de culture incertain",
    no_crop_prediction: "pas de prédiction de culture",
    declared_group_not_modelled: "groupe déclaré non modélisé",
    declared_group_rare_in_training: "groupe déclaré rare à l'apprentissage",
    heterogeneous_parcel: "parcelle hétérogène",
    no_ploughing_detected: "aucun labour détecté",
    ploughing_detected: "labour détecté",
    bare_soil_uncertain: "sol nu incertain",
    bare_soil_dry_vegetation: "végétation sèche plutôt que sol nu",
    bare_soil_no_lost_cover: "sol d'apparence nue sans couvert perdu",
    fallow_undisturbed: "jachère non perturbée",
    fallow_mowed_in_protected_period: "jachère fauchée en période protégée",
    fallow_tilled_in_protected_period: "jachère travaillée en période protégée",
    fallow_mowing_straddles_period: "fauche à cheval sur la période protégée",
    fallow_mowing_near_period_edge: "fauche au bord de la période protégée",
    fallow_disturbance_uncertain: "perturbation de la jachère incertaine",
  };
  const ROLES = { latest: "dernière image claire", before: "avant", after: "après" };

  const $ = (sel) => document.querySelector(sel);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    queue: [],
    selected: 0,
    communes: {},
    instructors: null,
    caseData: null,
    chips: null,
    chipIndex: 0,
    target: null,
    blobs: [],
    shownIndices: new Set(["ndvi"]),
  };

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }
  const frDate = (iso) => (iso ? new Date(iso.length <= 10 ? iso + "T00:00:00Z" : iso) : null);
  function fmtDate(iso) {
    const d = frDate(iso);
    return d ? d.toLocaleDateString("fr-FR", { timeZone: "UTC" }) : "—";
  }
  function fmtDateTime(iso) {
    const d = frDate(iso);
    return d ? d.toLocaleString("fr-FR", { timeZone: "Europe/Paris" }) : "—";
  }
  const fmtEur = (v) => Number(v || 0).toLocaleString("fr-FR", { maximumFractionDigits: 0 });
  const isoDay = (d) => d.toISOString().slice(0, 10);

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${state.token}`, "Accept-Language": "fr", ...(options.headers || {}) };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(API + path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
    });
    if (res.status === 401) {
      logout("Votre jeton n'est plus valide : reconnectez-vous.");
      throw new ApiError(401, "non authentifié");
    }
    if (!res.ok) {
      let detail = `erreur ${res.status}`;
      try {
        const problem = await res.json();
        detail = problem.detail || problem.title || detail;
      } catch (_) { /* not JSON */ }
      throw new ApiError(res.status, detail);
    }
    if (options.blob) return res.blob();
    return res.json();
  }

  async function blobUrl(path) {
    const url = URL.createObjectURL(await api(path, { blob: true }));
    state.blobs.push(url);
    return url;
  }
  function freeBlobs() {
    for (const u of state.blobs) URL.revokeObjectURL(u);
    state.blobs = [];
  }

  function show(view) {
    for (const id of ["login-view", "queue-view", "case-view"]) $("#" + id).hidden = id !== view;
    $("#account").hidden = view === "login-view";
  }

  function setStatus(message, ok) {
    const s = $("#action-status");
    s.textContent = message;
    s.className = "status " + (ok ? "ok" : "ko");
  }

  // ---------------------------------------------------------------- login
  async function login(token) {
    state.token = token;
    const me = await api("/me");
    if (me.role !== "instructor") throw new ApiError(403, "ce jeton n'est pas celui d'un instructeur");
    state.me = me;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#whoami").textContent = `${me.username} — DDT ${me.department || "?"}`;
    $("#dept").textContent = me.department || "";
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.me = null;
    freeBlobs();
    $("#login-error").textContent = message || "";
    if (location.hash !== "" && location.hash !== "#/") location.hash = "#/";
    show("login-view");
    $("#token").value = "";
    $("#token").focus();
  }

  // ---------------------------------------------------------------- queue
  function filters() {
    const f = $("#filters");
    return {
      control: f.control.value,
      commune: f.commune.value,
      state: f.state.value,
      deadline: f.deadline.value,
    };
  }

  async function loadQueue() {
    const f = filters();
    const params = new URLSearchParams();
    if (f.state === "active") params.set("active", "true");
    else if (f.state !== "all") params.set("state", f.state);
    if (f.control) params.set("control", f.control);
    if (f.commune) params.set("commune", f.commune);
    if (f.deadline) params.set("deadline_before", f.deadline);
    const items = [];
    let total = 0;
    // the API pages by 500 and filters (commune included); the queue is read whole (capped), the
    // count is the API's total
    for (let offset = 0; offset < 5000; offset += 500) {
      params.set("limit", "500");
      params.set("offset", String(offset));
      const page = await api(`/cases?${params}`);
      total = page.total;
      items.push(...page.items);
      if (items.length >= total || page.items.length === 0) break;
    }
    state.queue = items;
    state.selected = Math.min(state.selected, Math.max(0, state.queue.length - 1));
    renderQueue(total);
  }

  function renderQueue(total) {
    const body = $("#queue tbody");
    body.replaceChildren();
    state.queue.forEach((c, i) => {
      const row = el(
        "tr",
        { "aria-selected": i === state.selected ? "true" : "false", "data-case": c.case_id, tabindex: i === state.selected ? "0" : "-1" },
        el("td", { class: "num", text: fmtEur(c.priority) }),
        el("td", {}, el("a", { href: `#/cas/${c.case_id}`, text: c.id_parcel })),
        el("td", { text: CONTROLS[c.control] || c.control }),
        el("td", { text: STATES[c.state] || c.state }),
        el("td", { text: c.commune || "—" }),
        el("td", { text: fmtDate(c.deadline) }),
        el("td", { text: (c.reasons || []).map((r) => REASONS[r] || r).join(", "), title: (c.reasons || []).join(", ") }),
      );
      row.addEventListener("click", (ev) => {
        if (ev.target.tagName !== "A") location.hash = `#/cas/${c.case_id}`;
      });
      body.append(row);
    });
    const byState = {};
    const byControl = {};
    for (const c of state.queue) {
      byState[c.state] = (byState[c.state] || 0) + 1;
      byControl[c.control] = (byControl[c.control] || 0) + 1;
    }
    const parts = Object.entries(byState).map(([k, n]) => `${STATES[k] || k} : ${n}`);
    const controls = Object.entries(byControl).map(([k, n]) => `${CONTROLS[k] || k} : ${n}`);
    $("#counts").textContent =
      `${total} dossier${total > 1 ? "s" : ""}` +
      (state.queue.length < total ? ` (${state.queue.length} affichés)` : "") +
      (parts.length ? ` — ${parts.join(", ")}` : "") +
      (controls.length ? ` — ${controls.join(", ")}` : "");
  }

  function moveSelection(delta) {
    if (!state.queue.length) return;
    state.selected = Math.max(0, Math.min(state.queue.length - 1, state.selected + delta));
    const rows = $("#queue tbody").children;
    for (let i = 0; i < rows.length; i++) {
      rows[i].setAttribute("aria-selected", i === state.selected ? "true" : "false");
      rows[i].setAttribute("tabindex", i === state.selected ? "0" : "-1");
    }
    rows[state.selected].focus();
    rows[state.selected].scrollIntoView({ block: "nearest" });
  }

  async function fillFilterOptions() {
    const sel = $("#f-control");
    if (sel.options.length === 1) {
      for (const [k, v] of Object.entries(CONTROLS)) sel.append(el("option", { value: k, text: v }));
    }
    state.communes = await api("/console/communes");
    const communes = [...new Set(Object.values(state.communes))].sort();
    const cs = $("#f-commune");
    const current = cs.value;
    cs.replaceChildren(el("option", { value: "", text: "Toutes les communes" }));
    for (const c of communes) cs.append(el("option", { value: c, text: c }));
    cs.value = current;
  }

  // ---------------------------------------------------------------- case page
  async function openCase(id) {
    freeBlobs();
    setStatus("", true);
    const seq = (state.seq = (state.seq || 0) + 1);
    const [detail, chips] = await Promise.all([api(`/cases/${id}`), api(`/cases/${id}/chips`)]);
    if (seq !== state.seq) return; // a later navigation won the race: drop this answer
    state.caseData = detail;
    state.chips = chips;
    state.target = null;
    const latest = (chips.chips || []).map((c, i) => [c, i]).filter(([c]) => c.kind === "truecolor");
    state.chipIndex = latest.length ? latest[latest.length - 1][1] : 0;
    const idx = state.queue.findIndex((c) => c.case_id === detail.case_id);
    if (idx >= 0) state.selected = idx;
    renderCase();
  }

  function renderCase() {
    const c = state.caseData;
    $("#case-title").textContent = `Parcelle ${c.id_parcel} — ${CONTROLS[c.control] || c.control}`;
    const facts = [
      ["État", STATES[c.state] || c.state],
      ["Feu automatique", FLAGS[c.flag] || c.flag],
      ["Priorité", `${fmtEur(c.priority)} €`],
      ["Échéance", fmtDate(c.deadline)],
      ["PACAGE", c.pacage || "—"],
      ["Surface", c.surf_parc ? `${c.surf_parc.toLocaleString("fr-FR")} ha` : "—"],
      ["Commune", c.commune || (state.chips && state.chips.commune) || "—"],
      ["Campagne", String(c.campaign)],
      ["Version", String(c.version)],
    ];
    if (c.outcome) facts.splice(1, 0, ["Verdict de l'instructeur", FLAGS[c.outcome] || c.outcome]);
    $("#case-facts").replaceChildren(
      ...facts.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))),
    );
    renderChipPicker();
    renderMap();
    renderIndexPicker();
    renderChart();
    renderSeriesTable();
    renderDecision();
    renderHistory();
    renderPhotos();
    renderActions();
  }

  // ---- map: the chip image, the outline, photos, requests and the clicked target
  function frame() {
    const chips = (state.chips && state.chips.chips) || [];
    const chip = chips[state.chipIndex];
    if (chip && chip.lonlat_to_px) {
      const [a, b, c0, d, e, f] = chip.lonlat_to_px;
      const [pa, pb, pc, pd, pe, pf] = chip.px_to_lonlat;
      return {
        chip,
        w: chip.size[0],
        h: chip.size[1],
        toPx: (lon, lat) => [a * lon + b * lat + c0, d * lon + e * lat + f],
        toLonLat: (x, y) => [pa * x + pb * y + pc, pd * x + pe * y + pf],
      };
    }
    // no chip: a local equirectangular frame around the outline
    const ring = outlineRings(state.caseData.outline).flat();
    if (!ring.length) return null;
    const lons = ring.map((p) => p[0]);
    const lats = ring.map((p) => p[1]);
    const k = Math.cos(((Math.min(...lats) + Math.max(...lats)) / 2) * (Math.PI / 180));
    const pad = 0.15 * Math.max((Math.max(...lons) - Math.min(...lons)) * k, Math.max(...lats) - Math.min(...lats));
    const west = Math.min(...lons) - pad / k;
    const north = Math.max(...lats) + pad;
    const scale = 100 / Math.max((Math.max(...lons) - west) * k + pad, north - Math.min(...lats) + pad);
    const w = Math.ceil(((Math.max(...lons) - west) * k + pad) * scale);
    const h = Math.ceil((north - Math.min(...lats) + pad) * scale);
    return {
      chip: null,
      w,
      h,
      toPx: (lon, lat) => [(lon - west) * k * scale, (north - lat) * scale],
      toLonLat: (x, y) => [west + x / scale / k, north - y / scale],
    };
  }

  function outlineRings(geom) {
    if (!geom) return [];
    if (geom.type === "Polygon") return geom.coordinates;
    if (geom.type === "MultiPolygon") return geom.coordinates.flat();
    return [];
  }

  function renderChipPicker() {
    const chips = (state.chips && state.chips.chips) || [];
    const box = $("#chip-picker");
    box.replaceChildren();
    if (!chips.length) {
      box.append(el("p", { class: "help", text: "Aucune image découpée pour cette parcelle : contour seul." }));
      return;
    }
    chips.forEach((c, i) => {
      const kind = c.kind === "ndvi" ? "NDVI" : "couleurs naturelles";
      const roles = String(c.role || "")
        .split(",")
        .map((r) => {
          const [what, when] = r.split(":");
          return when ? `${ROLES[what] || what} l'événement du ${fmtDate(when)}` : ROLES[what] || what;
        })
        .join(", ");
      box.append(
        el("button", {
          type: "button",
          "aria-pressed": i === state.chipIndex ? "true" : "false",
          title: roles,
          "data-chip": c.file,
          text: `${fmtDate(c.date)} · ${kind}`,
          onclick: () => {
            state.chipIndex = i;
            renderChipPicker();
            renderMap();
          },
        }),
      );
    });
  }

  async function renderMap() {
    const wrap = $("#map-wrap");
    const fr = frame();
    if (!fr) {
      wrap.replaceChildren(el("p", { class: "help", text: "Pas de contour connu pour cette parcelle." }));
      return;
    }
    const c = state.caseData;
    const unit = Math.max(fr.w, fr.h) / 100; // stroke widths in chip pixels
    const desc = fr.chip
      ? `Image ${fr.chip.kind === "ndvi" ? "NDVI" : "en couleurs naturelles"} du ${fmtDate(fr.chip.date)} (Sentinel-2, pixels de 20 m), contour de la parcelle ${c.id_parcel}, ${c.photos.length} photo(s)`
      : `Contour de la parcelle ${c.id_parcel}, ${c.photos.length} photo(s)`;
    const root = svg("svg", {
      class: "map",
      viewBox: `0 0 ${fr.w} ${fr.h}`,
      role: "img",
      "aria-label": desc,
      "data-chip": fr.chip ? fr.chip.file : "",
    });
    root.append(svg("title", { text: desc }));
    const image = svg("image", { x: 0, y: 0, width: fr.w, height: fr.h, preserveAspectRatio: "none" });
    root.append(image);
    // outline: from the chip's pixel outline when there is one, else projected from WGS84
    const rings = fr.chip && fr.chip.outline_px ? outlineRings(fr.chip.outline_px) : outlineRings(c.outline).map((r) => r.map(([lon, lat]) => fr.toPx(lon, lat)));
    for (const ring of rings) {
      root.append(svg("polygon", { class: "outline", points: ring.map((p) => p.join(",")).join(" "), fill: "none", stroke: "#111", "stroke-width": 2.2 * unit }));
      root.append(svg("polygon", { points: ring.map((p) => p.join(",")).join(" "), fill: "none", stroke: "#ffe14d", "stroke-width": 1.1 * unit }));
    }
    for (const r of c.photo_requests) {
      if (r.target && r.target.type === "Point") drawTarget(root, fr, r.target.coordinates, r.heading_deg, unit, "#0b5cad", `Point demandé le ${fmtDate(r.created_at)}`);
    }
    for (const p of c.photos) {
      if (p.lon === null || p.lat === null) continue;
      const [x, y] = fr.toPx(p.lon, p.lat);
      const colour = p.accepted ? "#1e6b34" : "#a3161d";
      const g = svg("g", { class: "photo-marker", "data-photo": p.id });
      g.append(svg("title", { text: `Photo ${p.id} (${p.view || "vue"}) ${p.accepted ? "acceptée" : "refusée"}${p.heading_deg !== null ? `, direction ${Math.round(p.heading_deg)}°` : ""}` }));
      if (p.heading_deg !== null) {
        const a = (p.heading_deg * Math.PI) / 180;
        const len = 9 * unit;
        const spread = 0.35;
        const p1 = [x + len * Math.sin(a - spread), y - len * Math.cos(a - spread)];
        const p2 = [x + len * Math.sin(a + spread), y - len * Math.cos(a + spread)];
        g.append(svg("path", { d: `M${x},${y} L${p1} A${len},${len} 0 0 1 ${p2} Z`, fill: colour, "fill-opacity": 0.45, stroke: colour, "stroke-width": 0.5 * unit }));
      }
      g.append(svg("circle", { cx: x, cy: y, r: 1.8 * unit, fill: colour, stroke: "#fff", "stroke-width": 0.6 * unit }));
      root.append(g);
    }
    if (state.target) drawTarget(root, fr, state.target, numberOrNull($("#pr-heading").value), unit, "#ff7b00", "Nouveau point de prise de vue", "new-target");
    root.addEventListener("click", (ev) => {
      const pt = root.createSVGPoint();
      pt.x = ev.clientX;
      pt.y = ev.clientY;
      const local = pt.matrixTransform(root.getScreenCTM().inverse());
      const [lon, lat] = fr.toLonLat(local.x, local.y);
      state.target = [Number(lon.toFixed(7)), Number(lat.toFixed(7))];
      $("#pr-lon").value = state.target[0];
      $("#pr-lat").value = state.target[1];
      renderMap();
    });
    wrap.replaceChildren(root);
    if (fr.chip) {
      const id = state.caseData.case_id;
      try {
        const url = await blobUrl(`/cases/${id}/chips/${encodeURIComponent(fr.chip.file)}`);
        if (state.caseData && state.caseData.case_id === id) image.setAttribute("href", url);
      } catch (err) {
        root.setAttribute("aria-label", `${desc} (image indisponible : ${err.message})`);
      }
    }
  }

  function drawTarget(root, fr, [lon, lat], heading, unit, colour, label, cls) {
    const [x, y] = fr.toPx(lon, lat);
    const g = svg("g", { class: cls || "target" });
    g.append(svg("title", { text: label }));
    g.append(svg("circle", { cx: x, cy: y, r: 2.5 * unit, fill: "none", stroke: colour, "stroke-width": 0.9 * unit }));
    g.append(svg("path", { d: `M${x - 3.5 * unit},${y} H${x + 3.5 * unit} M${x},${y - 3.5 * unit} V${y + 3.5 * unit}`, stroke: colour, "stroke-width": 0.5 * unit }));
    if (heading !== null && heading !== undefined) {
      const a = (heading * Math.PI) / 180;
      g.append(svg("line", { x1: x, y1: y, x2: x + 8 * unit * Math.sin(a), y2: y - 8 * unit * Math.cos(a), stroke: colour, "stroke-width": 0.8 * unit }));
    }
    root.append(g);
  }

  const numberOrNull = (v) => (v === "" || v === null || v === undefined || Number.isNaN(Number(v)) ? null : Number(v));

  // ---- chart
  function renderIndexPicker() {
    const box = $("#index-picker");
    const legend = box.querySelector("legend");
    box.replaceChildren(legend);
    for (const [key, label] of INDICES) {
      const id = `idx-${key}`;
      const input = el("input", { type: "checkbox", id, value: key, checked: state.shownIndices.has(key) });
      input.addEventListener("change", () => {
        if (input.checked) state.shownIndices.add(key);
        else state.shownIndices.delete(key);
        renderChart();
      });
      box.append(el("label", { for: id }, input, label));
    }
  }

  function caseEvents() {
    const out = [];
    const evidence = state.caseData.evidence || {};
    for (const [k, v] of Object.entries(evidence)) {
      if (k.endsWith("_dates") && Array.isArray(v)) {
        const kind = k.slice(0, -6);
        for (const d of v) out.push({ date: String(d).slice(0, 10), kind });
      }
    }
    return out;
  }

  function controlWindow() {
    const cases = (state.chips && state.chips.cases) || [];
    const mine = cases.find((c) => c.case_id === state.caseData.case_id) || cases.find((c) => c.control === state.caseData.control);
    return mine && mine.window ? mine.window : null;
  }

  function renderChart() {
    const c = state.caseData;
    const series = c.series || [];
    const wrap = $("#chart-wrap");
    const W = 640, H = 270, L = 46, R = 12, T = 16, B = 34;
    const events = caseEvents();
    const win = controlWindow();
    const times = series.map((p) => Date.parse(p.date + "T00:00:00Z"));
    for (const e of events) times.push(Date.parse(e.date + "T00:00:00Z"));
    if (win) times.push(Date.parse(win.start + "T00:00:00Z"), Date.parse(win.end + "T00:00:00Z"));
    const nValid = series.filter((p) => p.valid).length;
    const label = `Série temporelle de la parcelle ${c.id_parcel} : ${series.length} acquisitions dont ${nValid} valides` +
      (events.length ? `, ${events.length} événement(s) détecté(s)` : "") + (win ? `, période de contrôle du ${fmtDate(win.start)} au ${fmtDate(win.end)}` : "");
    const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
    root.append(svg("title", { text: label }));
    if (!times.length) {
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#4a5560", text: "Pas de série temporelle pour cette parcelle" }));
      wrap.replaceChildren(root);
      return;
    }
    let t0 = Math.min(...times);
    let t1 = Math.max(...times);
    if (t1 === t0) { t0 -= 86400000 * 5; t1 += 86400000 * 5; }
    const y0 = -0.4, y1 = 1.0;
    const X = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const Y = (v) => T + ((y1 - Math.max(y0, Math.min(y1, v))) / (y1 - y0)) * (H - T - B);
    if (win) {
      const xa = X(Date.parse(win.start + "T00:00:00Z"));
      const xb = X(Date.parse(win.end + "T00:00:00Z"));
      root.append(svg("rect", { class: "control-window", x: xa, y: T, width: Math.max(1, xb - xa), height: H - T - B, fill: "#fbe8b8" }));
      root.append(svg("text", { x: xa + 3, y: T + 11, "font-size": 10, fill: "#6b4500", text: "période de contrôle" }));
    }
    // axes and grid
    for (let v = -0.4; v <= 1.0001; v += 0.2) {
      const y = Y(v);
      root.append(svg("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e3e7eb" }));
      root.append(svg("text", { x: L - 5, y: y + 3, "text-anchor": "end", "font-size": 10, fill: "#4a5560", text: v.toFixed(1) }));
    }
    const first = new Date(t0);
    for (let m = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 1)); m.getTime() <= t1; m = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1))) {
      const x = X(m.getTime());
      root.append(svg("line", { x1: x, x2: x, y1: T, y2: H - B, stroke: "#e3e7eb" }));
      root.append(svg("text", { x, y: H - B + 14, "text-anchor": "middle", "font-size": 10, fill: "#4a5560", text: m.toLocaleDateString("fr-FR", { month: "short", timeZone: "UTC" }) }));
    }
    root.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#6b7780" }));
    root.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#6b7780" }));
    for (const e of events) {
      const x = X(Date.parse(e.date + "T00:00:00Z"));
      const g = svg("g", { class: "event" });
      g.append(svg("title", { text: `${EVENTS[e.kind] || e.kind} détecté(e) le ${fmtDate(e.date)}` }));
      g.append(svg("line", { x1: x, x2: x, y1: T, y2: H - B, stroke: "#a3161d", "stroke-dasharray": "4 3", "stroke-width": 1.5 }));
      g.append(svg("text", { x: x + 3, y: H - B - 4, "font-size": 10, fill: "#a3161d", text: EVENTS[e.kind] || e.kind }));
      root.append(g);
    }
    for (const [key, name, colour] of INDICES) {
      if (!state.shownIndices.has(key)) continue;
      const valid = series.filter((p) => p.valid && p[key] !== null);
      if (valid.length > 1) {
        root.append(svg("polyline", { class: `line-${key}`, points: valid.map((p) => `${X(Date.parse(p.date + "T00:00:00Z"))},${Y(p[key])}`).join(" "), fill: "none", stroke: colour, "stroke-width": 1.6 }));
      }
      const g = svg("g", { class: `points-${key}` });
      for (const p of series) {
        const x = X(Date.parse(p.date + "T00:00:00Z"));
        if (p.valid && p[key] !== null) {
          g.append(svg("circle", { class: "obs valid", cx: x, cy: Y(p[key]), r: 3.2, fill: colour }, svg("title", { text: `${name} ${fmtDate(p.date)} : ${p[key].toFixed(3)} (valide)` })));
        } else {
          // invalid (cloud, shadow): hollow grey, drawn at its value when known, else on the axis
          const y = p[key] !== null ? Y(p[key]) : H - B;
          g.append(svg("circle", { class: "obs invalid", cx: x, cy: y, r: 3, fill: "#fff", stroke: "#6b7780", "stroke-width": 1.2 }, svg("title", { text: `${name} ${fmtDate(p.date)} : ${p[key] !== null ? p[key].toFixed(3) : "—"} (non valide)` })));
        }
      }
      root.append(g);
    }
    wrap.replaceChildren(root);
  }

  function renderSeriesTable() {
    const series = state.caseData.series || [];
    const table = el("table", { class: "series" },
      el("caption", { class: "sr-only", text: "Observations de la série temporelle" }),
      el("thead", {}, el("tr", {}, ...["Date", "Valide", "NDVI", "NDMI", "NDWI", "BSI", "NDTI", "Part claire"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...series.map((p) => el("tr", {},
        el("td", { text: fmtDate(p.date) }),
        el("td", { text: p.valid ? "oui" : "non" }),
        ...["ndvi", "ndmi", "ndwi", "bsi", "ndti", "valid_fraction"].map((k) => el("td", { class: "num", text: p[k] == null ? "—" : p[k].toFixed(3) })),
      ))),
    );
    $("#series-table").replaceChildren(table);
  }

  // ---- decision, history, photos
  function renderDecision() {
    const c = state.caseData;
    const current = c.decisions.find((d) => d.is_current) || c.decisions[c.decisions.length - 1];
    const box = $("#decision");
    if (!current) {
      box.replaceChildren(el("p", { text: "Aucune décision automatique enregistrée." }));
      return;
    }
    box.replaceChildren(
      el("p", {}, el("span", { class: `badge flag-${current.flag}`, text: `feu ${FLAGS[current.flag] || current.flag}` }), ` ${current.explanation}`),
      el("p", { class: "help", text: `Règles ${current.ruleset_version}, révision ${current.revision}, le ${fmtDateTime(current.created_at)}.` }),
      ...(c.outcome ? [el("p", {}, el("span", { class: `badge flag-${c.outcome}`, text: `verdict ${FLAGS[c.outcome]}` }), ` ${c.outcome_note || ""}`)] : []),
    );
  }

  function renderHistory() {
    const c = state.caseData;
    const items = [];
    for (const d of c.decisions) items.push([d.created_at, `Décision automatique n° ${d.revision} : feu ${FLAGS[d.flag] || d.flag}${d.is_current ? " (actuelle)" : ""}`]);
    for (const a of c.audit) {
      const det = a.details || {};
      let text = `${ACTIONS[a.action] || a.action} — ${a.actor}`;
      if (det.outcome) text += ` : ${FLAGS[det.outcome] || det.outcome}`;
      if (det.note || det.comment) text += ` « ${det.note || det.comment} »`;
      items.push([a.at, text]);
    }
    items.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    $("#history").replaceChildren(...items.map(([at, text]) => el("li", {}, el("time", { datetime: at, text: fmtDateTime(at) }), ` ${text}`)));
  }

  function renderPhotos() {
    const c = state.caseData;
    const req = $("#requests");
    req.replaceChildren(
      c.photo_requests.length
        ? el("ul", {}, ...c.photo_requests.map((r) => el("li", { class: "request", text: `Demande du ${fmtDate(r.created_at)} (${{ pending: "en attente", fulfilled: "satisfaite", expired: "expirée", cancelled: "annulée" }[r.state] || r.state}), avant le ${fmtDate(r.deadline)}${r.heading_deg !== null ? `, direction ${Math.round(r.heading_deg)}°` : ""} : ${r.instructions}` })))
        : el("p", { class: "help", text: "Aucune demande de photo." }),
    );
    const box = $("#photos");
    box.replaceChildren();
    for (const p of c.photos) {
      const img = el("img", { alt: `Photo ${p.id} (${p.view === "closeup" ? "gros plan" : "vue générale"}) prise le ${fmtDateTime(p.taken_at)}` });
      box.append(el("article", { class: "photo", "data-photo": p.id }, img, el("div", {},
        el("p", {}, el("strong", { text: p.accepted ? "Acceptée" : "Refusée" }), ` — ${p.view === "closeup" ? "gros plan" : "vue générale"}, prise le ${fmtDateTime(p.taken_at)}` +
          (p.lat !== null ? ` à ${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}` : "") + (p.heading_deg !== null ? `, direction ${Math.round(p.heading_deg)}°` : "")),
        el("ul", { class: "checks" }, ...p.checks.map((ch) => el("li", { class: ch.passed === true ? "check-ok" : ch.passed === false ? "check-ko" : "check-na", text: `${ch.passed === true ? "✓" : ch.passed === false ? "✗" : "?"} ${ch.message}` }))),
      )));
      const id = c.case_id;
      blobUrl(`/cases/${id}/photos/${p.id}/content`).then((u) => {
        if (state.caseData && state.caseData.case_id === id) img.src = u;
      }).catch(() => { img.alt += " (image indisponible)"; });
    }
    if (!c.photos.length) box.append(el("p", { class: "help", text: "Aucune photo reçue." }));
  }

  async function renderActions() {
    const c = state.caseData;
    const active = ["open", "photo_requested", "photo_received"].includes(c.state);
    $("#photo-form").hidden = !active;
    $("#decide-form").hidden = !active;
    $("#reopen-form").hidden = c.state !== "decided";
    const deadline = $("#pr-deadline");
    if (!deadline.value) deadline.value = isoDay(new Date(Date.now() + 14 * 86400000));
    $("#pr-lon").value = state.target ? state.target[0] : "";
    $("#pr-lat").value = state.target ? state.target[1] : "";
    if (state.instructors === null) state.instructors = await api("/console/instructors");
    const sel = $("#assign-user");
    sel.replaceChildren(...state.instructors.map((u) => el("option", { value: u.user_id, text: u.display_name || u.username, selected: u.user_id === c.assigned_to })));
  }

  async function act(label, fn) {
    const c = state.caseData;
    try {
      await fn(c);
    } catch (err) {
      if (err.status !== 401) setStatus(`${label} : ${err.message}`, false);
      return false;
    }
    await openCase(c.case_id);
    setStatus(`${label} : enregistré.`, true);
    return true;
  }

  // ---------------------------------------------------------------- routing
  async function route() {
    if (!state.token) {
      show("login-view");
      $("#token").focus();
      return;
    }
    try {
      const m = location.hash.match(/^#\/cas\/(\d+)$/);
      // the token check and the case's data are fetched together (one round trip less)
      const who = state.me ? null : login(state.token);
      if (m) {
        show("case-view");
        await Promise.all([who, openCase(Number(m[1]))]);
        $("#case-title").setAttribute("tabindex", "-1");
        $("#case-title").focus();
      } else {
        await who;
        show("queue-view");
        await fillFilterOptions();
        await loadQueue();
        const row = $("#queue tbody").children[state.selected];
        if (row) row.focus();
      }
    } catch (err) {
      if (err.status === 404) {
        show("queue-view");
        $("#counts").textContent = `Dossier introuvable dans votre département.`;
      } else if (err.status !== 401) {
        $("#login-error").textContent = err.message;
      }
    }
  }

  function wire() {
    $("#login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const token = $("#token").value.trim();
      if (!token) {
        $("#login-error").textContent = "Saisissez votre jeton.";
        return;
      }
      try {
        state.me = null;
        await login(token);
        $("#login-error").textContent = "";
        if (location.hash === "#/" || location.hash === "") await route();
        else location.hash = "#/";
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        state.token = null;
        $("#login-error").textContent = err.status === 403 ? err.message : "Jeton refusé.";
      }
    });
    $("#logout").addEventListener("click", () => logout(""));
    $("#filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.selected = 0;
      loadQueue();
    });
    $("#filters").addEventListener("change", () => {
      state.selected = 0;
      loadQueue();
    });
    $("#f-reset").addEventListener("click", () => setTimeout(() => { state.selected = 0; loadQueue(); }, 0));
    $("#pr-heading").addEventListener("input", () => { if (state.target) renderMap(); });
    // typed coordinates (keyboard users) place the target like a click on the map
    for (const id of ["#pr-lon", "#pr-lat"]) {
      $(id).addEventListener("change", () => {
        const lon = numberOrNull($("#pr-lon").value);
        const lat = numberOrNull($("#pr-lat").value);
        state.target = lon !== null && lat !== null ? [lon, lat] : null;
        renderMap();
      });
    }

    $("#photo-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = ev.target;
      const instructions = f.instructions.value.trim();
      if (!instructions) return setStatus("Demande de photo : écrivez la consigne pour l'exploitant.", false);
      if (!f.deadline.value) return setStatus("Demande de photo : choisissez une date limite.", false);
      const body = { deadline: f.deadline.value, instructions, expected_version: state.caseData.version };
      if (state.target) { body.target_lon = state.target[0]; body.target_lat = state.target[1]; }
      const heading = numberOrNull(f.heading.value);
      if (heading !== null) body.heading_deg = heading;
      act("Demande de photo", (c) => api(`/cases/${c.case_id}/photo-requests`, { method: "POST", body })).then((ok) => { if (ok) f.instructions.value = ""; });
    });
    $("#decide-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = ev.target;
      const outcome = f.outcome.value;
      const comment = f.comment.value.trim();
      if (!outcome) return setStatus("Décision : choisissez vert ou rouge.", false);
      if (!comment) return setStatus("Décision : le commentaire est obligatoire.", false);
      act("Décision", (c) => api(`/cases/${c.case_id}/decision`, { method: "POST", body: { outcome, comment, expected_version: c.version } })).then((ok) => { if (ok) f.comment.value = ""; });
    });
    $("#assign-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const user = Number(ev.target.user.value);
      act("Attribution", (c) => api(`/cases/${c.case_id}/assignment`, { method: "POST", body: { user_id: user, expected_version: c.version } }));
    });
    $("#reopen-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const comment = ev.target.comment.value.trim();
      if (!comment) return setStatus("Réouverture : écrivez le motif.", false);
      act("Réouverture", (c) => api(`/cases/${c.case_id}/reopen`, { method: "POST", body: { comment, expected_version: c.version } })).then((ok) => { if (ok) ev.target.comment.value = ""; });
    });

    document.addEventListener("keydown", (ev) => {
      const tag = (ev.target.tagName || "").toLowerCase();
      if (["input", "textarea", "select"].includes(tag) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const inQueue = !$("#queue-view").hidden;
      const inCase = !$("#case-view").hidden;
      if (inQueue) {
        if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); moveSelection(1); }
        else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); moveSelection(-1); }
        else if (ev.key === "Enter" && state.queue[state.selected] && tag !== "button" && tag !== "a") {
          ev.preventDefault();
          location.hash = `#/cas/${state.queue[state.selected].case_id}`;
        }
      } else if (inCase) {
        if (ev.key === "Escape") location.hash = "#/";
        else if ((ev.key === "j" || ev.key === "k") && state.queue.length) {
          const next = state.selected + (ev.key === "j" ? 1 : -1);
          if (next >= 0 && next < state.queue.length) location.hash = `#/cas/${state.queue[next].case_id}`;
        }
      }
    });
    window.addEventListener("hashchange", route);
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire();
    route();
  });
})();
