import { beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api/client';
import type { TokenResponse } from '../api/types';
import { REFRESH_MARGIN_MS, Session, STORAGE_KEY } from './session';

const user = { id: 'u1', username: 'alice', role: 'user' as const, disabled: false, created_at: '2026-01-01T00:00:00Z' };
const tokens = (n: number, expires = 900): TokenResponse => ({
  access_token: `A${n}`,
  refresh_token: `R${n}`,
  token_type: 'bearer',
  expires_in: expires,
  user,
});

function memoryStorage(): Storage {
  const m = new Map<string, string>();
  return {
    get length() {
      return m.size;
    },
    clear: () => m.clear(),
    getItem: (k) => m.get(k) ?? null,
    key: (i) => [...m.keys()][i] ?? null,
    removeItem: (k) => void m.delete(k),
    setItem: (k, v) => void m.set(k, v),
  };
}

describe('Session', () => {
  let now = 1_000_000;
  let storage: Storage;
  beforeEach(() => {
    now = 1_000_000;
    storage = memoryStorage();
  });

  const refreshOk = (n: number) =>
    vi.fn<typeof fetch>(async () => new Response(JSON.stringify(tokens(n)), { status: 200, headers: { 'content-type': 'application/json' } }));

  it('persists the session and returns the access token while it is fresh', async () => {
    const fetch = refreshOk(2);
    const s = new Session({ storage, fetch, now: () => now });
    s.start(tokens(1));
    expect(JSON.parse(storage.getItem(STORAGE_KEY)!).accessToken).toBe('A1');
    await expect(s.token()).resolves.toBe('A1');
    expect(fetch).not.toHaveBeenCalled();
    expect(new Session({ storage, fetch, now: () => now }).current?.user.username).toBe('alice');
  });

  it('refreshes once, shared by concurrent callers, shortly before expiry', async () => {
    const fetch = refreshOk(2);
    const s = new Session({ storage, fetch, now: () => now });
    s.start(tokens(1));
    now += 900_000 - REFRESH_MARGIN_MS + 1;
    const results = await Promise.all([s.token(), s.token(), s.token()]);
    expect(results).toEqual(['A2', 'A2', 'A2']);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(JSON.parse(String(fetch.mock.calls[0]![1]!.body))).toEqual({ refresh_token: 'R1' });
    expect(s.current?.refreshToken).toBe('R2');
  });

  it('ends the session when the refresh token is refused', async () => {
    const fetch = vi.fn<typeof globalThis.fetch>(
      async () => new Response(JSON.stringify({ error: { code: 'invalid_refresh_token', message: 'no' } }), { status: 401 }),
    );
    const s = new Session({ storage, fetch, now: () => now });
    s.start(tokens(1));
    const seen = vi.fn();
    s.subscribe(seen);
    await expect(s.refresh()).resolves.toBe(false);
    expect(s.current).toBeNull();
    expect(s.endReason).toBe('expired');
    expect(storage.getItem(STORAGE_KEY)).toBeNull();
    expect(seen).toHaveBeenCalled();
  });

  it('keeps the session when the server cannot be reached', async () => {
    const s = new Session({ storage, fetch: async () => Promise.reject(new TypeError('offline')), now: () => now });
    s.start(tokens(1));
    await expect(s.refresh()).resolves.toBe(false);
    expect(s.current?.accessToken).toBe('A1');
  });

  it('adopts a token another tab already rotated instead of spending the old one', async () => {
    const fetch = refreshOk(9);
    const tab1 = new Session({ storage, fetch, now: () => now });
    tab1.start(tokens(1));
    const tab2 = new Session({ storage, fetch, now: () => now });
    tab2.start(tokens(2)); // tab 2 refreshed: storage now holds R2
    await expect(tab1.refresh()).resolves.toBe(true);
    expect(fetch).not.toHaveBeenCalled();
    expect(tab1.current?.accessToken).toBe('A2');
  });

  it('serialises refreshes through the lock manager when there is one', async () => {
    const request = vi.fn(async (_name: string, cb: () => Promise<boolean>) => cb());
    const fetch = refreshOk(2);
    const s = new Session({ storage, fetch, now: () => now, locks: { request } as unknown as LockManager });
    s.start(tokens(1));
    await s.refresh();
    expect(request).toHaveBeenCalledWith('seidra-auth-refresh', expect.any(Function));
  });

  it('on 401: refreshes for an expired token, retries at once if another call already did, not for other errors', async () => {
    const fetch = refreshOk(2);
    const s = new Session({ storage, fetch, now: () => now });
    s.start(tokens(1));
    await expect(s.onUnauthorized('A1', new ApiError(401, 'invalid_api_key', 'x'))).resolves.toBe(false);
    expect(fetch).not.toHaveBeenCalled();
    await expect(s.onUnauthorized('A1', new ApiError(401, 'token_expired', 'x'))).resolves.toBe(true);
    expect(fetch).toHaveBeenCalledTimes(1);
    await expect(s.onUnauthorized('A1', new ApiError(401, 'token_expired', 'x'))).resolves.toBe(true);
    expect(fetch).toHaveBeenCalledTimes(1);
    await expect(s.onUnauthorized('A2', new ApiError(401, 'account_disabled', 'x'))).resolves.toBe(false);
    expect(s.endReason).toBe('disabled');
  });

  it('follows a sign-out in another tab', async () => {
    const s = new Session({ storage, fetch: refreshOk(2), now: () => now });
    s.start(tokens(1));
    storage.removeItem(STORAGE_KEY);
    s.syncFromStorage();
    expect(s.current).toBeNull();
    await expect(s.token()).resolves.toBeNull();
  });
});
