// Words and numbers as the shopper reads them: prices in the answer's currency, facet values.

export const sentence = (text) => (/[.!?]$/.test(text) ? text : `${text}.`);

const LOCALE = document.documentElement.lang || undefined;
const formats = new Map();

function moneyFormat(currency, whole) {
  const key = `${currency}:${whole}`;
  if (!formats.has(key)) {
    let format = null;
    try {
      format = new Intl.NumberFormat(LOCALE, {
        style: "currency", currency, ...(whole ? { maximumFractionDigits: 0 } : {}),
      });
    } catch { /* not an ISO 4217 code this browser knows: plain number and code */ }
    formats.set(key, format);
  }
  return formats.get(key);
}

/** A price in `currency` (ISO 4217): "$12.50"; "-" when the catalogue does not know it. */
export function formatPrice(price, currency, { whole = false } = {}) {
  if (typeof price !== "number" || !Number.isFinite(price)) return "-";
  const format = currency ? moneyFormat(currency, whole) : null;
  if (format) return format.format(price);
  const number = whole ? String(price) : price.toFixed(2);
  return currency ? `${number} ${currency}` : number;
}

/** A price range of the price facet ("10-25", "500+") in words: "$10 to $25". */
export function priceRangeLabel(value, currency) {
  const money = (text) => formatPrice(Number(text), currency, { whole: true });
  const open = /^(\d+(?:\.\d+)?)\+$/.exec(value);
  if (open) return `${money(open[1])} and more`;
  const range = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(value);
  if (!range) return value;
  if (Number(range[1]) === 0) return `Under ${money(range[2])}`;
  return `${money(range[1])} to ${money(range[2])}`;
}

/** A rating band ("3-4": at least 3, under 4; "4-5" holds 5) in words. */
export function ratingBandLabel(value) {
  const band = /^(\d)-(\d)$/.exec(value);
  if (!band) return value;
  const [low, high] = [Number(band[1]), Number(band[2])];
  if (high === 5) return `${low} to 5 stars`;
  if (low === 0) return `Under ${high} star${high === 1 ? "" : "s"}`;
  return `${low} to under ${high} stars`;
}

/** "1 result", "3 results". */
export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
