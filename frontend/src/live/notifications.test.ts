import { describe, expect, it, vi } from 'vitest';
import { NotificationsStore, reduceUnread } from './notifications';

const event = (over: Record<string, unknown> = {}) => ({
  type: 'notification',
  channel: 'notifications',
  id: 7,
  data: { id: 'n1', level: 'success', category: 'job', title: 'Image finished', body: '', link: '/jobs?job=j1', read: false, read_at: null, created_at: '2026-11-24T06:00:00Z', ...over },
});

describe('reduceUnread', () => {
  it('counts up on new unread notifications once synced, never below zero', () => {
    let s = reduceUnread({ unread: null }, { type: 'created', read: false });
    expect(s.unread).toBeNull(); // unknown until the server answered
    s = reduceUnread(s, { type: 'synced', count: 2 });
    s = reduceUnread(s, { type: 'created', read: false });
    s = reduceUnread(s, { type: 'created', read: true });
    expect(s.unread).toBe(3);
    s = reduceUnread(s, { type: 'read' });
    s = reduceUnread(s, { type: 'deleted', wasUnread: true });
    s = reduceUnread(s, { type: 'deleted', wasUnread: false });
    expect(s.unread).toBe(1);
    s = reduceUnread(s, { type: 'read', count: 5 });
    expect(s.unread).toBe(0);
    s = reduceUnread({ unread: 9 }, { type: 'all_read' });
    expect(s.unread).toBe(0);
    expect(reduceUnread(s, { type: 'reset' }).unread).toBeNull();
  });
});

describe('NotificationsStore', () => {
  it('counts live notification events and hands them to listeners', () => {
    const store = new NotificationsStore();
    store.dispatch({ type: 'synced', count: 0 });
    const seen: string[] = [];
    const changed = vi.fn();
    store.subscribe(changed);
    const off = store.onCreated((n) => seen.push(n.title));
    store.apply(event());
    expect(store.getUnread()).toBe(1);
    expect(seen).toEqual(['Image finished']);
    expect(changed).toHaveBeenCalledTimes(1);
    off();
    store.apply(event({ id: 'n2' }));
    expect(store.getUnread()).toBe(2);
    expect(seen).toHaveLength(1);
  });

  it('ignores job events, other channels and malformed data', () => {
    const store = new NotificationsStore();
    store.dispatch({ type: 'synced', count: 4 });
    store.apply({ type: 'job.progress', channel: 'jobs', data: {} });
    store.apply({ ...event(), channel: 'jobs' });
    store.apply({ type: 'notification', channel: 'notifications', data: { id: 3 } });
    expect(store.getUnread()).toBe(4);
  });

  it('asks for a resync on every (re)connect snapshot', () => {
    const resync = vi.fn();
    const store = new NotificationsStore({ resync });
    store.apply({ type: 'snapshot', jobs: [] });
    store.apply({ type: 'welcome' });
    expect(resync).toHaveBeenCalledTimes(1);
  });
});
