import { lazy, Suspense, useEffect, type ReactNode } from 'react';
import { ApiError } from '../api/client';
import { Toaster } from '../components/toasts';
import { Loading } from '../components/ui';
import { useT, type MessageKey } from '../i18n';
import { navigate, useLocation } from '../lib/router';
import { Generate } from '../screens/generate/Generate';
import { Jobs } from '../screens/Jobs';
import { Login, safeNext } from '../screens/Login';
import { Models } from '../screens/Models';
import { Library } from '../screens/library/Library';
import { Notifications } from '../screens/Notifications';
import { Personas } from '../screens/personas/Personas';
import { NotFound } from '../screens/Placeholder';
import { Settings } from '../screens/Settings';
import { System } from '../screens/System';
import { Users } from '../screens/Users';
import { ServicesContext, useServices, useSession } from './hooks';
import type { Services } from './services';
import { Shell } from './Shell';

interface Route {
  title: MessageKey;
  render: () => ReactNode;
}

// The timeline editor is the largest screen and most visits never open it: its own chunk.
const Video = lazy(() => import('../screens/video/Video').then((m) => ({ default: m.Video })));

const ROUTES: Record<string, Route> = {
  '/generate': { title: 'nav.generate', render: () => <Generate /> },
  '/jobs': { title: 'nav.jobs', render: () => <Jobs /> },
  '/settings': { title: 'nav.settings', render: () => <Settings /> },
  '/system': { title: 'nav.system', render: () => <System /> },
  '/admin/users': { title: 'nav.users', render: () => <Users /> },
  '/personas': { title: 'nav.personas', render: () => <Personas /> },
  '/library': { title: 'nav.library', render: () => <Library /> },
  '/video': {
    title: 'nav.video',
    render: () => (
      <Suspense fallback={<Loading />}>
        <Video />
      </Suspense>
    ),
  },
  '/notifications': { title: 'nav.notifications', render: () => <Notifications /> },
  '/models': { title: 'nav.models', render: () => <Models /> },
};

function Root() {
  const { t } = useT();
  const session = useSession();
  const { api, session: manager } = useServices();
  const { pathname, search } = useLocation();
  const signedIn = !!session;

  // Redirects: signed out → /login?next=…; signed in on /login or / → where they were going.
  useEffect(() => {
    if (!signedIn && pathname !== '/login') {
      const next = pathname + (search.toString() ? `?${search.toString()}` : '');
      navigate(`/login${next !== '/' ? `?next=${encodeURIComponent(next)}` : ''}`, { replace: true });
    } else if (signedIn && (pathname === '/login' || pathname === '/')) {
      navigate(pathname === '/login' ? safeNext(search.get('next')) : '/generate', { replace: true });
    }
  }, [signedIn, pathname, search]);

  // Refresh the account (role, disabled) once per sign-in.
  const userId = session?.user.id;
  useEffect(() => {
    if (!userId) return;
    api.get('/api/auth/me').then(
      (user) => manager.setUser(user),
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 403 && err.code === 'account_disabled') manager.end('disabled');
      },
    );
  }, [userId, api, manager]);

  if (!signedIn) return <Login />;
  const route = ROUTES[pathname];
  return <Shell title={route ? t(route.title) : t('notfound.title')}>{route ? route.render() : <NotFound />}</Shell>;
}

export function App({ services }: { services: Services }) {
  return (
    <ServicesContext.Provider value={services}>
      <Root />
      <Toaster />
    </ServicesContext.Provider>
  );
}
