import { describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { SessionProvider } from '@/lib/session';
import { OrderForm } from '@/components/OrderForm';
import { ADMIN, fakeApi, json, signedIn } from './fakeApi';
import { routerCalls } from './setup';

function renderForm() {
  signedIn();
  render(
    <SessionProvider>
      <OrderForm />
    </SessionProvider>,
  );
}

async function fill() {
  fireEvent.change(await screen.findByLabelText('Customer'), { target: { value: 'ACME' } });
  fireEvent.change(screen.getByLabelText('SKU (line 1)'), { target: { value: 'A-1' } });
  fireEvent.change(screen.getByLabelText('Quantity (line 1)'), { target: { value: '2' } });
  fireEvent.change(screen.getByLabelText('Unit price in EUR (line 1)'), { target: { value: '12.50' } });
}

describe('OrderForm', () => {
  it('shows the API 422 messages at their field', async () => {
    fakeApi({
      'GET /api/users/me': () => json(ADMIN),
      'POST /api/orders': () => json({ detail: [
        { loc: ['body', 'lines', 1, 'quantity'], msg: 'Input should be greater than 0', type: 'greater_than' },
      ] }, 422),
    });
    renderForm();
    await fill();
    fireEvent.click(screen.getByText('Add line'));
    fireEvent.change(screen.getByLabelText('Quantity (line 2)'), { target: { value: '0' } });
    fireEvent.click(screen.getByText('Create order'));
    const message = await screen.findByText('Input should be greater than 0');
    const input = screen.getByLabelText('Quantity (line 2)');
    expect(input.getAttribute('aria-invalid')).toBe('true');
    expect(input.getAttribute('aria-describedby')).toBe(message.id);
  });

  it('sends lines in minor units with one Idempotency-Key for a double click', async () => {
    let release: () => void = () => {};
    const calls = fakeApi({
      'GET /api/users/me': () => json(ADMIN),
      'POST /api/orders': () => new Promise((resolve) => {
        release = () => resolve(json({ id: 'o1' }, 201));
      }),
    });
    renderForm();
    await fill();
    const button = screen.getByText('Create order');
    fireEvent.click(button);
    fireEvent.click(button);
    await waitFor(() => expect(calls.filter((c) => c.method === 'POST')).toHaveLength(1));
    release();
    await waitFor(() => expect(routerCalls).toContain('/orders/view/?id=o1'));
    const posts = calls.filter((c) => c.method === 'POST');
    expect(posts).toHaveLength(1);
    expect(posts[0].headers['Idempotency-Key']).toMatch(/^[0-9a-f-]{36}$/);
    expect(posts[0].body).toEqual({ customer: 'ACME', currency: 'EUR', lines: [{ sku: 'A-1', quantity: 2, unit_price_minor: 1250 }] });
  });

  it('removes a line', async () => {
    fakeApi({ 'GET /api/users/me': () => json(ADMIN) });
    renderForm();
    await screen.findByLabelText('Customer');
    fireEvent.click(screen.getByText('Add line'));
    expect(screen.getAllByTestId('order-line')).toHaveLength(2);
    fireEvent.click(screen.getByText('Remove line 1'));
    expect(screen.getAllByTestId('order-line')).toHaveLength(1);
  });
});
