'use client';
import { Suspense } from 'react';
import { useSearchParams } from 'next/navigation';
import { RequireAuth } from '@/components/RequireAuth';
import { OrderDetail } from '@/components/OrderDetail';

function Detail() {
  const id = useSearchParams().get('id');
  return id ? <OrderDetail id={id} /> : <p className="error" role="alert">No order given.</p>;
}

/** `/orders/view/?id=<uuid>`: a static export has no per-order pages, so the id is a query parameter. */
export default function OrderPage() {
  return (
    <RequireAuth>
      <Suspense fallback={<p>Loading…</p>}>
        <Detail />
      </Suspense>
    </RequireAuth>
  );
}
