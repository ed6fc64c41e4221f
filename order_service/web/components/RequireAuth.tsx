'use client';
/**
 * Renders `children` only with a signed-in user (and, with `role`, only for that role);
 * signed out it sends the browser to the sign-in page, which shows why.
 */
import { useEffect, type ReactNode } from 'react';
import { useRouter } from 'next/navigation';
import { useSession } from '@/lib/session';
import type { Role } from '@/lib/api';

export function RequireAuth({ children, role }: { children: ReactNode; role?: Role }) {
  const { user } = useSession();
  const router = useRouter();
  useEffect(() => {
    if (user === null) router.replace('/login/');
  }, [user, router]);
  if (user === undefined) return <p aria-live="polite">Loading…</p>;
  if (user === null) return <p aria-live="polite">Redirecting to sign-in…</p>;
  if (role && user.role !== role) {
    return (
      <p className="error" role="alert">
        This page is for the {role} role only; you are signed in as {user.role}.
      </p>
    );
  }
  return <>{children}</>;
}
