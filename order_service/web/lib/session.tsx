'use client';
/**
 * The signed-in session: bearer token (sessionStorage only: gone with the tab, never
 * localStorage), its expiry, and the user from `GET /api/users/me`.
 *
 * The session ends (back to sign-in with a message) when the token's lifetime runs out or any
 * authenticated call answers 401.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { login as apiLogin, requestJson, setUnauthorizedListener, type User } from './api';

const STORAGE_KEY = 'orderops.session';

/** Why the session ended: shown on the sign-in page. */
export type EndReason = 'signed-out' | 'expired';

interface Stored {
  token: string;
  expiresAt: number;
}

export interface Session {
  /** `undefined` while the stored session is being read, `null` when signed out. */
  user: User | null | undefined;
  token: string | null;
  signIn(email: string, password: string): Promise<void>;
  signOut(reason?: EndReason): void;
  /** The message of the last session end (`expired`), cleared by the next sign-in. */
  endReason: EndReason | null;
}

const SessionContext = createContext<Session | null>(null);

function readStored(): Stored | null {
  try {
    const raw = window.sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as Stored;
    return typeof value.token === 'string' && typeof value.expiresAt === 'number' ? value : null;
  } catch {
    return null;
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [token, setToken] = useState<string | null>(null);
  const [endReason, setEndReason] = useState<EndReason | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const signOut = useCallback((reason: EndReason = 'signed-out') => {
    window.sessionStorage.removeItem(STORAGE_KEY);
    if (timer.current) clearTimeout(timer.current);
    setToken(null);
    setUser(null);
    setEndReason(reason);
  }, []);

  const start = useCallback(
    async (stored: Stored) => {
      const remaining = stored.expiresAt - Date.now();
      if (remaining <= 0) {
        signOut('expired');
        return;
      }
      const me = await requestJson<User>('/api/users/me', { token: stored.token });
      if (timer.current) clearTimeout(timer.current);
      timer.current = setTimeout(() => signOut('expired'), Math.min(remaining, 2 ** 31 - 1));
      setToken(stored.token);
      setUser(me);
    },
    [signOut],
  );

  useEffect(() => {
    setUnauthorizedListener(() => signOut('expired'));
    const stored = readStored();
    if (!stored) setUser(null);
    else start(stored).catch(() => signOut('expired'));
    return () => {
      setUnauthorizedListener(null);
      if (timer.current) clearTimeout(timer.current);
    };
  }, [signOut, start]);

  const signIn = useCallback(
    async (email: string, password: string) => {
      const answer = await apiLogin(email, password);
      const stored = { token: answer.access_token, expiresAt: Date.now() + answer.expires_in * 1000 };
      window.sessionStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
      setEndReason(null);
      await start(stored);
    },
    [start],
  );

  const value = useMemo(() => ({ user, token, signIn, signOut, endReason }), [user, token, signIn, signOut, endReason]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

/** The session of the surrounding `SessionProvider`. */
export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionProvider');
  return session;
}
