import { afterEach, vi } from 'vitest';
import { cleanup } from '@testing-library/react';

// Component tests run outside a Next app: the App Router's hooks get a recording stand-in.
export const routerCalls: string[] = [];
vi.mock('next/navigation', () => ({
  useRouter: () => ({ push: (url: string) => routerCalls.push(url), replace: (url: string) => routerCalls.push(url) }),
  useSearchParams: () => new URLSearchParams(),
}));

afterEach(() => {
  cleanup();
  routerCalls.length = 0;
  window.sessionStorage.clear();
  vi.unstubAllGlobals();
});
