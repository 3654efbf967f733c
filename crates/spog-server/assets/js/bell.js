// The bell in the top bar: the unread badge and any `data-unread-count` element (from the
// WebSocket, polled while it is down), the dropdown with its filters, a toast for each new
// notification, and the counts that mark-read forms on this page answer (forms marked
// `data-unread` get `{"count"}` back).
import { isLive } from "./live.js";

const POLL_EVERY = 30000;
const TOAST_FOR = 8000;

const bell = document.getElementById("bell");
const button = document.getElementById("bell-button");
const menu = document.getElementById("bell-menu");
const badge = document.getElementById("bell-badge");
const list = document.getElementById("bell-list");
const toasts = document.getElementById("toasts");
const title = document.title;
let poll = null;

function showCount(count) {
  badge.textContent = count > 99 ? "99+" : String(count);
  badge.dataset.count = String(count);
  badge.hidden = count <= 0;
  button.setAttribute("aria-label", count > 0 ? `Notifications, ${count} unread` : "Notifications");
  document.title = count > 0 ? `(${count}) ${title}` : title;
  for (const element of document.querySelectorAll("[data-unread-count]")) {
    element.textContent = String(count);
  }
}

async function fetchCount() {
  try {
    const response = await fetch("/api/v1/notifications/unread-count", {
      credentials: "same-origin",
      headers: { accept: "application/json" },
    });
    // The socket's own count is newer than an answer that crossed its connection.
    if (response.ok && !isLive()) {
      showCount((await response.json()).count);
    }
  } catch (error) {
    // Offline: the next poll or the socket will tell.
  }
}

function pollWhileDown(connected) {
  if (connected && poll) {
    clearInterval(poll);
    poll = null;
  } else if (!connected && !poll) {
    fetchCount();
    poll = setInterval(fetchCount, POLL_EVERY);
  }
}

function isOpen() {
  return !menu.hidden;
}

function reloadList() {
  if (window.htmx) {
    window.htmx.trigger(list, "refresh");
  }
}

function setOpen(open) {
  menu.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) {
    reloadList();
  }
}

function toast(notification) {
  const item = document.createElement("div");
  item.className = `toast ${notification.severity}`;
  item.dataset.id = notification.id;
  const heading = document.createElement(notification.link ? "a" : "strong");
  if (notification.link) {
    heading.href = notification.link;
  }
  heading.textContent = notification.title;
  const message = document.createElement("p");
  message.textContent = notification.message;
  item.append(heading, message);
  toasts.append(item);
  setTimeout(() => item.remove(), TOAST_FOR);
}

if (bell) {
  button.addEventListener("click", () => setOpen(!isOpen()));
  document.addEventListener("click", (event) => {
    if (isOpen() && !bell.contains(event.target)) {
      setOpen(false);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isOpen()) {
      setOpen(false);
      button.focus();
    }
  });
  document.addEventListener("live:message", (event) => {
    const message = event.detail;
    if (message.type === "unread_count") {
      showCount(message.count);
    } else if (message.type === "notification") {
      showCount(message.unread_count);
      toast(message.notification);
    } else {
      return;
    }
    if (isOpen()) {
      reloadList();
    }
  });
  document.addEventListener("api:success", (event) => {
    const answer = event.detail;
    if ("unread" in event.target.dataset && answer && typeof answer.count === "number") {
      showCount(answer.count);
    }
  });
  document.addEventListener("live:status", (event) => pollWhileDown(event.detail.connected));
  pollWhileDown(isLive());
}
