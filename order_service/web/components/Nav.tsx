'use client';
/** The header: links the signed-in role may use, who is signed in, sign out. */
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useSession } from '@/lib/session';

export function Nav() {
  const { user, signOut } = useSession();
  const router = useRouter();
  return (
    <header className="top">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <span className="brand">Orders</span>
      {user ? (
        <nav aria-label="Main">
          <Link href="/orders/">Orders</Link>
          <Link href="/orders/new/">New order</Link>
          {user.role === 'admin' ? <Link href="/admin/users/">Users</Link> : null}
          <span className="who">
            {user.email} ({user.role})
          </span>
          <button
            type="button"
            onClick={() => {
              signOut('signed-out');
              router.push('/login/');
            }}
          >
            Sign out
          </button>
        </nav>
      ) : null}
    </header>
  );
}
