import { describe, expect, it } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { SessionProvider } from '@/lib/session';
import { LoginForm } from '@/components/LoginForm';
import { Nav } from '@/components/Nav';
import { ADMIN, fakeApi, json, signedIn } from './fakeApi';

describe('session', () => {
  it('keeps the token in sessionStorage, never localStorage', async () => {
    fakeApi({
      'POST /api/login/access-token': () => json({ access_token: 'jwt', token_type: 'bearer', expires_in: 60 }),
      'GET /api/users/me': () => json(ADMIN),
    });
    render(<SessionProvider><Nav /><LoginForm /></SessionProvider>);
    fireEvent.change(screen.getByLabelText('E-mail'), { target: { value: 'admin@order.test' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'pw' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText('Users')).toBeTruthy();
    expect(window.sessionStorage.getItem('orderops.session')).toContain('jwt');
    expect(window.localStorage.length).toBe(0);
  });

  it('a stored token the API refuses ends with the expiry message', async () => {
    fakeApi({ 'GET /api/users/me': () => json({ detail: 'Could not validate credentials' }, 401) });
    signedIn();
    render(<SessionProvider><LoginForm /></SessionProvider>);
    expect(await screen.findByText('Your session has expired. Please sign in again.')).toBeTruthy();
    expect(window.sessionStorage.getItem('orderops.session')).toBeNull();
  });

  it('an operator sees no admin link', async () => {
    fakeApi({ 'GET /api/users/me': () => json({ ...ADMIN, role: 'operator' }) });
    signedIn();
    render(<SessionProvider><Nav /></SessionProvider>);
    expect(await screen.findByText('Sign out')).toBeTruthy();
    expect(screen.queryByText('Users')).toBeNull();
  });
});
