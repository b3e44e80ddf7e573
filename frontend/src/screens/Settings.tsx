import { useState, useSyncExternalStore, type FormEvent } from 'react';
import { ApiError, type Client } from '../api/client';
import type { ApiKeyScope, CreatedApiKey, SettingsPatch, UserSettings } from '../api/types';
import { useResource, useServices, useSession, type Resource } from '../app/hooks';
import { PageHeader } from '../app/Shell';
import { toast } from '../components/toasts';
import { ConfirmButton, CopyButton, describedBy, ErrorBanner, errorMessage, Field, ListStates, Loading } from '../components/ui';
import { useT, type MessageKey } from '../i18n';
import { formatDateTime } from '../lib/format';
import { isTheme, prefsStore, type Prefs } from '../lib/prefs';
import { ContentPolicy } from './ContentPolicy';
import { Webhooks } from './Webhooks';

export function Settings() {
  const { t } = useT();
  const session = useSession();
  const isAdmin = session?.user.role === 'admin';
  const settings = useUserSettings();
  return (
    <>
      <PageHeader title={t('settings.title')} subtitle={t('settings.subtitle')} />
      <div className="settings-grid">
        <Profile />
        <Preferences />
        <ContentPrefsPanel settings={settings} />
        <NotificationPrefsPanel settings={settings} />
        <ChangePassword />
        <ApiKeys />
        <Webhooks />
        {isAdmin && <ContentPolicy />}
      </div>
    </>
  );
}

function Profile() {
  const { t, lang } = useT();
  const session = useSession();
  const user = session?.user;
  return (
    <section className="panel" aria-labelledby="profile-title">
      <h2 id="profile-title">{t('settings.profile')}</h2>
      {user && (
        <dl className="details">
          <dt>{t('field.username')}</dt>
          <dd>{user.username}</dd>
          <dt>{t('users.role')}</dt>
          <dd>{t(`role.${user.role}` as MessageKey)}</dd>
          <dt>{t('users.created')}</dt>
          <dd>{formatDateTime(user.created_at, lang)}</dd>
          <dt>{t('users.last_login')}</dt>
          <dd>{formatDateTime(user.last_login_at, lang)}</dd>
        </dl>
      )}
    </section>
  );
}

function Preferences() {
  const { t } = useT();
  const { savePrefs } = useServices();
  const prefs = useSyncExternalStore(prefsStore.subscribe, prefsStore.get);
  const [error, setError] = useState<unknown>(null);
  const save = (change: Partial<Prefs>) => {
    setError(null);
    savePrefs(change).catch((err: unknown) => setError(err));
  };
  return (
    <section className="panel" aria-labelledby="prefs-title">
      <h2 id="prefs-title">{t('settings.preferences')}</h2>
      <ErrorBanner error={error} />
      <Field id="pref-lang" label={t('settings.language')}>
        <select id="pref-lang" value={prefs.lang} onChange={(e) => save({ lang: e.target.value === 'fr' ? 'fr' : 'en' })}>
          <option value="en">English</option>
          <option value="fr">Français</option>
        </select>
      </Field>
      <Field id="pref-theme" label={t('settings.theme')}>
        <select id="pref-theme" value={prefs.theme} onChange={(e) => save({ theme: isTheme(e.target.value) ? e.target.value : 'dark' })}>
          <option value="dark">{t('settings.theme.dark')}</option>
          <option value="light">{t('settings.theme.light')}</option>
          <option value="system">{t('settings.theme.system')}</option>
        </select>
      </Field>
      <p className="hint">{t('settings.prefs_synced')}</p>
    </section>
  );
}

const CATEGORIES = ['job', 'export', 'quota', 'security', 'system'] as const;
const CHANNELS = ['in_app', 'websocket', 'webhook'] as const;

/** The server's settings document, shared by the notification and content panels. */
function useUserSettings() {
  const { api } = useServices();
  return useResource((signal) => api.get('/api/settings', { signal }), [api]);
}

function patchSettings(api: Client, patch: SettingsPatch): Promise<UserSettings> {
  // The document types the merge-patch body as a bare object.
  return api.patch('/api/settings', { body: patch as Record<string, never> });
}

function NotificationPrefsPanel({ settings }: { settings: Resource<UserSettings> }) {
  const { t } = useT();
  const { api } = useServices();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toggle = async (category: (typeof CATEGORIES)[number], channel: (typeof CHANNELS)[number], on: boolean) => {
    setError(null);
    setBusy(true);
    try {
      settings.setData(await patchSettings(api, { notifications: { [category]: { [channel]: on } } }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const data = settings.data;
  return (
    <section className="panel settings-wide" aria-labelledby="notif-prefs-title">
      <h2 id="notif-prefs-title">{t('settings.notif_prefs')}</h2>
      <p className="hint">{t('settings.notif_prefs_intro')}</p>
      <ErrorBanner error={error} />
      {settings.error ? <ErrorBanner error={settings.error} onRetry={settings.reload} /> : null}
      {settings.loading && !data && <Loading />}
      {data && (
        <table className="table matrix">
          <caption className="sr-only">{t('settings.notif_prefs')}</caption>
          <thead>
            <tr>
              <th scope="col">{t('settings.notif_category')}</th>
              {CHANNELS.map((c) => (
                <th scope="col" key={c}>
                  {t(`settings.channel.${c}` as MessageKey)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {CATEGORIES.map((cat) => (
              <tr key={cat}>
                <th scope="row">{t(`notif.cat.${cat}` as MessageKey)}</th>
                {CHANNELS.map((ch) => (
                  <td key={ch} data-label={t(`settings.channel.${ch}` as MessageKey)}>
                    <input
                      type="checkbox"
                      id={`np-${cat}-${ch}`}
                      disabled={busy}
                      checked={data.notifications[cat][ch]}
                      aria-label={t('settings.notif_toggle', { category: t(`notif.cat.${cat}` as MessageKey), channel: t(`settings.channel.${ch}` as MessageKey) })}
                      onChange={(e) => void toggle(cat, ch, e.target.checked)}
                    />
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** `content.blocked_terms[3]` → `content.blocked_terms`; the form's ids use `-` for `.`. */
function contentField(field: string | null): 'nsfw' | 'age_confirmed' | 'blocked_terms' | null {
  const m = /^content\.(nsfw|age_confirmed|blocked_terms)(\[\d+\])?$/.exec(field ?? '');
  return m ? (m[1] as 'nsfw' | 'age_confirmed' | 'blocked_terms') : null;
}

function ContentPrefsPanel({ settings }: { settings: Resource<UserSettings> }) {
  const { t } = useT();
  const { api } = useServices();
  const data = settings.data;
  // The form starts from the server's values and is re-seeded whenever they change.
  const [seed, setSeed] = useState<UserSettings | undefined>(undefined);
  const [nsfw, setNsfw] = useState(false);
  const [age, setAge] = useState(false);
  const [terms, setTerms] = useState('');
  if (data !== seed) {
    setSeed(data);
    if (data) {
      setNsfw(data.content.nsfw);
      setAge(data.content.age_confirmed);
      setTerms(data.content.blocked_terms.join('\n'));
    }
  }
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    setBusy(true);
    try {
      const blocked = terms
        .split('\n')
        .map((x) => x.trim())
        .filter(Boolean);
      settings.setData(await patchSettings(api, { content: { nsfw, age_confirmed: age, blocked_terms: blocked } }));
      toast(t('settings.saved'), 'success');
    } catch (err) {
      const field = err instanceof ApiError ? contentField(err.field) : null;
      if (field && err instanceof ApiError) setErrors({ [field]: err.message });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="content-prefs-title">
      <h2 id="content-prefs-title">{t('settings.content')}</h2>
      {settings.loading && !data && <Loading />}
      {data && (
        <form onSubmit={(e) => void submit(e)} noValidate aria-label={t('settings.content')}>
          <ErrorBanner error={error} />
          <div className={`field ${errors.age_confirmed ? 'field-invalid' : ''}`}>
            <label className="check">
              <input type="checkbox" {...describedBy('content-age_confirmed', errors.age_confirmed)} checked={age} onChange={(e) => setAge(e.target.checked)} />
              {t('settings.age_confirmed')}
            </label>
            {errors.age_confirmed && (
              <p className="field-error" id="content-age_confirmed-error">
                {errors.age_confirmed}
              </p>
            )}
          </div>
          <div className={`field ${errors.nsfw ? 'field-invalid' : ''}`}>
            <label className="check">
              <input type="checkbox" {...describedBy('content-nsfw', errors.nsfw, 'hint')} checked={nsfw} onChange={(e) => setNsfw(e.target.checked)} />
              {t('settings.nsfw')}
            </label>
            <p className="hint" id="content-nsfw-hint">
              {t('settings.nsfw_hint')}
            </p>
            {errors.nsfw && (
              <p className="field-error" id="content-nsfw-error">
                {errors.nsfw}
              </p>
            )}
          </div>
          <Field id="content-blocked_terms" label={t('settings.blocked_terms')} error={errors.blocked_terms} hint={t('settings.blocked_terms_hint')}>
            <textarea {...describedBy('content-blocked_terms', errors.blocked_terms, 'hint')} rows={4} value={terms} onChange={(e) => setTerms(e.target.value)} />
          </Field>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {busy ? t('state.working') : t('action.save')}
          </button>
        </form>
      )}
    </section>
  );
}

function ChangePassword() {
  const { t } = useT();
  const { api, session } = useServices();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    if (next !== confirm) {
      setErrors({ confirm_password: t('register.mismatch') });
      return;
    }
    setBusy(true);
    try {
      await api.post('/api/auth/me/password', { body: { current_password: current, new_password: next } });
      // Changing the password signs out every session: sign in again with the new one.
      const username = session.current?.user.username ?? '';
      const tokens = await api.post('/api/auth/login', { body: { username, password: next }, anonymous: true });
      session.start(tokens);
      setCurrent('');
      setNext('');
      setConfirm('');
      toast(t('settings.password_changed'), 'success');
    } catch (err) {
      if (err instanceof ApiError && (err.field === 'current_password' || err.field === 'new_password')) setErrors({ [err.field]: err.message });
      else if (err instanceof ApiError && err.status === 401 && err.code === 'invalid_credentials') setErrors({ current_password: err.message });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="password-title">
      <h2 id="password-title">{t('settings.password')}</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <ErrorBanner error={error} />
        <Field id="current_password" label={t('settings.current_password')} error={errors.current_password}>
          <input
            {...describedBy('current_password', errors.current_password)}
            type="password"
            autoComplete="current-password"
            value={current}
            onChange={(e) => setCurrent(e.target.value)}
          />
        </Field>
        <Field id="new_password" label={t('settings.new_password')} error={errors.new_password} hint={t('register.password_hint')}>
          <input
            {...describedBy('new_password', errors.new_password, 'hint')}
            type="password"
            autoComplete="new-password"
            value={next}
            onChange={(e) => setNext(e.target.value)}
          />
        </Field>
        <Field id="confirm_password" label={t('register.confirm')} error={errors.confirm_password}>
          <input
            {...describedBy('confirm_password', errors.confirm_password)}
            type="password"
            autoComplete="new-password"
            value={confirm}
            onChange={(e) => setConfirm(e.target.value)}
          />
        </Field>
        <button type="submit" className="btn btn-primary" disabled={busy || !current || !next}>
          {busy ? t('state.working') : t('settings.change_password')}
        </button>
      </form>
    </section>
  );
}

const SCOPES: ApiKeyScope[] = ['read', 'generate', 'admin'];

function ApiKeys() {
  const { t, lang } = useT();
  const { api } = useServices();
  const session = useSession();
  const isAdmin = session?.user.role === 'admin';
  const keys = useResource((signal) => api.get('/api/auth/api-keys', { signal }), [api]);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<ApiKeyScope[]>(['read', 'generate']);
  const [days, setDays] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<CreatedApiKey | null>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    if (!name.trim()) {
      setErrors({ name: t('keys.name_required') });
      return;
    }
    if (scopes.length === 0) {
      setErrors({ scopes: t('keys.scope_required') });
      return;
    }
    const expires = days.trim() ? Number(days) : null;
    if (expires !== null && (!Number.isInteger(expires) || expires < 1 || expires > 3650)) {
      setErrors({ expires_in_days: t('gen.err.int_range', { min: 1, max: 3650 }) });
      return;
    }
    setBusy(true);
    try {
      const res = await api.post('/api/auth/api-keys', { body: { name: name.trim(), scopes, expires_in_days: expires } });
      setCreated(res);
      setName('');
      setDays('');
      keys.reload();
    } catch (err) {
      if (err instanceof ApiError && err.field && ['name', 'scopes', 'expires_in_days'].includes(err.field.replace(/\[\d+\]$/, ''))) {
        setErrors({ [err.field.replace(/\[\d+\]$/, '')]: err.message });
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (id: string) => {
    try {
      await api.delete('/api/auth/api-keys/{id}', { path: { id } });
      toast(t('keys.revoked_toast'), 'success');
      keys.reload();
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };

  const items = keys.data?.items ?? [];
  return (
    <section className="panel settings-wide" aria-labelledby="keys-title">
      <h2 id="keys-title">{t('keys.title')}</h2>
      <p className="hint">{t('keys.intro')}</p>
      {created && (
        <div className="token-box" role="alert">
          <p>
            <strong>{t('keys.created', { name: created.key.name })}</strong> {t('keys.shown_once')}
          </p>
          <div className="token-row">
            <input className="token" readOnly value={created.token} aria-label={t('keys.token')} onFocus={(e) => e.target.select()} />
            <CopyButton text={created.token} />
          </div>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setCreated(null)}>
            {t('keys.stored')}
          </button>
        </div>
      )}
      <form className="key-form" onSubmit={(e) => void create(e)} noValidate aria-label={t('keys.create')}>
        <ErrorBanner error={error} />
        <Field id="key-name" label={t('keys.name')} error={errors.name}>
          <input {...describedBy('key-name', errors.name)} value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
        </Field>
        <fieldset className="scopes" aria-describedby={errors.scopes ? 'scopes-error' : undefined}>
          <legend>{t('keys.scopes')}</legend>
          {SCOPES.filter((s) => s !== 'admin' || isAdmin).map((s) => (
            <label key={s} className="check">
              <input
                type="checkbox"
                checked={scopes.includes(s)}
                onChange={(e) => setScopes((cur) => (e.target.checked ? [...cur, s] : cur.filter((x) => x !== s)))}
              />
              {t(`keys.scope.${s}` as MessageKey)}
            </label>
          ))}
          {errors.scopes && (
            <p className="field-error" id="scopes-error">
              {errors.scopes}
            </p>
          )}
        </fieldset>
        <Field id="key-days" label={t('keys.expires')} error={errors.expires_in_days} hint={t('keys.expires_hint')}>
          <input
            {...describedBy('key-days', errors.expires_in_days, 'hint')}
            type="number"
            inputMode="numeric"
            min={1}
            max={3650}
            value={days}
            onChange={(e) => setDays(e.target.value)}
          />
        </Field>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? t('state.working') : t('keys.create')}
        </button>
      </form>

      <h3>{t('keys.yours')}</h3>
      <ListStates resource={keys} count={items.length} emptyTitle={t('keys.empty')} />
      {items.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">{t('keys.name')}</th>
              <th scope="col">{t('keys.prefix')}</th>
              <th scope="col">{t('keys.scopes')}</th>
              <th scope="col">{t('keys.last_used')}</th>
              <th scope="col">{t('keys.expires_at')}</th>
              <th scope="col">
                <span className="sr-only">{t('jobs.col.actions')}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((k) => (
              <tr key={k.id} className={k.revoked_at ? 'muted-row' : undefined}>
                <td data-label={t('keys.name')}>{k.name}</td>
                <td data-label={t('keys.prefix')}>
                  <code>{k.prefix}…</code>
                </td>
                <td data-label={t('keys.scopes')}>{k.scopes.join(', ')}</td>
                <td data-label={t('keys.last_used')}>{formatDateTime(k.last_used_at, lang)}</td>
                <td data-label={t('keys.expires_at')}>{k.expires_at ? formatDateTime(k.expires_at, lang) : t('keys.never')}</td>
                <td className="cell-actions">
                  {k.revoked_at ? (
                    <span className="badge badge-cancelled">{t('keys.revoked')}</span>
                  ) : (
                    <ConfirmButton
                      label={t('keys.revoke')}
                      confirmLabel={t('keys.revoke_confirm')}
                      ariaLabel={t('keys.revoke_label', { name: k.name })}
                      onConfirm={() => void revoke(k.id)}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
