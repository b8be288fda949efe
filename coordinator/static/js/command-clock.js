// The commander's clock. "Live" follows the present through the websocket; "Replay" shows the city as
// it stood at any moment since the log began, read from GET /v1/state?at= (the server rebuilds that
// moment from the log, so the console never guesses a past state). One state request is out at a
// time and the newest moment asked for wins: dragging the scrubber never queues up stale pictures.

import { ApiError } from "./api.js";
import { lang, t } from "./i18n.js";
import { $, clockTime, dateTime, toast } from "./ui.js";

const DEFAULT_SPEED = 60;
const PLAY_TICK_MS = 200;   // how often a playing replay moves on; the state requests pace the picture
const STEP_MS = 60_000;

export class TimeMachine {
  // onReplay(doc) hears each past picture as it arrives; onLive() hears the return to the present.
  constructor({ api, onReplay, onLive }) {
    this.api = api;
    this.onReplay = onReplay;
    this.onLive = onLive;
    this.mode = "live";
    this.startMs = Date.now();
    this.targetMs = null;   // the moment asked for in replay
    this.shownAt = null;    // the server's ISO time of the replay picture on screen
    this.wantedMs = null;   // the newest moment waiting for the request in flight to finish
    this.loading = false;
    this.speed = DEFAULT_SPEED;
    this.playTimer = null;
    this.lastTick = 0;
    this.scrubber = $("#scrubber");
    this.wire();
  }

  wire() {
    this.scrubber.addEventListener("input", () => this.seek(Number(this.scrubber.value) * 1000));
    $("#play").addEventListener("click", () => (this.playTimer ? this.pause() : this.play()));
    $("#go-live").addEventListener("click", () => this.goLive());
    $("#step-back").addEventListener("click", () => this.seek(this.momentMs() - STEP_MS));
    $("#step-forward").addEventListener("click", () => this.seek(this.momentMs() + STEP_MS));
    for (const button of document.querySelectorAll("#speeds [data-speed]")) {
      button.addEventListener("click", () => this.setSpeed(Number(button.dataset.speed)));
    }
    this.setSpeed(this.speed);
  }

  // The log's first event is the scrubber's left end: nothing can be shown before it.
  setStart(iso) {
    this.startMs = Date.parse(iso);
    this.scrubber.min = String(Math.floor(this.startMs / 1000));
    this.tick();
  }

  // The moment on screen, in ms: the present when live.
  momentMs() {
    if (this.mode === "live") return Date.now();
    return this.shownAt ? Date.parse(this.shownAt) : this.targetMs;
  }

  seek(ms) {
    this.mode = "replay";
    this.targetMs = Math.min(Math.max(ms, this.startMs), Date.now());
    this.scrubber.value = String(Math.round(this.targetMs / 1000));
    this.request(this.targetMs);
    this.render();
  }

  async request(ms) {
    this.wantedMs = ms;
    if (this.loading) return;
    this.loading = true;
    $("#moment").setAttribute("aria-busy", "true");
    try {
      while (this.wantedMs !== null && this.mode === "replay") {
        const at = this.wantedMs;
        this.wantedMs = null;
        const doc = await this.fetchState(at);
        if (!doc || this.mode !== "replay") continue;
        this.shownAt = doc.at;
        this.onReplay(doc);
        this.render();
      }
    } finally {
      this.loading = false;
      $("#moment").removeAttribute("aria-busy");
    }
  }

  async fetchState(ms) {
    try {
      return await this.api.get("/v1/state", { at: new Date(ms).toISOString() });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.pause();  // a failing server would otherwise raise one error per tick
      toast(error.message, "error");
      return null;
    }
  }

  play() {
    if (this.mode === "live") return;
    this.lastTick = performance.now();
    this.playTimer = setInterval(() => this.advance(), PLAY_TICK_MS);
    this.render();
  }

  pause() {
    clearInterval(this.playTimer);
    this.playTimer = null;
    this.render();
  }

  // Playing moves the moment by speed × the wall-clock time since the last tick; reaching the
  // present there is nothing left to replay, so the view goes live.
  advance() {
    const now = performance.now();
    const next = this.targetMs + this.speed * (now - this.lastTick);
    this.lastTick = now;
    if (next >= Date.now()) {
      this.goLive();
      toast(t("command.caught_up"), "ok");
      return;
    }
    this.seek(next);
  }

  setSpeed(speed) {
    this.speed = speed;
    for (const button of document.querySelectorAll("#speeds [data-speed]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.speed) === speed));
    }
  }

  goLive() {
    this.pause();
    this.mode = "live";
    this.wantedMs = null;
    this.shownAt = null;
    this.targetMs = null;
    this.tick();
    this.onLive();
  }

  // Every second: the scrubber's right end is now, and the live clock moves on.
  tick() {
    const nowSeconds = Math.ceil(Date.now() / 1000);
    this.scrubber.max = String(nowSeconds);
    if (this.mode === "live") this.scrubber.value = String(nowSeconds);
    $("#scrub-start").textContent = t("command.log_start", { t: dateTime(new Date(this.startMs).toISOString()) });
    $("#scrub-end").textContent = t("command.now");
    this.render();
  }

  render() {
    const replaying = this.mode === "replay";
    const iso = new Date(this.momentMs()).toISOString();
    const moment = $("#moment");
    moment.dataset.mode = this.mode;
    if (replaying && this.shownAt) moment.dataset.at = this.shownAt;
    else delete moment.dataset.at;
    document.body.dataset.mode = this.mode;
    $("#moment-badge").textContent = t(replaying ? "command.badge_replay" : "command.badge_live");
    $("#moment-time").textContent = clockTime(iso);
    $("#moment-date").textContent = new Date(iso).toLocaleDateString(lang());
    this.scrubber.setAttribute("aria-valuetext", dateTime(iso));
    $("#map-moment").textContent = replaying ? `${t("command.badge_replay")} ${clockTime(iso)}` : "";
    $("#map-moment").hidden = !replaying;
    $("#go-live").disabled = !replaying;
    $("#step-forward").disabled = !replaying;  // live is already the latest moment
    const play = $("#play");
    play.disabled = !replaying;
    play.textContent = t(this.playTimer ? "command.pause" : "command.play");
    play.setAttribute("aria-pressed", String(Boolean(this.playTimer)));
  }
}
