'use client';
/** Sign-in form: e-mail + password to the token endpoint; says why a previous session ended. */
import { useEffect, useState, type FormEvent } from 'react';
import { useRouter } from 'next/navigation';
import { useSession } from '@/lib/session';
import { ErrorMessage } from './ErrorMessage';

export function LoginForm() {
  const { user, signIn, endReason } = useSession();
  const router = useRouter();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (user) router.replace('/orders/');
  }, [user, router]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(email, password);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="narrow">
      <h1>Sign in</h1>
      {endReason === 'expired' ? (
        <p className="notice" role="status">
          Your session has expired. Please sign in again.
        </p>
      ) : null}
      {endReason === 'signed-out' ? (
        <p className="notice" role="status">
          You are signed out.
        </p>
      ) : null}
      <form onSubmit={submit} aria-describedby={error ? 'login-error' : undefined}>
        <label htmlFor="email">E-mail</label>
        <input id="email" name="username" type="email" autoComplete="username" required value={email}
          onChange={(e) => setEmail(e.target.value)} />
        <label htmlFor="password">Password</label>
        <input id="password" name="password" type="password" autoComplete="current-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} />
        <ErrorMessage error={error} id="login-error" />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </section>
  );
}
