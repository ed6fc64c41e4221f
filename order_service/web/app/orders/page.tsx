'use client';
import { RequireAuth } from '@/components/RequireAuth';
import { OrderList } from '@/components/OrderList';

export default function OrdersPage() {
  return (
    <RequireAuth>
      <OrderList />
    </RequireAuth>
  );
}
