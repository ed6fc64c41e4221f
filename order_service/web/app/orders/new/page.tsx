'use client';
import { RequireAuth } from '@/components/RequireAuth';
import { OrderForm } from '@/components/OrderForm';

export default function NewOrderPage() {
  return (
    <RequireAuth>
      <OrderForm />
    </RequireAuth>
  );
}
