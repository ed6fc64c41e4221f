import { expect, type APIRequestContext, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';

export const ADMIN_EMAIL = process.env.ORDEROPS_ADMIN_EMAIL ?? 'admin@order.test';
/** From the environment only (the caller reads the secrets file); never logged. */
export function adminPassword(): string {
  const value = process.env.ORDEROPS_ADMIN_PASSWORD;
  if (!value) throw new Error('ORDEROPS_ADMIN_PASSWORD is not set');
  return value;
}

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Fail the test on any Content-Security-Policy violation or page error. */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return problems;
}

export async function signIn(page: Page, email: string, password: string): Promise<void> {
  await page.goto('/login/');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Orders' })).toBeVisible();
}

/** No serious or critical axe-core finding on the current page. */
export async function expectAccessible(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** An API token for set-up steps (a customer user), through the same origin. */
export async function apiToken(request: APIRequestContext, email: string, password: string): Promise<string> {
  const response = await request.post('/api/login/access-token', { form: { username: email, password } });
  expect(response.status()).toBe(200);
  return (await response.json()).access_token as string;
}

/** Press Tab until `selector` has the focus (keyboard-only navigation). */
export async function tabTo(page: Page, selector: string, max = 40): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (await page.locator(selector).evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`focus never reached ${selector}`);
}
