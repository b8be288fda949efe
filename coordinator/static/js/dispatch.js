// The dispatcher's console: the queue of open incidents, the map, the selected incident with its
// recommendation, and the unit board. What the server says is kept in `picture`; an event names the
// incident or unit it changed and the console asks the server for it again, so the console never
// re-implements the projection and never drifts from it.

import { Stream, newKey } from "./api.js";
import { onLangChange, register, t, translatePage } from "./i18n.js";
import { IncidentPanel } from "./dispatch-incident.js";
import { agencyColours, createMap, districtLayer, incidentIcon, legend, Markers, slots, stationLayer, unitIcon, unitPlace } from "./map.js";
import { $, el, elapsed, showLink, signIn, statusLabel, toast, typeLabel } from "./ui.js";
import { STRINGS } from "./dispatch-strings.js";

register(STRINGS);

const REFRESH_MS = 60;        // events arriving together are fetched together
const BULK_RELOAD = 40;       // more changed items than this: read the whole picture again
const GONE_KEPT = 2000;       // closed incidents whose last version is remembered

const picture = {
  incidents: new Map(),       // open incidents (and the selected one, open or not)
  gone: new Map(),            // incidents seen closed, by id
  units: new Map(),
  agencies: new Map(),
  types: [],
  selected: null,
  slots: new Map(),           // where each unit sits among others at the same spot on the map
  colours: new Map(),         // each agency's outline colour on the map
};

let api;
let me;
let map;
let incidentMarkers;
let unitMarkers;
let panel;
let stream;

async function main() {
  ({ api, me } = await signIn("dispatch", ["dispatcher", "admin", "commander"]));
  map = createMap($("#map"));
  incidentMarkers = new Markers(map, { onClick: (id) => select(id) });
  unitMarkers = new Markers(map);
  panel = new IncidentPanel({ api, me, picture, onChanged: refreshNow, select });
  const [head, types, agencies, districts] = await Promise.all([
    api.get("/v1/events", { after: 0, limit: 1 }),
    api.get("/v1/incident-types"),
    api.get("/v1/agencies"),
    api.get("/v1/districts", { simplify_m: 5 }),
  ]);
  picture.types = types.incident_types;
  for (const agency of agencies.agencies) picture.agencies.set(agency.id, agency);
  picture.colours = agencyColours(agencies.agencies);
  const mapLegend = legend(map, agencies.agencies);
  const outlines = districtLayer(districts).addTo(map);
  stationLayer(agencies.agencies).addTo(map);
  if (districts.features.length) map.fitBounds(outlines.getBounds(), { padding: [10, 10] });
  await reloadPicture();
  stream = new Stream({
    path: "/v1/stream", token: api.token, after: head.head, onMessage: heard,
    onStatus: (state, detail) => {
      showLink(state, detail);
      if (state === "live" && detail.resumed) toast(t("dispatch.resumed"), "ok");
    },
  }).start();
  window.commandpost = { stream, picture };
  wireKeys();
  wireNewIncident();
  setInterval(tick, 1000);
  onLangChange(() => {
    mapLegend.render();
    render();
    panel.render();
  });
}

// -- what the server says ------------------------------------------------------------------------
async function reloadPicture() {
  const [open, units] = await Promise.all([api.get("/v1/incidents", { status: "open", limit: 5000 }), api.get("/v1/units")]);
  picture.incidents = new Map(open.incidents.map((i) => [i.id, i]));
  if (picture.selected && !picture.incidents.has(picture.selected)) await fetchIncident(picture.selected);
  picture.units = new Map(units.units.map((u) => [u.id, u]));
  render();
  panel.render();
}

const dirty = { incidents: new Set(), units: new Set(), timer: null };

function heard(message) {
  if (message.type === "telemetry") {
    const unit = picture.units.get(message.unit_id);
    if (unit) {
      unit.position = message.position;
      drawUnit(unit);
    }
    return;
  }
  if (message.type === "incident_in_scope") {
    picture.incidents.set(message.incident.id, message.incident);
    render();
    return;
  }
  const [kind, id] = (message.stream || "").split("/");
  if (kind === "incident") dirty.incidents.add(id);
  else if (kind === "unit") dirty.units.add(id);
  if (message.data && message.data.unit_id) dirty.units.add(message.data.unit_id);
  if (message.data && message.data.incident_id) dirty.incidents.add(message.data.incident_id);
  clearTimeout(dirty.timer);
  dirty.timer = setTimeout(refreshDirty, REFRESH_MS);
}

async function refreshDirty() {
  const incidents = [...dirty.incidents];
  const units = [...dirty.units];
  dirty.incidents.clear();
  dirty.units.clear();
  if (incidents.length + units.length > BULK_RELOAD) return reloadPicture();
  await Promise.all([...incidents.map(fetchIncident), ...units.map(fetchUnit)]);
  render();
  if (picture.selected && (incidents.includes(picture.selected) || units.length)) panel.refresh(incidents.includes(picture.selected));
}

// After the console itself changed something: show it now rather than wait for the echo.
async function refreshNow(incidentId) {
  dirty.incidents.add(incidentId);
  await refreshDirty();
}

// Answers may overtake each other: one older than what is held (by its stream's version) is dropped.
function newer(held, fresh) {
  return !held || fresh.version >= held.version;
}

async function fetchIncident(id) {
  try {
    const incident = await api.get(`/v1/incidents/${encodeURIComponent(id)}`);
    if (!newer(picture.incidents.get(id) || picture.gone.get(id), incident)) return;
    if (incident.status === "open" || id === picture.selected) picture.incidents.set(id, incident);
    else {
      picture.incidents.delete(id);
      picture.gone.set(id, { version: incident.version });  // so a late answer from before the close is known as late
      if (picture.gone.size > GONE_KEPT) picture.gone.delete(picture.gone.keys().next().value);
    }
  } catch (error) {
    if (error.status === 404 || error.status === 403) picture.incidents.delete(id);
    else toast(error.message, "error");
  }
}

async function fetchUnit(id) {
  try {
    const unit = await api.get(`/v1/units/${encodeURIComponent(id)}`);
    if (newer(picture.units.get(id), unit)) picture.units.set(id, unit);
  } catch (error) {
    if (error.status !== 403 && error.status !== 404) toast(error.message, "error");
  }
}

// -- drawing -------------------------------------------------------------------------------------
function queue() {
  return [...picture.incidents.values()]
    .filter((i) => i.status === "open")
    .sort((a, b) => a.priority - b.priority || a.opened_at.localeCompare(b.opened_at));
}

function render() {
  renderQueue();
  renderBoard();
  incidentMarkers.keepOnly(new Set(queue().map((i) => i.id).concat(picture.selected ? [picture.selected] : [])));
  for (const incident of picture.incidents.values()) {
    if (incident.status === "open" || incident.id === picture.selected) {
      incidentMarkers.upsert(incident.id, incident.location.lat, incident.location.lon,
        incidentIcon(incident, incident.id === picture.selected), `P${incident.priority} ${typeLabel(incident)} ${incident.address || ""}`);
    }
  }
  picture.slots = slots(picture.units.values());
  for (const unit of picture.units.values()) drawUnit(unit);
}

function drawUnit(unit) {
  const place = unitPlace(unit);
  const kind = picture.agencies.get(unit.agency_id)?.kind;
  const icon = unitIcon(unit, kind, unit.position ? 0 : picture.slots.get(unit.id) || 0, picture.colours.get(unit.agency_id));
  unitMarkers.upsert(unit.id, place.lat, place.lon, icon, `${unit.id} ${statusLabel(unit.status)}`);
}

function renderQueue() {
  const open = queue();
  $("#queue-count").textContent = `(${open.length})`;
  $("#queue-empty").hidden = open.length > 0;
  $("#queue-list").replaceChildren(...open.map(queueItem));
}

function queueItem(incident) {
  const active = incident.assignments.filter((a) => a.active);
  const acked = active.filter((a) => a.acknowledged_at).length;
  const flagged = active.some((a) => a.unacknowledged_at && !a.acknowledged_at);
  return el("li", {
    class: `queue-item${incident.id === picture.selected ? " selected" : ""}`, tabindex: "0", role: "button",
    "aria-current": incident.id === picture.selected ? "true" : null, dataset: { id: incident.id },
    onclick: () => select(incident.id), onkeydown: (e) => e.key === "Enter" && select(incident.id),
  },
  el("span", { class: "priority", dataset: { p: incident.priority }, "aria-label": `${t("priority")} ${incident.priority}` }, incident.priority),
  el("div", { class: "queue-main" },
    el("div", { class: "queue-type" }, typeLabel(incident)),
    el("div", { class: "queue-address" }, incident.address || `${incident.location.lat.toFixed(5)}, ${incident.location.lon.toFixed(5)}`),
    el("div", { class: "queue-meta" },
      active.length ? el("span", { class: flagged ? "badge badge-warn" : "badge" }, t("dispatch.assigned_acked", { n: active.length, acked })) : el("span", { class: "badge badge-warn" }, t("dispatch.unassigned")),
      incident.possible_duplicate_of.length ? el("span", { class: "badge badge-dup" }, t("dispatch.duplicate_short")) : null)),
  el("time", { class: "queue-since", datetime: incident.reported_at, dataset: { since: incident.reported_at } }, elapsed(incident.reported_at)));
}

function renderBoard() {
  const byAgency = new Map();
  for (const unit of picture.units.values()) {
    if (!byAgency.has(unit.agency_id)) byAgency.set(unit.agency_id, []);
    byAgency.get(unit.agency_id).push(unit);
  }
  const groups = [...byAgency.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([agencyId, units]) => {
    const agency = picture.agencies.get(agencyId);
    const available = units.filter((u) => u.status === "available").length;
    return el("section", { class: "board-agency", dataset: { kind: agency?.kind || "" } },
      el("h3", {}, agency ? agency.name : agencyId, " ", el("span", { class: "count" }, t("dispatch.available_of", { n: available, total: units.length }))),
      el("div", { class: "chips" }, ...units.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true })).map(unitChip)));
  });
  $("#board-agencies").replaceChildren(...groups);
}

function unitChip(unit) {
  const incident = unit.incident_id ? picture.incidents.get(unit.incident_id) : null;
  return el("button", {
    type: "button", class: "chip status", dataset: { status: unit.status, unit: unit.id },
    title: `${unit.id}: ${statusLabel(unit.status)}${incident ? " · " + typeLabel(incident) : ""}`,
    onclick: () => (unit.incident_id ? select(unit.incident_id) : map.panTo([unitPlace(unit).lat, unitPlace(unit).lon])),
  }, unit.id);
}

function tick() {
  const now = Date.now();
  for (const node of document.querySelectorAll("[data-since]")) node.textContent = elapsed(node.dataset.since, now);
}

// -- choosing and acting ---------------------------------------------------------------------------
async function select(id) {
  picture.selected = id;
  if (!picture.incidents.has(id)) await fetchIncident(id);
  render();
  await panel.show(id);
  const incident = picture.incidents.get(id);
  if (incident) map.panTo([incident.location.lat, incident.location.lon]);
  document.querySelector(`.queue-item[data-id="${CSS.escape(id)}"]`)?.scrollIntoView({ block: "nearest" });
}

function step(by) {
  const open = queue();
  if (!open.length) return;
  const at = open.findIndex((i) => i.id === picture.selected);
  const next = at < 0 ? (by > 0 ? 0 : open.length - 1) : Math.min(open.length - 1, Math.max(0, at + by));
  select(open[next].id);
}

function wireKeys() {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if ($("#new-dialog").open) {  // a call is being entered, wherever the focus is (the map, to place it)
      if (event.key === "Escape") $("#new-dialog").close();
      return;
    }
    if (event.target.closest("input, textarea, select")) return;
    const key = event.key.toLowerCase();
    const actions = {
      n: () => openNewIncident(),
      a: () => panel.assignRecommended(),
      j: () => step(1),
      arrowdown: () => step(1),
      k: () => step(-1),
      arrowup: () => step(-1),
      "/": () => panel.focusNote(),
      "?": () => toggleShortcuts(),
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });
  $("#shortcuts-toggle").addEventListener("click", toggleShortcuts);
}

function toggleShortcuts() {
  const box = $("#shortcuts");
  box.hidden = !box.hidden;
  $("#shortcuts-toggle").setAttribute("aria-expanded", String(!box.hidden));
}

// -- a new incident ------------------------------------------------------------------------------
let reportKey = null;
let placed = null;

function wireNewIncident() {
  $("#new-incident").addEventListener("click", openNewIncident);
  $("#new-cancel").addEventListener("click", () => $("#new-dialog").close());
  $("#new-type").addEventListener("change", () => {
    const type = picture.types.find((x) => x.id === $("#new-type").value);
    if (type) $("#new-priority").value = String(type.default_priority);
  });
  $("#new-form").addEventListener("submit", (event) => {
    event.preventDefault();
    report();
  });
  $("#new-dialog").addEventListener("close", () => {
    placed?.remove();
    placed = null;
  });
  // A click on the map while the form is open places the call; a right-click opens the form there.
  map.on("click", (event) => {
    if ($("#new-dialog").open) place(event.latlng);
  });
  map.on("contextmenu", (event) => {
    openNewIncident();
    place(event.latlng);
  });
  for (const field of ["#new-lat", "#new-lon"]) $(field).addEventListener("change", () => {
    const lat = Number($("#new-lat").value);
    const lon = Number($("#new-lon").value);
    if (Number.isFinite(lat) && Number.isFinite(lon)) place({ lat, lng: lon }, false);
  });
}

function openNewIncident() {
  const dialog = $("#new-dialog");
  if (dialog.open) return;
  reportKey = newKey();
  const typeSelect = $("#new-type");
  const options = picture.types.map((type) => ({ id: type.id, label: typeLabel({ type: type.id, type_label: type.label }) }))
    .sort((a, b) => a.label.localeCompare(b.label));
  typeSelect.replaceChildren(el("option", { value: "" }, "—"), ...options.map((o) => el("option", { value: o.id }, o.label)));
  $("#new-priority").replaceChildren(...[1, 2, 3, 4, 5].map((p) => el("option", { value: String(p) }, `${t("priority")} ${p}`)));
  $("#new-priority").value = "3";
  for (const field of ["#new-address", "#new-description", "#new-lat", "#new-lon"]) $(field).value = "";
  const centre = map.getCenter();
  $("#new-lat").value = centre.lat.toFixed(6);
  $("#new-lon").value = centre.lng.toFixed(6);
  $("#new-error").hidden = true;
  translatePage(dialog);
  dialog.show();  // not modal: the map stays clickable to place the call
  typeSelect.focus();
}

function place(latlng, fill = true) {
  if (fill) {
    $("#new-lat").value = latlng.lat.toFixed(6);
    $("#new-lon").value = latlng.lng.toFixed(6);
  }
  placed?.remove();
  placed = window.L.circleMarker([latlng.lat, latlng.lng], { radius: 10, color: "#fff", weight: 3, dashArray: "3 3" }).addTo(map);
}

async function report() {
  const error = $("#new-error");
  const lat = Number($("#new-lat").value);
  const lon = Number($("#new-lon").value);
  if (!$("#new-type").value) return showError(error, t("new.need_type"));
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || $("#new-lat").value === "" || $("#new-lon").value === "") {
    return showError(error, t("new.need_location"));
  }
  const body = { type: $("#new-type").value, priority: Number($("#new-priority").value), location: { lat, lon } };
  const address = $("#new-address").value.trim();
  const description = $("#new-description").value.trim();
  if (address) body.address = address;
  if (description) body.description = description;
  $("#new-submit").disabled = true;
  try {
    const incident = await api.post("/v1/incidents", body, { key: reportKey });
    picture.incidents.set(incident.id, incident);
    $("#new-dialog").close();
    toast(t("new.reported", { type: typeLabel(incident) }), "ok");
    if (incident.possible_duplicate_of.length) toast(t("dispatch.duplicate_of", { n: incident.possible_duplicate_of.length }), "error");
    await select(incident.id);
  } catch (err) {
    showError(error, err.message);  // the same key on a retry: a report that did land is not made twice
  } finally {
    $("#new-submit").disabled = false;
  }
}

function showError(box, message) {
  box.textContent = message;
  box.hidden = false;
}

main().catch((error) => toast(error.message, "error"));
