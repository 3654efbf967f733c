// Verify on a recording's player (SPEC 8.3): the stored content is checked against the hash
// its end's audit entry holds, and the page says what was found.
const REASONS = {
  content_mismatch: "its content changed",
  missing: "its stored content is missing",
  unreadable: "its stored content cannot be read",
  audit_entry_missing: "no audit entry holds its hash",
  not_sealed: "it ended before recordings were sealed",
};

const button = document.querySelector("button[data-verify]");
const result = document.getElementById("verify-result");

async function verify() {
  button.disabled = true;
  result.hidden = false;
  result.className = "";
  result.textContent = "Checking…";
  try {
    const response = await fetch(button.dataset.verify, {
      credentials: "same-origin",
      headers: { accept: "application/json" },
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      result.className = "badge bad";
      result.textContent = body?.error?.message ?? `The check failed (${response.status}).`;
    } else if (body.valid) {
      result.className = "badge ok";
      result.textContent = `Intact: SHA-256 ${body.sha256_actual} matches audit entry ${body.audit_entry_id}.`;
    } else {
      result.className = "badge bad";
      const why = REASONS[body.reason] ?? body.reason;
      result.textContent = `Not intact: ${why} (expected ${body.sha256_expected ?? "no hash"}, found ${body.sha256_actual ?? "nothing"}).`;
    }
  } catch {
    result.className = "badge bad";
    result.textContent = "The server could not be reached; try again.";
  } finally {
    button.disabled = false;
  }
}

if (button && result) {
  button.addEventListener("click", verify);
}
