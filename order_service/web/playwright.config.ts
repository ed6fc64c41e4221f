/**
 * Browser tests against a deployed host (tests/integration/test_frontend.py sets the env):
 * ORDEROPS_WEB_URL (https://127.0.0.1:<port>), ORDEROPS_ADMIN_EMAIL, ORDEROPS_ADMIN_PASSWORD,
 * ORDEROPS_SCREENSHOT_DIR. Debian's Chromium (/usr/bin/chromium), no browser download
 * (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1); the host's certificate is self-signed.
 */
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './e2e',
  // per test: the admin flow takes ~40 s on an idle machine, more on the shared 2-core CI machine
  timeout: 180_000,
  expect: { timeout: 15_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: process.env.ORDEROPS_WEB_URL,
    ignoreHTTPSErrors: true,
    trace: 'off',
    launchOptions: {
      executablePath: process.env.ORDEROPS_CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-background-networking'],
    },
  },
});
