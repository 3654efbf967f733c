// Forms that change things go through the JSON API, the one way of doing each thing:
//
//   <form data-api="/api/v1/users" data-method="POST" data-refresh="#users-table">
//
// Fields become a JSON object: checkbox groups marked `data-list` become arrays, a checkbox
// marked `data-bool` becomes true/false, empty fields marked `data-optional` are left out, and
// `data-datetime` fields are sent as RFC 3339, `data-number` fields as numbers, `data-split`
// fields as lists of their words, `data-json` fields as the JSON they hold (empty: `{}`), a
// textarea marked `data-pairs` ("Name: value" lines) as an object, a ticked checkbox marked
// `data-null` as `null` for its name (unticked, nothing), and dotted names (`config.smtp_host`)
// as nested objects. Text that does not parse is sent as it is, for the API to name the field
// at fault. `{name}` in the URL takes the field's value.
// A 422 puts each of `details.fields` next to its field (`data-error-for="name"`); other
// errors go to the form's `data-form-error` element. On success the form may refresh htmx
// partials (`data-refresh`), reveal a result (`data-reveal`, filling `data-fill` from the
// response; a true/false value reads as the slot's `data-yes`/`data-no` when it has them), go
// elsewhere (`data-redirect`, where `{name}` takes the answer's field), or say so
// (`data-success`); it also fires `api:success` with the answer.
//
// Parts of a form that apply to one choice only (`<fieldset data-when="kind=metric">`) are
// shown and sent only while the form's `kind` field has that value.
import { csrfToken, toLogin } from "./session.js";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.api) {
    return;
  }
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    return;
  }
  submit(form);
});

// "Name: value" lines as an object; a line without a colon is a name with an empty value.
function pairsOf(text) {
  const pairs = {};
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      continue;
    }
    const at = line.indexOf(":");
    const name = (at < 0 ? line : line.slice(0, at)).trim();
    pairs[name] = at < 0 ? "" : line.slice(at + 1).trim();
  }
  return pairs;
}

function fieldsOf(form) {
  const body = {};
  const nulls = [];
  for (const element of form.elements) {
    // `:disabled` also covers fields inside a disabled fieldset.
    if (!element.name || element.matches(":disabled") || element.type === "submit") {
      continue;
    }
    const data = element.dataset;
    if ("null" in data) {
      if (element.checked) {
        nulls.push(element.name);
      }
    } else if ("list" in data) {
      body[element.name] = body[element.name] || [];
      if (element.checked) {
        body[element.name].push(element.value);
      }
    } else if ("bool" in data) {
      body[element.name] = element.checked;
    } else if (element.value === "" && "optional" in data) {
      continue;
    } else if ("number" in data) {
      const number = Number(element.value);
      const empty = element.value.trim() === "";
      body[element.name] = !empty && Number.isFinite(number) ? number : element.value;
    } else if ("split" in data) {
      body[element.name] = element.value.split(/[\s,;]+/).filter(Boolean);
    } else if ("json" in data) {
      try {
        body[element.name] = element.value.trim() === "" ? {} : JSON.parse(element.value);
      } catch (error) {
        body[element.name] = element.value;
      }
    } else if ("pairs" in data) {
      body[element.name] = pairsOf(element.value);
    } else if ("datetime" in data) {
      const at = new Date(element.value);
      body[element.name] = isNaN(at) ? element.value : at.toISOString();
    } else {
      body[element.name] = element.value;
    }
  }
  for (const name of nulls) {
    body[name] = null;
  }
  return body;
}

// Shows and enables the parts of `form` that apply to its current choices.
function applyChoices(form) {
  for (const part of form.querySelectorAll("[data-when]")) {
    const [name, value] = part.dataset.when.split("=");
    const field = form.elements.namedItem(name);
    const on = field != null && field.value === value;
    part.hidden = !on;
    part.disabled = !on;
  }
}

document.addEventListener("change", (event) => {
  const form = event.target.form;
  if (form && form.dataset.api) {
    applyChoices(form);
  }
});
document.querySelectorAll("form[data-api]").forEach(applyChoices);

// `{"config.smtp_host": "x"}` becomes `{"config": {"smtp_host": "x"}}`.
function nest(body) {
  for (const key of Object.keys(body)) {
    if (!key.includes(".")) {
      continue;
    }
    const parts = key.split(".");
    let target = body;
    for (const part of parts.slice(0, -1)) {
      target = target[part] = target[part] || {};
    }
    target[parts[parts.length - 1]] = body[key];
    delete body[key];
  }
  return body;
}

// Replaces `{name}` in the URL with the field's value and removes it from the body.
function urlOf(form, body) {
  return form.dataset.api.replace(/\{([a-z_]+)\}/g, (_, name) => {
    const value = body[name] ?? "";
    delete body[name];
    return encodeURIComponent(value);
  });
}

function clearErrors(form) {
  for (const element of form.querySelectorAll("[data-error-for], [data-form-error]")) {
    element.textContent = "";
    element.hidden = true;
  }
  for (const element of form.querySelectorAll("[aria-invalid]")) {
    element.removeAttribute("aria-invalid");
  }
  const status = form.querySelector("[data-form-status]");
  if (status) {
    status.textContent = "";
  }
}

function showFormError(form, message) {
  const target = form.querySelector("[data-form-error]");
  if (target) {
    target.textContent = message;
    target.hidden = false;
  } else {
    window.alert(message);
  }
}

// `roles.0` and `identities.1.provider` belong to the `roles` and `identities` fields.
function errorTarget(form, field) {
  const parts = field.split(".");
  for (let n = parts.length; n > 0; n--) {
    const name = parts.slice(0, n).join(".");
    const target = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (target) {
      return { name, target };
    }
  }
  return null;
}

function showFieldErrors(form, fields) {
  const unplaced = [];
  for (const [field, message] of Object.entries(fields)) {
    const found = errorTarget(form, field);
    if (!found) {
      unplaced.push(`${field} ${message}`);
      continue;
    }
    found.target.textContent = message;
    found.target.hidden = false;
    for (const input of form.querySelectorAll(`[name="${CSS.escape(found.name)}"]`)) {
      input.setAttribute("aria-invalid", "true");
    }
  }
  if (unplaced.length > 0) {
    showFormError(form, unplaced.join("; "));
  }
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) {
    first.focus();
  }
}

function valueAt(body, path) {
  return path.split(".").reduce((value, key) => (value == null ? value : value[key]), body);
}

async function submit(form) {
  const buttons = form.querySelectorAll("button, input[type=submit]");
  clearErrors(form);
  const body = fieldsOf(form);
  const url = urlOf(form, body);
  nest(body);
  const method = (form.dataset.method || "POST").toUpperCase();
  const headers = { "x-csrf-token": csrfToken(), accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (Object.keys(body).length > 0 && method !== "DELETE") {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  buttons.forEach((button) => (button.disabled = true));
  let response;
  let text = "";
  try {
    response = await fetch(url, init);
    text = await response.text();
  } catch (error) {
    showFormError(form, "The server could not be reached; try again.");
    return;
  } finally {
    buttons.forEach((button) => (button.disabled = false));
  }
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch (error) {
    answer = null;
  }
  if (response.ok) {
    succeeded(form, answer);
    return;
  }
  if (response.status === 401) {
    toLogin();
    return;
  }
  const error = (answer && answer.error) || {};
  if (response.status === 422 && error.details && error.details.fields) {
    showFieldErrors(form, error.details.fields);
  } else {
    showFormError(form, error.message || `The request failed (${response.status}).`);
  }
}

function succeeded(form, answer) {
  const data = form.dataset;
  // Other modules may act on the answer (the bell reads unread counts from it).
  form.dispatchEvent(new CustomEvent("api:success", { bubbles: true, detail: answer }));
  if (data.redirect) {
    const to = data.redirect.replace(/\{([a-z_]+)\}/g, (_, name) =>
      encodeURIComponent(valueAt(answer, name) ?? ""),
    );
    window.location.assign(to);
    return;
  }
  if (data.reveal) {
    const target = document.querySelector(data.reveal);
    for (const slot of target.querySelectorAll("[data-fill]")) {
      const value = valueAt(answer, slot.dataset.fill);
      const yesNo = typeof value === "boolean" && "yes" in slot.dataset;
      slot.textContent = yesNo ? (value ? slot.dataset.yes : slot.dataset.no) : (value ?? "");
      if (typeof value === "boolean") {
        slot.dataset.value = String(value);
      }
    }
    target.hidden = false;
  }
  if ("reset" in data) {
    form.reset();
  }
  if (data.success) {
    const status = form.querySelector("[data-form-status]");
    if (status) {
      status.textContent = data.success;
    }
  }
  for (const selector of (data.refresh || "").split(",").filter(Boolean)) {
    const target = document.querySelector(selector.trim());
    if (target) {
      window.htmx.trigger(target, "refresh");
    }
  }
}
