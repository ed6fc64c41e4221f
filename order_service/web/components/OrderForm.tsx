'use client';
/**
 * Create an order: customer, currency, lines added and removed. The API's 422 messages are
 * shown at their field (`customer`, `lines.0.quantity`, ...). One `Idempotency-Key` per
 * submitted form: a double click or a retry of the same form sends the same key, so the API
 * makes one order; editing the form after an answer starts a new key.
 */
import { useRef, useState, type FormEvent } from 'react';
import { useRouter } from 'next/navigation';
import { ApiError, newIdempotencyKey, request, type Order } from '@/lib/api';
import { parseMoney } from '@/lib/money';
import { useSession } from '@/lib/session';
import { ErrorMessage } from './ErrorMessage';

interface LineInput {
  key: number;
  sku: string;
  quantity: string;
  price: string;
}

const CURRENCIES = ['EUR', 'USD', 'GBP', 'CHF', 'JPY'];

/** The request body of the form; unparsable numbers are sent as typed so the API names the field. */
export function orderBody(customer: string, currency: string, lines: LineInput[]) {
  return {
    customer,
    currency,
    lines: lines.map((line) => {
      const quantity = /^\s*\d+\s*$/.test(line.quantity) ? Number(line.quantity) : line.quantity;
      const price = parseMoney(line.price, currency);
      return { sku: line.sku.trim(), quantity, unit_price_minor: price ?? line.price };
    }),
  };
}

function FieldError({ id, message }: { id: string; message?: string }) {
  return message ? (
    <span className="field-error" id={id}>
      {message}
    </span>
  ) : null;
}

export function OrderForm() {
  const { token } = useSession();
  const router = useRouter();
  const nextKey = useRef(1);
  const idempotencyKey = useRef<string | null>(null);
  const inFlight = useRef(false);
  const [customer, setCustomer] = useState('');
  const [currency, setCurrency] = useState('EUR');
  const [lines, setLines] = useState<LineInput[]>([{ key: 0, sku: '', quantity: '1', price: '' }]);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  function edited() {
    idempotencyKey.current = null;
  }

  function setLine(index: number, change: Partial<LineInput>) {
    edited();
    setLines(lines.map((line, i) => (i === index ? { ...line, ...change } : line)));
  }

  function addLine() {
    edited();
    setLines([...lines, { key: nextKey.current++, sku: '', quantity: '1', price: '' }]);
  }

  function removeLine(index: number) {
    edited();
    setLines(lines.filter((_, i) => i !== index));
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (inFlight.current) return; // the same submit is on its way: it carries the key already
    inFlight.current = true;
    idempotencyKey.current ??= newIdempotencyKey();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      const response = await request('/api/orders', {
        method: 'POST',
        token,
        json: orderBody(customer, currency, lines),
        headers: { 'Idempotency-Key': idempotencyKey.current },
      });
      const order = (await response.json()) as Order;
      idempotencyKey.current = null;
      router.push(`/orders/view/?id=${encodeURIComponent(order.id)}`);
    } catch (caught) {
      if (caught instanceof ApiError && caught.status === 422) {
        setFields(caught.fields);
        idempotencyKey.current = null;
      }
      setError(caught);
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  }

  const described = (name: string) => (fields[name] ? { 'aria-invalid': true, 'aria-describedby': `err-${name}` } : {});

  return (
    <section>
      <h1>New order</h1>
      <form onSubmit={submit} noValidate>
        <div className="row">
          <div>
            <label htmlFor="customer">Customer</label>
            <input id="customer" value={customer} onChange={(e) => { edited(); setCustomer(e.target.value); }}
              {...described('customer')} />
            <FieldError id="err-customer" message={fields.customer} />
          </div>
          <div>
            <label htmlFor="currency">Currency</label>
            <select id="currency" value={currency} onChange={(e) => { edited(); setCurrency(e.target.value); }}
              {...described('currency')}>
              {CURRENCIES.map((c) => (
                <option key={c}>{c}</option>
              ))}
            </select>
            <FieldError id="err-currency" message={fields.currency} />
          </div>
        </div>
        <fieldset>
          <legend>Lines</legend>
          <FieldError id="err-lines" message={fields.lines} />
          {lines.map((line, index) => {
            const n = index + 1;
            const name = (field: string) => `lines.${index}.${field}`;
            return (
              <div className="line" key={line.key} data-testid="order-line">
                <div>
                  <label htmlFor={`sku-${line.key}`}>SKU (line {n})</label>
                  <input id={`sku-${line.key}`} value={line.sku} onChange={(e) => setLine(index, { sku: e.target.value })}
                    {...described(name('sku'))} />
                  <FieldError id={`err-${name('sku')}`} message={fields[name('sku')]} />
                </div>
                <div>
                  <label htmlFor={`qty-${line.key}`}>Quantity (line {n})</label>
                  <input id={`qty-${line.key}`} inputMode="numeric" value={line.quantity}
                    onChange={(e) => setLine(index, { quantity: e.target.value })} {...described(name('quantity'))} />
                  <FieldError id={`err-${name('quantity')}`} message={fields[name('quantity')]} />
                </div>
                <div>
                  <label htmlFor={`price-${line.key}`}>Unit price in {currency} (line {n})</label>
                  <input id={`price-${line.key}`} inputMode="decimal" value={line.price}
                    onChange={(e) => setLine(index, { price: e.target.value })} {...described(name('unit_price_minor'))} />
                  <FieldError id={`err-${name('unit_price_minor')}`} message={fields[name('unit_price_minor')]} />
                </div>
                <button type="button" className="secondary" onClick={() => removeLine(index)}>
                  Remove line {n}
                </button>
              </div>
            );
          })}
          <button type="button" className="secondary" onClick={addLine}>
            Add line
          </button>
        </fieldset>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create order'}
        </button>
      </form>
    </section>
  );
}
