// The field-unit terminal: what a crew in an engine, an ambulance or a patrol car needs at a glance.
// The current assignment (address, map, notes), one large acknowledge button, the lifecycle's next
// statuses as large buttons, and a sound and vibration when a new assignment arrives. The server is
// the truth: on every event of this unit the terminal asks for the unit and its incident again.

import { newKey, Stream } from "./api.js";
import { followPosition } from "./avl.js";
import { onLangChange, register, t } from "./i18n.js";
import { $, clockTime, el, elapsed, signIn, showLink, statusLabel, toast, typeLabel, unitTypeLabel } from "./ui.js";
import { createMap, districtLayer, incidentIcon, legend, Markers, stationLayer, unitIcon, unitPlace } from "./map.js";

register({
  en: {
    "unit.title": "Unit terminal",
    "unit.new": "NEW ASSIGNMENT",
    "unit.ack": "Acknowledge",
    "unit.acknowledged_at": "Acknowledged {time}",
    "unit.assigned_ago": "Assigned {time} ago",
    "unit.no_address": "No address: see the map ({lat}, {lon})",
    "unit.flagged": "Dispatch is waiting for your acknowledgement.",
    "unit.notes": "Notes",
    "unit.no_notes": "No notes yet.",
    "unit.idle": "No assignment",
    "unit.map": "Map of the assignment",
    "unit.ends_assignment": "ends the assignment",
    "unit.keys_hint": "Number keys press the numbered buttons",
    "unit.sound_off": "Alert sound is off: tap here to turn it on",
    "unit.dismiss": "OK",
    "unit.ended.cancelled": "Assignment cancelled by dispatch",
    "unit.ended.incident_closed": "Incident closed by dispatch: assignment ended",
    "unit.ended.other": "Assignment ended ({reason})",
    "unit.no_unit": "This token names no unit; ask for a unit token.",
    "unit.gps_off": "Location is off: dispatch sees this unit where it last reported.",
  },
  "zh-CN": {
    "unit.title": "车载终端",
    "unit.new": "新任务",
    "unit.ack": "确认接收",
    "unit.acknowledged_at": "已确认 {time}",
    "unit.assigned_ago": "派遣于 {time} 前",
    "unit.no_address": "无地址：请看地图（{lat}, {lon}）",
    "unit.flagged": "调度正在等待您确认接收。",
    "unit.notes": "备注",
    "unit.no_notes": "暂无备注。",
    "unit.idle": "无任务",
    "unit.map": "任务地图",
    "unit.ends_assignment": "结束任务",
    "unit.keys_hint": "按数字键即可按下对应编号的按钮",
    "unit.sound_off": "提示音已关闭：点此开启",
    "unit.dismiss": "知道了",
    "unit.ended.cancelled": "调度已取消本次任务",
    "unit.ended.incident_closed": "调度已结案：任务结束",
    "unit.ended.other": "任务已结束（{reason}）",
    "unit.no_unit": "此令牌未指定单位；请申请单位令牌。",
    "unit.gps_off": "定位已关闭：调度看到的是本单位最后上报的位置。",
  },
});

// A unit in one of these has no assignment: the server ends the assignment when the crew picks one.
const OFF_ASSIGNMENT = ["available", "out_of_service"];
// After a status change the next buttons take the place of the last ones; a second tap of a gloved
// hand on a bumpy road must not press the new button under it.
const DOUBLE_TAP_GUARD_MS = 1000;
// Notes are incident events, which a unit's stream does not carry: read them again now and then.
const NOTES_EVERY_MS = 15000;
const VIBRATION = [300, 100, 300];

const view = {
  api: null,
  unitId: null,
  stream: null,
  lifecycle: null,
  kinds: {},
  unit: null,
  incident: null,
  ended: null,
  alerted: new Set(),
  busy: false,
  guardUntil: 0,
  map: null,
  markers: null,
  legend: null,
  framed: null,
  statusKey: null,
};

// -- sound -------------------------------------------------------------------------------------------
// Browsers let a page make sound only after a gesture: the sign-in click (or any later tap) starts the
// audio context, and a visible button says so while it is not running.
let audio = null;

function unlockAudio() {
  if (!audio) {
    audio = new AudioContext();
    audio.addEventListener("statechange", showSoundState);
  }
  // a resume the browser refuses leaves the sound button showing, which says all there is to say
  if (audio.state === "suspended") audio.resume().catch(() => {});
  showSoundState();
}

function showSoundState() {
  $("#sound").hidden = Boolean(audio) && audio.state === "running";
}

// Three short, loud, alternating tones: heard over an engine and unlike any other sound in the cab.
function beep() {
  if (!audio || audio.state !== "running") return;
  const start = audio.currentTime + 0.05;
  [988, 740, 988].forEach((frequency, n) => {
    const at = start + n * 0.25;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.type = "square";
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.5, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
    tone.connect(gain).connect(audio.destination);
    tone.start(at);
    tone.stop(at + 0.2);
  });
}

function alertCrew() {
  beep();
  if (navigator.vibrate) navigator.vibrate(VIBRATION);
}

// -- what the server says ------------------------------------------------------------------------------
function currentAssignment() {
  const { unit, incident } = view;
  if (!unit || !unit.assignment_id || !incident) return null;
  return incident.assignments.find((a) => a.id === unit.assignment_id) || null;
}

function getIncident(id) {
  return view.api.get(`/v1/incidents/${encodeURIComponent(id)}`);
}

async function loadPicture() {
  const unit = await view.api.get(`/v1/units/${encodeURIComponent(view.unitId)}`);
  const incident = unit.incident_id ? await getIncident(unit.incident_id) : null;
  view.unit = unit;
  view.incident = incident;
  render();
}

// One reload at a time; events that arrive meanwhile ask for one more, not one each.
let loading = null;
let reloadAgain = false;

function refresh() {
  if (loading) {
    reloadAgain = true;
    return loading;
  }
  loading = (async () => {
    try {
      do {
        reloadAgain = false;
        await loadPicture();
      } while (reloadAgain);
    } catch (error) {
      toast(error.message, "error");
    } finally {
      loading = null;
    }
  })();
  return loading;
}

async function onStreamMessage(doc) {
  // incident_in_scope carries the incident as it stands; the event after it makes us read it anyway.
  if (typeof doc.seq !== "number") return;
  if (doc.type === "AssignmentEnded") await endedByDispatch(doc.data);
  await refresh();
  if (doc.type === "UnitAssigned") announce(doc.data.assignment_id);
  if (doc.type === "AssignmentUnacknowledged") alertCrew();
}

// An assignment dispatch took away (cancelled, incident closed) is said plainly, with the incident it
// was for, and sounded like a new one: a crew driving to a cancelled call must know at once. One the
// crew cleared themselves needs no telling.
async function endedByDispatch(data) {
  if (data.reason === "cleared") return;
  alertCrew();
  let incident = view.incident && view.incident.id === data.incident_id ? view.incident : null;
  if (!incident) incident = await getIncident(data.incident_id).catch(() => null);
  view.ended = { reason: data.reason, incident };
}

// A new assignment, still waiting for its acknowledgement: sound, vibration, and the ack button focused
// so Enter or Space acknowledges it. Each assignment alerts once, however often its event is replayed.
function announce(assignmentId) {
  const assignment = currentAssignment();
  const waiting = assignment && assignment.id === assignmentId && !assignment.acknowledged_at;
  if (!waiting || view.alerted.has(assignmentId)) return;
  view.alerted.add(assignmentId);
  view.ended = null;
  alertCrew();
  document.body.dataset.alerted = assignmentId;
  render();
  $("#ack").focus();
}

// -- what the crew does -----------------------------------------------------------------------------
// Over the unit's socket when it is up; over REST while it reconnects.
function act(message, overRest) {
  const socket = view.stream.socket;
  return socket && socket.readyState === WebSocket.OPEN ? view.stream.send(message) : overRest();
}

async function acknowledge() {
  const assignment = currentAssignment();
  if (!assignment) return;
  await whileBusy(() => act({ type: "ack", assignment_id: assignment.id },
    () => view.api.post(`/v1/assignments/${encodeURIComponent(assignment.id)}/ack`, undefined, { key: newKey() })));
}

async function changeStatus(status) {
  await whileBusy(() => act({ type: "status", status },
    () => view.api.put(`/v1/units/${encodeURIComponent(view.unitId)}/status`, { status })));
}

// Buttons stay disabled until the server has answered. A refusal is shown in the server's words, and
// the picture is read again: a refusal usually means the screen was behind (dispatch had cancelled).
async function whileBusy(request) {
  view.busy = true;
  render();
  try {
    await request();
  } catch (error) {
    toast(error.message, "error");
  }
  await refresh();
  view.busy = false;
  view.guardUntil = Date.now() + DOUBLE_TAP_GUARD_MS;
  render();
  setTimeout(render, DOUBLE_TAP_GUARD_MS);
}

function nextStatuses() {
  const { next, by_assignment_only: assignmentOnly } = view.lifecycle;
  const allowed = (next[view.unit.status] || []).filter((s) => !assignmentOnly.includes(s));
  // the way forward first, then the ways out of an assignment
  const rank = (s) => (OFF_ASSIGNMENT.includes(s) ? 1 : 0);
  const order = view.lifecycle.statuses;
  return allowed.sort((a, b) => rank(a) - rank(b) || order.indexOf(a) - order.indexOf(b));
}

// Digit keys press the status buttons, as numbered on them.
function onKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey || !/^[1-9]$/.test(event.key)) return;
  if (/^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) return;
  const button = $(`#status-buttons button[data-key="${event.key}"]`);
  if (button && !button.disabled) {
    event.preventDefault();
    button.click();
  }
}

// -- drawing -------------------------------------------------------------------------------------------
function render() {
  if (!view.unit) return;
  renderEnded();
  renderAssignment();
  renderStatus();
  renderStatusButtons();
  renderMap();
}

function renderEnded() {
  const { ended } = view;
  $("#ended").hidden = !ended;
  if (!ended) return;
  const worded = ["cancelled", "incident_closed"].includes(ended.reason);
  $("#ended-title").textContent = worded
    ? t(`unit.ended.${ended.reason}`) : t("unit.ended.other", { reason: ended.reason });
  const { incident } = ended;
  $("#ended-detail").textContent = incident ? `${typeLabel(incident)} · ${placeText(incident)}` : "";
}

function placeText(incident) {
  const { lat, lon } = incident.location;
  return incident.address || t("unit.no_address", { lat: lat.toFixed(5), lon: lon.toFixed(5) });
}

function renderAssignment() {
  const assignment = currentAssignment();
  const { incident } = view;
  $("#assignment").hidden = !assignment;
  $("#idle").hidden = Boolean(assignment);
  if (!assignment) {
    $("#idle-status").replaceChildren(statusChip(view.unit.status));
    return;
  }
  const waiting = !assignment.acknowledged_at;
  $("#assignment").classList.toggle("unacknowledged", waiting);
  $("#new-badge").hidden = !waiting;
  const priority = $("#priority");
  priority.dataset.p = incident.priority;
  priority.textContent = incident.priority;
  priority.setAttribute("aria-label", `${t("priority")} ${incident.priority}`);
  $("#incident-type").textContent = typeLabel(incident);
  $("#address").textContent = placeText(incident);
  $("#description").textContent = incident.description || "";
  $("#description").hidden = !incident.description;
  $("#flagged").hidden = !(waiting && assignment.unacknowledged_at);
  $("#ack").hidden = !waiting;
  $("#ack").disabled = view.busy;
  $("#acknowledged").hidden = waiting;
  $("#acknowledged").textContent = waiting
    ? "" : `✔ ${t("unit.acknowledged_at", { time: clockTime(assignment.acknowledged_at) })}`;
  renderNotes(incident.notes);
  tick();
}

// Newest first: the latest word from dispatch is the one that matters.
function renderNotes(notes) {
  const items = [...notes].reverse().map((note) => el("li", {},
    el("span", { class: "note-meta" }, `${clockTime(note.at)} · ${note.author}`),
    el("span", { class: "note-text" }, note.text)));
  $("#notes").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, t("unit.no_notes"))]));
}

function tick() {
  const assignment = currentAssignment();
  if (assignment) $("#assigned-ago").textContent = t("unit.assigned_ago", { time: elapsed(assignment.assigned_at) });
}

function statusChip(status) {
  return el("span", { class: "status", dataset: { status } }, statusLabel(status));
}

function renderStatus() {
  const { unit } = view;
  $("#unit-name").textContent = `${unit.id} · ${unitTypeLabel(unit.type)}`;
  const chip = $("#current-status");
  chip.dataset.status = unit.status;
  chip.textContent = statusLabel(unit.status);
}

// Rebuilt only when the choice changes, so a button does not vanish from under a finger or the focus.
function renderStatusButtons() {
  const statuses = nextStatuses();
  const engaged = Boolean(view.unit.assignment_id);
  const key = JSON.stringify([statuses, engaged, document.documentElement.lang]);
  const locked = view.busy || Date.now() < view.guardUntil;
  if (key !== view.statusKey) {
    view.statusKey = key;
    $("#status-buttons").replaceChildren(...statuses.map((status, n) => statusButton(status, n + 1, engaged)));
    $("#keys-hint").textContent = statuses.length ? t("unit.keys_hint") : "";
  }
  for (const button of $("#status-buttons").children) button.disabled = locked;
}

function statusButton(status, number, engaged) {
  const ends = engaged && OFF_ASSIGNMENT.includes(status);
  return el("button", {
    type: "button",
    class: `status status-button${ends ? " ends" : ""}`,
    dataset: { status, key: String(number) },
    onclick: () => changeStatus(status),
  },
  el("span", { class: "status-words" }, el("span", { class: "status-name" }, statusLabel(status)),
    ends ? el("small", {}, t("unit.ends_assignment")) : null),
  el("kbd", {}, String(number)));
}

function renderMap() {
  const { unit, incident } = view;
  const assignment = currentAssignment();
  const place = unitPlace(unit);
  view.markers.upsert("unit", place.lat, place.lon, unitIcon(unit, view.kinds[unit.agency_id]), unit.id);
  if (assignment) {
    const { lat, lon } = incident.location;
    view.markers.upsert("incident", lat, lon, incidentIcon(incident, true), placeText(incident));
  } else {
    view.markers.remove("incident");
  }
  // frame once per assignment (and once when idle): the crew may pan, and a reload must not undo it
  const frame = assignment ? assignment.id : "idle";
  if (view.framed === frame) return;
  view.framed = frame;
  if (assignment) {
    // the legend sits bottom right: keep both symbols clear of it
    view.map.fitBounds([[place.lat, place.lon], [incident.location.lat, incident.location.lon]],
      { paddingTopLeft: [60, 60], paddingBottomRight: [200, 60], maxZoom: 16 });
  } else {
    view.map.setView([place.lat, place.lon], 14);
  }
}

async function setUpMap(api) {
  const [districts, agencies] = await Promise.all([
    api.get("/v1/districts", { simplify_m: 20 }),
    api.get("/v1/agencies"),
  ]);
  view.kinds = Object.fromEntries(agencies.agencies.map((a) => [a.id, a.kind]));
  const element = $("#map");
  view.map = createMap(element);
  districtLayer(districts).addTo(view.map);
  stationLayer(agencies.agencies).addTo(view.map);
  view.markers = new Markers(view.map);
  view.legend = legend(view.map);
  // a new size (a notice above, the screen turned) frames the assignment again
  new ResizeObserver(() => {
    view.map.invalidateSize();
    view.framed = null;
    if (view.unit) renderMap();
  }).observe(element);
}

// -- start -----------------------------------------------------------------------------------------------
async function main() {
  $("#signin").addEventListener("submit", unlockAudio);
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  const { api, me, token } = await signIn("unit", ["unit"]);
  if (!me.unit) {
    toast(t("unit.no_unit"), "error");
    return;
  }
  view.api = api;
  view.unitId = me.unit;
  showSoundState();
  showLink("connecting");
  $("#ack").addEventListener("click", acknowledge);
  $("#ended-dismiss").addEventListener("click", () => {
    view.ended = null;
    render();
  });
  $("#sound").addEventListener("click", unlockAudio);
  document.addEventListener("keydown", onKey);

  // The picture as of a seq, then the stream from that seq: what happens in between is re-applied.
  const { head } = await api.get("/v1/events", { after: 0, limit: 1 });
  view.lifecycle = await api.get("/v1/lifecycle");
  await setUpMap(api);
  await loadPicture();
  view.stream = new Stream({
    path: `/v1/units/${encodeURIComponent(view.unitId)}/stream`,
    token,
    after: head,
    onMessage: onStreamMessage,
    onStatus: showLink,
  }).start();
  window.commandpost = { stream: view.stream };
  followPosition(view.stream, {
    onFix: (fix) => {  // the crew sees itself move at once; the server has it too
      if (!view.unit) return;
      view.unit.position = fix;
      renderMap();
    },
    onOff: () => {
      $("#gps-off").hidden = false;
    },
  });

  setInterval(tick, 1000);
  setInterval(() => {
    if (view.unit && view.unit.incident_id) refresh();
  }, NOTES_EVERY_MS);
  onLangChange(() => {
    render();
    view.legend.render();
  });
}

main().catch((error) => toast(error.message, "error"));
