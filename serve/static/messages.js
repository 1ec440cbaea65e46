// The page's one error line (role="alert") and what a failed request says in it.

import { sentence } from "./format.js";

const box = document.getElementById("error");
const settings = document.getElementById("settings");

export function showError(message) {
  box.textContent = message;
  box.classList.add("shown");
}

export function clearError() {
  box.textContent = "";
  box.classList.remove("shown");
}

function retrySeconds(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** What a failed answer (not 2xx) means, in the shopper's words: the server's own message,
 * the field at fault, when to retry, where the API key goes. */
export async function errorMessage(response, what) {
  return (await explain(response, what)).message;
}

/** A failed answer's message (errorMessage) and its error code (null when it has none). */
export async function explain(response, what) {
  let detail = null;
  try {
    detail = (await response.json())?.error ?? null;
  } catch { /* not our JSON error format: the status says enough */ }
  const status = `${response.status}${response.statusText ? " " + response.statusText : ""}`;
  const said = detail?.message ? `: ${detail.message}` : "";
  const parts = [sentence(`${what} failed (${status})${said}`)];
  if (detail?.field) parts.push(`Field: ${detail.field}.`);
  if (detail?.code === "cursor_expired") {
    parts.push("The catalogue changed since this search: press Search to start again.");
  }
  if (response.status === 503) {
    const wait = retrySeconds(response.headers.get("Retry-After"));
    parts.push(wait === null ? "The service is temporarily unavailable, please retry shortly."
      : `The service is temporarily unavailable, retry in ${wait} s.`);
  }
  if (response.status === 401) {
    parts.push("Enter an API key under Settings.");
    settings.open = true;
  }
  return { message: parts.join(" "), code: detail?.code ?? null };
}
