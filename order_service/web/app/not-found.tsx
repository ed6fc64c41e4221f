import Link from 'next/link';

/** 404 of the static export (Next's default page uses inline styles, which the CSP forbids). */
export default function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        <Link href="/orders/">Go to the orders</Link>
      </p>
    </section>
  );
}
