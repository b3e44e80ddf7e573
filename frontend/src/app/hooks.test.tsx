import { act, renderHook } from '@testing-library/react';
import type { ReactNode } from 'react';
import { describe, expect, it } from 'vitest';
import type { JobView } from '../api/types';
import { Session } from '../auth/session';
import { JobsStore } from '../live/jobs';
import { ServicesContext, useJob, useJobs, useSession } from './hooks';
import { ValueStore, type Services } from './services';

const job = (id: string, over: Partial<JobView> = {}) =>
  ({ id, status: 'queued', progress: 0, prompt: id, request: {}, ...over }) as JobView;

function wrapper(services: Partial<Services>) {
  return ({ children }: { children: ReactNode }) => <ServicesContext.Provider value={services as Services}>{children}</ServicesContext.Provider>;
}

describe('hooks', () => {
  it('useJobs returns cached jobs in order and re-renders on live changes', () => {
    const jobs = new JobsStore();
    jobs.upsert(job('a'), job('b'));
    const { result } = renderHook(() => useJobs(['b', 'a', 'missing']), { wrapper: wrapper({ jobs }) });
    expect(result.current.map((j) => j.id)).toEqual(['b', 'a']);
    const before = result.current;
    act(() => {
      jobs.apply({ type: 'job.progress', job_id: 'a', data: { status: 'running', progress: 0.5 } });
    });
    expect(result.current).not.toBe(before);
    expect(result.current[1]).toMatchObject({ status: 'running', progress: 0.5 });
  });

  it('useJob follows one job', () => {
    const jobs = new JobsStore();
    const { result } = renderHook(() => useJob('x'), { wrapper: wrapper({ jobs }) });
    expect(result.current).toBeUndefined();
    act(() => jobs.upsert(job('x', { status: 'succeeded', progress: 1 })));
    expect(result.current?.status).toBe('succeeded');
  });

  it('useSession follows sign-in and sign-out', () => {
    const session = new Session({});
    const { result } = renderHook(() => useSession(), { wrapper: wrapper({ session }) });
    expect(result.current).toBeNull();
    act(() =>
      session.start({
        access_token: 'a',
        refresh_token: 'r',
        token_type: 'bearer',
        expires_in: 900,
        user: { id: 'u', username: 'alice', role: 'user', disabled: false, created_at: '' },
      }),
    );
    expect(result.current?.user.username).toBe('alice');
    act(() => session.end('signed_out'));
    expect(result.current).toBeNull();
  });

  it('ValueStore notifies only on change', () => {
    const store = new ValueStore('idle');
    let n = 0;
    store.subscribe(() => (n += 1));
    store.set('idle');
    store.set('open');
    expect([store.get(), n]).toEqual(['open', 1]);
  });
});
