// Client-side cache of the jobs the user looks at, kept current by WebSocket events.
//
// Sources arrive in any order (a REST answer can be older than the event that came before it),
// so merging never moves a job backwards: a finished job stays finished, and a running job's
// progress only grows.
import type { JobView, JobStatus, OutputView } from '../api/types';
import { isActive, isTerminal } from '../api/types';
import type { LiveMessage } from './socket';

export type Lifecycle = 'queued' | 'started' | 'finished' | 'resync';

export interface JobsStoreHooks {
  /** The store saw an event for a job it does not hold, or a job that needs its final state. */
  fetchJob?: (id: string) => void;
  /** Something changed the set of jobs or a job's status (lists may want to reload). */
  onLifecycle?: (kind: Lifecycle, jobId: string | null) => void;
}

const RANK: Record<JobStatus, number> = { queued: 0, retrying: 1, running: 2, succeeded: 3, failed: 3, cancelled: 3 };

const STATUS_FIELDS = new Set<string>(['status', 'progress', 'stage', 'eta_secs', 'finished_at', 'error']);

/**
 * Merges `incoming` into `current`. A finished job never changes status again (a retry is a new
 * job). Live events are ordered and `authoritative`; a REST answer may be older than an event
 * already applied, so it may not move a job backwards (lower status rank, lower progress).
 */
export function mergeJob(current: JobView | undefined, incoming: Partial<JobView> & { id: string }, authoritative = false): JobView {
  if (!current) return incoming as JobView;
  const curStatus = current.status;
  const newStatus = incoming.status ?? curStatus;
  const backwards = isTerminal(curStatus)
    ? newStatus !== curStatus
    : !authoritative && (RANK[newStatus] < RANK[curStatus] || (newStatus === curStatus && (incoming.progress ?? current.progress) < current.progress));
  const next: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    if (backwards && STATUS_FIELDS.has(key)) continue;
    next[key] = value;
  }
  // Outputs from events have no signed URL: keep the ones fetched with the job.
  const incomingOutputs = incoming.outputs;
  if (current.outputs?.length && (!incomingOutputs || !incomingOutputs.every((o: OutputView) => typeof o.url === 'string'))) {
    next.outputs = current.outputs;
  }
  return next as unknown as JobView;
}

export class JobsStore {
  private jobs = new Map<string, JobView>();
  private readonly listeners = new Set<() => void>();
  private version = 0;
  hooks: JobsStoreHooks;

  constructor(hooks: JobsStoreHooks = {}) {
    this.hooks = hooks;
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  /** Changes whenever any job changes (for useSyncExternalStore). */
  getVersion = (): number => this.version;

  get(id: string): JobView | undefined {
    return this.jobs.get(id);
  }

  all(): JobView[] {
    return [...this.jobs.values()];
  }

  private changed(): void {
    this.version += 1;
    for (const fn of this.listeners) fn();
  }

  upsert(...jobs: JobView[]): void {
    for (const job of jobs) this.jobs.set(job.id, mergeJob(this.jobs.get(job.id), job));
    if (jobs.length) this.changed();
  }

  clear(): void {
    this.jobs.clear();
    this.changed();
  }

  /** Applies one WebSocket message; returns true when it concerned jobs. */
  apply(message: LiveMessage): boolean {
    if (message.type === 'snapshot') {
      this.applySnapshot(Array.isArray(message.jobs) ? (message.jobs as JobView[]) : []);
      return true;
    }
    if (!message.type.startsWith('job.')) return false;
    const jobId = typeof message.job_id === 'string' ? message.job_id : null;
    if (!jobId) return false;
    const data = (message.data ?? {}) as Partial<JobView> & { job_id?: string };
    const { job_id: _ignored, ...fields } = data;
    void _ignored;
    // Event outputs carry no signed URL; the full view is fetched below.
    if (fields.outputs && !fields.outputs.every((o) => typeof o.url === 'string')) delete fields.outputs;
    const current = this.jobs.get(jobId);
    const kind = message.type.slice(4);
    if (current) {
      this.jobs.set(jobId, mergeJob(current, { ...fields, id: jobId }, true));
      this.changed();
    }
    const finished = kind === 'succeeded' || kind === 'failed' || kind === 'cancelled';
    // Unknown job (submitted elsewhere), or finished: fetch the full view (outputs with URLs).
    if (!current || (finished && kind === 'succeeded')) this.hooks.fetchJob?.(jobId);
    if (kind === 'queued') this.hooks.onLifecycle?.('queued', jobId);
    else if (kind === 'started') this.hooks.onLifecycle?.('started', jobId);
    else if (finished) this.hooks.onLifecycle?.('finished', jobId);
    return true;
  }

  /**
   * A snapshot lists every active job after a (re)connect. Active jobs we hold that are not in
   * it finished while we were away: fetch their final state.
   */
  applySnapshot(active: JobView[]): void {
    const ids = new Set(active.map((j) => j.id));
    for (const job of active) this.jobs.set(job.id, mergeJob(this.jobs.get(job.id), job, true));
    const stale = [...this.jobs.values()].filter((j) => isActive(j.status) && !ids.has(j.id)).map((j) => j.id);
    this.changed();
    for (const id of stale) this.hooks.fetchJob?.(id);
    this.hooks.onLifecycle?.('resync', null);
  }
}
