// The Pardus search page: builds the multipart query (form.js), calls /v1/search, draws the
// results (results.js).

import { readForm } from "./form.js";
import { clearError, errorMessage, showError } from "./messages.js";
import { setImage } from "./query-image.js";
import { pictureUrl, render } from "./results.js";

const KEY_STORAGE = "pardus.apiKey";
const $ = (id) => document.getElementById(id);

const el = {
  form: $("search-form"), apiKey: $("api-key"), submit: $("submit"), busy: $("busy"),
  section: $("results-section"), heading: $("results-heading"), count: $("count"),
  rerankNote: $("rerank-note"), truncated: $("truncated-note"), caption: $("caption"),
  reason: $("reason"), grid: $("grid"), hint: $("more-like-hint"), timings: $("timings"),
  timingsList: $("timings-list"),
};

const state = { controller: null };

// -- the API key --------------------------------------------------------------------------------
el.apiKey.value = sessionStorage.getItem(KEY_STORAGE) || "";
el.apiKey.addEventListener("input", () => {
  const key = el.apiKey.value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
});

function authHeaders() {
  const key = el.apiKey.value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// -- the request --------------------------------------------------------------------------------
function setBusy(busy) {
  el.submit.disabled = busy;
  el.busy.hidden = !busy;
  el.form.setAttribute("aria-busy", String(busy));
  el.section.setAttribute("aria-busy", String(busy));
}

function formBody(fields) {
  const body = new FormData();
  for (const [name, value] of fields) {
    if (value instanceof Blob) body.append(name, value, value.name || "query.jpg");
    else body.append(name, value);
  }
  return body;
}

async function search({ focusResults = false } = {}) {
  const { fields, problems } = readForm();
  if (problems) {
    showError(`Cannot search yet. ${problems.join(". ")}.`);
    return;
  }
  const body = formBody(fields);
  state.controller?.abort();  // the newest query wins
  const controller = (state.controller = new AbortController());
  clearError();
  setBusy(true);
  try {
    const response = await fetch("/v1/search", {
      method: "POST", body, headers: authHeaders(), signal: controller.signal,
    });
    if (!response.ok) {
      clearResults();
      showError(await errorMessage(response, "Search"));
      return;
    }
    let data;
    try {
      data = await response.json();
    } catch {
      showError("The service answered with something that is not a search result. Try again.");
      return;
    }
    render(el, data, moreLikeThis, authHeaders());
    if (focusResults) el.heading.focus();
  } catch (error) {
    if (error.name === "AbortError") return;
    clearResults();
    showError(`Could not reach the search service (${error.message}). Check your connection `
      + "and that the service is running, then try again.");
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
  }
}

el.form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});

function clearResults() {
  render(el, { results: [], rerank: { outcome: "reranked" }, timings_ms: {} }, moreLikeThis);
  el.count.textContent = "";
}

// -- "more like this" ---------------------------------------------------------------------------
async function moreLikeThis(result) {
  clearError();
  const url = pictureUrl(result, 512);  // the picture that matched
  let blob;
  try {
    const response = await fetch(url, { headers: authHeaders() });
    if (!response.ok) {
      showError(await errorMessage(response, "Loading that item's image"));
      return;
    }
    blob = await response.blob();
  } catch (error) {
    showError(`Could not load that item's image (${error.message}). Try again.`);
    return;
  }
  const ext = (blob.type.split("/")[1] || "jpg").replace("jpeg", "jpg");
  if (setImage(new File([blob], `${result.id}.${ext}`, { type: blob.type || "image/jpeg" }))) {
    await search({ focusResults: true });
  }
}
