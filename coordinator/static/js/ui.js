// DOM helpers, times, the sign-in and the link banner. Text from the server only ever goes in as
// text (never as HTML): an address or a note cannot become markup.

import { Api, ApiError, tokens } from "./api.js";
import { LANGUAGES, label, lang, onLangChange, setLang, t, translatePage } from "./i18n.js";

// el("button", {class: "big", onclick: f, dataset: {id: 1}}, "text", child): an element, children as text or nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

// "4:05", "1:02:05": time since an instant, for a queue that ticks every second.
export function elapsed(iso, nowMs = Date.now()) {
  const total = Math.max(0, Math.floor((nowMs - Date.parse(iso)) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// "3 min 40 s": a duration in words, for ETAs and response times.
export function duration(seconds) {
  const total = Math.round(seconds);
  if (total < 60) return t("time.s", { n: total });
  if (total < 3600) return t("time.min_s", { m: Math.floor(total / 60), s: total % 60 });
  return t("time.h_min", { h: Math.floor(total / 3600), m: Math.floor((total % 3600) / 60) });
}

// The local wall-clock time of an instant, with seconds: what a dispatcher writes in a log book.
export function clockTime(iso) {
  return new Date(iso).toLocaleTimeString(lang(), { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString(lang(), { dateStyle: "short", timeStyle: "medium", hour12: false });
}

export const statusLabel = (status) => label("status", status);
export const kindLabel = (kind) => label("kind", kind);
export const typeLabel = (incident) => label("type", incident.type, incident.type_label);
export const unitTypeLabel = (type) => label("unit_type", type);
// A plan line's capability: most are unit types (engine, als); the rest have their own names.
export const capabilityLabel = (capability) => label("capability", capability, unitTypeLabel(capability));

// A short-lived message at the foot of the screen; errors stay until dismissed.
export function toast(message, kind = "info") {
  const box = $("#toasts") || document.body.appendChild(el("div", { id: "toasts", role: "status", "aria-live": "polite" }));
  const note = el("div", { class: `toast toast-${kind}` }, message);
  if (kind === "error") {
    note.setAttribute("role", "alert");
    note.append(el("button", { class: "toast-close", "aria-label": "×", onclick: () => note.remove() }, "×"));
  } else {
    setTimeout(() => note.remove(), 4000);
  }
  box.append(note);
  return note;
}

// The banner at the top of the page tells the state of the live feed (drawn again in a new language).
let link = null;
let signedInView = null;
onLangChange(() => link && showLink(link.state, link.detail));

export function showLink(state, detail = {}) {
  link = { state, detail };
  const banner = $("#link-banner");
  const badge = $("#link-state");
  const message = {
    live: "",
    connecting: t("link.connecting"),
    reconnecting: t("link.reconnecting"),
    unauthorized: t("link.unauthorized", { reason: detail.reason || "" }),
    refused: t("link.refused", { reason: detail.reason || "" }),
  }[state];
  if (banner) {
    banner.textContent = message;
    banner.hidden = state === "live";
    banner.dataset.state = state;
    if (state === "unauthorized" && signedInView) {  // an expired or revoked token: back to the sign-in
      banner.append(" ", el("button", { type: "button", class: "btn", onclick: () => {
        tokens.clear(signedInView);
        location.reload();
      } }, t("signin.again")));
    }
  }
  if (badge) {
    badge.textContent = state === "live" ? t("link.live") : t(`link.${state}`).split(/[.。:：]/)[0];
    badge.dataset.state = state;
  }
}

// The language switch in the header; views re-render on a change through onLangChange.
export function languageSwitch() {
  const select = $("#lang");
  if (!select) return;
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => el("option", { value: code }, name)));
  select.value = lang();
  select.addEventListener("change", () => setLang(select.value));
  onLangChange((code) => {
    select.value = code;
  });
}

// Sign in with a token: the stored one if the server still takes it, else the form. Resolves to {api, me}
// once the server has confirmed who the token speaks for and that its role may use this view.
export async function signIn(view, roles) {
  languageSwitch();
  translatePage();
  const form = $("#signin");
  const app = $("#app");
  const stored = tokens.load(view);
  if (stored) {
    try {
      return await confirm(view, stored, roles);
    } catch (error) {
      tokens.clear(view);
      showSigninError(error.message);
    }
  }
  form.hidden = false;
  app.hidden = true;
  $("#signin-token").focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = $("#signin-token").value.trim();
      if (!token) return;
      try {
        const session = await confirm(view, token, roles);
        form.hidden = true;
        app.hidden = false;
        resolve(session);
      } catch (error) {
        showSigninError(error.message);
      }
    });
  });
}

async function confirm(view, token, roles) {
  const api = new Api(token);
  const me = await api.get("/v1/me");
  if (!roles.includes(me.role)) {
    throw new ApiError(403, "forbidden", t("signin.wrong_role", { role: me.role, wanted: roles.join(" / ") }));
  }
  tokens.save(view, token);
  signedInView = view;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  const who = $("#who");
  if (who) {
    const unit = me.unit && me.unit !== me.subject ? `${me.unit} · ${me.subject}` : me.unit;
    who.textContent = unit || `${me.subject} (${me.role}${me.agency ? ", " + me.agency : ""})`;
  }
  const out = $("#signout");
  if (out) {
    out.hidden = false;
    out.addEventListener("click", () => {
      tokens.clear(view);
      location.reload();
    });
  }
  return { api, me, token };
}

function showSigninError(message) {
  const box = $("#signin-error");
  box.textContent = message;
  box.hidden = !message;
}
