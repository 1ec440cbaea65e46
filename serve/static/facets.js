// The facet panel: a group of checkboxes per facet, with the answer's counts; the picks it
// holds become the next search's `refine` (values of one facet OR'd, facets AND'd).

import { priceRangeLabel, ratingBandLabel } from "./format.js";

/** The facets every search asks for, in the panel's order. */
export const FACETS = ["category", "brand", "price", "rating"];
const TITLES = { category: "Category", brand: "Brand", price: "Price", rating: "Customer rating" };

function valueLabel(facet, value, currency) {
  if (facet === "price") return priceRangeLabel(value, currency);
  if (facet === "rating") return ratingBandLabel(value);
  return value;
}

/** The picks the panel holds: {facet: [values]} for the facets with any, in panel order. */
export function readPicks(panel) {
  const picks = {};
  for (const box of panel.querySelectorAll("input[type=checkbox]:checked")) {
    (picks[box.dataset.facet] ||= []).push(box.value);
  }
  return picks;
}

export const pickCount = (picks) => Object.values(picks).reduce((n, v) => n + v.length, 0);

function option(facet, entry, index, currency) {
  const item = document.createElement("li");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = `facet-${facet}-${index}`;
  box.value = entry.value;
  box.dataset.facet = facet;
  box.checked = entry.selected;
  const label = document.createElement("label");
  label.htmlFor = box.id;
  const count = document.createElement("span");
  count.className = "facet-count";
  count.textContent = `(${entry.count})`;
  label.append(`${valueLabel(facet, entry.value, currency)} `, count);
  item.append(box, label);
  return item;
}

function group(facet, values, currency) {
  const set = document.createElement("fieldset");
  set.className = "facet";
  set.dataset.facet = facet;
  const legend = document.createElement("legend");
  legend.textContent = TITLES[facet] || facet;
  const list = document.createElement("ul");
  list.append(...values.map((entry, i) => option(facet, entry, i, currency)));
  set.append(legend, list);
  return set;
}

/** Draw the answer's facets into the panel; `picks` (what the search sent) stay shown even
 * where the answer left one out. Returns how many values the panel shows. */
export function renderFacets(panel, facets, picks, currency) {
  const byName = new Map((facets || []).map((facet) => [facet.name, facet.values]));
  const groups = [];
  let shown = 0;
  for (const name of FACETS) {
    const values = [...(byName.get(name) || [])];
    for (const value of picks[name] || []) {
      if (!values.some((v) => v.value === value)) values.push({ value, count: 0, selected: true });
    }
    if (!values.length) continue;
    groups.push(group(name, values, currency));
    shown += values.length;
  }
  if (pickCount(picks)) {
    const clear = document.createElement("button");
    clear.type = "button";
    clear.className = "link-button";
    clear.dataset.clear = "";
    clear.textContent = "Clear all picks";
    groups.unshift(clear);
  }
  panel.replaceChildren(...groups);
  return shown;
}

/** The checkbox for facet/value in the panel, if it shows one. */
export function findBox(panel, facet, value) {
  return [...panel.querySelectorAll("input[type=checkbox]")]
    .find((box) => box.dataset.facet === facet && box.value === value) || null;
}
