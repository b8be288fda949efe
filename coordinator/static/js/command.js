// The commander's view: every agency at once. A map of the whole city, each agency's units and open
// incidents in large type, the incident board, one incident's full timeline and the response times.
// Live, the picture is what the server says now, kept current by the websocket (an event names the
// incident or unit it changed and the view asks the server for it again, never re-implementing the
// projection). In replay, the picture is GET /v1/state?at= for the moment on the scrubber.
// A token scoped to one agency (a dispatcher's with agency=) sees that agency only: its card, its row
// of the chart, its units and the incidents it works; the server answers for no other.

import { ApiError, Stream } from "./api.js";
import { onLangChange, register, t } from "./i18n.js";
import { agencyColours, createMap, districtLayer, incidentIcon, KIND_COLOUR, KIND_SHAPE, legend, Markers, slots, stationLayer, symbol,
  unitIcon, unitPlace } from "./map.js";
import { $, el, elapsed, kindLabel, showLink, signIn, statusLabel, typeLabel, unitTypeLabel } from "./ui.js";
import { ResponseChart } from "./command-chart.js";
import { TimeMachine } from "./command-clock.js";
import { TimelinePanel } from "./command-timeline.js";
import { STRINGS } from "./command-strings.js";

register(STRINGS);

const REFRESH_MS = 60;                       // events arriving together are fetched together
const RETRY_MS = 2000;                       // a read that failed (server unreachable) is tried again
const CHART_REFRESH_MS = 60_000;             // live, the 24-hour window of the chart slides on (arrivals: see ResponseChart.arrived)
const FIRST_EVENT_PAGES = 10;                // a scoped token looks this many pages into the log for its first event
const BULK_RELOAD = 40;                      // more changed items than this: read the whole picture again
const RECENTLY_CLOSED_MS = 60 * 60 * 1000;   // a closed incident stays on the board, faded, for an hour
const INCIDENT_Z = 10_000;                  // incidents above the units around them: always in sight, always clickable
const ENGAGED = ["dispatched", "en_route", "on_scene", "transporting", "at_hospital"];

// What the server last said of each incident or unit. Replies can arrive out of order (two reads of one
// incident in flight at once, a whole reload overlapping a single read): each read takes a ticket as it
// is sent; a view replaces the one held only if its version (its stream's count of events, which only
// grows) is at least the held one's, and a refusal (gone, or out of this token's sight) removes one only
// if no read sent after it has set it since. A closed incident stays, as the board shows it for an hour.
class Latest extends Map {
  constructor() {
    super();
    this.setBy = new Map();      // id → ticket of the read that set it
    this.removedBy = new Map();  // id → ticket of the read that removed it
  }

  offer(view, ticket) {
    const held = this.get(view.id);
    if (held ? view.version < held.version : (this.removedBy.get(view.id) || 0) > ticket) return false;
    this.set(view.id, view);
    this.setBy.set(view.id, ticket);
    this.removedBy.delete(view.id);
    return true;
  }

  refuse(id, ticket) {
    if ((this.setBy.get(id) || 0) > ticket) return false;
    this.delete(id);
    this.setBy.delete(id);
    this.removedBy.set(id, ticket);
    return true;
  }

  // A whole list: what it holds is offered, what it lacks is refused.
  replaceAll(views, ticket) {
    const ids = new Set(views.map((view) => view.id));
    for (const view of views) this.offer(view, ticket);
    for (const id of [...this.keys()]) if (!ids.has(id)) this.refuse(id, ticket);
  }
}

const live = { incidents: new Latest(), units: new Latest() };  // kept current by the stream, in either mode
let replay = null;                                               // the past picture on screen while replaying
let tickets = 0;                                                 // reads sent, in order: see Latest
const agencies = new Map();                                      // those this token may see, by id
let colours = new Map();                                         // agency id → its colour on the map and chart
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
  let me;
  ({ api, me } = await signIn("command", ["commander", "admin", "dispatcher"]));
  map = createMap($("#map"));
  incidentMarkers = new Markers(map, { onClick: (id) => select(id) });
  unitMarkers = new Markers(map);
  const [first, known, districts] = await Promise.all([
    api.get("/v1/events", { after: 0, limit: 1 }),
    api.get("/v1/agencies"),
    api.get("/v1/districts", { simplify_m: 5 }),
  ]);
  const scope = scopeOf(me);
  const visible = known.agencies.filter((agency) => scope === null || agency.id === scope);
  for (const agency of visible) agencies.set(agency.id, agency);
  colours = agencyColours(visible);  // the same list as the legend's, so the two agree
  const mapLegend = legend(map, visible);
  const outlines = districtLayer(districts).addTo(map);
  stationLayer(visible).addTo(map);
  timeline = new TimelinePanel({ api, onClose: () => select(null) });
  chart = new ResponseChart({ api, agencies, colours });
  machine = new TimeMachine({ api, onReplay: showPast, onLive: showPresent });
  const start = first.events[0] || await firstSeenEvent(first.next_after);
  if (start) machine.setStart(start.at);
  else machine.tick();
  await reloadLive();
  fitCity(outlines);
  new Stream({ path: "/v1/stream", token: api.token, after: first.head, onMessage: heard, onStatus: showLink }).start();
  timeline.render();
  chart.load(null);
  setInterval(everySecond, 1000);
  onLangChange(() => {  // every label is drawn from t() again; the link badge is ui.js's (showLink)
    mapLegend.render();
    machine.render();
    timeline.render();
    chart.render();
    render();
  });
}

// The log's first event is the scrubber's left end. A scoped token is not shown the log's first event
// (another agency's, as likely as not): its replay begins at the first event it may see, a few pages on.
async function firstSeenEvent(after) {
  for (let page = 0; page < FIRST_EVENT_PAGES; page++) {
    const found = await api.get("/v1/events", { after, limit: 500 });
    if (found.events.length) return found.events[0];
    if (found.next_after === after) return null;
    after = found.next_after;
  }
  return null;
}

// The one agency a token is scoped to, or null for one that sees every agency (as the server's
// Principal.sees_everything: commanders, administrators, and dispatchers without an agency).
function scopeOf(me) {
  return me.agency && !["commander", "admin"].includes(me.role) ? me.agency : null;
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
  const ticket = ++tickets;
  const [incidents, units] = await Promise.all([api.get("/v1/incidents", { status: "all", limit: 5000 }), api.get("/v1/units")]);
  live.incidents.replaceAll(incidents.incidents, ticket);
  live.units.replaceAll(units.units, ticket);
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
    live.incidents.offer(message.incident, ++tickets);
    return;
  }
  if (!message.stream) return;
  pending.add(message.stream);
  refreshSoon(REFRESH_MS);
  const data = message.data || {};
  if (message.type === "UnitStatusChanged" && data.status === "on_scene" && machine.mode === "live") chart.arrived();
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
// Reads of one item may overlap (an event, then another before the first answer): Latest keeps the newest.
async function refreshOne(stream) {
  const [kind, id] = stream.split("/");
  const collection = kind === "incident" ? live.incidents : live.units;
  const ticket = ++tickets;
  try {
    collection.offer(await api.get(`/v1/${kind === "incident" ? "incidents" : "units"}/${encodeURIComponent(id)}`), ticket);
  } catch (error) {
    if (error.status === 404 || error.status === 403) collection.refuse(id, ticket);
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
    const icon = unitIcon(unit, agencyKind(unit.agency_id), slot.get(unit.id), colours.get(unit.agency_id));
    const marker = unitMarkers.upsert(unit.id, place.lat, place.lon, icon, tooltip);
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
  const colour = colours.get(agency.id) || KIND_COLOUR[agency.kind] || "#999999";
  const mark = el("span", { class: "agency-mark", "aria-hidden": "true" });
  const fill = KIND_COLOUR[agency.kind] || "#999999";
  mark.innerHTML = symbol(KIND_SHAPE[agency.kind] || "circle", fill, kindLabel(agency.kind).charAt(0), 26, colour === fill ? null : colour);
  const card = el("article", { class: "agency", dataset: { agency: agency.id, kind: agency.kind } },
    el("header", {}, mark, el("h3", {}, agency.name), el("span", { class: "muted" }, t("command.units_total", { n: units.length }))),
    el("div", { class: "stats" },
      stat("available", inStatus("available"), t("command.available")),
      stat("engaged", engaged.reduce((sum, [, n]) => sum + n, 0), t("command.engaged"),
        engaged.map(([status, n]) => el("span", { class: "status", dataset: { status }, title: statusLabel(status) }, n))),
      stat("out_of_service", inStatus("out_of_service"), t("command.out_of_service")),
      stat("incidents", open, t("command.open_incidents"))));
  card.style.borderTopColor = colour;  // the agency's own colour, as its units' outline on the map
  return card;
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
