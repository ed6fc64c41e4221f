'use client';
/**
 * One order: lines, totals in its currency, status history, the transitions the API allows
 * the signed-in role (`allowed_transitions`, no rule copied here) sent with `If-Match: <ETag>`,
 * and attachments (upload; download through fetch + blob, the token never in a URL).
 */
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import Link from 'next/link';
import { ApiError, request, type Attachment, type Order, type OrderStatus, type Transition } from '@/lib/api';
import { formatMoney } from '@/lib/money';
import { useSession } from '@/lib/session';
import { ErrorMessage } from './ErrorMessage';
import { StatusBadge } from './StatusBadge';

const VERB: Record<OrderStatus, string> = {
  pending: 'Back to pending',
  paid: 'Mark as paid',
  shipped: 'Mark as shipped',
  delivered: 'Mark as delivered',
  cancelled: 'Cancel order',
};

/** Start a browser download of `blob` as `filename`. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function OrderDetail({ id }: { id: string }) {
  const { token } = useSession();
  const [order, setOrder] = useState<Order | null>(null);
  const [etag, setEtag] = useState<string | null>(null);
  const [history, setHistory] = useState<Transition[]>([]);
  const [attachments, setAttachments] = useState<Attachment[]>([]);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [file, setFile] = useState<File | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const base = `/api/orders/${encodeURIComponent(id)}`;

  const load = useCallback(async () => {
    try {
      const response = await request(base, { token });
      setEtag(response.headers.get('ETag'));
      setOrder((await response.json()) as Order);
      const [h, a] = await Promise.all([
        request(`${base}/transitions`, { token }).then((r) => r.json() as Promise<Transition[]>),
        request(`${base}/attachments`, { token }).then((r) => r.json() as Promise<Attachment[]>),
      ]);
      setHistory(h);
      setAttachments(a);
      setLoadError(null);
    } catch (caught) {
      setLoadError(caught);
    }
  }, [base, token]);

  useEffect(() => {
    void load();
  }, [load]);

  async function move(to: OrderStatus) {
    setBusy(true);
    setActionError(null);
    setNotice(null);
    try {
      const response = await request(`${base}/transitions`, {
        method: 'POST',
        token,
        json: { to },
        headers: etag ? { 'If-Match': etag } : {},
      });
      setEtag(response.headers.get('ETag'));
      setOrder((await response.json()) as Order);
      setNotice(`Status changed to ${to}.`);
      await load();
    } catch (caught) {
      setActionError(caught);
      if (caught instanceof ApiError && (caught.status === 409 || caught.status === 412)) await load();
    } finally {
      setBusy(false);
    }
  }

  async function upload(event: FormEvent) {
    event.preventDefault();
    if (!file) return;
    setBusy(true);
    setActionError(null);
    setNotice(null);
    try {
      const body = new FormData();
      body.append('file', file, file.name);
      await request(`${base}/attachments`, { method: 'POST', token, body });
      setNotice(`Uploaded ${file.name}.`);
      setFile(null);
      if (fileInput.current) fileInput.current.value = '';
      await load();
    } catch (caught) {
      setActionError(caught);
    } finally {
      setBusy(false);
    }
  }

  async function download(attachment: Attachment) {
    setActionError(null);
    try {
      const response = await request(`${base}/attachments/${attachment.id}/content`, {
        token,
        headers: { Accept: '*/*' },
      });
      saveBlob(await response.blob(), attachment.filename);
    } catch (caught) {
      setActionError(caught);
    }
  }

  if (loadError && !order) return <ErrorMessage error={loadError} />;
  if (!order) return <p aria-live="polite">Loading…</p>;

  return (
    <section>
      <p>
        <Link href="/orders/">← All orders</Link>
      </p>
      <h1>
        Order for {order.customer} <StatusBadge status={order.status} />
      </h1>
      <dl className="facts">
        <dt>Order</dt>
        <dd>{order.id}</dd>
        <dt>Created</dt>
        <dd>{new Date(order.created_at).toLocaleString('en-GB')}</dd>
        <dt>Total</dt>
        <dd data-testid="order-total">{formatMoney(order.total_minor, order.currency)}</dd>
      </dl>
      <div aria-live="polite">
        {notice ? (
          <p className="notice" role="status">
            {notice}
          </p>
        ) : null}
      </div>
      <ErrorMessage error={actionError} />
      <ErrorMessage error={loadError} />

      <h2>Change status</h2>
      {order.allowed_transitions?.length ? (
        <div className="actions">
          {order.allowed_transitions.map((to) => (
            <button key={to} type="button" disabled={busy} className={to === 'cancelled' ? 'danger' : undefined}
              onClick={() => void move(to)}>
              {VERB[to] ?? `Move to ${to}`}
            </button>
          ))}
        </div>
      ) : (
        <p>No status change is open to you for this order.</p>
      )}

      <h2>Lines</h2>
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">SKU</th>
              <th scope="col" className="num">Quantity</th>
              <th scope="col" className="num">Unit price</th>
              <th scope="col" className="num">Line total</th>
            </tr>
          </thead>
          <tbody>
            {order.lines.map((line, index) => (
              <tr key={`${line.sku}-${index}`}>
                <td>{line.sku}</td>
                <td className="num">{line.quantity}</td>
                <td className="num">{formatMoney(line.unit_price_minor, order.currency)}</td>
                <td className="num">{formatMoney(line.line_total_minor, order.currency)}</td>
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr>
              <th scope="row" colSpan={3}>Total ({order.currency})</th>
              <td className="num">{formatMoney(order.total_minor, order.currency)}</td>
            </tr>
          </tfoot>
        </table>
      </div>

      <h2>Status history</h2>
      {history.length ? (
        <ol className="history">
          {history.map((t, index) => (
            <li key={t.id ?? index}>
              {new Date(t.created_at).toLocaleString('en-GB')}: {t.from_status ?? 'new'} → {t.to_status} by {t.actor_email}
            </li>
          ))}
        </ol>
      ) : (
        <p>No status changes yet.</p>
      )}

      <h2>Attachments</h2>
      {attachments.length ? (
        <ul className="attachments">
          {attachments.map((a) => (
            <li key={a.id}>
              <button type="button" className="link" onClick={() => void download(a)}>
                Download {a.filename}
              </button>{' '}
              ({a.content_type}, {a.size_bytes} bytes)
            </li>
          ))}
        </ul>
      ) : (
        <p>No attachments.</p>
      )}
      <form onSubmit={upload} className="upload">
        <label htmlFor="attachment">Add an attachment</label>
        <input id="attachment" ref={fileInput} type="file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        <button type="submit" disabled={!file || busy}>
          Upload
        </button>
      </form>
    </section>
  );
}
