// One incident's full story, from GET /v1/incidents/{id}/timeline: every event in log order with its
// time, what happened, who did it and the particulars. While replaying, the events after the moment
// shown stay listed but dimmed, so the commander sees both what was known then and what came next.

import { ApiError } from "./api.js";
import { label, t } from "./i18n.js";
import { $, clockTime, dateTime, duration, el, statusLabel, toast, typeLabel } from "./ui.js";

const REFRESH_MS = 150;  // events about one incident come in bursts: read its timeline once per burst

const chip = (status) => el("span", { class: "status", dataset: { status } }, statusLabel(status));

// The particulars of each event type, as text or nodes; unknown types show no details.
const DETAILS = {
  IncidentReported: (d, incident) => [
    label("type", d.incident_type, incident && incident.type === d.incident_type ? incident.type_label : undefined),
    ` · ${t("priority.short", { n: d.priority })}`,
    d.address ? ` · ${d.address}` : "",
  ],
  RecommendationMade: (d) => {
    const units = d.lines.flatMap((line) => line.units.map((unit) => unit.unit_id));
    const short = d.lines.reduce((sum, line) => sum + (line.short || 0), 0);
    const trigger = label("trigger", d.trigger);
    return [
      units.length ? t("detail.recommended", { trigger, units: units.join(", ") }) : t("detail.recommended_none", { trigger }),
      short ? ` · ${t("detail.shortfall", { n: short })}` : "",
    ];
  },
  UnitAssigned: (d) => d.unit_id,
  AssignmentAcknowledged: (d) => d.unit_id,
  AssignmentUnacknowledged: (d) => t("detail.unacknowledged", { unit: d.unit_id, t: duration(d.waited_s) }),
  AssignmentEnded: (d) => `${d.unit_id}: ${label("reason", d.reason)}`,
  UnitStatusChanged: (d) => [el("strong", {}, d.unit_id), " ", chip(d.previous), " → ", chip(d.status)],
  NoteAdded: (d) => el("q", {}, d.text),
  IncidentClosed: (d) => (d.disposition ? t("detail.disposition", { d: d.disposition }) : ""),
};

export class TimelinePanel {
  constructor({ api, onClose }) {
    this.api = api;
    this.onClose = onClose;
    this.incidentId = null;
    this.incident = null;
    this.events = [];
    this.momentMs = null;
    this.timer = null;
    $("#timeline-close").addEventListener("click", () => {
      this.clear();
      this.onClose();
    });
  }

  async show(incidentId) {
    this.incidentId = incidentId;
    this.incident = null;
    this.events = [];
    this.render();
    await this.load();
  }

  clear() {
    this.incidentId = null;
    this.render();
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  async load() {
    const id = this.incidentId;
    if (!id) return;
    const path = `/v1/incidents/${encodeURIComponent(id)}`;
    try {
      const [incident, timeline] = await Promise.all([this.api.get(path), this.api.get(`${path}/timeline`)]);
      if (id !== this.incidentId) return;  // another incident was chosen meanwhile
      this.incident = incident;
      this.events = timeline.events;
      this.render();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      toast(error.message, "error");
    }
  }

  // The moment shown while replaying (ms), or null when live: later events are dimmed.
  setMoment(ms) {
    this.momentMs = ms;
    for (const row of document.querySelectorAll("#timeline tr[data-at]")) this.markLater(row);
  }

  markLater(row) {
    const later = this.momentMs !== null && Date.parse(row.dataset.at) > this.momentMs;
    row.classList.toggle("later", later);
    if (later) row.title = t("command.later");
    else row.removeAttribute("title");
  }

  render() {
    const root = $("#timeline");
    $("#timeline-close").hidden = !this.incidentId;
    if (!this.incidentId) {
      root.replaceChildren(el("p", { class: "muted hint" }, t("command.timeline_hint")));
      return;
    }
    root.replaceChildren(...(this.incident ? [this.header(this.incident)] : []), this.table());
    for (const row of root.querySelectorAll("tr[data-at]")) this.markLater(row);
  }

  header(incident) {
    return el("div", { class: "timeline-head", dataset: { incident: incident.id } },
      el("span", { class: "priority", dataset: { p: incident.priority }, title: t("priority") }, incident.priority),
      el("div", {},
        el("strong", {}, typeLabel(incident)),
        el("div", { class: "muted" }, incident.address || `${incident.location.lat.toFixed(5)}, ${incident.location.lon.toFixed(5)}`)),
      el("span", { class: "incident-state", dataset: { state: incident.status } }, statusLabel(incident.status)));
  }

  table() {
    const head = el("tr", {}, ...["col_time", "col_event", "col_actor", "col_detail"].map((key) => el("th", { scope: "col" }, t(`command.${key}`))));
    const rows = this.events.map((event) => {
      const details = DETAILS[event.type];
      return el("tr", { dataset: { type: event.type, seq: event.seq, at: event.at } },
        el("td", { class: "time", title: dateTime(event.at) }, clockTime(event.at)),
        el("td", { class: "event-type" }, label("event", event.type)),
        el("td", { class: "actor" }, event.actor),
        el("td", { class: "detail" }, details ? details(event.data, this.incident) : ""));
    });
    return el("table", { class: "timeline-table" }, el("thead", {}, head), el("tbody", {}, rows));
  }
}
