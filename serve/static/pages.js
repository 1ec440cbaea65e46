// The lists the page shows, page by page: a search (the same form body each time, plus the
// cursor) or an item's similar products (the same URL each time, plus the cursor).

import { explain } from "./messages.js";

/** A failed page: a message for the shopper, and the API's error code when it gave one. */
export class PageError extends Error {
  constructor(message, code = null) {
    super(message);
    this.code = code;
  }
}

/** A list of results and where it goes on: `request(cursor)` gives the fetch of a page. */
export class Listing {
  constructor(kind, request, about = {}) {
    Object.assign(this, { kind, request, about, results: [], data: null, next: null });
  }

  /** Take an answer: the first page (in place of what the list held) or the next one. */
  take(data, append) {
    const results = Array.isArray(data.results) ? data.results : [];
    this.results = append ? [...this.results, ...results] : results;
    this.data = data;
    this.next = data.next || null;
    return results;
  }
}

/** A search by these form fields ([name, value] pairs, kept as they were sent): every page
 * sends exactly them, the next ones with the cursor too. */
export function searchListing(fields, about) {
  const kept = fields.map(([name, value]) => [name, value]);
  return new Listing("search", (cursor) => {
    const body = new FormData();
    for (const [name, value] of kept) {
      if (value instanceof Blob) body.append(name, value, value.name || "query.jpg");
      else body.append(name, value);
    }
    if (cursor) body.append("cursor", cursor);
    return ["/v1/search", { method: "POST", body }];
  }, about);
}

/** The products like item `id`, `k` a page. */
export function similarListing(id, k, about) {
  return new Listing("similar", (cursor) => {
    const query = new URLSearchParams({ k: String(k) });
    if (cursor) query.set("cursor", cursor);
    return [`/v1/items/${encodeURIComponent(id)}/similar?${query}`, { method: "GET" }];
  }, about);
}

/** The answer to one page of `listing` (its first, or the one `cursor` points at); a
 * PageError says what went wrong, an AbortError passes through. */
export async function fetchPage(listing, cursor, { headers, signal, what }) {
  const [url, init] = listing.request(cursor);
  let response;
  try {
    response = await fetch(url, { ...init, headers, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new PageError(`Could not reach the search service (${error.message}). Check your `
      + "connection and that the service is running, then try again.");
  }
  if (!response.ok) {
    const { message, code } = await explain(response, what);
    throw new PageError(message, code);
  }
  try {
    return await response.json();
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new PageError("The service answered with something that is not a search result. "
      + "Try again.");
  }
}
