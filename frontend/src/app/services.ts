// The app's long-lived services, created once: the session, the typed API client, the jobs
// cache and the one live connection that feeds it.
import { ApiError, createClient, type Client } from '../api/client';
import type { JobView } from '../api/types';
import { Session } from '../auth/session';
import { freshFlight } from '../lib/freshFlight';
import { prefsStore, isLang, isTheme, type Prefs } from '../lib/prefs';
import { JobsStore, type Lifecycle } from '../live/jobs';
import { NotificationsStore } from '../live/notifications';
import { LiveSocket, liveUrl, type LiveStatus } from '../live/socket';

export interface Services {
  session: Session;
  api: Client;
  jobs: JobsStore;
  live: LiveSocket;
  liveStatus: ValueStore<LiveStatus>;
  /** Lifecycle notifications (new job, job finished, resync) for screens that list jobs. */
  onLifecycle: (fn: (kind: Lifecycle, jobId: string | null) => void) => () => void;
  /** Loads one job (with signed output URLs) into the cache; concurrent calls share a request. */
  loadJob: (id: string) => Promise<JobView | null>;
  /** Unread count (the bell) and live notifications. */
  notifications: NotificationsStore;
  /** Re-reads the unread count from the server. */
  syncUnread: () => void;
  /**
   * Changes language/theme here at once and, when signed in, in the server's settings (the
   * source of truth, applied again at every sign-in). Rejects with the server's error.
   */
  savePrefs: (change: Partial<Prefs>) => Promise<void>;
}

export class ValueStore<T> {
  private readonly listeners = new Set<() => void>();
  constructor(private value: T) {}
  get = (): T => this.value;
  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };
  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const fn of this.listeners) fn();
  }
}

export function createServices(win: Window = window): Services {
  const session = new Session({
    storage: win.localStorage,
    locks: win.navigator.locks ?? null,
  });
  const api = createClient({ auth: session });
  const lifecycleListeners = new Set<(kind: Lifecycle, jobId: string | null) => void>();
  const loadJob = freshFlight((id: string): Promise<JobView | null> =>
    api.get('/api/jobs/{id}', { path: { id } }).then(
      (job) => {
        jobs.upsert(job);
        return job;
      },
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 404) return null;
        throw err;
      },
    ),
  );

  const jobs = new JobsStore({
    fetchJob: (id) => {
      loadJob(id).catch(() => undefined);
    },
    onLifecycle: (kind, jobId) => {
      for (const fn of lifecycleListeners) fn(kind, jobId);
    },
  });

  const syncUnread = () => {
    if (!session.current) return;
    const forUser = session.current.user.id;
    api.get('/api/notifications', { query: { unread_only: true, limit: 1 } }).then(
      (page) => {
        if (session.current?.user.id === forUser) notifications.dispatch({ type: 'synced', count: page.unread_count });
      },
      () => undefined, // the bell just stays as it was; the next reconnect tries again
    );
  };
  const notifications = new NotificationsStore({ resync: syncUnread });

  // The server's language/theme win over this browser's while signed in.
  const syncPrefs = () => {
    if (!session.current) return;
    api.get('/api/settings').then(
      (s) => {
        const change: Partial<Prefs> = {};
        if (isLang(s.language)) change.lang = s.language;
        if (isTheme(s.theme)) change.theme = s.theme;
        prefsStore.set(change);
      },
      () => undefined, // keep the local preferences
    );
  };
  const savePrefs = async (change: Partial<Prefs>) => {
    prefsStore.set(change);
    if (!session.current) return;
    const patch: { language?: string; theme?: string } = {};
    if (change.lang) patch.language = change.lang;
    if (change.theme) patch.theme = change.theme;
    // The document types the merge-patch body as a bare object.
    await api.patch('/api/settings', { body: patch as Record<string, never> });
  };

  const liveStatus = new ValueStore<LiveStatus>('idle');
  const live = new LiveSocket({
    url: () => liveUrl(win.location),
    token: () => session.token(),
    reauthenticate: async () => {
      // The client refreshes on 401 by itself; a 401 that survives it means signed out.
      try {
        await api.get('/api/auth/me');
        return true;
      } catch (err) {
        return !(err instanceof ApiError && (err.status === 401 || err.status === 403));
      }
    },
    onMessage: (message) => {
      jobs.apply(message);
      notifications.apply(message);
    },
    onStatus: (status) => liveStatus.set(status),
  });

  // Connect while signed in; forget everything when the user changes.
  let userId: string | null = null;
  const follow = () => {
    const current = session.current;
    if (current?.user.id !== userId) {
      jobs.clear();
      notifications.dispatch({ type: 'reset' });
      userId = current?.user.id ?? null;
      live.stop();
      if (userId) {
        syncUnread();
        syncPrefs();
      }
    }
    if (current) live.start();
    else live.stop();
  };
  session.subscribe(follow);
  follow();

  win.addEventListener('storage', (e) => {
    if (e.key === null || e.key === 'seidra.session') session.syncFromStorage();
  });
  win.addEventListener('online', () => live.reconnectNow());
  win.document.addEventListener('visibilitychange', () => {
    if (win.document.visibilityState === 'visible') live.reconnectNow();
  });

  return {
    session,
    api,
    jobs,
    live,
    liveStatus,
    loadJob,
    notifications,
    syncUnread,
    savePrefs,
    onLifecycle: (fn) => {
      lifecycleListeners.add(fn);
      return () => lifecycleListeners.delete(fn);
    },
  };
}
