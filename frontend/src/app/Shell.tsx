import { useEffect, useRef, useState, type ReactNode } from 'react';
import { useT, type MessageKey } from '../i18n';
import { Link, navigate, useLocation } from '../lib/router';
import { clearDraft } from '../screens/generate/form';
import { useLiveStatus, useServices, useSession, useUnreadCount } from './hooks';

interface NavItem {
  to: string;
  key: MessageKey;
  soon?: boolean;
  admin?: boolean;
}

export const NAV: { group: MessageKey; items: NavItem[] }[] = [
  {
    group: 'nav.group.create',
    items: [
      { to: '/generate', key: 'nav.generate' },
      { to: '/personas', key: 'nav.personas' },
      { to: '/library', key: 'nav.library' },
      { to: '/video', key: 'nav.video' },
    ],
  },
  {
    group: 'nav.group.monitor',
    items: [
      { to: '/jobs', key: 'nav.jobs' },
      { to: '/notifications', key: 'nav.notifications' },
      { to: '/system', key: 'nav.system' },
    ],
  },
  {
    group: 'nav.group.manage',
    items: [
      { to: '/models', key: 'nav.models' },
      { to: '/settings', key: 'nav.settings' },
      { to: '/admin/users', key: 'nav.users', admin: true },
    ],
  },
];

function LiveIndicator() {
  const { t } = useT();
  const status = useLiveStatus();
  const label: Record<typeof status, MessageKey> = {
    idle: 'live.offline',
    connecting: 'live.connecting',
    open: 'live.open',
    reconnecting: 'live.reconnecting',
    offline: 'live.offline',
  };
  return (
    <span className={`live live-${status}`} role="status" title={t('live.title')}>
      <span className="live-dot" aria-hidden="true" />
      {t(label[status])}
    </span>
  );
}

/** The bell: a link to Notifications carrying the live unread count. */
function Bell() {
  const { t } = useT();
  const unread = useUnreadCount();
  const n = unread ?? 0;
  const label = n > 0 ? t('notif.bell_unread', { n }) : t('notif.bell_none');
  return (
    <Link to="/notifications" className="btn btn-ghost btn-icon bell" aria-label={label} title={label}>
      <svg className="bell-icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
        <path
          fill="currentColor"
          d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z"
        />
      </svg>
      {n > 0 && (
        <span className="bell-count" aria-hidden="true" data-count={n}>
          {n > 99 ? '99+' : n}
        </span>
      )}
    </Link>
  );
}

export function Shell({ title, children }: { title: string; children: ReactNode }) {
  const { t } = useT();
  const session = useSession();
  const { session: manager, api } = useServices();
  const { pathname } = useLocation();
  // The mobile menu closes on navigation: its state belongs to the path it was opened on.
  const [menuPath, setMenuPath] = useState<string | null>(null);
  const menuOpen = menuPath === pathname;
  const first = useRef(true);
  const isAdmin = session?.user.role === 'admin';

  useEffect(() => {
    document.title = `${title} · SEIDRA Studio`;
  }, [title]);

  // After a client-side navigation, move focus to the new page's heading (screen readers
  // announce it; keyboard users start from the top of the content).
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    document.querySelector<HTMLElement>('main h1')?.focus();
  }, [pathname]);

  const signOut = async () => {
    const refresh = manager.current?.refreshToken;
    try {
      await api.post('/api/auth/logout', { body: { refresh_token: refresh ?? null } });
    } catch {
      // signing out locally is what matters
    }
    manager.end('signed_out');
    clearDraft();
    navigate('/login', { replace: true });
  };

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        {t('shell.skip')}
      </a>
      <header className="topbar">
        <button
          type="button"
          className="btn btn-ghost btn-icon menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="primary-nav"
          aria-label={t('shell.menu')}
          onClick={() => setMenuPath(menuOpen ? null : pathname)}
        >
          <span aria-hidden="true">☰</span>
        </button>
        <Link to="/generate" className="brand">
          <span className="brand-mark" aria-hidden="true">
            ✦
          </span>
          <span>
            SEIDRA <span className="brand-sub">Studio</span>
          </span>
        </Link>
        <div className="topbar-right">
          <LiveIndicator />
          <Bell />
          <span className="user-chip" title={session?.user.username}>
            <span className="sr-only">{t('shell.signed_in_as')} </span>
            {session?.user.username}
            {isAdmin && <span className="role-tag">{t('role.admin')}</span>}
          </span>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => void signOut()}>
            {t('action.sign_out')}
          </button>
        </div>
      </header>
      <div className="layout">
        <nav id="primary-nav" className={`sidebar ${menuOpen ? 'open' : ''}`} aria-label={t('shell.nav')}>
          {NAV.map((section) => {
            const items = section.items.filter((i) => !i.admin || isAdmin);
            if (!items.length) return null;
            return (
              <div key={section.group} className="nav-group">
                <p className="nav-group-title" id={`nav-${section.group}`}>
                  {t(section.group)}
                </p>
                <ul aria-labelledby={`nav-${section.group}`}>
                  {items.map((item) => {
                    const active = pathname === item.to || pathname.startsWith(`${item.to}/`);
                    return (
                      <li key={item.to}>
                        <Link to={item.to} className={`nav-link ${active ? 'active' : ''}`} aria-current={active ? 'page' : undefined}>
                          <span>{t(item.key)}</span>
                          {item.soon && <span className="soon-tag">{t('nav.soon')}</span>}
                        </Link>
                      </li>
                    );
                  })}
                </ul>
              </div>
            );
          })}
        </nav>
        <main id="main" className="content" tabIndex={-1}>
          {children}
        </main>
      </div>
    </div>
  );
}

export function PageHeader({ title, subtitle, actions }: { title: string; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <div className="page-header">
      <div>
        <h1 tabIndex={-1}>{title}</h1>
        {subtitle && <p className="subtitle">{subtitle}</p>}
      </div>
      {actions && <div className="page-actions">{actions}</div>}
    </div>
  );
}
