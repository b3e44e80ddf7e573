// The app's long-lived services, created once: the session, the typed API client, the jobs
// cache and the one live connection that feeds it.
import { ApiError, createClient, type Client } from '../api/client';
import type { JobView } from '../api/types';
import { Session } from '../auth/session';
import { freshFlight } from '../lib/freshFlight';
import { JobsStore, type Lifecycle } from '../live/jobs';
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
    },
    onStatus: (status) => liveStatus.set(status),
  });

  // Connect while signed in; forget everything when the user changes.
  let userId: string | null = null;
  const follow = () => {
    const current = session.current;
    if (current?.user.id !== userId) {
      jobs.clear();
      userId = current?.user.id ?? null;
      live.stop();
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
    onLifecycle: (fn) => {
      lifecycleListeners.add(fn);
      return () => lifecycleListeners.delete(fn);
    },
  };
}
