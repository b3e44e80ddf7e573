// Settings → Webhooks: the caller's signed webhooks (create with URL + events, the secret shown
// once; enable/disable; send a test event; delivery log; delete).
import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import type { WebhookView } from '../api/types';
import { useResource, useServices } from '../app/hooks';
import { toast } from '../components/toasts';
import { ConfirmButton, CopyButton, describedBy, Drawer, ErrorBanner, errorMessage, Field, ListStates } from '../components/ui';
import { useT } from '../i18n';
import { formatDateTime } from '../lib/format';

const EVENTS = ['job.succeeded', 'job.failed', 'job.cancelled', 'export.ready'] as const;

export function Webhooks() {
  const { t, lang } = useT();
  const { api } = useServices();
  const hooks = useResource((signal) => api.get('/api/webhooks', { signal }), [api]);
  const [url, setUrl] = useState('');
  const [all, setAll] = useState(true);
  const [events, setEvents] = useState<string[]>(['job.succeeded', 'job.failed']);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<WebhookView | null>(null);
  const [logFor, setLogFor] = useState<WebhookView | null>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    if (!url.trim()) {
      setErrors({ url: t('hooks.url_required') });
      return;
    }
    if (!all && events.length === 0) {
      setErrors({ events: t('hooks.events_required') });
      return;
    }
    setBusy(true);
    try {
      const res = await api.post('/api/webhooks', { body: { url: url.trim(), events: all ? ['*'] : events } });
      setCreated(res);
      setUrl('');
      hooks.reload();
    } catch (err) {
      const field = err instanceof ApiError ? err.field?.replace(/\[\d+\]$/, '') : undefined;
      if (err instanceof ApiError && field && ['url', 'events'].includes(field)) setErrors({ [field]: err.message });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const run = async (fn: () => Promise<unknown>, done?: string) => {
    try {
      await fn();
      if (done) toast(done, 'success');
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
    hooks.reload();
  };

  const items = hooks.data?.items ?? [];
  return (
    <section className="panel settings-wide" aria-labelledby="hooks-title">
      <h2 id="hooks-title">{t('hooks.title')}</h2>
      <p className="hint">{t('hooks.intro')}</p>
      {created?.secret && (
        <div className="token-box" role="alert">
          <p>
            <strong>{t('hooks.created')}</strong> {t('hooks.secret_once')}
          </p>
          <div className="token-row">
            <input className="token" id="hook-secret" readOnly value={created.secret} aria-label={t('hooks.secret')} onFocus={(e) => e.target.select()} />
            <CopyButton text={created.secret} />
          </div>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setCreated(null)}>
            {t('keys.stored')}
          </button>
        </div>
      )}
      <form className="key-form" onSubmit={(e) => void create(e)} noValidate aria-label={t('hooks.create')}>
        <ErrorBanner error={error} />
        <Field id="url" label={t('hooks.url')} error={errors.url} hint={t('hooks.url_hint')}>
          <input {...describedBy('url', errors.url, 'hint')} type="url" inputMode="url" value={url} maxLength={2000} placeholder="https://example.com/seidra" onChange={(e) => setUrl(e.target.value)} />
        </Field>
        <fieldset className="scopes" aria-describedby={errors.events ? 'events-error' : undefined}>
          <legend>{t('hooks.events')}</legend>
          <label className="check">
            <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
            {t('hooks.all_events')}
          </label>
          {!all &&
            EVENTS.map((ev) => (
              <label key={ev} className="check">
                <input type="checkbox" checked={events.includes(ev)} onChange={(e) => setEvents((cur) => (e.target.checked ? [...cur, ev] : cur.filter((x) => x !== ev)))} />
                <code>{ev}</code>
              </label>
            ))}
          {errors.events && (
            <p className="field-error" id="events-error">
              {errors.events}
            </p>
          )}
        </fieldset>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? t('state.working') : t('hooks.create')}
        </button>
      </form>

      <h3>{t('hooks.yours')}</h3>
      <ListStates resource={hooks} count={items.length} emptyTitle={t('hooks.empty')} />
      {items.length > 0 && (
        <table className="table hooks-table">
          <thead>
            <tr>
              <th scope="col">{t('hooks.url')}</th>
              <th scope="col">{t('hooks.events')}</th>
              <th scope="col">{t('hooks.state')}</th>
              <th scope="col">{t('users.created')}</th>
              <th scope="col">
                <span className="sr-only">{t('jobs.col.actions')}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((h) => (
              <tr key={h.id} className={h.active ? undefined : 'muted-row'}>
                <td data-label={t('hooks.url')} className="hook-url">
                  <code>{h.url}</code>
                </td>
                <td data-label={t('hooks.events')}>{h.events.join(', ')}</td>
                <td data-label={t('hooks.state')}>{h.active ? t('hooks.active') : t('hooks.inactive')}</td>
                <td data-label={t('users.created')}>{formatDateTime(h.created_at, lang)}</td>
                <td className="cell-actions">
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={t(h.active ? 'hooks.disable_label' : 'hooks.enable_label', { url: h.url })}
                    onClick={() => void run(() => api.patch('/api/webhooks/{id}', { path: { id: h.id }, body: { active: !h.active } }))}
                  >
                    {h.active ? t('hooks.disable') : t('hooks.enable')}
                  </button>
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={t('hooks.test_label', { url: h.url })}
                    onClick={() => void run(() => api.post('/api/webhooks/{id}/test', { path: { id: h.id } }), t('hooks.test_sent'))}
                  >
                    {t('hooks.test')}
                  </button>
                  <button type="button" className="btn btn-small btn-ghost" aria-label={t('hooks.log_label', { url: h.url })} onClick={() => setLogFor(h)}>
                    {t('hooks.log')}
                  </button>
                  <ConfirmButton
                    label={t('hooks.delete_confirm')}
                    confirmLabel={t('hooks.delete_confirm')}
                    ariaLabel={t('hooks.delete_label', { url: h.url })}
                    onConfirm={() => void run(() => api.delete('/api/webhooks/{id}', { path: { id: h.id } }), t('hooks.deleted'))}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {logFor && <DeliveryLog hook={logFor} onClose={() => setLogFor(null)} />}
    </section>
  );
}

function DeliveryLog({ hook, onClose }: { hook: WebhookView; onClose: () => void }) {
  const { t, lang } = useT();
  const { api } = useServices();
  const log = useResource((signal) => api.get('/api/webhooks/{id}/deliveries', { path: { id: hook.id }, query: { limit: 50 }, signal }), [api, hook.id]);
  const items = log.data?.items ?? [];
  return (
    <Drawer title={t('hooks.log_title')} onClose={onClose} wide>
      <p className="hint">
        <code>{hook.url}</code>
      </p>
      <button type="button" className="btn btn-small btn-ghost" onClick={log.reload}>
        {t('action.refresh')}
      </button>
      <ListStates resource={log} count={items.length} emptyTitle={t('hooks.log_empty')} />
      {items.length > 0 && (
        <table className="table deliveries">
          <thead>
            <tr>
              <th scope="col">{t('hooks.event')}</th>
              <th scope="col">{t('hooks.state')}</th>
              <th scope="col">{t('hooks.attempts')}</th>
              <th scope="col">{t('hooks.response')}</th>
              <th scope="col">{t('users.created')}</th>
            </tr>
          </thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.id}>
                <td data-label={t('hooks.event')}>
                  <code>{d.event}</code>
                </td>
                <td data-label={t('hooks.state')}>
                  <span className={`badge delivery-${d.status}`}>{d.status}</span>
                </td>
                <td data-label={t('hooks.attempts')}>{d.attempts}</td>
                <td data-label={t('hooks.response')}>
                  {d.status_code !== null && d.status_code !== undefined ? `HTTP ${d.status_code}` : ''}
                  {d.error ? ` ${d.error}` : ''}
                  {d.duration_ms !== null && d.duration_ms !== undefined ? ` · ${d.duration_ms} ms` : ''}
                </td>
                <td data-label={t('users.created')}>{formatDateTime(d.created_at, lang)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Drawer>
  );
}
