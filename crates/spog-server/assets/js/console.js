// The console's entry module: wires htmx to the session (CSRF header, expired sessions) and
// loads the behaviours every page shares (forms, the live socket, the bell).
import { csrfToken, toLogin } from "./session.js";
import "./forms.js";
import "./clipboard.js";
import "./filters.js";
import "./live.js";
import "./bell.js";

document.body.addEventListener("htmx:configRequest", (event) => {
  const method = (event.detail.verb || "get").toUpperCase();
  if (!["GET", "HEAD", "OPTIONS"].includes(method)) {
    event.detail.headers["x-csrf-token"] = csrfToken();
  }
});

// A poll or partial load after the session ended: go to the login page, then come back.
document.body.addEventListener("htmx:responseError", (event) => {
  if (event.detail.xhr.status === 401) {
    toLogin();
  }
});
