import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { ADMIN_EMAIL, adminPassword, apiToken, expectAccessible, signIn, tabTo, unique, watchPage } from './helpers';

const SHOTS = process.env.ORDEROPS_SCREENSHOT_DIR;

/** The edge's common headers (templates/nginx/orderops.conf.j2, server level): on every answer. */
function expectEdgeHeaders(headers: Record<string, string>, where: string) {
  expect(headers['strict-transport-security'], where).toBe('max-age=63072000');
  expect(headers['x-content-type-options'], where).toBe('nosniff');
  expect(headers['x-frame-options'], where).toBe('DENY');
  expect(headers['referrer-policy'], where).toBe('no-referrer');
  expect(headers['x-request-id'], where).toBeTruthy();
}

test('served with the release CSP and cache rules next to the edge headers', async ({ request }) => {
  const html = await request.get('/login/');
  expect(html.status()).toBe(200);
  expectEdgeHeaders(html.headers(), 'page');
  const csp = html.headers()['content-security-policy'] ?? '';
  expect(csp).toContain("script-src 'self' 'sha256-");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(html.headers()['cache-control']).toBe('no-cache');
  const asset = (await html.text()).match(/\/_next\/static\/[^"]+\.js/)?.[0];
  expect(asset).toBeTruthy();
  const js = await request.get(asset!);
  expect(js.status()).toBe(200);
  expectEdgeHeaders(js.headers(), 'asset');
  expect(js.headers()['cache-control']).toContain('immutable');
  // the front end's 404 page (error_page) carries the same headers
  const missing = await request.get('/no-such-page/');
  expect(missing.status()).toBe(404);
  expectEdgeHeaders(missing.headers(), '404 page');
  expect(missing.headers()['content-security-policy']).toBe(csp);
  expect(missing.headers()['cache-control']).toBe('no-cache');
  // the API keeps the edge's own policy and its own caching
  const api = await request.get('/api/health');
  expect(api.status()).toBe(200);
  expectEdgeHeaders(api.headers(), 'api');
  expect(api.headers()['content-security-policy']).toBe("frame-ancestors 'none'");
});

test('admin: create, list, transition, attachment up and down, sign out', async ({ page }) => {
  const problems = watchPage(page);
  const customer = unique('Browser GmbH');
  await signIn(page, ADMIN_EMAIL, adminPassword());
  await expect(page.getByRole('link', { name: 'Users' })).toBeVisible();
  await expectAccessible(page);

  await page.getByRole('link', { name: 'New order' }).first().click();
  await page.getByLabel('Customer').fill(customer);
  await page.getByLabel('SKU (line 1)').fill('WIDGET-1');
  await page.getByLabel('Quantity (line 1)').fill('3');
  await page.getByLabel('Unit price in EUR (line 1)').fill('12.50');
  await page.getByRole('button', { name: 'Add line' }).click();
  await page.getByLabel('SKU (line 2)').fill('GADGET-2');
  await page.getByLabel('Quantity (line 2)').fill('0');
  await page.getByLabel('Unit price in EUR (line 2)').fill('1');
  await page.getByRole('button', { name: 'Create order' }).click();
  // the API's 422 message at the field
  await expect(page.getByLabel('Quantity (line 2)')).toHaveAttribute('aria-invalid', 'true');
  await expect(page.locator('#err-lines\\.1\\.quantity')).toContainText('greater than 0');
  await expectAccessible(page);
  await page.getByLabel('Quantity (line 2)').fill('2');
  await page.getByRole('button', { name: 'Create order' }).dblclick();

  await expect(page.getByRole('heading', { name: `Order for ${customer}` })).toBeVisible();
  await expect(page.getByTestId('order-total')).toHaveText('€39.50');
  const orderUrl = page.url();

  // the double click made one order
  await page.getByRole('link', { name: 'All orders' }).click();
  await page.getByLabel('Customer').fill(customer);
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page.getByRole('row').filter({ hasText: customer })).toHaveCount(1);
  await expect(page.getByRole('row').filter({ hasText: customer })).toContainText('€39.50');
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true });
    await page.getByLabel('Customer').fill('');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect(page.getByRole('row').filter({ hasText: customer })).toHaveCount(1);
    await page.screenshot({ path: join(SHOTS, 'orders-list.png'), fullPage: true });
  }
  await page.goto(orderUrl);

  await page.getByRole('button', { name: 'Mark as paid' }).click();
  await expect(page.getByRole('status')).toContainText('Status changed to paid');
  await expect(page.locator('.history')).toContainText('pending → paid by admin@order.test');
  await expect(page.getByRole('button', { name: 'Mark as shipped' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Mark as paid' })).toHaveCount(0);

  await page.getByLabel('Add an attachment').setInputFiles({
    name: 'delivery-note.txt', mimeType: 'text/plain', buffer: Buffer.from('delivered to dock 4\n'),
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.getByRole('button', { name: 'Download delivery-note.txt' })).toBeVisible();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download delivery-note.txt' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('delivery-note.txt');
  expect(readFileSync((await download.path())!, 'utf8')).toBe('delivered to dock 4\n');
  await expectAccessible(page);
  if (SHOTS) await page.screenshot({ path: join(SHOTS, 'order-detail.png'), fullPage: true });

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await expect(page.getByText('You are signed out.')).toBeVisible();
  expect(await page.evaluate(() => window.localStorage.length)).toBe(0);
  expect(await page.evaluate(() => window.sessionStorage.length)).toBe(0);
  await page.goto(orderUrl);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  expect(problems).toEqual([]);
});

test('a wrong password shows the message', async ({ page }) => {
  await page.goto('/login/');
  await page.getByLabel('E-mail').fill(ADMIN_EMAIL);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('main [role="alert"]')).toHaveText('Incorrect e-mail or password.');
  await expectAccessible(page);
});

test('a customer sees no admin page and no status buttons', async ({ page, request }) => {
  const admin = await apiToken(request, ADMIN_EMAIL, adminPassword());
  const email = `${unique('customer')}@example.com`;
  const password = `pw-${unique('x')}`;
  const created = await request.post('/api/users', {
    headers: { Authorization: `Bearer ${admin}` },
    data: { email, password, role: 'customer' },
  });
  expect(created.status()).toBe(201);
  await signIn(page, email, password);
  await expect(page.getByText(`${email} (customer)`)).toBeVisible();
  await expect(page.getByRole('link', { name: 'Users' })).toHaveCount(0);
  await page.goto('/admin/users/');
  await expect(page.locator('main [role="alert"]')).toContainText('for the admin role only');
  await expect(page.getByRole('table')).toHaveCount(0);

  const token = await apiToken(request, email, password);
  const order = await request.post('/api/orders', {
    headers: { Authorization: `Bearer ${token}` },
    data: { customer: 'Own order', currency: 'EUR', lines: [{ sku: 'A-1', quantity: 1, unit_price_minor: 100 }] },
  });
  await page.goto(`/orders/view/?id=${(await order.json()).id}`);
  await expect(page.getByText('No status change is open to you for this order.')).toBeVisible();
  await expect(page.getByRole('button', { name: /Mark as|Cancel order/ })).toHaveCount(0);
});

test('an expired session goes back to sign-in with the message', async ({ page }) => {
  await signIn(page, ADMIN_EMAIL, adminPassword());
  // the token is refused from now on, as after its lifetime
  await page.evaluate(() => {
    const key = 'orderops.session';
    const stored = JSON.parse(window.sessionStorage.getItem(key)!);
    window.sessionStorage.setItem(key, JSON.stringify({ ...stored, token: stored.token + 'x' }));
  });
  await page.reload();
  await expect(page.getByText('Your session has expired. Please sign in again.')).toBeVisible();
});

test('keyboard only: sign in and create an order', async ({ page }) => {
  const customer = unique('Keyboard Ltd');
  await page.goto('/login/');
  await tabTo(page, '#email');
  await page.keyboard.type(ADMIN_EMAIL);
  await page.keyboard.press('Tab');
  await page.keyboard.type(adminPassword());
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Orders' })).toBeVisible();
  await tabTo(page, 'nav[aria-label="Main"] a[href="/orders/new/"]');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'New order' })).toBeVisible();
  await tabTo(page, '#customer');
  await page.keyboard.type(customer);
  await tabTo(page, 'input[id^="sku-"]');
  await page.keyboard.type('KEY-1');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('2');
  await page.keyboard.press('Tab');
  await page.keyboard.type('5');
  await tabTo(page, 'button[type="submit"]');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: `Order for ${customer}` })).toBeVisible();
  await expect(page.getByTestId('order-total')).toHaveText('€10.00');
  await tabTo(page, 'button:has-text("Mark as paid")');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('status')).toContainText('Status changed to paid');
});

test.describe('phone (375 px)', () => {
  test.use({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });

  test('list and detail fit, a transition works', async ({ page, request }) => {
    const token = await apiToken(request, ADMIN_EMAIL, adminPassword());
    const customer = unique('Phone AG');
    const order = await request.post('/api/orders', {
      headers: { Authorization: `Bearer ${token}` },
      data: { customer, currency: 'JPY', lines: [{ sku: 'P-1', quantity: 2, unit_price_minor: 1250 }] },
    });
    expect(order.status()).toBe(201);
    await signIn(page, ADMIN_EMAIL, adminPassword());
    const width = () => page.evaluate(() => document.documentElement.scrollWidth);
    expect(await width()).toBeLessThanOrEqual(375);
    await expectAccessible(page);
    await page.goto(`/orders/view/?id=${(await order.json()).id}`);
    await expect(page.getByTestId('order-total')).toHaveText('¥2,500');
    expect(await width()).toBeLessThanOrEqual(375);
    await page.getByRole('button', { name: 'Cancel order' }).tap();
    await expect(page.getByRole('status')).toContainText('Status changed to cancelled');
    await expectAccessible(page);
  });
});
