import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import type { Role, UserView } from '../api/types';
import { useResource, useServices, useSession } from '../app/hooks';
import { PageHeader } from '../app/Shell';
import { toast } from '../components/toasts';
import { ConfirmButton, describedBy, Drawer, Empty, ErrorBanner, errorMessage, Field, ListStates, Loading } from '../components/ui';
import { useT } from '../i18n';
import { formatDateTime, formatRelative } from '../lib/format';

const PAGE = 50;

export function Users() {
  const { t, lang } = useT();
  const { api } = useServices();
  const session = useSession();
  const [offset, setOffset] = useState(0);
  const users = useResource((signal) => api.get('/api/admin/users', { query: { limit: PAGE, offset }, signal }), [api, offset]);
  const audit = useResource((signal) => api.get('/api/admin/audit', { query: { limit: 20 }, signal }), [api]);
  const [busy, setBusy] = useState<string | null>(null);
  const [passwordFor, setPasswordFor] = useState<UserView | null>(null);

  if (session?.user.role !== 'admin') {
    return (
      <>
        <PageHeader title={t('users.title')} />
        <Empty title={t('users.admins_only')} />
      </>
    );
  }

  const update = async (user: UserView, change: { disabled?: boolean; role?: Role }) => {
    setBusy(user.id);
    try {
      const updated = await api.patch('/api/admin/users/{id}', { path: { id: user.id }, body: change });
      if (users.data) users.setData({ ...users.data, items: users.data.items.map((u) => (u.id === updated.id ? updated : u)) });
      toast(t('users.updated', { name: updated.username }), 'success');
      audit.reload();
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    } finally {
      setBusy(null);
    }
  };

  const total = users.data?.total ?? 0;
  // Audit records name accounts by id: show usernames where we know them.
  const names = new Map((users.data?.items ?? []).map((u) => [u.id, u.username]));
  return (
    <>
      <PageHeader title={t('users.title')} subtitle={t('users.subtitle')} />
      <div className="users-grid">
        <section className="panel users-list" aria-labelledby="users-list-title">
          <h2 id="users-list-title">{t('users.list', { n: total })}</h2>
          <ListStates resource={users} count={users.data?.items.length ?? 0} emptyTitle={t('users.empty')} />
          {users.data && users.data.items.length > 0 && (
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">{t('field.username')}</th>
                  <th scope="col">{t('users.role')}</th>
                  <th scope="col">{t('users.state')}</th>
                  <th scope="col">{t('users.last_login')}</th>
                  <th scope="col">
                    <span className="sr-only">{t('jobs.col.actions')}</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {users.data.items.map((u) => {
                  const self = u.id === session.user.id;
                  return (
                    <tr key={u.id} className={u.disabled ? 'muted-row' : undefined}>
                      <th scope="row" data-label={t('field.username')}>
                        {u.username}
                        {self && <span className="muted"> ({t('users.you')})</span>}
                      </th>
                      <td data-label={t('users.role')}>
                        <select
                          aria-label={t('users.role_of', { name: u.username })}
                          value={u.role}
                          disabled={busy === u.id || self}
                          onChange={(e) => void update(u, { role: e.target.value === 'admin' ? 'admin' : 'user' })}
                        >
                          <option value="user">{t('role.user')}</option>
                          <option value="admin">{t('role.admin')}</option>
                        </select>
                      </td>
                      <td data-label={t('users.state')}>
                        <span className={`badge ${u.disabled ? 'badge-failed' : 'badge-succeeded'}`}>{u.disabled ? t('users.disabled') : t('users.active')}</span>
                      </td>
                      <td data-label={t('users.last_login')}>
                        <span className="nowrap" title={formatDateTime(u.last_login_at, lang)}>
                          {formatRelative(u.last_login_at, lang)}
                        </span>
                      </td>
                      <td className="cell-actions">
                        {u.disabled ? (
                          <button type="button" className="btn btn-small" disabled={busy === u.id} onClick={() => void update(u, { disabled: false })}>
                            {t('users.enable')}
                          </button>
                        ) : (
                          <ConfirmButton
                            label={t('users.disable')}
                            confirmLabel={t('users.disable_confirm')}
                            ariaLabel={t('users.disable_label', { name: u.username })}
                            disabled={busy === u.id || self}
                            onConfirm={() => void update(u, { disabled: true })}
                          />
                        )}
                        <button
                          type="button"
                          className="btn btn-small btn-ghost"
                          aria-label={t('users.set_password_label', { name: u.username })}
                          onClick={() => setPasswordFor(u)}
                        >
                          {t('users.set_password')}
                        </button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
          {total > PAGE && (
            <nav className="pager" aria-label={t('jobs.pages')}>
              <button type="button" className="btn btn-small" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
                {t('action.previous')}
              </button>
              <span>{t('jobs.range', { from: offset + 1, to: Math.min(total, offset + PAGE), total })}</span>
              <button type="button" className="btn btn-small" disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>
                {t('action.next')}
              </button>
            </nav>
          )}
        </section>
        <CreateUser
          onCreated={() => {
            users.reload();
            audit.reload();
          }}
        />
        <section className="panel users-audit" aria-labelledby="audit-title">
          <h2 id="audit-title">{t('users.audit')}</h2>
          {audit.error ? <ErrorBanner error={audit.error} onRetry={audit.reload} /> : null}
          {audit.loading && !audit.data && <Loading />}
          {audit.data && audit.data.items.length === 0 && <Empty title={t('users.audit_empty')} />}
          {audit.data && audit.data.items.length > 0 && (
            <ul className="audit-list">
              {audit.data.items.map((a) => (
                <li key={a.id}>
                  <span className={`badge ${a.outcome === 'success' ? 'badge-succeeded' : 'badge-failed'}`}>{a.outcome}</span> <code>{a.action}</code>
                  {a.actor_id && <span className="muted"> · {names.get(a.actor_id) ?? t('users.someone')}</span>}
                  {a.target && <span className="muted"> → {names.get(a.target) ?? a.target}</span>}
                  <time className="muted" dateTime={a.at}>
                    {' '}
                    · {formatRelative(a.at, lang)}
                  </time>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
      {passwordFor && <SetPassword user={passwordFor} onClose={() => setPasswordFor(null)} />}
    </>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const { t } = useT();
  const { api } = useServices();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('user');
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    setBusy(true);
    try {
      const user = await api.post('/api/admin/users', { body: { username: username.trim(), password, role } });
      toast(t('users.created_toast', { name: user.username }), 'success');
      setUsername('');
      setPassword('');
      setRole('user');
      onCreated();
    } catch (err) {
      if (err instanceof ApiError && (err.field === 'username' || err.field === 'password')) setErrors({ [`new-${err.field}`]: err.message });
      else if (err instanceof ApiError && err.status === 409) setErrors({ 'new-username': err.message });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="create-user-title">
      <h2 id="create-user-title">{t('users.create')}</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <ErrorBanner error={error} />
        <Field id="new-username" label={t('field.username')} error={errors['new-username']}>
          <input
            {...describedBy('new-username', errors['new-username'])}
            autoComplete="off"
            autoCapitalize="none"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </Field>
        <Field id="new-password" label={t('users.initial_password')} error={errors['new-password']} hint={t('register.password_hint')}>
          <input
            {...describedBy('new-password', errors['new-password'], 'hint')}
            type="password"
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </Field>
        <Field id="new-role" label={t('users.role')}>
          <select id="new-role" value={role} onChange={(e) => setRole(e.target.value === 'admin' ? 'admin' : 'user')}>
            <option value="user">{t('role.user')}</option>
            <option value="admin">{t('role.admin')}</option>
          </select>
        </Field>
        <button type="submit" className="btn btn-primary" disabled={busy || !username.trim() || !password}>
          {busy ? t('state.working') : t('users.create')}
        </button>
      </form>
    </section>
  );
}

function SetPassword({ user, onClose }: { user: UserView; onClose: () => void }) {
  const { t } = useT();
  const { api } = useServices();
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.patch('/api/admin/users/{id}', { path: { id: user.id }, body: { password } });
      toast(t('users.password_set', { name: user.username }), 'success');
      onClose();
    } catch (err) {
      setError(errorMessage(err, t('error.generic')));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Drawer title={t('users.set_password_for', { name: user.username })} onClose={onClose}>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <p className="hint">{t('users.set_password_note')}</p>
        <Field id="admin-new-password" label={t('settings.new_password')} error={error} hint={t('register.password_hint')}>
          <input
            {...describedBy('admin-new-password', error, 'hint')}
            type="password"
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </Field>
        <button type="submit" className="btn btn-primary" disabled={busy || !password}>
          {busy ? t('state.working') : t('users.set_password')}
        </button>
      </form>
    </Drawer>
  );
}

