'use client';
/** Users and their roles (admins only): list, create, change role, activate/deactivate. */
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { ApiError, ROLES, requestJson, type Role, type User } from '@/lib/api';
import { useSession } from '@/lib/session';
import { ErrorMessage } from './ErrorMessage';

export function UserAdmin() {
  const { token, user: me } = useSession();
  const [users, setUsers] = useState<User[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('customer');
  const [fields, setFields] = useState<Record<string, string>>({});

  const load = useCallback(async () => {
    try {
      setUsers(await requestJson<User[]>('/api/users?limit=100', { token }));
    } catch (caught) {
      setError(caught);
    }
  }, [token]);

  useEffect(() => {
    void load();
  }, [load]);

  async function create(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setFields({});
    setNotice(null);
    try {
      const created = await requestJson<User>('/api/users', { method: 'POST', token, json: { email, password, role } });
      setNotice(`Created ${created.email} (${created.role}).`);
      setEmail('');
      setPassword('');
      await load();
    } catch (caught) {
      if (caught instanceof ApiError) setFields(caught.fields);
      setError(caught);
    }
  }

  async function update(target: User, change: Partial<Pick<User, 'role' | 'is_active'>>) {
    setError(null);
    setNotice(null);
    try {
      const updated = await requestJson<User>(`/api/users/${target.id}`, { method: 'PATCH', token, json: change });
      setNotice(`Updated ${updated.email}: ${updated.role}, ${updated.is_active ? 'active' : 'inactive'}.`);
      await load();
    } catch (caught) {
      setError(caught);
      await load();
    }
  }

  return (
    <section>
      <h1>Users and roles</h1>
      <div aria-live="polite">{notice ? <p className="notice" role="status">{notice}</p> : null}</div>
      <ErrorMessage error={error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">E-mail</th>
              <th scope="col">Role</th>
              <th scope="col">Active</th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.id}>
                <td>
                  {u.email}
                  {u.id === me?.id ? ' (you)' : ''}
                </td>
                <td>
                  <label className="sr-only" htmlFor={`role-${u.id}`}>Role of {u.email}</label>
                  <select id={`role-${u.id}`} value={u.role} onChange={(e) => void update(u, { role: e.target.value as Role })}>
                    {ROLES.map((r) => (
                      <option key={r}>{r}</option>
                    ))}
                  </select>
                </td>
                <td>
                  <button type="button" className="secondary" onClick={() => void update(u, { is_active: !u.is_active })}>
                    {u.is_active ? 'Deactivate' : 'Activate'}<span className="sr-only"> {u.email}</span>
                  </button>{' '}
                  {u.is_active ? 'active' : 'inactive'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>New user</h2>
      <form onSubmit={create} noValidate className="row">
        <div>
          <label htmlFor="new-email">E-mail</label>
          <input id="new-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)}
            aria-describedby={fields.email ? 'err-email' : undefined} aria-invalid={fields.email ? true : undefined} />
          {fields.email ? <span className="field-error" id="err-email">{fields.email}</span> : null}
        </div>
        <div>
          <label htmlFor="new-password">Password</label>
          <input id="new-password" type="password" autoComplete="new-password" value={password}
            onChange={(e) => setPassword(e.target.value)}
            aria-describedby={fields.password ? 'err-password' : undefined} aria-invalid={fields.password ? true : undefined} />
          {fields.password ? <span className="field-error" id="err-password">{fields.password}</span> : null}
        </div>
        <div>
          <label htmlFor="new-role">Role</label>
          <select id="new-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </div>
        <div className="actions">
          <button type="submit">Create user</button>
        </div>
      </form>
    </section>
  );
}
