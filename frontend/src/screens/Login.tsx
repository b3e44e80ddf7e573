import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import { useServices } from '../app/hooks';
import { describedBy, errorMessage, Field } from '../components/ui';
import { useT } from '../i18n';
import { prefsStore } from '../lib/prefs';
import { navigate, useLocation } from '../lib/router';

type Mode = 'login' | 'register';

/** Where to go after signing in: only same-app paths are followed. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/login')) return '/generate';
  return next;
}

export function Login() {
  const { t, lang } = useT();
  const { api, session } = useServices();
  const { search } = useLocation();
  const [mode, setMode] = useState<Mode>('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [registrationClosed, setRegistrationClosed] = useState(false);
  const headingRef = useRef<HTMLHeadingElement>(null);
  const ended = session.endReason;

  useEffect(() => {
    document.title = `${t(mode === 'login' ? 'login.title' : 'register.title')} · SEIDRA Studio`;
  }, [mode, t]);

  const switchMode = (next: Mode) => {
    setMode(next);
    setError(null);
    setFieldErrors({});
    setConfirm('');
    headingRef.current?.focus();
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setFieldErrors({});
    if (mode === 'register' && password !== confirm) {
      setFieldErrors({ confirm: t('register.mismatch') });
      return;
    }
    setBusy(true);
    try {
      const body = { username: username.trim(), password };
      const tokens =
        mode === 'login'
          ? await api.post('/api/auth/login', { body, anonymous: true })
          : await api.post('/api/auth/register', { body, anonymous: true });
      session.start(tokens);
      navigate(safeNext(search.get('next')), { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'registration_disabled') setRegistrationClosed(true);
      if (err instanceof ApiError && err.field && (err.field === 'username' || err.field === 'password')) {
        setFieldErrors({ [err.field]: err.message });
      } else if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
        setError(t('error.rate_limited', { secs: err.retryAfter }));
      } else {
        setError(errorMessage(err, t('error.generic')));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="auth-page">
      <main id="main" className="auth-card">
        <div className="auth-brand" aria-hidden="true">
          <span className="brand-mark">✦</span> SEIDRA <span className="brand-sub">Studio</span>
        </div>
        <h1 ref={headingRef} tabIndex={-1}>
          {t(mode === 'login' ? 'login.title' : 'register.title')}
        </h1>
        <p className="subtitle">{t(mode === 'login' ? 'login.subtitle' : 'register.subtitle')}</p>
        {ended && ended !== 'signed_out' && mode === 'login' && (
          <div className="banner banner-info" role="status">
            {t(ended === 'disabled' ? 'login.ended_disabled' : 'login.ended_expired')}
          </div>
        )}
        {error && (
          <div className="banner banner-error" role="alert">
            {error}
          </div>
        )}
        <form onSubmit={(e) => void submit(e)} noValidate>
          <Field id="username" label={t('field.username')} error={fieldErrors.username}>
            <input
              {...describedBy('username', fieldErrors.username)}
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              required
              value={username}
              onChange={(e) => setUsername(e.target.value)}
            />
          </Field>
          <Field
            id="password"
            label={t('field.password')}
            error={fieldErrors.password}
            hint={mode === 'register' ? t('register.password_hint') : undefined}
          >
            <input
              {...describedBy('password', fieldErrors.password, mode === 'register' ? 'hint' : null)}
              name="password"
              type="password"
              autoComplete={mode === 'login' ? 'current-password' : 'new-password'}
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </Field>
          {mode === 'register' && (
            <Field id="confirm" label={t('register.confirm')} error={fieldErrors.confirm}>
              <input
                {...describedBy('confirm', fieldErrors.confirm)}
                name="confirm"
                type="password"
                autoComplete="new-password"
                required
                value={confirm}
                onChange={(e) => setConfirm(e.target.value)}
              />
            </Field>
          )}
          <button type="submit" className="btn btn-primary btn-block" disabled={busy || (mode === 'register' && registrationClosed)}>
            {busy ? t('state.working') : t(mode === 'login' ? 'action.sign_in' : 'action.create_account')}
          </button>
        </form>
        <div className="auth-switch">
          {mode === 'login' ? (
            <button type="button" className="btn btn-link" onClick={() => switchMode('register')}>
              {t('login.to_register')}
            </button>
          ) : (
            <button type="button" className="btn btn-link" onClick={() => switchMode('login')}>
              {t('register.to_login')}
            </button>
          )}
          {mode === 'register' && registrationClosed && <p className="hint">{t('register.closed')}</p>}
        </div>
        <div className="auth-lang">
          <label htmlFor="login-lang">{t('settings.language')}</label>
          <select id="login-lang" value={lang} onChange={(e) => prefsStore.set({ lang: e.target.value === 'fr' ? 'fr' : 'en' })}>
            <option value="en">English</option>
            <option value="fr">Français</option>
          </select>
        </div>
      </main>
    </div>
  );
}
