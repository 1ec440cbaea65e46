// Drawing a search answer: the result cards, the notes above them, the stage timings.

import { formatPrice, plural, sentence } from "./format.js";

const MODE_NAMES = { dense: "pictures", lexical: "words", hybrid: "words and pictures" };
// Why a search was not reranked (SearchResponse.rerank.outcome), in the shopper's words.
const NOT_RERANKED = {
  off: "not asked for",
  disabled: "the reranker is off on this server",
  too_few: "fewer than two results",
  timeout: "the reranker did not answer in time, so these are in search order",
  unusable: "the reranker's answer was unusable, so these are in search order",
  error: "the reranker failed, so these are in search order",
  unavailable: "the reranker is unavailable, so these are in search order",
};

/** Whether the order comes from the reranker, and the note shown when it does not. */
export function rerankNote(data) {
  const outcome = data.rerank && data.rerank.outcome;
  if (outcome === "reranked") return { reranked: true, note: "" };
  const why = NOT_RERANKED[outcome] || "no reason given";
  return { reranked: false, note: sentence(`Not reranked: ${why}`) };
}

function showText(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

function addField(parent, className, text) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  parent.append(node);
  return node;
}

/** The URL of a result's matched picture at `size` pixels. */
export function pictureUrl(result, size) {
  const url = new URL(result.image_url, window.location.origin);
  url.searchParams.set("size", String(size));
  return `${url.pathname}${url.search}`;
}

/** "picture 2 of 3" when the item has several pictures, else "". */
export function whichPicture(result) {
  return result.image_count > 1 ? `picture ${result.image_index + 1} of ${result.image_count}`
    : "";
}

/** Load a picture into img: by URL, or, with an API key (a service may want one for item
 * pictures too, and an <img> cannot send it), fetched with the key into a blob: URL. */
function showPicture(img, url, headers) {
  if (!headers.Authorization) {
    img.src = url;
    return;
  }
  fetch(url, { headers })
    .then((response) => (response.ok ? response.blob() : Promise.reject(response.status)))
    .then((blob) => {
      img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
      img.src = URL.createObjectURL(blob);
    })
    .catch(() => img.classList.add("broken"));
}

function card(result, actions, view) {
  const item = document.createElement("li");
  item.className = "card";
  Object.assign(item.dataset, {
    id: result.id, category: result.category, rank: result.rank,
    retrievalRank: result.retrieval_rank,
  });
  const picture = whichPicture(result);
  const name = result.title || result.id;
  const img = document.createElement("img");
  img.alt = [name, picture].filter(Boolean).join(", ");
  img.width = img.height = 256;
  img.loading = "lazy";
  img.addEventListener("error", () => img.classList.add("broken"));
  showPicture(img, pictureUrl(result, 256), view.headers);

  const body = document.createElement("div");
  body.className = "card-body";
  const meta = document.createElement("p");
  meta.className = "card-meta";
  addField(meta, "rank", `#${result.rank}`).title = "Final rank";
  addField(meta, "score", `score ${result.score.toFixed(3)}`);
  if (result.retrieval_rank !== result.rank) {
    addField(meta, "retrieval-rank", `retrieval #${result.retrieval_rank}`).title =
      "Rank by retrieval, before reranking";
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "card-title";
  button.setAttribute("aria-describedby", "more-like-hint");
  button.textContent = name;
  button.addEventListener("click", () => actions.choose(result));
  const facts = document.createElement("p");
  facts.className = "card-facts";
  addField(facts, "category", result.category || "uncategorised");
  if (result.brand) addField(facts, "brand", result.brand).title = "Brand";
  if (typeof result.rating === "number") {
    addField(facts, "rating", `rated ${result.rating.toFixed(1)}`).title = "Rating, out of 5";
  }
  addField(facts, "price", formatPrice(result.price, view.currency)).title = "Price";
  if (result.in_stock === false) addField(facts, "stock", "Out of stock");
  if (picture) addField(facts, "picture", `matched ${picture}`).title = "The picture that matched";
  const similar = document.createElement("button");
  similar.type = "button";
  similar.className = "similar link-button";
  similar.textContent = "Similar";
  similar.setAttribute("aria-label", `Similar products to ${name}`);
  similar.addEventListener("click", () => actions.similar(result, similar));
  body.append(meta, button, facts, similar);
  item.append(img, body);
  return item;
}

function renderTimings(el, timings) {
  el.timingsList.replaceChildren();
  for (const [stage, ms] of Object.entries(timings || {})) {
    const term = document.createElement("dt");
    term.textContent = stage.replace(/_/g, " ");
    const value = document.createElement("dd");
    value.textContent = `${Number(ms).toFixed(1)} ms`;
    el.timingsList.append(term, value);
  }
  el.timings.hidden = !el.timingsList.children.length;
}

/** Draw result cards into the grid: in place of what it shows, or after it (`append`: the
 * next page). actions: {choose(result), similar(result, button)}; view: {headers, currency}.
 * Returns the first new card. */
export function renderCards(grid, results, actions, view, { append = false } = {}) {
  const cards = results.map((result) => card(result, actions, view));
  if (append) grid.append(...cards);
  else grid.replaceChildren(...cards);
  return cards[0] || null;
}

/** What the count line says: how many of how many, and how they were found. */
export function countText(shown, data, what = "result") {
  const total = Number.isInteger(data.total) ? Math.max(data.total, shown) : shown;
  if (!shown) return "";
  const { reranked } = rerankNote(data);
  const how = MODE_NAMES[data.mode] && what === "result" ? ` Found by ${MODE_NAMES[data.mode]}.`
    : "";
  const of = shown < total ? `${shown} of ${plural(total, what)}` : plural(shown, what);
  return `${of}${reranked ? ", reranked" : ""}.${how}`;
}

/** The notes about the latest answer: reranked or why not, the caption, the reason, timings. */
export function renderNotes(el, data) {
  const { reranked, note } = rerankNote(data);
  showText(el.rerankNote, reranked ? "" : note);
  el.rerankNote.classList.toggle("quiet", data.rerank?.outcome === "off");  // as asked: no alarm
  el.truncated.hidden = !data.truncated;
  showText(el.caption, data.caption ? `Your image, as the reranker sees it: ${data.caption}` : "");
  showText(el.reason, data.reason ? `Why #1: ${data.reason}` : "");
  renderTimings(el, data.timings_ms);
}
