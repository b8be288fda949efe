// The selected incident: what it is, who is on it, what the server recommends now and why, and the
// dispatcher's actions (assign, cancel, note, close). Each action sends one command and shows the
// server's answer; a refusal (a unit taken meanwhile, a closed incident) is shown in its own words.

import { newKey } from "./api.js";
import { t } from "./i18n.js";
import { $, capabilityLabel, clockTime, duration, el, elapsed, kindLabel, statusLabel, toast, typeLabel, unitTypeLabel } from "./ui.js";

const RECOMMENDATION_EVERY_MS = 1500;  // units move and change status all the time: ask again at most this often
const CANCEL_REASON = "cancelled by dispatch";  // the log's words, whatever language the screen is in

export class IncidentPanel {
  constructor({ api, me, picture, onChanged, select }) {
    this.api = api;
    this.me = me;
    this.picture = picture;
    this.onChanged = onChanged;
    this.select = select;
    this.id = null;
    this.recommendation = null;
    this.unticked = new Set();   // recommended units the dispatcher chose not to send
    this.closing = false;
    this.lastAsked = 0;
    this.timer = null;
    this.keys = new Map();       // one Idempotency-Key per attempt, kept until it succeeds
    this.busy = false;           // an action is in flight: a second press waits for its answer
  }

  get incident() {
    return this.id ? this.picture.incidents.get(this.id) : null;
  }

  async show(id) {
    if (id !== this.id) {
      this.id = id;
      this.recommendation = null;
      this.unticked.clear();
      this.closing = false;
    }
    this.render();
    await this.askRecommendation();
  }

  // Something changed: the incident itself (render now) or the fleet (ask for the recommendation again, soon).
  refresh() {
    this.render();
    clearTimeout(this.timer);
    const wait = Math.max(0, this.lastAsked + RECOMMENDATION_EVERY_MS - Date.now());
    this.timer = setTimeout(() => this.askRecommendation(), wait);
  }

  async askRecommendation() {
    const incident = this.incident;
    if (!incident || incident.status !== "open") return;
    const id = incident.id;
    this.lastAsked = Date.now();
    try {
      const made = await this.api.get(`/v1/incidents/${encodeURIComponent(id)}/recommendation`);
      if (id === this.id) {
        this.recommendation = made;
        this.render();
      }
    } catch (error) {
      toast(error.message, "error");
    }
  }

  picks() {
    if (!this.recommendation) return [];
    return this.recommendation.lines.flatMap((line) => line.units)
      .filter((u) => this.mayAssign(u) && !this.unticked.has(u.unit_id));
  }

  // An agency's dispatcher sends its own units; another agency's are shown, to be asked for, not sent.
  mayAssign(pick) {
    return this.me.sees_everything || this.me.role === "admin" || pick.agency_id === this.me.agency;
  }

  key(action) {
    if (!this.keys.has(action)) this.keys.set(action, newKey());
    return this.keys.get(action);
  }

  // One action at a time, until its answer and the picture after it are in: a double press (or A held
  // down) must not send the same units twice, nor report a second cancel as a failure.
  async act(action, run, success) {
    if (this.busy) return;
    this.busy = true;
    this.render();
    try {
      await run(this.key(action));
      this.keys.delete(action);
      if (success) toast(success, "ok");
    } catch (error) {
      if (error.status && error.status !== 503) this.keys.delete(action);  // refused for good: a new attempt is new
      toast(error.message, "error");
    } finally {
      try {
        await this.onChanged(this.id);
        await this.askRecommendation();
      } finally {
        this.busy = false;
        this.render();
      }
    }
  }

  async assignRecommended() {
    const incident = this.incident;
    const units = this.picks().map((u) => u.unit_id);
    if (!incident || incident.status !== "open") return;
    if (!units.length) return toast(t("incident.nothing_to_assign"), "info");
    await this.act(`assign:${incident.id}:${units.join(",")}`,
      (key) => this.api.post(`/v1/incidents/${encodeURIComponent(incident.id)}/assignments`, { unit_ids: units }, { key }),
      t("incident.assigned", { units: units.join(", ") }));
  }

  async cancel(assignment) {
    await this.act(`cancel:${assignment.id}`,
      () => this.api.post(`/v1/assignments/${encodeURIComponent(assignment.id)}/cancel`, { reason: CANCEL_REASON }),
      t("incident.cancelled", { unit: assignment.unit_id }));
  }

  async addNote(text) {
    await this.act(`note:${this.id}:${text}`,
      (key) => this.api.post(`/v1/incidents/${encodeURIComponent(this.id)}/notes`, { text }, { key }));
  }

  async close(disposition) {
    const body = disposition ? { disposition } : undefined;
    this.closing = false;
    await this.act(`close:${this.id}`, () => this.api.post(`/v1/incidents/${encodeURIComponent(this.id)}/close`, body),
      t("incident.closed_ok"));
  }

  focusNote() {
    $("#note-text")?.focus();
  }

  render() {
    const incident = this.incident;
    $("#incident-none").hidden = Boolean(incident);
    const box = $("#incident-detail");
    box.hidden = !incident;
    if (!incident) return;
    const typing = document.activeElement && box.contains(document.activeElement) && document.activeElement.matches("textarea, input");
    if (typing) return this.renderQuietly(incident);  // never wipe what the dispatcher is writing
    box.replaceChildren(this.head(incident), this.assignments(incident), this.recommended(incident), this.notes(incident),
      this.closeBox(incident));
  }

  // While a note or disposition is being typed, redraw only the parts that hold no input.
  renderQuietly(incident) {
    for (const [selector, part] of [["#incident-head", this.head], ["#incident-assignments", this.assignments], ["#incident-recommendation", this.recommended]]) {
      $(selector)?.replaceWith(part.call(this, incident));
    }
  }

  head(incident) {
    const duplicates = incident.possible_duplicate_of.map((id) => {
      const other = this.picture.incidents.get(id);
      return el("button", { type: "button", class: "link", onclick: () => this.select(id) },
        other ? `P${other.priority} ${typeLabel(other)} ${other.address || ""}` : id.slice(0, 8));
    });
    return el("header", { id: "incident-head", class: "incident-head", dataset: { status: incident.status } },
      el("div", { class: "incident-title" },
        el("span", { class: "priority big", dataset: { p: incident.priority }, "aria-label": `${t("priority")} ${incident.priority}` }, incident.priority),
        el("div", {},
          el("h2", {}, typeLabel(incident)),
          el("div", { class: "incident-address" }, incident.address || `${incident.location.lat.toFixed(5)}, ${incident.location.lon.toFixed(5)}`))),
      el("div", { class: "incident-facts" },
        el("span", { class: `badge state-${incident.status}` }, statusLabel(incident.status)),
        el("span", {}, t("incident.received", { at: clockTime(incident.reported_at) }), " · ",
          incident.closed_at  // a closed incident's clock has stopped
            ? el("time", {}, elapsed(incident.reported_at, Date.parse(incident.closed_at)))
            : el("time", { dataset: { since: incident.reported_at } }, elapsed(incident.reported_at))),
        el("span", { class: "muted" }, `#${incident.id.slice(0, 8)}`)),
      incident.description ? el("p", { class: "incident-description" }, incident.description) : null,
      el("div", { class: "incident-districts muted" },
        incident.districts.map((d) => `${d.agency_id} ${d.name}`).join(" · ")),
      duplicates.length ? el("div", { class: "duplicate-warning", role: "alert" }, t("dispatch.duplicate_of", { n: duplicates.length }), " ", ...duplicates) : null,
      incident.disposition ? el("div", {}, t("incident.disposition"), ": ", incident.disposition) : null);
  }

  assignments(incident) {
    const rows = incident.assignments.map((a) => {
      const unit = this.picture.units.get(a.unit_id);
      let ack;
      if (!a.active) ack = el("span", { class: "muted" }, t("incident.ended", { reason: t(`end.${a.end_reason}`) }));
      else if (a.acknowledged_at) ack = el("span", { class: "acked", dataset: { acked: "true" } }, "✓ ", t("incident.acked_at", { at: clockTime(a.acknowledged_at) }));
      else if (a.unacknowledged_at) ack = el("span", { class: "unacked", role: "alert" }, "⚠ ", t("incident.not_acked"));
      else ack = el("span", { class: "waiting" }, "… ", t("incident.waiting"), " ", el("time", { dataset: { since: a.assigned_at } }, elapsed(a.assigned_at)));
      return el("tr", { dataset: { unit: a.unit_id, active: String(a.active) }, class: a.active ? "" : "ended",
        title: t("incident.assigned_at", { at: clockTime(a.assigned_at) }) },
        el("td", { class: "unit-id" }, a.unit_id, unit ? el("div", { class: "muted unit-type" }, unitTypeLabel(unit.type)) : null),
        el("td", {}, unit && a.active ? el("span", { class: "status", dataset: { status: unit.status } }, statusLabel(unit.status)) : null),
        el("td", { class: "ack" }, ack),
        el("td", {}, a.active && incident.status === "open"
          ? el("button", { type: "button", class: "btn btn-small", disabled: this.busy, onclick: () => this.cancel(a), "aria-label": t("incident.cancel_unit", { unit: a.unit_id }) }, t("action.cancel"))
          : null));
    });
    return el("section", { id: "incident-assignments", class: "incident-section" },
      el("h3", {}, t("incident.assigned_units")),
      rows.length ? el("table", { class: "assignments" }, el("tbody", {}, ...rows)) : el("p", { class: "muted" }, t("dispatch.unassigned")));
  }

  recommended(incident) {
    const section = el("section", { id: "incident-recommendation", class: "incident-section" }, el("h3", {}, t("incident.recommended")));
    if (incident.status !== "open") return section;
    const made = this.recommendation;
    if (!made) {
      section.append(el("p", { class: "muted" }, t("incident.asking")));
      return section;
    }
    for (const line of made.lines) {
      const need = line.count - line.already_assigned;
      section.append(el("div", { class: "rec-line" },
        el("div", { class: "rec-line-head" },
          el("strong", {}, `${kindLabel(line.kind)} · ${capabilityLabel(line.capability)} × ${line.count}`),
          line.already_assigned ? el("span", { class: "muted" }, " ", t("incident.already", { n: line.already_assigned })) : null,
          line.short ? el("span", { class: "badge badge-warn" }, t("incident.short", { n: line.short })) : null),
        need <= 0 && !line.units.length ? el("div", { class: "muted" }, "✓ ", t("incident.line_filled")) : null,
        ...line.units.map((pick) => this.pickRow(pick))));
    }
    for (const cost of made.coverage_cost) {
      section.append(el("div", { class: "coverage-warning" }, "⚠ ",
        t("incident.coverage", { district: `${cost.agency_id} ${cost.district_name}`, capability: capabilityLabel(cost.capability), units: cost.left_by.join(", ") })));
    }
    const count = this.picks().length;
    section.append(el("button", {
      type: "button", id: "assign-recommended", class: "btn btn-primary btn-wide", disabled: count === 0 || this.busy, onclick: () => this.assignRecommended(),
    }, t("incident.assign_n", { n: count }), " ", el("kbd", {}, "A")));
    return section;
  }

  pickRow(pick) {
    const id = `pick-${pick.unit_id}`;
    const mine = this.mayAssign(pick);
    const box = el("input", {
      type: "checkbox", id, checked: mine && !this.unticked.has(pick.unit_id), disabled: !mine, dataset: { unit: pick.unit_id },
      onchange: (event) => {
        if (event.target.checked) this.unticked.delete(pick.unit_id);
        else this.unticked.add(pick.unit_id);
        this.render();
      },
    });
    return el("label", { class: "pick", for: id, title: pick.reason },
      box,
      el("span", { class: "pick-unit" }, pick.unit_id),
      el("span", { class: "pick-eta" }, t("incident.eta", { eta: duration(pick.eta_s) })),
      el("span", { class: "muted" }, `${(pick.distance_m / 1000).toFixed(1)} km`),
      pick.mutual_aid ? el("span", { class: "badge badge-warn" }, t("incident.mutual_aid", { agency: pick.agency_id })) : null,
      mine ? null : el("span", { class: "badge" }, t("incident.other_agency", { agency: pick.agency_id })),
      el("span", { class: "pick-reason muted" }, pick.reason));
  }

  notes(incident) {
    const list = el("ol", { class: "notes" }, ...incident.notes.map((note) =>
      el("li", {}, el("span", { class: "muted" }, `${clockTime(note.at)} ${note.author}: `), note.text)));
    const section = el("section", { id: "incident-notes", class: "incident-section" }, el("h3", {}, t("incident.notes")), list);
    if (incident.status !== "open") return section;
    const text = el("textarea", { id: "note-text", rows: "2", maxlength: "4000", placeholder: t("incident.note_placeholder") });
    const submit = async (event) => {
      event.preventDefault();
      const value = text.value.trim();
      if (!value) return;
      text.blur();
      await this.addNote(value);
      text.value = "";
    };
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) submit(event);
      if (event.key === "Escape") text.blur();
    });
    section.append(el("form", { class: "note-form", onsubmit: submit }, text,
      el("button", { type: "submit", class: "btn" }, t("incident.add_note"))));
    return section;
  }

  closeBox(incident) {
    if (incident.status !== "open") return el("section", { id: "incident-close" });
    if (!this.closing) {
      return el("section", { id: "incident-close", class: "incident-section" },
        el("button", { type: "button", class: "btn btn-danger", onclick: () => { this.closing = true; this.render(); $("#close-disposition")?.focus(); } }, t("incident.close")));
    }
    const disposition = el("input", { id: "close-disposition", maxlength: "200", placeholder: t("incident.disposition") });
    return el("section", { id: "incident-close", class: "incident-section" },
      el("form", { class: "close-form", onsubmit: (event) => { event.preventDefault(); this.close(disposition.value.trim()); } },
        disposition,
        el("button", { type: "submit", class: "btn btn-danger", disabled: this.busy }, t("incident.close_confirm")),
        el("button", { type: "button", class: "btn", onclick: () => { this.closing = false; this.render(); } }, t("action.cancel_form"))));
  }
}
