// The notification centre: the caller's notifications (newest first), unread filter, mark read,
// mark all read, delete, pages; new ones arrive live. Admins also get a broadcast form.
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import type { NotificationView } from '../api/types';
import { useNow, useResource, useServices, useSession } from '../app/hooks';
import { PageHeader } from '../app/Shell';
import { toast } from '../components/toasts';
import { ConfirmButton, describedBy, Empty, ErrorBanner, errorMessage, Field, Loading } from '../components/ui';
import { useT, type MessageKey } from '../i18n';
import { formatDateTime, formatRelative } from '../lib/format';
import { Link, setQuery, useLocation } from '../lib/router';

const PAGE = 20;
const LEVELS = ['info', 'success', 'warning', 'error'] as const;
export const CATEGORIES = ['job', 'export', 'quota', 'security', 'system'] as const;

/** A link the server gave us, only if it stays inside the studio. */
function safeLink(link: string | null | undefined): string | null {
  return link && link.startsWith('/') && !link.startsWith('//') ? link : null;
}

export function Notifications() {
  const { t, lang } = useT();
  const { api, notifications } = useServices();
  const session = useSession();
  const isAdmin = session?.user.role === 'admin';
  const { search } = useLocation();
  const unreadOnly = search.get('unread') === '1';
  const offset = Math.max(0, Number(search.get('offset') ?? 0) || 0);
  const now = useNow(30_000);
  const [busy, setBusy] = useState(false);

  const list = useResource(
    (signal) => api.get('/api/notifications', { query: { unread_only: unreadOnly || undefined, limit: PAGE, offset }, signal }),
    [api, unreadOnly, offset],
  );
  const { data, reload } = list;

  // Keep the bell in step with what this page just learned from the server.
  useEffect(() => {
    if (data) notifications.dispatch({ type: 'synced', count: data.unread_count });
  }, [data, notifications]);

  // New notifications arrive live: reload (debounced) so the page and its counts stay right.
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    const off = notifications.onCreated(() => {
      if (timer.current) clearTimeout(timer.current);
      timer.current = setTimeout(reload, 300);
    });
    return () => {
      off();
      if (timer.current) clearTimeout(timer.current);
    };
  }, [notifications, reload]);

  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await fn();
      reload();
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
      reload();
    } finally {
      setBusy(false);
    }
  };

  const markRead = (n: NotificationView) =>
    act(async () => {
      await api.post('/api/notifications/{id}/read', { path: { id: n.id } });
      if (!n.read) notifications.dispatch({ type: 'read' });
    });
  const remove = (n: NotificationView) =>
    act(async () => {
      await api.delete('/api/notifications/{id}', { path: { id: n.id } });
      notifications.dispatch({ type: 'deleted', wasUnread: !n.read });
      toast(t('notif.deleted'), 'success');
    });
  const markAll = () =>
    act(async () => {
      const res = await api.post('/api/notifications/read-all');
      notifications.dispatch({ type: 'all_read' });
      toast(t('notif.marked_all', { n: res.updated }), 'success');
    });

  const items = data?.items ?? [];
  const total = data?.total ?? 0;
  const unread = data?.unread_count ?? 0;

  return (
    <>
      <PageHeader
        title={t('nav.notifications')}
        subtitle={data ? t('notif.subtitle', { n: unread }) : t('notif.subtitle_loading')}
        actions={
          <button type="button" className="btn" disabled={busy || unread === 0} onClick={() => void markAll()}>
            {t('notif.mark_all')}
          </button>
        }
      />
      {isAdmin && <Broadcast />}
      <section className="panel" aria-labelledby="notif-list-title">
        <h2 id="notif-list-title" className="sr-only">
          {t('notif.list')}
        </h2>
        <div className="filters">
          <label className="check filters-check">
            <input type="checkbox" checked={unreadOnly} onChange={(e) => setQuery({ unread: e.target.checked ? '1' : null, offset: null })} />
            {t('notif.unread_only')}
          </label>
          <button type="button" className="btn btn-small btn-ghost" onClick={reload}>
            {t('action.refresh')}
          </button>
        </div>
        {list.error ? <ErrorBanner error={list.error} onRetry={reload} /> : null}
        {list.loading && !data && <Loading />}
        {data && items.length === 0 && <Empty title={unreadOnly ? t('notif.empty_unread') : t('notif.empty')}>{!unreadOnly && <p className="hint">{t('notif.empty_hint')}</p>}</Empty>}
        {items.length > 0 && (
          <ul className="notif-list" aria-label={t('notif.list')}>
            {items.map((n) => {
              const link = safeLink(n.link);
              const level = (LEVELS as readonly string[]).includes(n.level) ? n.level : 'info';
              return (
                <li key={n.id} className={`notif notif-${level} ${n.read ? 'notif-read' : 'notif-unread'}`} data-id={n.id}>
                  <div className="notif-main">
                    <p className="notif-meta">
                      <span className={`notif-level notif-level-${level}`}>{t(`notif.level.${level}` as MessageKey)}</span>
                      <span className="badge">{(CATEGORIES as readonly string[]).includes(n.category) ? t(`notif.cat.${n.category}` as MessageKey) : n.category}</span>
                      {!n.read && <span className="notif-new">{t('notif.new')}</span>}
                      <time dateTime={n.created_at} title={formatDateTime(n.created_at, lang)}>
                        {/* never "in 1 second" when the server's clock is a little ahead */}
                        {formatRelative(n.created_at, lang, Math.max(now, Date.parse(n.created_at)))}
                      </time>
                    </p>
                    <h3 className="notif-title">{link ? <Link to={link}>{n.title}</Link> : n.title}</h3>
                    {n.body && <p className="notif-body">{n.body}</p>}
                  </div>
                  <div className="notif-actions">
                    {!n.read && (
                      <button type="button" className="btn btn-small" disabled={busy} aria-label={t('notif.mark_read_label', { title: n.title })} onClick={() => void markRead(n)}>
                        {t('notif.mark_read')}
                      </button>
                    )}
                    <ConfirmButton
                      label={t('notif.delete_confirm')}
                      confirmLabel={t('notif.delete_confirm')}
                      ariaLabel={t('notif.delete_label', { title: n.title })}
                      disabled={busy}
                      onConfirm={() => void remove(n)}
                    />
                  </div>
                </li>
              );
            })}
          </ul>
        )}
        {data && total > 0 && (
          <nav className="pager" aria-label={t('notif.pages')}>
            <button type="button" className="btn btn-small" disabled={offset === 0} onClick={() => setQuery({ offset: offset - PAGE > 0 ? String(offset - PAGE) : null })}>
              {t('action.previous')}
            </button>
            <span>{t('jobs.range', { from: Math.min(total, offset + 1), to: Math.min(total, offset + PAGE), total })}</span>
            <button type="button" className="btn btn-small" disabled={offset + PAGE >= total} onClick={() => setQuery({ offset: String(offset + PAGE) })}>
              {t('action.next')}
            </button>
          </nav>
        )}
      </section>
    </>
  );
}

function Broadcast() {
  const { t } = useT();
  const { api } = useServices();
  const [title, setTitle] = useState('');
  const [body, setBody] = useState('');
  const [level, setLevel] = useState<(typeof LEVELS)[number]>('info');
  const [link, setLink] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    if (!title.trim()) {
      setErrors({ title: t('notif.title_required') });
      return;
    }
    setBusy(true);
    try {
      const res = await api.post('/api/admin/notifications/broadcast', { body: { title: title.trim(), body, level, link: link.trim() || null } });
      toast(t('notif.broadcast_sent', { n: res.recipients }), 'success');
      setTitle('');
      setBody('');
      setLink('');
    } catch (err) {
      if (err instanceof ApiError && err.field && ['title', 'body', 'level', 'link'].includes(err.field)) setErrors({ [err.field]: err.message });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="broadcast-title">
      <h2 id="broadcast-title">{t('notif.broadcast')}</h2>
      <p className="hint">{t('notif.broadcast_intro')}</p>
      <form className="broadcast-form" onSubmit={(e) => void submit(e)} noValidate aria-label={t('notif.broadcast')}>
        <ErrorBanner error={error} />
        <Field id="broadcast-level" label={t('notif.level')}>
          <select id="broadcast-level" value={level} onChange={(e) => setLevel(LEVELS.find((l) => l === e.target.value) ?? 'info')}>
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {t(`notif.level.${l}` as MessageKey)}
              </option>
            ))}
          </select>
        </Field>
        <Field id="title" label={t('notif.title')} error={errors.title}>
          <input {...describedBy('title', errors.title)} value={title} maxLength={200} onChange={(e) => setTitle(e.target.value)} />
        </Field>
        <Field id="body" label={t('notif.body')} error={errors.body}>
          <textarea {...describedBy('body', errors.body)} rows={3} value={body} maxLength={4000} onChange={(e) => setBody(e.target.value)} />
        </Field>
        <Field id="link" label={t('notif.link')} error={errors.link} hint={t('notif.link_hint')}>
          <input {...describedBy('link', errors.link, 'hint')} value={link} placeholder="/jobs" onChange={(e) => setLink(e.target.value)} />
        </Field>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? t('state.working') : t('notif.send')}
        </button>
      </form>
    </section>
  );
}
