// The REST and websocket client every view shares. The server is the one source of truth: views
// keep what it says and ask again when an event tells them something changed.

import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async request(method, path, { body, query, key } = {}) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers["Idempotency-Key"] = key;
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, "offline", t("error.offline"));
    }
    const text = await response.text();
    let doc = null;
    try {
      doc = text ? JSON.parse(text) : null;
    } catch {
      doc = null;
    }
    if (!response.ok) {
      const message = (doc && doc.message) || `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, (doc && doc.error) || "error", message);
    }
    return doc;
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }

  post(path, body, options = {}) {
    return this.request("POST", path, { body, ...options });
  }

  put(path, body) {
    return this.request("PUT", path, { body });
  }
}

// A key per attempt, kept across retries of that attempt: a report sent twice over a bad link is one incident.
export function newKey() {
  return crypto.randomUUID();
}

// Tokens are kept per view, so a dispatcher and a unit terminal can share a browser in training.
export const tokens = {
  load(view) {
    return localStorage.getItem(`commandpost.token.${view}`);
  },
  save(view, token) {
    localStorage.setItem(`commandpost.token.${view}`, token);
  },
  clear(view) {
    localStorage.removeItem(`commandpost.token.${view}`);
  },
};

const FINAL_CLOSES = { 4400: "refused", 4401: "unauthorized", 4403: "refused", 4404: "refused" };
const MAX_DELAY_MS = 5000;

// A websocket that keeps the last seq it received and, when the link drops, comes back with
// ?after=<seq>, so every event arrives once and in order. onStatus hears "connecting", "live",
// "reconnecting" ({attempt, inMs}), "unauthorized" or "refused" ({reason}); "live" says {resumed}
// when it is a reconnection.
export class Stream {
  constructor({ path, token, after = 0, onMessage, onStatus }) {
    this.path = path;
    this.token = token;
    this.after = after;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.socket = null;
    this.attempt = 0;
    this.closed = false;
    this.timer = null;
    this.pending = new Map();
    this.nextId = 1;
  }

  start() {
    this.closed = false;
    this._connect();
    return this;
  }

  _connect() {
    const url = new URL(this.path, location.origin);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("after", String(this.after));
    url.searchParams.set("token", this.token);
    this.onStatus(this.attempt ? "reconnecting" : "connecting", { attempt: this.attempt });
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.onStatus("live", { resumed: this.opened === true });  // resumed: the missed events follow
      this.opened = true;
    };
    socket.onmessage = (message) => {
      let doc;
      try {
        doc = JSON.parse(message.data);
      } catch {
        return;
      }
      if (typeof doc.seq === "number" && doc.seq > this.after) this.after = doc.seq;
      if ((doc.type === "reply" || doc.type === "error") && this.pending.has(String(doc.id))) {
        const { resolve, reject } = this.pending.get(String(doc.id));
        this.pending.delete(String(doc.id));
        if (doc.type === "reply") resolve(doc);
        else reject(new ApiError(doc.status, doc.error, doc.message));
        return;
      }
      this.onMessage(doc);
    };
    socket.onclose = (event) => this._closed(socket, event);
  }

  _closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    for (const { reject } of this.pending.values()) reject(new ApiError(0, "offline", t("error.offline")));
    this.pending.clear();
    if (this.closed) return;
    const resync = /^resync after=(\d+)$/.exec(event.reason || "");
    if (resync) this.after = Number(resync[1]);
    const final = FINAL_CLOSES[event.code];
    if (final) {
      this.closed = true;
      this.onStatus(final, { reason: event.reason });
      return;
    }
    this.attempt += 1;
    const inMs = Math.min(MAX_DELAY_MS, 250 * 2 ** (this.attempt - 1)) * (0.8 + Math.random() * 0.4);
    this.onStatus("reconnecting", { attempt: this.attempt, inMs });
    this.timer = setTimeout(() => this._connect(), inMs);
  }

  // Send a message the server answers with {"type": "reply"} or {"type": "error"} carrying the same id.
  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError(0, "offline", t("error.offline")));
    }
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ ...message, id }));
    });
  }

  // Drop the link as a network failure would: the stream reconnects and resumes after the last seq.
  drop() {
    if (this.socket) this.socket.close(4000, "dropped by the console");
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "signed out");
  }
}
