// The map: districts as the base (no tiles, no internet), stations, incidents and units. Every symbol
// says what it is twice, by colour and by shape or letter, so a colour-blind dispatcher reads it too:
// the agency kind is the shape, the status is the colour and a letter, an incident is a diamond with
// its priority number. Colours are the Okabe-Ito palette, chosen to stay apart under colour blindness.

import { t } from "./i18n.js";
import { statusLabel } from "./ui.js";

const L = window.L;

export const KIND_SHAPE = { police: "square", fire: "triangle", ems: "circle" };
export const KIND_COLOUR = { police: "#0072B2", fire: "#D55E00", ems: "#009E73" };
export const STATUS_STYLE = {
  available: { colour: "#009E73", letter: "A" },
  dispatched: { colour: "#E69F00", letter: "D" },
  en_route: { colour: "#F0E442", letter: "R" },
  on_scene: { colour: "#D55E00", letter: "S" },
  transporting: { colour: "#CC79A7", letter: "T" },
  at_hospital: { colour: "#56B4E9", letter: "H" },
  out_of_service: { colour: "#999999", letter: "X" },
};
export const PRIORITY_COLOUR = { 1: "#D55E00", 2: "#E69F00", 3: "#F0E442" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

const SHAPES = {
  square: '<rect x="3" y="3" width="22" height="22" rx="2"/>',
  triangle: '<polygon points="14,1 27,26 1,26"/>',
  circle: '<circle cx="14" cy="14" r="12"/>',
  diamond: '<polygon points="14,0 28,14 14,28 0,14"/>',
  house: '<polygon points="14,2 26,12 26,26 2,26 2,12"/>',
};

// An SVG symbol as markup: a shape, its fill, and a letter or number in it. Also used by legends.
export function symbol(shape, fill, text = "", size = 28, outline = null) {
  const dark = ["#F0E442", "#E69F00", "#56B4E9", "#999999", "#ffffff"].includes(fill);
  const stroke = outline ? `stroke="${outline}" stroke-width="3"` : 'stroke="#111" stroke-width="1.5"';
  return `<svg class="symbol" width="${size}" height="${size}" viewBox="0 0 28 28" aria-hidden="true">` +
    `<g fill="${fill}" ${stroke}>${SHAPES[shape]}</g>` +
    `<text x="14" y="${shape === "triangle" ? 22 : 19}" text-anchor="middle" font-size="12" font-weight="700" ` +
    `fill="${dark ? "#111" : "#fff"}">${escapeHtml(text)}</text></svg>`;
}

// slot: the unit's place among units at the same spot (a station's engine, truck and medic), drawn
// around it in a ring of screen pixels so each stays readable at any zoom; slot 0 is the spot itself.
// colour: the unit's agency's outline (agencyColours), so two police agencies' cars tell apart.
export function unitIcon(unit, kind, slot = 0, colour = null) {
  const style = STATUS_STYLE[unit.status] || STATUS_STYLE.out_of_service;
  const ring = slot ? 26 + 8 * Math.floor((slot - 1) / 8) : 0;
  const angle = ((slot - 1) % 8) * (Math.PI / 4) - Math.PI / 2;
  return L.divIcon({
    className: "map-unit",
    html: `${symbol(KIND_SHAPE[kind] || "circle", style.colour, style.letter, 24, colour)}<span class="map-label">${escapeHtml(unit.id)}</span>`,
    iconSize: [24, 24],
    iconAnchor: [12 - Math.round(ring * Math.cos(angle)), 12 - Math.round(ring * Math.sin(angle))],
  });
}

// For each unit, its slot among the units drawn at the same spot (to 1 m), in id order.
export function slots(units) {
  const bySpot = new Map();
  for (const unit of [...units].sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }))) {
    const place = unitPlace(unit);
    const spot = `${place.lat.toFixed(5)},${place.lon.toFixed(5)}`;
    bySpot.set(spot, (bySpot.get(spot) || []).concat(unit.id));
  }
  const found = new Map();
  for (const ids of bySpot.values()) ids.forEach((id, slot) => found.set(id, slot));
  return found;
}

export function incidentIcon(incident, selected = false) {
  const colour = PRIORITY_COLOUR[incident.priority] || "#56B4E9";
  return L.divIcon({
    className: `map-incident${selected ? " selected" : ""}${incident.status === "closed" ? " closed" : ""}`,
    html: symbol("diamond", colour, incident.priority, 32),
    iconSize: [32, 32],
    iconAnchor: [16, 16],
  });
}

export function stationIcon(kind) {
  return L.divIcon({ className: "map-station", html: symbol("house", "#ffffff", "", 16, KIND_COLOUR[kind] || "#111"), iconSize: [16, 16], iconAnchor: [8, 8] });
}

// Each agency's colour: its kind's for the first agency of a kind, then others that stay apart from them
// (a city police department and a county sheriff both patrol; their cars must not look the same).
const MORE_COLOURS = ["#CC79A7", "#56B4E9", "#E69F00", "#F0E442", "#FFFFFF", "#8C564B"];

export function agencyColours(agencies) {
  const found = new Map();
  const kindsSeen = new Set();
  let next = 0;
  for (const agency of [...agencies].sort((a, b) => a.id.localeCompare(b.id))) {
    if (!kindsSeen.has(agency.kind) && KIND_COLOUR[agency.kind]) {
      kindsSeen.add(agency.kind);
      found.set(agency.id, KIND_COLOUR[agency.kind]);
    } else {
      found.set(agency.id, MORE_COLOURS[next++ % MORE_COLOURS.length]);
    }
  }
  return found;
}

// A map with no base layer: the city is drawn by its districts.
export function createMap(element) {
  const map = L.map(element, { zoomControl: true, attributionControl: true, preferCanvas: false });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  L.control.scale({ imperial: false }).addTo(map);
  map.setView([0, 0], 2);
  return map;
}

// Districts from GET /v1/districts, outlined in their agency kind's colour and dash, named on hover.
export function districtLayer(collection) {
  const dash = { police: "6 4", fire: null, ems: "2 4" };
  return L.geoJSON(collection, {
    style: (feature) => ({
      color: KIND_COLOUR[feature.properties.kind] || "#666",
      weight: 1.5,
      opacity: 0.8,
      dashArray: dash[feature.properties.kind],
      fillOpacity: 0.04,
    }),
    // a string tooltip is HTML to Leaflet: names from an imported city go in escaped
    onEachFeature: (feature, layer) => layer.bindTooltip(escapeHtml(`${feature.properties.agency_id} ${feature.properties.name}`), { sticky: true }),
  });
}

export function stationLayer(agencies) {
  const group = L.layerGroup();
  for (const agency of agencies) {
    for (const station of agency.stations) {
      L.marker([station.location.lat, station.location.lon], { icon: stationIcon(agency.kind), keyboard: false })
        .bindTooltip(escapeHtml(`${agency.name}: ${station.name}`))
        .addTo(group);
    }
  }
  return group;
}

function drawn(icon) {
  return `${icon.options.className}|${icon.options.html}|${icon.options.iconAnchor}`;
}

// Markers kept by id: upsert moves or redraws one, remove takes it away.
export class Markers {
  constructor(map, { onClick } = {}) {
    this.group = L.layerGroup().addTo(map);
    this.markers = new Map();
    this.onClick = onClick;
  }

  upsert(id, lat, lon, icon, tooltip) {
    let marker = this.markers.get(id);
    if (!marker) {
      marker = L.marker([lat, lon], { icon, title: tooltip, riseOnHover: true }).addTo(this.group);
      if (this.onClick) marker.on("click", () => this.onClick(id));
      this.markers.set(id, marker);
    } else {
      const moved = marker.getLatLng();
      if (moved.lat !== lat || moved.lng !== lon) marker.setLatLng([lat, lon]);
      if (drawn(marker.options.icon) !== drawn(icon)) marker.setIcon(icon);  // redraw only what changed
      marker.options.title = tooltip;
      const node = marker.getElement();  // Leaflet reuses the element and set its title only once
      if (node) node.title = tooltip;
    }
    return marker;
  }

  remove(id) {
    const marker = this.markers.get(id);
    if (marker) {
      marker.remove();
      this.markers.delete(id);
    }
  }

  keepOnly(ids) {
    for (const id of [...this.markers.keys()]) if (!ids.has(id)) this.remove(id);
  }
}

// Where a unit is: its latest fix, else its station (home).
export function unitPlace(unit) {
  return unit.position || unit.home;
}

// A legend of shapes and colours, in the current language; with agencies, each one's outline colour.
export function legend(map, agencies = []) {
  const control = L.control({ position: "bottomright" });
  control.onAdd = () => {
    const box = L.DomUtil.create("div", "map-legend");
    box.setAttribute("aria-label", t("legend.title"));
    L.DomEvent.disableClickPropagation(box);
    control.render = () => {
      const kinds = Object.entries(KIND_SHAPE).map(([kind, shape]) => `<div>${symbol(shape, "#ffffff", "", 16)} ${escapeHtml(t(`kind.${kind}`))}</div>`);
      const statuses = Object.entries(STATUS_STYLE).map(([status, style]) => `<div>${symbol("circle", style.colour, style.letter, 16)} ${escapeHtml(statusLabel(status))}</div>`);
      const colours = agencyColours(agencies);
      const outlines = agencies.map((agency) => `<div>${symbol(KIND_SHAPE[agency.kind] || "circle", "#1d252d", "", 16, colours.get(agency.id))} ${escapeHtml(agency.name)}</div>`);
      box.innerHTML = `<strong>${escapeHtml(t("legend.title"))}</strong>${outlines.join("")}${kinds.join("")}${statuses.join("")}` +
        `<div>${symbol("diamond", PRIORITY_COLOUR[1], "1", 16)} ${escapeHtml(t("legend.incident"))}</div>` +
        `<div>${symbol("house", "#ffffff", "", 16)} ${escapeHtml(t("legend.station"))}</div>`;
    };
    control.render();
    return box;
  };
  control.addTo(map);
  return control;
}
