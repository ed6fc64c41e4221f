import { describe, expect, it } from 'vitest';
import { formatMoney, minorDigits, parseMoney } from '@/lib/money';

describe('money', () => {
  it('formats minor units in the currency', () => {
    expect(formatMoney(2500, 'EUR')).toBe('€25.00');
    expect(formatMoney(5, 'USD')).toBe('$0.05');
    expect(formatMoney(1250, 'JPY')).toBe('¥1,250');
  });
  it('is exact for large amounts', () => {
    expect(formatMoney(1_000_000_000_000_01, 'EUR')).toBe('€1,000,000,000,000.01');
  });
  it('knows minor digits', () => {
    expect(minorDigits('EUR')).toBe(2);
    expect(minorDigits('JPY')).toBe(0);
  });
  it('parses typed prices', () => {
    expect(parseMoney('12.5', 'EUR')).toBe(1250);
    expect(parseMoney('12,50', 'EUR')).toBe(1250);
    expect(parseMoney('12', 'EUR')).toBe(1200);
    expect(parseMoney('12.505', 'EUR')).toBeNull();
    expect(parseMoney('12.5', 'JPY')).toBeNull();
    expect(parseMoney('-1', 'EUR')).toBeNull();
    expect(parseMoney('abc', 'EUR')).toBeNull();
  });
});
