import { describe, expect, it, vi } from 'vitest';
import { ApiError, errorFrom, fieldKey, login, messageFor, ordersQuery, request, setUnauthorizedListener } from '@/lib/api';
import { fakeApi, json } from './fakeApi';

describe('messageFor', () => {
  it.each([
    [0, null, /cannot be reached/],
    [401, null, /session has expired/],
    [403, null, /not allowed/],
    [409, 'illegal status change', /Conflict: illegal status change/],
    [412, null, /Someone else changed this order/],
    [422, null, /correct/],
    [429, null, /Too many requests/],
    [500, null, /HTTP 500/],
    [503, null, /HTTP 503/],
  ])('status %s', (status, detail, expected) => {
    expect(messageFor(status, detail)).toMatch(expected);
  });

  it('names the Retry-After of a 429', () => {
    expect(messageFor(429, null, '7')).toContain('Wait 7 s');
  });
});

describe('errorFrom', () => {
  it('keys 422 messages by field path', async () => {
    const error = await errorFrom(
      json({ detail: [
        { loc: ['body', 'lines', 0, 'quantity'], msg: 'Input should be greater than 0', type: 'x' },
        { loc: ['body', 'customer'], msg: 'String should have at least 1 character', type: 'y' },
      ] }, 422),
    );
    expect(error.fields).toEqual({
      'lines.0.quantity': 'Input should be greater than 0',
      customer: 'String should have at least 1 character',
    });
  });

  it('reads a body that is not JSON (a proxy 502) as a readable message', async () => {
    const error = await errorFrom(new Response('<html>bad gateway</html>', { status: 502 }));
    expect(error.message).toMatch(/HTTP 502/);
  });

  it('puts header problems in the general message', async () => {
    const error = await errorFrom(json({ detail: [{ loc: ['header', 'Idempotency-Key'], msg: 'already used', type: 'v' }] }, 422));
    expect(error.fields).toEqual({});
    expect(error.message).toContain('Idempotency-Key: already used');
  });
});

describe('request', () => {
  it('sends the bearer token and reports a 401 to the session', async () => {
    const calls = fakeApi({ 'GET /api/orders': () => json({ detail: 'Not authenticated' }, 401) });
    const listener = vi.fn();
    setUnauthorizedListener(listener);
    await expect(request('/api/orders', { token: 'abc' })).rejects.toBeInstanceOf(ApiError);
    expect(calls[0].headers.Authorization).toBe('Bearer abc');
    expect(listener).toHaveBeenCalledOnce();
    setUnauthorizedListener(null);
  });

  it('turns a network failure into status 0', async () => {
    vi.stubGlobal('fetch', () => Promise.reject(new TypeError('Failed to fetch')));
    await expect(request('/api/health')).rejects.toMatchObject({ status: 0 });
  });
});

describe('login', () => {
  it('posts the form and says so on a wrong password', async () => {
    const calls = fakeApi({ 'POST /api/login/access-token': () => json({ detail: 'incorrect email or password' }, 400) });
    await expect(login('a@b.test', 'wrong')).rejects.toThrow('Incorrect e-mail or password.');
    expect(String(calls[0].body)).toBe('username=a%40b.test&password=wrong');
  });
});

describe('fieldKey / ordersQuery', () => {
  it('drops the location prefix', () => {
    expect(fieldKey(['query', 'customer'])).toBe('customer');
  });
  it('passes only set filters and the cursor', () => {
    expect(ordersQuery({ status: 'paid', customer: '' }, 'c1', 10)).toBe('status=paid&cursor=c1&limit=10');
  });
});
