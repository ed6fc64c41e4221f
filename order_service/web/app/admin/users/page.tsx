'use client';
import { RequireAuth } from '@/components/RequireAuth';
import { UserAdmin } from '@/components/UserAdmin';

export default function UsersPage() {
  return (
    <RequireAuth role="admin">
      <UserAdmin />
    </RequireAuth>
  );
}
