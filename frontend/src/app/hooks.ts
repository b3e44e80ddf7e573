import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import type { JobView } from '../api/types';
import type { SessionData } from '../auth/session';
import type { Lifecycle } from '../live/jobs';
import type { LiveStatus } from '../live/socket';
import type { Services } from './services';

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices outside <ServicesContext.Provider>');
  return services;
}

export function useSession(): SessionData | null {
  const { session } = useServices();
  return useSyncExternalStore(session.subscribe, session.getSnapshot);
}

/** Unread notifications (null until known), live. */
export function useUnreadCount(): number | null {
  const { notifications } = useServices();
  return useSyncExternalStore(notifications.subscribe, notifications.getUnread);
}

export function useLiveStatus(): LiveStatus {
  const { liveStatus } = useServices();
  return useSyncExternalStore(liveStatus.subscribe, liveStatus.get);
}

/** The cached jobs with these ids (in the given order), live. */
export function useJobs(ids: readonly string[]): JobView[] {
  const { jobs } = useServices();
  const version = useSyncExternalStore(jobs.subscribe, jobs.getVersion);
  const key = ids.join(',');
  return useMemo(
    () =>
      key
        .split(',')
        .filter(Boolean)
        .map((id) => jobs.get(id))
        .filter((j): j is JobView => !!j),
    // `version` changes whenever any cached job does.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [jobs, key, version],
  );
}

export function useJob(id: string | null): JobView | undefined {
  const list = useJobs(id ? [id] : []);
  return list[0];
}

/** Calls `fn` on job lifecycle events (new job, finished, resync after reconnect). */
export function useLifecycle(fn: (kind: Lifecycle, jobId: string | null) => void): void {
  const { onLifecycle } = useServices();
  const ref = useRef(fn);
  useEffect(() => {
    ref.current = fn;
  });
  useEffect(() => onLifecycle((k, id) => ref.current(k, id)), [onLifecycle]);
}

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: (value: T) => void;
}

/**
 * Loads data for a screen; keeps showing the previous data while reloading, ignores answers
 * that arrive after a newer request started, and aborts on unmount.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): Resource<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  useEffect(() => {
    loadRef.current = load;
  });
  useEffect(() => {
    const controller = new AbortController();
    // Marking the start of a fetch is the one synchronous update this effect makes.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    setState((s) => ({ ...s, loading: true }));
    loadRef.current(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, error: null, loading: false });
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setState((s) => ({ ...s, error, loading: false }));
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const setData = useCallback((data: T) => setState({ data, error: null, loading: false }), []);
  return { ...state, reload, setData };
}

/** Re-runs `fn` every `ms` while the page is visible. */
export function useInterval(fn: () => void, ms: number | null): void {
  const ref = useRef(fn);
  useEffect(() => {
    ref.current = fn;
  });
  useEffect(() => {
    if (ms === null) return;
    const id = setInterval(() => {
      if (document.visibilityState === 'visible') ref.current();
    }, ms);
    return () => clearInterval(id);
  }, [ms]);
}

/** Current time, ticking every `ms` (for relative times and heartbeat ages). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useInterval(() => setNow(Date.now()), ms);
  return now;
}
