/**
 * Amounts are integer minor units of an ISO 4217 currency (order_service/schemas.py); the
 * number of minor digits per currency comes from the browser's Intl data (EUR 2, JPY 0, ...).
 */

/** Minor-unit digits of `currency` (2 when Intl does not know it). */
export function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/** `1250, "EUR"` -> `€12.50` (exact: the decimal string is built from the integer, no float division). */
export function formatMoney(minor: number, currency: string, locale = 'en'): string {
  const digits = minorDigits(currency);
  const negative = minor < 0;
  const text = String(Math.abs(Math.trunc(minor))).padStart(digits + 1, '0');
  const decimal = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  try {
    const format = new Intl.NumberFormat(locale, { style: 'currency', currency, minimumFractionDigits: digits });
    return format.format(((negative ? '-' : '') + decimal) as unknown as number);
  } catch {
    return `${negative ? '-' : ''}${decimal} ${currency}`;
  }
}

/**
 * A price typed by a person (`12.5`, `12.50`, `12`) -> integer minor units of `currency`, or
 * `null` when it is not a plain non-negative decimal with at most the currency's digits.
 */
export function parseMoney(text: string, currency: string): number | null {
  const digits = minorDigits(currency);
  const match = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(text);
  if (!match) return null;
  const fraction = match[2] ?? '';
  if (fraction.length > digits) return null;
  const value = Number(match[1] + fraction.padEnd(digits, '0'));
  return Number.isSafeInteger(value) ? value : null;
}
