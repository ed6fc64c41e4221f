/**
 * The order API client: one `request()` for every call, same origin (`/api`, no CORS).
 *
 * Every failure becomes an `ApiError` whose `message` is a sentence a person can act on
 * (401, 403, 404, 409, 412, 422, 428, 429, 5xx, network), and, for a 422, `fields`: the API's
 * messages keyed by the field's path (`customer`, `lines.0.quantity`), so forms show them at
 * the field. Error bodies follow order_service/schemas.py: `{"detail": str}` (Message,
 * Conflict) or `{"detail": [{loc, msg, type}]}` (ValidationErrorBody).
 */

export type OrderStatus = 'pending' | 'paid' | 'shipped' | 'delivered' | 'cancelled';
export type Role = 'customer' | 'operator' | 'admin';

export const ORDER_STATUSES: OrderStatus[] = ['pending', 'paid', 'shipped', 'delivered', 'cancelled'];
export const ROLES: Role[] = ['customer', 'operator', 'admin'];

export interface OrderLine {
  sku: string;
  quantity: number;
  unit_price_minor: number;
  line_total_minor: number;
}

export interface Order {
  id: string;
  customer: string;
  currency: string;
  status: OrderStatus;
  total_minor: number;
  created_at: string;
  owner_id: string | null;
  version: number;
  lines: OrderLine[];
  /** Target statuses the signed-in user may move the order to now (computed by the API). */
  allowed_transitions: OrderStatus[];
}

export interface OrderPage {
  items: Order[];
  next: string | null;
}

export interface Transition {
  id?: string;
  from_status: OrderStatus | null;
  to_status: OrderStatus;
  actor_email: string;
  created_at: string;
}

export interface Attachment {
  id: string;
  order_id: string;
  filename: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
  created_at: string;
}

export interface User {
  id: string;
  email: string;
  role: Role;
  is_active: boolean;
  created_at: string;
}

export interface Token {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
}

interface FieldError {
  loc: (string | number)[];
  msg: string;
}

/** An API call that failed: HTTP `status` (0 when the server was not reached), readable `message`. */
export class ApiError extends Error {
  readonly status: number;
  readonly fields: Record<string, string>;
  readonly detail: string | null;

  constructor(status: number, message: string, fields: Record<string, string> = {}, detail: string | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.fields = fields;
    this.detail = detail;
  }
}

/** `["body", "lines", 0, "quantity"]` -> `lines.0.quantity`; `["query", "customer"]` -> `customer`. */
export function fieldKey(loc: (string | number)[]): string {
  const parts = loc[0] === 'body' || loc[0] === 'query' || loc[0] === 'path' || loc[0] === 'header' ? loc.slice(1) : loc;
  return parts.join('.');
}

function capitalise(text: string): string {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

/**
 * The readable sentence for a failed answer.
 *
 * `status`: HTTP status; `detail`: the body's `detail` when it is a string;
 * `retryAfter`: the `Retry-After` header (seconds) of a 429.
 */
export function messageFor(status: number, detail: string | null, retryAfter: string | null = null): string {
  switch (true) {
    case status === 0:
      return 'The order service cannot be reached. Check your connection and try again.';
    case status === 400:
      return detail ? capitalise(detail) + '.' : 'The request was not accepted.';
    case status === 401:
      return 'Your session has expired. Please sign in again.';
    case status === 403:
      return 'You are not allowed to do this with your role.';
    case status === 404:
      return detail ? capitalise(detail) + '.' : 'Not found.';
    case status === 409:
      return `Conflict: ${detail ?? 'the change clashes with the current state'}. The page shows the current state now.`;
    case status === 412:
      return 'Someone else changed this order since you opened it. It has been reloaded: check it and try again.';
    case status === 413:
      return detail ? capitalise(detail) + '.' : 'The file is too large.';
    case status === 415:
      return detail ? capitalise(detail) + '.' : 'This file type is not accepted.';
    case status === 422:
      return detail ? `Please correct the input: ${detail}.` : 'Please correct the highlighted fields.';
    case status === 428:
      return 'The change needs the order version; reload the page and try again.';
    case status === 429: {
      const wait = retryAfter && /^\d+$/.test(retryAfter) ? ` Wait ${retryAfter} s and try again.` : ' Wait a moment and try again.';
      return 'Too many requests.' + wait;
    }
    case status >= 500:
      return `The order service has a problem right now (HTTP ${status}). Try again in a moment.`;
    default:
      return detail ? capitalise(detail) + '.' : `The request failed (HTTP ${status}).`;
  }
}

/** Build an `ApiError` from a non-2xx `Response` (reads its JSON body when there is one). */
export async function errorFrom(response: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const raw = (body as { detail?: unknown } | null)?.detail;
  const fields: Record<string, string> = {};
  let detail: string | null = typeof raw === 'string' ? raw : null;
  if (Array.isArray(raw)) {
    const general: string[] = [];
    for (const item of raw as FieldError[]) {
      const key = Array.isArray(item?.loc) ? fieldKey(item.loc) : '';
      const msg = String(item?.msg ?? 'invalid');
      if (!key || (Array.isArray(item.loc) && item.loc[0] === 'header')) general.push(`${key || 'request'}: ${msg}`);
      else if (!(key in fields)) fields[key] = msg;
    }
    detail = general.length ? general.join('; ') : null;
  }
  return new ApiError(response.status, messageFor(response.status, detail, response.headers.get('Retry-After')), fields, detail);
}

export interface RequestOptions {
  method?: string;
  token?: string | null;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

/** What `request()` hands to a 401 listener (the session ends with a message). */
export type UnauthorizedListener = () => void;
let onUnauthorized: UnauthorizedListener | null = null;

/** Register the one listener called on any 401 of an authenticated call. */
export function setUnauthorizedListener(listener: UnauthorizedListener | null): void {
  onUnauthorized = listener;
}

/**
 * Call the API at `path` (e.g. `/api/orders`); resolves to the raw `Response` of a 2xx.
 *
 * Raises `ApiError` for any other answer or a network failure. A 401 on a call that sent a
 * token also notifies the unauthorized listener (session expired).
 */
export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  let response: Response;
  try {
    response = await fetch(path, { method: options.method ?? 'GET', headers, body, cache: 'no-store' });
  } catch {
    throw new ApiError(0, messageFor(0, null));
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && options.token && onUnauthorized) onUnauthorized();
    throw error;
  }
  return response;
}

/** `request()` and parse the JSON answer. */
export async function requestJson<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(path, options);
  return (await response.json()) as T;
}

/** `POST /api/login/access-token` (form fields `username`, `password`); a 400 means wrong credentials. */
export async function login(email: string, password: string): Promise<Token> {
  const form = new URLSearchParams({ username: email, password });
  try {
    return await requestJson<Token>('/api/login/access-token', {
      method: 'POST',
      body: form,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) {
      throw new ApiError(400, 'Incorrect e-mail or password.', {}, error.detail);
    }
    throw error;
  }
}

/** The filters of `GET /api/orders` (dates are ISO 8601 with a time zone). */
export interface OrderFilters {
  status?: string;
  customer?: string;
  created_from?: string;
  created_to?: string;
}

/** The query string of one orders page: filters, `cursor`, `limit`. */
export function ordersQuery(filters: OrderFilters, cursor: string | null, limit = 20): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
  if (cursor) query.set('cursor', cursor);
  query.set('limit', String(limit));
  return query.toString();
}

/** A fresh `Idempotency-Key` (random UUID). */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}
