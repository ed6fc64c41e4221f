/**
 * A stand-in for the order API in component tests (no server in jsdom): `fetch` answers from
 * a route table, and every call is recorded (method, url, headers, body) for assertions.
 */
import { vi } from 'vitest';

export interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

type Handler = (call: Call) => Response | Promise<Response>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

export const ADMIN = { id: 'u1', email: 'admin@order.test', role: 'admin', is_active: true, created_at: '2026-01-01T00:00:00Z' };

/** Install the fake: `routes` maps `"METHOD /path"` (query ignored) to a handler. */
export function fakeApi(routes: Record<string, Handler>): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (input: string, init: RequestInit = {}) => {
    const headers = { ...(init.headers as Record<string, string>) };
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : init.body;
    const call = { method: init.method ?? 'GET', url: input, headers, body };
    calls.push(call);
    const handler = routes[`${call.method} ${input.split('?')[0]}`];
    return handler ? handler(call) : json({ detail: 'not found' }, 404);
  });
  return calls;
}

/** A stored session (token valid one hour) as the sign-in would leave it. */
export function signedIn(): void {
  window.sessionStorage.setItem('orderops.session', JSON.stringify({ token: 't0k', expiresAt: Date.now() + 3600_000 }));
}
