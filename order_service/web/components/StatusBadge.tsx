import type { OrderStatus } from '@/lib/api';

/** The status as a labelled badge (text, not colour alone). */
export function StatusBadge({ status }: { status: OrderStatus }) {
  return <span className={`badge badge-${status}`}>{status}</span>;
}
