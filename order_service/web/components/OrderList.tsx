'use client';
/**
 * Orders, newest first (the API's only order), with filters and cursor pagination: "Next"
 * follows the page's `next` cursor, "Previous" goes back through the cursors already seen.
 */
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import Link from 'next/link';
import { ORDER_STATUSES, ordersQuery, requestJson, type OrderFilters, type OrderPage } from '@/lib/api';
import { formatMoney } from '@/lib/money';
import { useSession } from '@/lib/session';
import { ErrorMessage } from './ErrorMessage';
import { StatusBadge } from './StatusBadge';

/** A `yyyy-mm-dd` date input as the start of that local day, ISO 8601 with offset; `days` shifts it. */
export function dayStart(value: string, days = 0): string | undefined {
  if (!value) return undefined;
  const [y, m, d] = value.split('-').map(Number);
  const date = new Date(y, m - 1, d + days);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

interface Form {
  status: string;
  customer: string;
  from: string;
  to: string;
}

const EMPTY: Form = { status: '', customer: '', from: '', to: '' };

/** The API filters of the form: `to` is inclusive in the form, exclusive in the API (next day's start). */
export function filtersOf(form: Form): OrderFilters {
  return {
    status: form.status || undefined,
    customer: form.customer.trim() || undefined,
    created_from: dayStart(form.from),
    created_to: dayStart(form.to, 1),
  };
}

export function OrderList() {
  const { token } = useSession();
  const [form, setForm] = useState<Form>(EMPTY);
  const [filters, setFilters] = useState<OrderFilters>({});
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<OrderPage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const cursor = cursors[cursors.length - 1];

  const load = useCallback(async () => {
    setLoading(true);
    setError(null);
    try {
      setPage(await requestJson<OrderPage>(`/api/orders?${ordersQuery(filters, cursor)}`, { token }));
    } catch (caught) {
      setError(caught);
    } finally {
      setLoading(false);
    }
  }, [filters, cursor, token]);

  useEffect(() => {
    void load();
  }, [load]);

  function apply(event: FormEvent) {
    event.preventDefault();
    setFilters(filtersOf(form));
    setCursors([null]);
  }

  function reset() {
    setForm(EMPTY);
    setFilters({});
    setCursors([null]);
  }

  return (
    <section>
      <div className="title-row">
        <h1>Orders</h1>
        <Link className="button" href="/orders/new/">
          New order
        </Link>
      </div>
      <form className="filters" onSubmit={apply} aria-label="Filter orders">
        <div>
          <label htmlFor="f-status">Status</label>
          <select id="f-status" value={form.status} onChange={(e) => setForm({ ...form, status: e.target.value })}>
            <option value="">any</option>
            {ORDER_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label htmlFor="f-customer">Customer</label>
          <input id="f-customer" value={form.customer} onChange={(e) => setForm({ ...form, customer: e.target.value })} />
        </div>
        <div>
          <label htmlFor="f-from">Created from</label>
          <input id="f-from" type="date" value={form.from} onChange={(e) => setForm({ ...form, from: e.target.value })} />
        </div>
        <div>
          <label htmlFor="f-to">Created to (inclusive)</label>
          <input id="f-to" type="date" value={form.to} onChange={(e) => setForm({ ...form, to: e.target.value })} />
        </div>
        <div className="actions">
          <button type="submit">Apply filters</button>
          <button type="button" className="secondary" onClick={reset}>
            Clear
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      {page && page.items.length === 0 ? <p>No orders match.</p> : null}
      {page && page.items.length > 0 ? (
        <div className="table-wrap">
          <table>
            <caption className="sr-only">Orders, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Customer</th>
                <th scope="col">Status</th>
                <th scope="col" className="num">
                  Total
                </th>
                <th scope="col">Order</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((order) => (
                <tr key={order.id}>
                  <td>{new Date(order.created_at).toLocaleString('en-GB')}</td>
                  <td>{order.customer}</td>
                  <td>
                    <StatusBadge status={order.status} />
                  </td>
                  <td className="num">{formatMoney(order.total_minor, order.currency)}</td>
                  <td>
                    <Link href={`/orders/view/?id=${encodeURIComponent(order.id)}`}>
                      Open<span className="sr-only"> order of {order.customer}</span> {order.id.slice(0, 8)}
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <nav className="pager" aria-label="Pages">
        <button type="button" className="secondary" disabled={cursors.length <= 1 || loading}
          onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous page
        </button>
        <span aria-live="polite">{loading ? 'Loading…' : `Page ${cursors.length}`}</span>
        <button type="button" className="secondary" disabled={!page?.next || loading}
          onClick={() => page?.next && setCursors([...cursors, page.next])}>
          Next page
        </button>
      </nav>
    </section>
  );
}
