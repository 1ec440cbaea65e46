// The search form: its fields as a search's, and the folded options saying what they hold.

import { queryImage } from "./query-image.js";

const $ = (id) => document.getElementById(id);
const el = {
  text: $("q-text"), k: $("k"), rerank: $("rerank"), mode: $("mode"), category: $("f-category"),
  priceMin: $("f-price-min"), priceMax: $("f-price-max"), options: $("options"),
  optionsSummary: $("options-summary"),
};

function readNumber(input, label, problems) {
  const raw = input.value.trim();
  if (!raw && !input.validity.badInput) return undefined;
  if (!input.checkValidity()) {
    problems.push(`${label}: ${input.validationMessage || "not a valid number"}`);
    return undefined;
  }
  return Number(raw);
}

/** The form as search fields ([name, value] pairs), or the problems that stop a search. */
export function readForm() {
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
  const image = queryImage();
  if (!text && !image) problems.push("Type what you are looking for, or add an image");
  if (problems.length) {
    el.options.open ||= problems.some((p) => !p.startsWith("Type what"));
    return { problems };
  }
  const fields = [["text", text], ["k", String(k)], ["rerank", String(el.rerank.checked)]];
  if (el.mode.value !== "auto") fields.push(["mode", el.mode.value]);
  if (Object.keys(filters).length) fields.push(["filters", JSON.stringify(filters)]);
  if (image) fields.push(["image", image]);
  return { fields };
}

/** The folded options say what they hold: "12 a page, reranked, Clothing". */
function describeOptions() {
  const parts = [`${el.k.value.trim() || "?"} a page`, el.rerank.checked ? "reranked"
    : "not reranked"];
  if (el.mode.value !== "auto") parts.push(el.mode.selectedOptions[0].textContent);
  const categories = el.category.value.trim();
  if (categories) parts.push(categories);
  const [low, high] = [el.priceMin.value.trim(), el.priceMax.value.trim()];
  if (low || high) parts.push(`price ${low || "0"} to ${high || "any"}`);
  el.optionsSummary.textContent = `(${parts.join(", ")})`;
}
el.options.addEventListener("input", describeOptions);
el.options.addEventListener("change", describeOptions);
describeOptions();
