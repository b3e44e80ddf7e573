// The signed-in session: access token (JWT), rotating refresh token and the user.
//
// Refresh tokens work once (reusing one revokes the whole session), so refreshing is
// serialised: one refresh at a time in this tab (a shared promise), and across tabs through the
// Web Locks API when the browser offers it. Inside the lock the stored session is re-read: when
// another tab already rotated the token, its result is adopted instead of spending the old token.
import { errorFrom, type AuthHooks, type ApiError } from '../api/client';
import type { TokenResponse, UserView } from '../api/types';

export interface SessionData {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms when the access token expires. */
  expiresAt: number;
  user: UserView;
}

export type EndReason = 'signed_out' | 'expired' | 'disabled';

export interface SessionDeps {
  storage?: Storage | null;
  fetch?: typeof fetch;
  now?: () => number;
  locks?: Pick<LockManager, 'request'> | null;
  baseUrl?: string;
}

export const STORAGE_KEY = 'seidra.session';
/** Refresh this long before the access token expires. */
export const REFRESH_MARGIN_MS = 30_000;

function isSession(v: unknown): v is SessionData {
  const o = v as SessionData | null;
  return !!o && typeof o.accessToken === 'string' && typeof o.refreshToken === 'string' && typeof o.expiresAt === 'number' && !!o.user;
}

export class Session implements AuthHooks {
  private data: SessionData | null = null;
  private readonly listeners = new Set<() => void>();
  private refreshing: Promise<boolean> | null = null;
  private readonly storage: Storage | null;
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;
  private readonly locks: Pick<LockManager, 'request'> | null;
  private readonly baseUrl: string;
  /** Why the last session ended (shown on the login page). */
  endReason: EndReason | null = null;

  constructor(deps: SessionDeps = {}) {
    this.storage = deps.storage ?? null;
    this.fetchFn = deps.fetch ?? ((i: RequestInfo | URL, init?: RequestInit) => fetch(i, init));
    this.now = deps.now ?? Date.now;
    this.locks = deps.locks ?? null;
    this.baseUrl = deps.baseUrl ?? '';
    this.data = this.read();
  }

  get current(): SessionData | null {
    return this.data;
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getSnapshot = (): SessionData | null => this.data;

  private emit(): void {
    for (const fn of this.listeners) fn();
  }

  private read(): SessionData | null {
    try {
      const raw = this.storage?.getItem(STORAGE_KEY);
      const parsed: unknown = raw ? JSON.parse(raw) : null;
      return isSession(parsed) ? parsed : null;
    } catch {
      return null;
    }
  }

  private write(): void {
    try {
      if (this.data) this.storage?.setItem(STORAGE_KEY, JSON.stringify(this.data));
      else this.storage?.removeItem(STORAGE_KEY);
    } catch {
      // storage full or disabled: the session still lives in memory
    }
  }

  /** Starts a session from a login/register/refresh answer. */
  start(tokens: TokenResponse): void {
    this.data = {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      expiresAt: this.now() + tokens.expires_in * 1000,
      user: tokens.user,
    };
    this.endReason = null;
    this.write();
    this.emit();
  }

  setUser(user: UserView): void {
    if (!this.data) return;
    this.data = { ...this.data, user };
    this.write();
    this.emit();
  }

  end(reason: EndReason): void {
    if (!this.data && this.endReason === reason) return;
    this.data = null;
    this.endReason = reason;
    this.write();
    this.emit();
  }

  /** Another tab changed the stored session (login, refresh, logout). */
  syncFromStorage(): void {
    const stored = this.read();
    if (stored?.accessToken === this.data?.accessToken) return;
    this.data = stored;
    if (!stored) this.endReason = 'signed_out';
    this.emit();
  }

  async token(): Promise<string | null> {
    if (!this.data) return null;
    if (this.data.expiresAt - this.now() < REFRESH_MARGIN_MS) await this.refresh();
    return this.data?.accessToken ?? null;
  }

  async onUnauthorized(used: string, error: ApiError): Promise<boolean> {
    if (!this.data) return false;
    if (error.code === 'account_disabled') {
      this.end('disabled');
      return false;
    }
    // Only an expired/invalid access token is worth a refresh (not, say, a revoked API key).
    if (error.code !== 'token_expired' && error.code !== 'invalid_token') return false;
    // Someone refreshed while this request was in flight: just retry with the new token.
    if (this.data.accessToken !== used) return true;
    return this.refresh();
  }

  /** Exchanges the refresh token once; concurrent callers share the same attempt. */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.refreshLocked().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refreshLocked(): Promise<boolean> {
    const held = this.data?.refreshToken;
    const work = () => this.runRefresh(held);
    return this.locks ? await this.locks.request('seidra-auth-refresh', work) : await work();
  }

  private async runRefresh(held: string | undefined): Promise<boolean> {
    // Another tab may have rotated the token while we waited for the lock.
    const stored = this.read();
    if (this.storage && !stored) {
      this.end('signed_out'); // signed out in another tab
      return false;
    }
    if (stored && stored.refreshToken !== held && stored.expiresAt - this.now() >= REFRESH_MARGIN_MS) {
      this.data = stored;
      this.emit();
      return true;
    }
    const refreshToken = stored?.refreshToken ?? this.data?.refreshToken;
    if (!refreshToken) {
      this.end('expired');
      return false;
    }
    let response: Response;
    try {
      response = await this.fetchFn(`${this.baseUrl}/api/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
    } catch {
      return false; // offline: keep the session, the caller sees its own error
    }
    if (response.ok) {
      this.start((await response.json()) as TokenResponse);
      return true;
    }
    if (response.status === 401 || response.status === 403 || response.status === 422) {
      const error = await errorFrom(response);
      this.end(error.code === 'account_disabled' ? 'disabled' : 'expired');
    }
    return false;
  }
}
