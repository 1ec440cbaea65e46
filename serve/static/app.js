// The Pardus search page: reads the form, runs a search and its next pages, refines and sorts
// it, shows an item's similar products, and draws them (results.js, facets.js).

import { FACETS, findBox, pickCount, readPicks, renderFacets } from "./facets.js";
import { readForm } from "./form.js";
import { clearError, errorMessage, showError } from "./messages.js";
import { fetchPage, searchListing, similarListing } from "./pages.js";
import { setImage } from "./query-image.js";
import { countText, pictureUrl, renderCards, renderNotes } from "./results.js";

const KEY_STORAGE = "pardus.apiKey";
const WIDE = window.matchMedia("(min-width: 56rem)");  // the facets sit beside the results
const $ = (id) => document.getElementById(id);

const el = {
  form: $("search-form"), k: $("k"), apiKey: $("api-key"), submit: $("submit"), busy: $("busy"),
  section: $("results-section"), heading: $("results-heading"), back: $("back"),
  count: $("count"), sortField: $("sort-field"), sort: $("sort"), plainNote: $("plain-note"),
  refine: $("refine"), refinePicked: $("refine-picked"), facets: $("facets"),
  rerankNote: $("rerank-note"), truncated: $("truncated-note"), caption: $("caption"),
  reason: $("reason"), hint: $("more-like-hint"), grid: $("grid"), more: $("more"),
  timings: $("timings"), timingsList: $("timings-list"),
};

// controller: the request in flight; listing: what the grid shows; search: the latest search
// (what "Back" returns to); from: the search result whose similar products are shown; plain:
// the catalogue has no facets or sorts.
const state = { controller: null, listing: null, search: null, from: null, plain: false };

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

function setBusy(busy) {
  el.submit.disabled = busy;
  el.more.disabled = busy;
  el.busy.hidden = !busy;
  el.form.setAttribute("aria-busy", String(busy));
  el.section.setAttribute("aria-busy", String(busy));
}

// -- loading and showing a listing ------------------------------------------------------------
const actions = { choose: moreLikeThis, similar: showSimilar };

function emptyText(listing) {
  if (listing.kind === "similar") return "No similar products.";
  if (pickCount(listing.about.picks)) return "No results with these picks: unpick some.";
  return "No results. Try other words, another image, or fewer filters.";
}

/** Draw `listing` (all its results, or only `fresh`, its newest page, after the others);
 * returns the first card drawn. */
function show(listing, fresh = null) {
  const { data, kind, about } = listing;
  const similar = kind === "similar";
  const view = { headers: authHeaders(), currency: data.currency };
  const first = renderCards(el.grid, fresh || listing.results, actions, view,
                            { append: Boolean(fresh) });
  const n = listing.results.length;
  el.count.textContent = countText(n, data, similar ? "similar product" : "result")
    || emptyText(listing);
  renderNotes(el, data);
  el.rerankNote.hidden ||= similar;  // similar products are never reranked: nothing to say
  el.heading.textContent = similar ? `Products like “${about.title}”` : "Results";
  el.back.hidden = !similar;
  el.sortField.hidden = similar || about.plain;
  el.plainNote.hidden = !about.plain;
  if (!similar && !about.plain) {
    el.sort.value = about.sort;
    const picked = pickCount(about.picks);
    el.refinePicked.textContent = picked ? `(${picked} picked)` : "";
    const focused = el.facets.contains(document.activeElement) ? document.activeElement : null;
    el.refine.hidden = !renderFacets(el.facets, data.facets, about.picks, data.currency);
    if (focused) {  // the panel is drawn anew: the shopper's place in it stays where it was
      const again = focused.dataset.facet && findBox(el.facets, focused.dataset.facet,
                                                     focused.value);
      (again || el.refine.querySelector("summary")).focus();
    }
  } else {
    el.refine.hidden = true;
  }
  el.more.hidden = !listing.next;
  el.hint.hidden = !n;
  el.section.hidden = false;
  state.listing = listing;
  if (!similar) state.search = listing;
  return first;
}

function clearResults() {
  el.grid.replaceChildren();
  el.facets.replaceChildren();
  el.count.textContent = "";
  for (const node of [el.more, el.refine, el.hint, el.timings, el.rerankNote, el.reason,
    el.caption, el.truncated, el.plainNote, el.section]) node.hidden = true;
  Object.assign(state, { listing: null, search: null });
}

/** Fetch a page of `listing` (its first, or with `append` its next) and show it; `focus`
 * gets the first new card. The newest request wins. */
async function load(listing, { append = false, what = "Search", focus = null } = {}) {
  state.controller?.abort();
  const controller = (state.controller = new AbortController());
  clearError();
  setBusy(true);
  try {
    const data = await fetchPage(listing, append ? listing.next : null,
                                 { headers: authHeaders(), signal: controller.signal, what });
    const fresh = listing.take(data, append);
    const first = show(listing, append ? fresh : null);
    if (focus) focus(first);
  } catch (error) {
    if (error.name === "AbortError") return;
    const { kind, about } = listing;
    if (error.code === "catalogue_outdated" && kind === "search" && !append && !about.plain) {
      state.plain = true;
      search({ ...about, plain: true, focus });  // the same search, without facets and sort
      return;
    }
    if (kind === "search" && !append) clearResults();
    showError(error.message);
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
  }
}

/** Search by the form's fields (`base`) in `sort` order, refined by `picks`; `plain`: none
 * of those (a catalogue written before them answers a search with facets by 409). */
function search({ base, sort, picks = {}, plain = false, focus = null }) {
  const fields = [...base];
  if (!plain) {
    if (sort !== "relevance") fields.push(["sort", sort]);
    fields.push(["facets", JSON.stringify(FACETS)]);
    if (pickCount(picks)) fields.push(["refine", JSON.stringify(picks)]);
  }
  return load(searchListing(fields, { base, sort, picks, plain }), { focus });
}

function searchFromForm(focus = null) {
  const { fields, problems } = readForm();
  if (problems) {
    showError(`Cannot search yet. ${problems.join(". ")}.`);
    return Promise.resolve();
  }
  return search({ base: fields, sort: el.sort.value, plain: state.plain, focus });
}

el.form.addEventListener("submit", (event) => {
  event.preventDefault();
  searchFromForm();
});

// -- refining, sorting, more results ----------------------------------------------------------
function refineLatest(changes) {
  if (!state.search) return;  // no search yet: the sort waits for the first one
  const { base, sort, picks } = state.search.about;
  search({ base, sort, picks, ...changes });
}

el.facets.addEventListener("change", () => refineLatest({ picks: readPicks(el.facets) }));
el.facets.addEventListener("click", (event) => {
  if (event.target.matches("[data-clear]")) refineLatest({ picks: {} });
});
el.sort.addEventListener("change", () => refineLatest({ sort: el.sort.value }));

el.more.addEventListener("click", () => {
  const listing = state.listing;
  if (!listing?.next) return;
  load(listing, {
    append: true,
    what: listing.kind === "similar" ? "Loading more similar products" : "Loading more results",
    focus: (first) => first?.querySelector(".card-title").focus(),
  });
});

// Wide screens show the facets beside the results; phones fold them under "Refine".
const placeFacets = () => { el.refine.open = WIDE.matches; };
WIDE.addEventListener("change", placeFacets);
placeFacets();

// -- similar products -------------------------------------------------------------------------
function showSimilar(result) {
  const k = state.search?.about.base.find(([name]) => name === "k")?.[1] || el.k.value || 12;
  if (state.listing?.kind === "search") state.from = result.id;
  const listing = similarListing(result.id, k, { title: result.title || result.id });
  load(listing, { what: "Finding similar products", focus: () => el.heading.focus() });
}

el.back.addEventListener("click", () => {
  if (!state.search) return;
  state.controller?.abort();
  clearError();
  show(state.search);
  const from = [...el.grid.children].find((card) => card.dataset.id === state.from);
  (from?.querySelector(".similar") || el.heading).focus();
});

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
    await searchFromForm(() => el.heading.focus());
  }
}
