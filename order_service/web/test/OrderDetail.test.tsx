import { describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { SessionProvider } from '@/lib/session';
import { OrderDetail } from '@/components/OrderDetail';
import { ADMIN, fakeApi, json, signedIn } from './fakeApi';

const ORDER = {
  id: 'o1', customer: 'ACME', currency: 'EUR', status: 'pending', total_minor: 2500, created_at: '2026-01-02T10:00:00Z',
  owner_id: 'u1', version: 1, lines: [{ sku: 'A-1', quantity: 2, unit_price_minor: 1250, line_total_minor: 2500 }],
  allowed_transitions: ['paid', 'cancelled'],
};

function renderDetail() {
  signedIn();
  render(
    <SessionProvider>
      <OrderDetail id="o1" />
    </SessionProvider>,
  );
}

describe('OrderDetail', () => {
  it('shows the total in the currency and one button per allowed transition', async () => {
    fakeApi({
      'GET /api/users/me': () => json(ADMIN),
      'GET /api/orders/o1': () => json(ORDER, 200, { ETag: '"1"' }),
      'GET /api/orders/o1/transitions': () => json([]),
      'GET /api/orders/o1/attachments': () => json([]),
    });
    renderDetail();
    expect((await screen.findByTestId('order-total')).textContent).toBe('€25.00');
    const buttons = screen.getAllByRole('button').map((b) => b.textContent);
    expect(buttons).toContain('Mark as paid');
    expect(buttons).toContain('Cancel order');
    expect(buttons).not.toContain('Mark as shipped');
  });

  it('no transition buttons when the API allows none (a customer)', async () => {
    fakeApi({
      'GET /api/users/me': () => json({ ...ADMIN, role: 'customer' }),
      'GET /api/orders/o1': () => json({ ...ORDER, allowed_transitions: [] }, 200, { ETag: '"1"' }),
      'GET /api/orders/o1/transitions': () => json([]),
      'GET /api/orders/o1/attachments': () => json([]),
    });
    renderDetail();
    expect(await screen.findByText('No status change is open to you for this order.')).toBeTruthy();
  });

  it('sends If-Match and explains a conflict (412), reloading the order', async () => {
    let version = 1;
    const calls = fakeApi({
      'GET /api/users/me': () => json(ADMIN),
      'GET /api/orders/o1': () => json({ ...ORDER, version, status: version > 1 ? 'paid' : 'pending' }, 200, { ETag: `"${version}"` }),
      'GET /api/orders/o1/transitions': () => json([]),
      'GET /api/orders/o1/attachments': () => json([]),
      'POST /api/orders/o1/transitions': () => {
        version = 2; // someone else moved it meanwhile
        return json({ detail: 'the order changed; fetch it again' }, 412);
      },
    });
    renderDetail();
    fireEvent.click(await screen.findByText('Mark as paid'));
    expect((await screen.findByRole('alert')).textContent).toMatch(/Someone else changed this order/);
    const post = calls.find((c) => c.method === 'POST');
    expect(post?.headers['If-Match']).toBe('"1"');
    expect(post?.body).toEqual({ to: 'paid' });
    await waitFor(() => expect(screen.getByText('paid', { selector: '.badge' })).toBeTruthy());
  });
});
