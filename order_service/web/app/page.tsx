'use client';
/** `/`: the orders when signed in, else sign-in. */
import { useEffect } from 'react';
import { useRouter } from 'next/navigation';
import { useSession } from '@/lib/session';

export default function Home() {
  const { user } = useSession();
  const router = useRouter();
  useEffect(() => {
    if (user !== undefined) router.replace(user ? '/orders/' : '/login/');
  }, [user, router]);
  return <p aria-live="polite">Loading…</p>;
}
