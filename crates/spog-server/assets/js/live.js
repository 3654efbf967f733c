// The page's one WebSocket to /api/v1/ws (SPEC 6.1), authenticated by the session cookie.
// Messages are re-dispatched on `document` as `live:message` events (detail: the message);
// `live:status` says whether the socket is up. Dropped sockets reconnect with exponential
// backoff; after a reconnect every live element refreshes, since events may have been missed.
//
//   <div hx-get="/dashboard/activity" hx-trigger="refresh" data-live="audit" data-live-poll="10">
//
// refreshes on `dashboard` messages of topic `audit` (or, with data-live="notifications", on
// notification and unread-count messages; several topics separated by spaces listen to each),
// at most once a second, and polls every
// `data-live-poll` seconds while the socket is down.
import { toLogin } from "./session.js";

const MIN_DELAY = 1000;
const MAX_DELAY = 30000;
const REFRESH_GAP = 1000;
const POLICY_VIOLATION = 1008;

let socket = null;
let attempts = 0;
let everOpened = false;
let up = false;
let leaving = false;
const polls = new Map();

export function isLive() {
  return up;
}

function setStatus(connected) {
  up = connected;
  document.documentElement.dataset.live = connected ? "on" : "off";
  document.dispatchEvent(new CustomEvent("live:status", { detail: { connected } }));
  connected ? stopPolling() : startPolling();
}

// Refreshes an htmx element soon, coalescing bursts into one request per REFRESH_GAP.
export function refresh(element) {
  if (element.liveTimer || !window.htmx) {
    return;
  }
  const wait = Math.max(0, (element.liveLast || 0) + REFRESH_GAP - Date.now());
  element.liveTimer = setTimeout(() => {
    element.liveTimer = null;
    element.liveLast = Date.now();
    window.htmx.trigger(element, "refresh");
  }, wait);
}

function liveElements(kind) {
  return document.querySelectorAll(kind ? `[data-live~="${CSS.escape(kind)}"]` : "[data-live]");
}

function startPolling() {
  for (const element of document.querySelectorAll("[data-live-poll]")) {
    if (!polls.has(element)) {
      const every = Number(element.dataset.livePoll) * 1000;
      polls.set(element, setInterval(() => refresh(element), every));
    }
  }
}

function stopPolling() {
  for (const timer of polls.values()) {
    clearInterval(timer);
  }
  polls.clear();
}

function received(message) {
  if (message.type === "ping") {
    send({ type: "pong" });
    return;
  }
  if (message.type === "dashboard") {
    liveElements(message.topic).forEach(refresh);
  } else if (message.type === "notification" || message.type === "unread_count") {
    liveElements("notifications").forEach(refresh);
  }
  document.dispatchEvent(new CustomEvent("live:message", { detail: message }));
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
  }
}

// A refused credential (1008) usually means the session ended: check before leaving.
async function checkSession() {
  try {
    const response = await fetch("/api/v1/notifications/unread-count", { credentials: "same-origin" });
    if (response.status === 401) {
      toLogin();
    }
  } catch (error) {
    // Offline: keep trying to reconnect.
  }
}

function reconnectLater(code) {
  if (code === POLICY_VIOLATION) {
    checkSession();
  }
  const ceiling = Math.min(MAX_DELAY, MIN_DELAY * 2 ** attempts);
  attempts += 1;
  // Jitter, so that a restarted server is not met by every browser at the same instant.
  setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(`${scheme}${window.location.host}/api/v1/ws`);
  socket.addEventListener("open", () => {
    attempts = 0;
    const reconnected = everOpened;
    everOpened = true;
    setStatus(true);
    if (reconnected) {
      liveElements().forEach(refresh);
    }
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    received(message);
  });
  socket.addEventListener("close", (event) => {
    socket = null;
    if (up) {
      setStatus(false);
    }
    if (!leaving) {
      reconnectLater(event.code);
    }
  });
}

// Leaving the page closes the socket; that is not a drop to recover from. A page restored
// from the back-forward cache connects again.
window.addEventListener("pagehide", () => {
  leaving = true;
  if (socket) {
    socket.close(1000);
  }
});
// Logging out ends the session, which closes this socket (1008) before the logout's own answer
// arrives: that is the user leaving, not a session lost under them.
document.addEventListener("submit", (event) => {
  if (event.target.action && new URL(event.target.action).pathname === "/logout") {
    leaving = true;
  }
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted && leaving) {
    leaving = false;
    connect();
  }
});

setStatus(false);
connect();
