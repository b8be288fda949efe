// Automatic vehicle location from the terminal's own GPS: the device's fixes go to the server as the
// unit's position, so the next recommendation counts the crew where it is, not at its station.
// Telemetry, not a command: a fix that cannot be sent now is dropped, the next one will do.

const EVERY_MS = 5000;        // a new fix goes after this long
const MOVED_M = 30;           // ... or sooner once the vehicle has moved this far
const SOONEST_MS = 1000;      // but never more than one a second

export function metresBetween(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(h));
}

// Follow the device's position and send it over `stream` ({"type": "position", ...}). onFix hears each
// fix the server took; onOff hears why location is unavailable (no GPS, permission refused), once.
// The newest fix waits until it is due and the link is up: the first one, taken while the socket was
// still opening, is not lost.
export function followPosition(stream, { onFix = () => {}, onOff = () => {} } = {}) {
  if (!("geolocation" in navigator)) {
    onOff("unsupported");
    return () => {};
  }
  let latest = null;
  let sent = null;  // {fix, at}: the last fix the server took
  let sending = false;

  function consider() {
    if (!latest || sending || (sent && sent.fix === latest)) return;
    const since = sent ? Date.now() - sent.at : Infinity;
    if (since < EVERY_MS && (since < SOONEST_MS || metresBetween(sent.fix, latest) < MOVED_M)) return;
    const fix = latest;
    sending = true;
    stream.send({ type: "position", ...fix })
      .then(() => {
        sent = { fix, at: Date.now() };
        onFix(fix);
      }, () => {})  // not sent (the link is down): tried again with the newest fix
      .finally(() => {
        sending = false;
      });
  }

  const watch = navigator.geolocation.watchPosition((position) => {
    latest = {
      lat: position.coords.latitude,
      lon: position.coords.longitude,
      at: new Date(position.timestamp).toISOString(),
    };
    if (Number.isFinite(position.coords.heading)) latest.heading = ((position.coords.heading % 360) + 360) % 360;
    if (Number.isFinite(position.coords.speed)) latest.speed = Math.min(150, Math.max(0, position.coords.speed));
    consider();
  }, (error) => onOff(error.code === error.PERMISSION_DENIED ? "denied" : "unavailable"),
  { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 });
  const timer = setInterval(consider, SOONEST_MS);
  return () => {
    navigator.geolocation.clearWatch(watch);
    clearInterval(timer);
  };
}
