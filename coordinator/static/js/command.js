// The commander's view: every agency at once. A map of the whole city, each agency's units and open
// incidents in large type, the incident board, one incident's full timeline and the response times.
// Live, the picture is what the server says now, kept current by the websocket (an event names the
// incident or unit it changed and the view asks the server for it again, never re-implementing the
// projection). In replay, the picture is GET /v1/state?at= for the moment on the scrubber.

import { ApiError, Stream } from "./api.js";
import { onLangChange, register, t } from "./i18n.js";
import { createMap, districtLayer, incidentIcon, KIND_COLOUR, KIND_SHAPE, legend, Markers, slots, stationLayer, symbol, unitIcon,
  unitPlace } from "./map.js";
import { $, el, elapsed, kindLabel, showLink, signIn, statusLabel, typeLabel, unitTypeLabel } from "./ui.js";
import { ResponseChart } from "./command-chart.js";
import { TimeMachine } from "./command-clock.js";
import { TimelinePanel } from "./command-timeline.js";
import { STRINGS } from "./command-strings.js";

register(STRINGS);

const REFRESH_MS = 60;                       // events arriving together are fetched together
const RETRY_MS = 2000;                       // a read that failed (server unreachable) is tried again
const CHART_REFRESH_MS = 60_000;             // live, the 24-hour window of the chart slides on
const BULK_RELOAD = 40;                      // more changed items than this: read the whole picture again
const RECENTLY_CLOSED_MS = 60 * 60 * 1000;   // a closed incident stays on the board, faded, for an hour
const INCIDENT_Z = 10_000;                  // incidents above the units around them: always in sight, always clickable
const ENGAGED = ["dispatched", "en_route", "on_scene", "transporting", "at_hospital"];

const live = { incidents: new Map(), units: new Map() };  // kept current by the stream, in either mode
let replay = null;                                         // the past picture on screen while replaying
const agencies = new Map();
const pending = new Set();                                 // "incident/ID" and "unit/ID" to read again
let selectedId = null;
let api;
let map;
let incidentMarkers;
let unitMarkers;
let machine;
let timeline;
let chart;
let refreshTimer = null;
let mapFrame = 0;

async function main() {
  ({ api } = await signIn("command", ["commander", "admin", "dispatcher"]));
  map = createMap($("#map"));
  incidentMarkers = new Markers(map, { onClick: (id) => select(id) });
  unitMarkers = new Markers(map);
  const mapLegend = legend(map);
  const [first, known, districts] = await Promise.all([
    api.get("/v1/events", { after: 0, limit: 1 }),
    api.get("/v1/agencies"),
    api.get("/v1/districts", { simplify_m: 5 }),
  ]);
  for (const agency of known.agencies) agencies.set(agency.id, agency);
  const outlines = districtLayer(districts).addTo(map);
  stationLayer(known.agencies).addTo(map);
  timeline = new TimelinePanel({ api, onClose: () => select(null) });
  chart = new ResponseChart({ api, agencies });
  machine = new TimeMachine({ api, onReplay: showPast, onLive: showPresent });
  if (first.events.length) machine.setStart(first.events[0].at);
  await reloadLive();
  fitCity(outlines);
  new Stream({ path: "/v1/stream", token: api.token, after: first.head, onMessage: heard, onStatus: showLink }).start();
  timeline.render();
  chart.load(null);
  setInterval(everySecond, 1000);
  onLangChange(() => {
    mapLegend.render();
    machine.render();
    timeline.render();
    chart.render();
    render();
  });
}

// The whole city in view. Fractional zoom lets it fill the map rather than the next power of two
// below; the agency cards above the map have their height by now, so the map knows its own size.
function fitCity(outlines) {
  if (!outlines.getLayers().length) return;
  map.options.zoomSnap = 0.25;
  map.invalidateSize();
  map.fitBounds(outlines.getBounds(), { padding: [10, 10] });
}

// -- the picture ---------------------------------------------------------------------------------
function shown() {
  return machine.mode === "replay" && replay ? replay : live;
}

function showPast(doc) {
  replay = { incidents: byId(doc.incidents), units: byId(doc.units) };
  render();
  chart.soon(Date.parse(doc.at));
}

function showPresent() {
  replay = null;
  render();
  chart.soon(null);
}

function byId(items) {
  return new Map(items.map((item) => [item.id, item]));
}

async function reloadLive() {
  const [incidents, units] = await Promise.all([api.get("/v1/incidents", { status: "all", limit: 5000 }), api.get("/v1/units")]);
  live.incidents = byId(incidents.incidents);
  live.units = byId(units.units);
  if (machine.mode === "live") render();
}

// -- the live feed -------------------------------------------------------------------------------
function heard(message) {
  if (message.type === "telemetry") {
    const unit = live.units.get(message.unit_id);
    if (unit) unit.position = message.position;
    if (machine.mode === "live") renderMapSoon();
    return;
  }
  if (message.type === "incident_in_scope") {
    live.incidents.set(message.incident.id, message.incident);
    return;
  }
  if (!message.stream) return;
  pending.add(message.stream);
  refreshSoon(REFRESH_MS);
  const data = message.data || {};
  if (message.type === "UnitStatusChanged" && data.status === "on_scene" && machine.mode === "live") chart.soon(null);
  if (selectedId && (message.stream === `incident/${selectedId}` || data.incident_id === selectedId)) timeline.refreshSoon();
}

function refreshSoon(delay) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshPending, delay);
}

// The stream will not send these events again, so what could not be read now is asked for again later.
async function refreshPending() {
  const streams = [...pending];
  pending.clear();
  try {
    if (streams.length > BULK_RELOAD) await reloadLive();
    else await Promise.all(streams.map(refreshOne));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    for (const stream of streams) pending.add(stream);
    refreshSoon(RETRY_MS);
    return;
  }
  if (machine.mode === "live") render();
}

// Read one incident or unit again; one that is gone or out of this token's sight leaves the picture.
async function refreshOne(stream) {
  const [kind, id] = stream.split("/");
  const collection = kind === "incident" ? live.incidents : live.units;
  try {
    collection.set(id, await api.get(`/v1/${kind === "incident" ? "incidents" : "units"}/${encodeURIComponent(id)}`));
  } catch (error) {
    if (error.status === 404 || error.status === 403) collection.delete(id);
    else throw error;
  }
}

// Positions come many times a second across a fleet: draw the map once per frame at most.
function renderMapSoon() {
  if (mapFrame) return;
  mapFrame = requestAnimationFrame(() => {
    mapFrame = 0;
    if (machine.mode === "live") renderMap();
  });
}

function everySecond() {
  machine.tick();
  if (machine.mode !== "live") return;
  renderIncidentList(boardIncidents(), Date.now());
  chart.refreshIfOlder(CHART_REFRESH_MS);
}

// -- selection -----------------------------------------------------------------------------------
function select(id) {
  selectedId = id;
  if (id) timeline.show(id);
  render();
}

// -- rendering -----------------------------------------------------------------------------------
// Open incidents, then those closed within the last hour of the moment shown; urgent first, then oldest.
function boardIncidents() {
  const at = machine.momentMs();
  return [...shown().incidents.values()]
    .filter((i) => i.status === "open" || (i.closed_at && at - Date.parse(i.closed_at) < RECENTLY_CLOSED_MS))
    .sort((a, b) => (a.status !== b.status ? (a.status === "open" ? -1 : 1) : a.priority - b.priority || Date.parse(a.reported_at) - Date.parse(b.reported_at)));
}

function render() {
  const incidents = boardIncidents();
  renderMap(incidents);
  renderAgencies(incidents);
  renderIncidentList(incidents, machine.momentMs());
  timeline.setMoment(machine.mode === "replay" ? machine.momentMs() : null);
}

function renderMap(incidents = boardIncidents()) {
  for (const incident of incidents) {
    const tooltip = `${typeLabel(incident)} · ${incident.address || ""}`;
    const marker = incidentMarkers.upsert(incident.id, incident.location.lat, incident.location.lon,
      incidentIcon(incident, incident.id === selectedId), tooltip);
    marker.setZIndexOffset(INCIDENT_Z);
    describe(marker, { incident: incident.id, status: incident.status });
  }
  incidentMarkers.keepOnly(new Set(incidents.map((i) => i.id)));
  const units = [...shown().units.values()];
  const slot = slots(units);
  for (const unit of units) {
    const place = unitPlace(unit);
    const tooltip = `${unit.id} · ${unitTypeLabel(unit.type)} · ${statusLabel(unit.status)}`;
    const marker = unitMarkers.upsert(unit.id, place.lat, place.lon, unitIcon(unit, agencyKind(unit.agency_id), slot.get(unit.id)), tooltip);
    describe(marker, { unit: unit.id, status: unit.status });
  }
  unitMarkers.keepOnly(new Set(units.map((u) => u.id)));
}

// Name a marker's element by what it shows, for assistive tools and tests.
function describe(marker, data) {
  const node = marker.getElement();
  if (node) Object.assign(node.dataset, data);
}

function agencyKind(agencyId) {
  const agency = agencies.get(agencyId);
  return agency ? agency.kind : undefined;
}

function renderAgencies(incidents) {
  const units = [...shown().units.values()];
  $("#agencies").replaceChildren(...[...agencies.values()].map((agency) => agencyCard(agency, units, incidents)));
}

function agencyCard(agency, allUnits, incidents) {
  const units = allUnits.filter((u) => u.agency_id === agency.id);
  const inStatus = (status) => units.filter((u) => u.status === status).length;
  const engaged = ENGAGED.map((status) => [status, inStatus(status)]).filter(([, n]) => n > 0);
  const open = incidents.filter((i) => i.status === "open" && i.agencies.includes(agency.id)).length;
  const mark = el("span", { class: "agency-mark", "aria-hidden": "true" });
  mark.innerHTML = symbol(KIND_SHAPE[agency.kind] || "circle", KIND_COLOUR[agency.kind] || "#999999", kindLabel(agency.kind).charAt(0), 26);
  return el("article", { class: "agency", dataset: { agency: agency.id, kind: agency.kind } },
    el("header", {}, mark, el("h3", {}, agency.name), el("span", { class: "muted" }, t("command.units_total", { n: units.length }))),
    el("div", { class: "stats" },
      stat("available", inStatus("available"), t("command.available")),
      stat("engaged", engaged.reduce((sum, [, n]) => sum + n, 0), t("command.engaged"),
        engaged.map(([status, n]) => el("span", { class: "status", dataset: { status }, title: statusLabel(status) }, n))),
      stat("out_of_service", inStatus("out_of_service"), t("command.out_of_service")),
      stat("incidents", open, t("command.open_incidents"))));
}

function stat(key, count, caption, breakdown = []) {
  return el("div", { class: "stat", dataset: { stat: key, count } },
    el("span", { class: "stat-n" }, count),
    el("span", { class: "stat-label" }, caption),
    breakdown.length ? el("span", { class: "stat-breakdown" }, breakdown) : null);
}

function renderIncidentList(incidents, atMs) {
  const units = shown().units;
  const rows = incidents.map((incident) => incidentRow(incident, units, atMs));
  $("#incident-list").replaceChildren(...(rows.length ? rows : [el("p", { class: "muted hint" }, t("command.no_incidents"))]));
}

function incidentRow(incident, units, atMs) {
  const assigned = incident.assignments.filter((a) => a.active).map((a) => units.get(a.unit_id) || { id: a.unit_id, status: "" });
  const where = incident.address || `${incident.location.lat.toFixed(4)}, ${incident.location.lon.toFixed(4)}`;
  return el("button", {
    type: "button", class: "incident-row", onclick: () => select(incident.id),
    dataset: { incident: incident.id, status: incident.status }, "aria-pressed": String(incident.id === selectedId),
  },
  el("span", { class: "priority", dataset: { p: incident.priority }, title: t("priority") }, incident.priority),
  el("span", { class: "incident-main" },
    el("strong", {}, typeLabel(incident)),
    el("span", { class: "muted" }, where),
    el("span", { class: "incident-units" }, assigned.length
      ? assigned.map((u) => el("span", { class: "status", dataset: { status: u.status, unit: u.id }, title: statusLabel(u.status) }, u.id))
      : el("span", { class: "muted" }, t("command.units_none")))),
  el("span", { class: "incident-age" }, incident.status === "open"
    ? t("command.open_for", { t: elapsed(incident.reported_at, atMs) })
    : el("span", { class: "incident-state", dataset: { state: "closed" } }, statusLabel("closed"))));
}

main();
