// Response times per agency as a small SVG bar chart, from GET /v1/reports/response-times: for each
// agency its median and 90th-percentile time from the call to the first unit on scene, and how many
// incidents it reached. Every bar carries its name and value in text, so it reads without colour; each
// row is named by its agency (two police agencies are two rows, not "Police" twice), its kind beneath.
// The rows are the agencies this view was given: a scoped token's own, whose report holds only its own.

import { ApiError } from "./api.js";
import { t } from "./i18n.js";
import { $, clockTime, duration, kindLabel, toast } from "./ui.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const WINDOW_MS = 24 * 3600 * 1000;
const SETTLE_MS = 600;            // a scrubbed or playing moment asks once it stops moving for this long
const ARRIVAL_GAP_MS = 10_000;    // live, arrivals ask again at most this often, however many come
const NAME_CHARS = 56;            // an agency's name across the chart's width; longer ones end in "…" (whole in its tooltip)
const LAYOUT = { width: 460, row: 54, barLeft: 130, barWidth: 170, barHeight: 12, axis: 22 };

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

// A scale end in whole minutes (at least one), so the axis reads "5 min", not "4 min 37 s".
function scaleEnd(agencies) {
  const longest = Math.max(60, ...agencies.map((a) => a.p90_s || 0));
  return Math.ceil(longest / 60) * 60;
}

export class ResponseChart {
  constructor({ api, agencies, colours = new Map() }) {
    this.api = api;
    this.agencies = agencies;  // Map of id → agency: the rows, named and kinded
    this.colours = colours;    // Map of agency id → its colour (agencyColours), the bars' fill
    this.report = null;
    this.timer = null;
    this.asked = 0;
    this.askedAt = 0;
  }

  // The 24 hours up to toMs (null: up to now), once the moment settles.
  soon(toMs) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load(toMs);
    }, SETTLE_MS);
  }

  // Live, a unit reported on scene: the figures changed. One ask covers every arrival until it goes out,
  // and it goes out no sooner than ARRIVAL_GAP_MS after the last ask, so a busy hour asks every 10 s at most.
  arrived() {
    if (this.timer) return;
    const wait = Math.max(SETTLE_MS, this.askedAt + ARRIVAL_GAP_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load(null);
    }, wait);
  }

  // Live, the window ends now and slides on: ask again once the last ask is maxAgeMs old.
  refreshIfOlder(maxAgeMs) {
    if (!this.timer && Date.now() - this.askedAt >= maxAgeMs) this.load(null);
  }

  async load(toMs) {
    const ask = ++this.asked;
    const query = toMs === null ? {} : { from: new Date(toMs - WINDOW_MS).toISOString(), to: new Date(toMs).toISOString() };
    this.askedAt = Date.now();
    try {
      const report = await this.api.get("/v1/reports/response-times", query);
      if (ask !== this.asked) return;  // a newer window was asked for meanwhile
      this.report = report;
      this.render();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      toast(error.message, "error");
    }
  }

  render() {
    if (!this.report) return;
    $("#chart-caption").textContent = t("command.chart_caption", { t: clockTime(this.report.to) });
    const figures = new Map(this.report.agencies.map((row) => [row.agency_id, row]));
    const end = scaleEnd(this.report.agencies.filter((row) => this.agencies.has(row.agency_id)));
    const agencies = [...this.agencies.values()];
    const height = agencies.length * LAYOUT.row + LAYOUT.axis;
    const chart = svg("svg", { class: "response-chart", viewBox: `0 0 ${LAYOUT.width} ${height}`, width: LAYOUT.width, height, role: "img",
      "aria-label": t("command.response_times") });
    agencies.forEach((agency, index) => chart.append(this.row(agency, figures.get(agency.id), end, index * LAYOUT.row)));
    chart.append(this.axis(end, agencies.length * LAYOUT.row));
    $("#chart").replaceChildren(chart);
  }

  // The agency's name across the top; beneath, on the left its kind and count, on the right its two bars.
  row(agency, figures, end, top) {
    const name = agency.name.length > NAME_CHARS ? `${agency.name.slice(0, NAME_CHARS - 1)}…` : agency.name;
    const group = svg("g", { class: "chart-row", "data-agency": agency.id, "data-count": figures ? figures.count : 0 },
      svg("title", {}, `${agency.name} (${kindLabel(agency.kind)})`),
      svg("text", { x: 0, y: top + 14, class: "chart-agency" }, name),
      svg("text", { x: 0, y: top + 31, class: "chart-kind" }, kindLabel(agency.kind)),
      svg("text", { x: 0, y: top + 45, class: "chart-note" }, figures ? t("command.chart_count", { n: figures.count }) : ""));
    if (!figures || !figures.count) {
      group.append(svg("text", { x: LAYOUT.barLeft, y: top + 37, class: "chart-note chart-none" }, t("command.chart_none")));
      return group;
    }
    const colour = this.colours.get(agency.id) || "#999999";
    group.append(
      this.bar("median", t("command.chart_median"), figures.median_s, end, top + 21, colour),
      this.bar("p90", t("command.chart_p90"), figures.p90_s, end, top + 21 + LAYOUT.barHeight + 5, colour));
    return group;
  }

  // One bar: the median solid, the 90th percentile pale inside its outline; each names itself and its value.
  bar(kind, name, seconds, end, top, colour) {
    const width = Math.max(2, (seconds / end) * LAYOUT.barWidth);
    return svg("g", { class: `chart-bar chart-${kind}`, "data-seconds": seconds },
      svg("rect", { x: LAYOUT.barLeft, y: top, width, height: LAYOUT.barHeight, fill: colour, stroke: colour,
        "fill-opacity": kind === "median" ? 1 : 0.35 }),
      svg("text", { x: LAYOUT.barLeft + LAYOUT.barWidth + 8, y: top + LAYOUT.barHeight - 2, class: "chart-value" },
        `${name} ${duration(seconds)}`));
  }

  axis(end, top) {
    const y = top + 4;
    return svg("g", { class: "chart-axis" },
      svg("line", { x1: LAYOUT.barLeft, x2: LAYOUT.barLeft + LAYOUT.barWidth, y1: y, y2: y }),
      svg("text", { x: LAYOUT.barLeft, y: y + 14, class: "chart-note" }, "0"),
      svg("text", { x: LAYOUT.barLeft + LAYOUT.barWidth, y: y + 14, class: "chart-note", "text-anchor": "end" }, duration(end)));
  }
}
