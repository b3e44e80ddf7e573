// The unread-notifications count shown by the bell, kept current by WebSocket events, plus a
// fan-out of new notifications to whichever screen lists them.
//
// The count comes from `GET /api/notifications` (`unread_count`) at sign-in and after every
// (re)connect (the `snapshot` that opens each connection is the resync point: events missed
// while offline are not replayed); live `notification` events and the user's own actions
// adjust it in between.
import { readNotificationEvent, type NotificationView } from '../api/types';
import type { LiveMessage } from './socket';

/** `unread` is null until the first answer from the server. */
export interface UnreadState {
  unread: number | null;
}

export type UnreadAction =
  | { type: 'synced'; count: number }
  | { type: 'created'; read: boolean }
  | { type: 'read'; count?: number }
  | { type: 'all_read' }
  | { type: 'deleted'; wasUnread: boolean }
  | { type: 'reset' };

/** Pure reducer of the unread count (never negative; unknown stays unknown until synced). */
export function reduceUnread(state: UnreadState, action: UnreadAction): UnreadState {
  switch (action.type) {
    case 'synced':
      return { unread: Math.max(0, Math.floor(action.count)) };
    case 'reset':
      return { unread: null };
    case 'all_read':
      return { unread: 0 };
    case 'created':
      if (action.read || state.unread === null) return state;
      return { unread: state.unread + 1 };
    case 'read':
      if (state.unread === null) return state;
      return { unread: Math.max(0, state.unread - (action.count ?? 1)) };
    case 'deleted':
      if (!action.wasUnread || state.unread === null) return state;
      return { unread: Math.max(0, state.unread - 1) };
  }
}

export interface NotificationsStoreHooks {
  /** Fetch the unread count from the server (on sign-in and after each reconnect). */
  resync?: () => void;
}

export class NotificationsStore {
  private state: UnreadState = { unread: null };
  private readonly listeners = new Set<() => void>();
  private readonly created = new Set<(n: NotificationView) => void>();

  constructor(private readonly hooks: NotificationsStoreHooks = {}) {}

  getUnread = (): number | null => this.state.unread;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  /** Calls `fn` for every notification that arrives live. */
  onCreated = (fn: (n: NotificationView) => void): (() => void) => {
    this.created.add(fn);
    return () => this.created.delete(fn);
  };

  dispatch(action: UnreadAction): void {
    const next = reduceUnread(this.state, action);
    if (next.unread === this.state.unread) return;
    this.state = next;
    for (const fn of this.listeners) fn();
  }

  /** Feeds one WebSocket message; ignores what is not about notifications. */
  apply(message: LiveMessage): void {
    if (message.type === 'snapshot') {
      this.hooks.resync?.();
      return;
    }
    const n = readNotificationEvent(message);
    if (!n) return;
    this.dispatch({ type: 'created', read: n.read });
    for (const fn of this.created) fn(n);
  }
}
