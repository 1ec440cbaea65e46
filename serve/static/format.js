// Words and numbers as the shopper reads them.

export const sentence = (text) => (/[.!?]$/.test(text) ? text : `${text}.`);
