import { describe, expect, it, vi } from 'vitest';
import type { JobView } from '../api/types';
import { JobsStore, mergeJob } from './jobs';

const job = (over: Partial<JobView> = {}): JobView => ({
  id: 'j1',
  owner_id: 'u1',
  status: 'queued',
  job_type: 'image',
  priority: 'interactive',
  engine: 'procedural',
  model: 'procedural-v1',
  prompt: 'fox',
  negative_prompt: '',
  request: {},
  progress: 0,
  attempt: 0,
  max_attempts: 3,
  cancel_requested: false,
  queued_at: '2026-01-01T00:00:00Z',
  run_after: '2026-01-01T00:00:00Z',
  ...over,
});
const output = { media_id: 'm1', url: '/files/x?sig=1', mime: 'image/png', bytes: 1, sha256: 'a' };

describe('mergeJob', () => {
  it('lets live events move a job in any legal direction', () => {
    const running = job({ status: 'running', progress: 0.5 });
    expect(mergeJob(running, { id: 'j1', status: 'queued', progress: 0 }, true).status).toBe('queued'); // released
  });
  it('never lets an older REST answer move a job backwards', () => {
    const running = job({ status: 'running', progress: 0.6, stage: 'image 3/8' });
    const stale = mergeJob(running, job({ status: 'queued', progress: 0 }));
    expect(stale).toMatchObject({ status: 'running', progress: 0.6, stage: 'image 3/8' });
    const lowerProgress = mergeJob(running, job({ status: 'running', progress: 0.2, stage: 'image 1/8' }));
    expect(lowerProgress.progress).toBe(0.6);
  });
  it('keeps a finished job finished, whatever arrives', () => {
    const done = job({ status: 'succeeded', progress: 1 });
    expect(mergeJob(done, { id: 'j1', status: 'running', progress: 0.9 }, true).status).toBe('succeeded');
  });
  it('keeps signed output URLs when a later view has none', () => {
    const done = job({ status: 'succeeded', outputs: [output] });
    expect(mergeJob(done, job({ status: 'succeeded', outputs: null })).outputs).toEqual([output]);
  });
});

describe('JobsStore', () => {
  it('applies progress events to known jobs and notifies subscribers', () => {
    const store = new JobsStore();
    store.upsert(job({ status: 'running' }));
    const listener = vi.fn();
    store.subscribe(listener);
    const v = store.getVersion();
    store.apply({ type: 'job.progress', job_id: 'j1', data: { job_id: 'j1', status: 'running', progress: 0.25, stage: 'image 2/8', eta_secs: 7 } });
    expect(store.get('j1')).toMatchObject({ progress: 0.25, stage: 'image 2/8', eta_secs: 7 });
    expect(store.getVersion()).toBeGreaterThan(v);
    expect(listener).toHaveBeenCalled();
  });

  it('fetches unknown jobs and finished jobs (for their signed URLs); reports lifecycle', () => {
    const fetchJob = vi.fn();
    const onLifecycle = vi.fn();
    const store = new JobsStore({ fetchJob, onLifecycle });
    store.apply({ type: 'job.queued', job_id: 'j9', data: { status: 'queued' } });
    expect(fetchJob).toHaveBeenCalledWith('j9');
    expect(onLifecycle).toHaveBeenCalledWith('queued', 'j9');
    store.upsert(job({ status: 'running' }));
    fetchJob.mockClear();
    store.apply({
      type: 'job.succeeded',
      job_id: 'j1',
      data: { status: 'succeeded', progress: 1, outputs: [{ media_id: 'm1', mime: 'image/png', bytes: 1, sha256: 'a' }] },
    });
    expect(store.get('j1')?.status).toBe('succeeded');
    expect(store.get('j1')?.outputs ?? []).toHaveLength(0); // no URL yet: not kept
    expect(fetchJob).toHaveBeenCalledWith('j1');
    expect(onLifecycle).toHaveBeenCalledWith('finished', 'j1');
  });

  it('resyncs from a snapshot: active jobs missing from it finished meanwhile and are fetched', () => {
    const fetchJob = vi.fn();
    const onLifecycle = vi.fn();
    const store = new JobsStore({ fetchJob, onLifecycle });
    store.upsert(job({ id: 'a', status: 'running' }), job({ id: 'b', status: 'queued' }), job({ id: 'c', status: 'succeeded' }));
    store.apply({ type: 'snapshot', jobs: [job({ id: 'b', status: 'running', progress: 0.1 })] });
    expect(store.get('b')?.status).toBe('running');
    expect(fetchJob.mock.calls.map((c) => c[0] as string)).toEqual(['a']);
    expect(onLifecycle).toHaveBeenCalledWith('resync', null);
  });

  it('ignores messages that are not about jobs', () => {
    const store = new JobsStore();
    expect(store.apply({ type: 'welcome' })).toBe(false);
    expect(store.apply({ type: 'pong' })).toBe(false);
  });
});
