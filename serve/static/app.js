// The Pardus search page: builds the multipart query, calls /v1/search, draws the results
// (results.js).

import { pictureUrl, render, sentence } from "./results.js";

const KEY_STORAGE = "pardus.apiKey";
const $ = (id) => document.getElementById(id);

const el = {
  form: $("search-form"), text: $("q-text"), file: $("q-image"), zone: $("drop-zone"),
  preview: $("preview"), previewImg: $("preview-img"), previewName: $("preview-name"),
  remove: $("remove-image"), k: $("k"), rerank: $("rerank"), mode: $("mode"),
  category: $("f-category"),
  priceMin: $("f-price-min"), priceMax: $("f-price-max"), settings: $("settings"),
  apiKey: $("api-key"), submit: $("submit"), busy: $("busy"), error: $("error"),
  section: $("results-section"), heading: $("results-heading"), count: $("count"),
  rerankNote: $("rerank-note"), truncated: $("truncated-note"), caption: $("caption"),
  reason: $("reason"), grid: $("grid"), hint: $("more-like-hint"), timings: $("timings"),
  timingsList: $("timings-list"),
};

const state = { image: null, previewUrl: null, controller: null };

// -- the query image ----------------------------------------------------------------------------
function setImage(file) {
  if (file.type && !file.type.startsWith("image/")) {
    showError(`“${file.name}” is not an image (${file.type}): `
      + "choose a JPEG, PNG or WebP file.");
    return false;
  }
  clearError();
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.image = file;
  state.previewUrl = URL.createObjectURL(file);
  el.previewImg.src = state.previewUrl;
  el.previewName.textContent = file.name;
  el.preview.hidden = false;
  if (el.file.files[0] !== file) {
    try {  // mirror it in the file input, so the control says what is chosen
      const transfer = new DataTransfer();
      transfer.items.add(file);
      el.file.files = transfer.files;
    } catch { /* older browsers: the preview alone shows it */ }
  }
  return true;
}

function removeImage() {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  Object.assign(state, { image: null, previewUrl: null });
  el.previewImg.removeAttribute("src");
  el.previewName.textContent = "";
  el.preview.hidden = true;
  el.file.value = "";
  el.file.focus();
}

el.file.addEventListener("change", () => {
  const file = el.file.files[0];
  if (file && !setImage(file)) el.file.value = "";
});
el.remove.addEventListener("click", removeImage);
el.previewImg.addEventListener("error", () => {
  if (state.previewUrl) el.preview.classList.add("no-preview");
});
el.previewImg.addEventListener("load", () => el.preview.classList.remove("no-preview"));
el.zone.addEventListener("dragover", (event) => {
  event.preventDefault();
  el.zone.classList.add("dragging");
});
el.zone.addEventListener("dragleave", (event) => {
  if (!el.zone.contains(event.relatedTarget)) el.zone.classList.remove("dragging");
});
el.zone.addEventListener("drop", (event) => {
  event.preventDefault();
  el.zone.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  if (file) setImage(file);
});
// A file dropped beside the zone must not replace the page with the file.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
document.addEventListener("paste", (event) => {
  const item = Array.from(event.clipboardData?.items || [])
    .find((i) => i.kind === "file" && i.type.startsWith("image/"));
  if (!item) return;  // ordinary text pastes go where they were going
  event.preventDefault();
  const blob = item.getAsFile();
  const ext = (blob.type.split("/")[1] || "png").replace("jpeg", "jpg");
  setImage(new File([blob], blob.name || `pasted.${ext}`, { type: blob.type }));
});

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

// -- messages -----------------------------------------------------------------------------------

function showError(message) {
  el.error.textContent = message;
  el.error.classList.add("shown");
}

function clearError() {
  el.error.textContent = "";
  el.error.classList.remove("shown");
}

function retrySeconds(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

async function errorMessage(response, what) {
  let detail = null;
  try {
    detail = (await response.json())?.error ?? null;
  } catch { /* not our JSON error format: the status says enough */ }
  const status = `${response.status}${response.statusText ? " " + response.statusText : ""}`;
  const said = detail?.message ? `: ${detail.message}` : "";
  const parts = [sentence(`${what} failed (${status})${said}`)];
  if (detail?.field) parts.push(`Field: ${detail.field}.`);
  if (response.status === 503) {
    const wait = retrySeconds(response.headers.get("Retry-After"));
    parts.push(wait === null ? "The service is temporarily unavailable, please retry shortly."
      : `The service is temporarily unavailable, retry in ${wait} s.`);
  }
  if (response.status === 401) {
    parts.push("Enter an API key under Settings.");
    el.settings.open = true;
  }
  return parts.join(" ");
}

// -- the request --------------------------------------------------------------------------------
function readNumber(input, label, problems) {
  const raw = input.value.trim();
  if (!raw && !input.validity.badInput) return undefined;
  if (!input.checkValidity()) {
    problems.push(`${label}: ${input.validationMessage || "not a valid number"}`);
    return undefined;
  }
  return Number(raw);
}

function buildQuery() {
  const problems = [];
  const text = el.text.value.trim();
  const k = readNumber(el.k, "Number of results", problems);
  if (el.k.value.trim() === "") problems.push("Number of results: enter a number from 1 to 100");
  const filters = {};
  const categories = el.category.value.split(",").map((c) => c.trim()).filter(Boolean);
  if (categories.length) filters.categories = categories;
  const priceMin = readNumber(el.priceMin, "Price from", problems);
  const priceMax = readNumber(el.priceMax, "Price up to", problems);
  if (priceMin !== undefined) filters.price_min = priceMin;
  if (priceMax !== undefined) filters.price_max = priceMax;
  if (priceMin !== undefined && priceMax !== undefined && priceMin > priceMax) {
    problems.push("Price from must not be more than Price up to");
  }
  if (!text && !state.image) problems.push("Type what you are looking for, or add an image");
  if (problems.length) return { problems };

  const body = new FormData();
  body.append("text", text);
  body.append("k", String(k));
  body.append("rerank", el.rerank.checked ? "true" : "false");
  if (el.mode.value !== "auto") body.append("mode", el.mode.value);
  if (Object.keys(filters).length) body.append("filters", JSON.stringify(filters));
  if (state.image) body.append("image", state.image, state.image.name || "query.jpg");
  return { body };
}

function setBusy(busy) {
  el.submit.disabled = busy;
  el.busy.hidden = !busy;
  el.form.setAttribute("aria-busy", String(busy));
  el.section.setAttribute("aria-busy", String(busy));
}

async function search({ focusResults = false } = {}) {
  const { body, problems } = buildQuery();
  if (problems) {
    showError(`Cannot search yet. ${problems.join(". ")}.`);
    return;
  }
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
