import { describe, expect, it, vi } from 'vitest';
import { buildUrl, createClient, errorFrom, type ApiError, type AuthHooks } from './client';

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

describe('buildUrl', () => {
  it('fills path parameters and encodes them', () => {
    expect(buildUrl('/api/jobs/{id}/cancel', { id: 'a b/c' })).toBe('/api/jobs/a%20b%2Fc/cancel');
  });
  it('leaves out empty query values', () => {
    expect(buildUrl('/api/jobs', undefined, { status: 'running', search: '', limit: 20, all: undefined, to: null, x: false })).toBe(
      '/api/jobs?status=running&limit=20&x=false',
    );
  });
  it('refuses a missing path parameter', () => {
    expect(() => buildUrl('/api/jobs/{id}', {})).toThrow(/id/);
  });
});

describe('errorFrom', () => {
  it('reads the error envelope, its field and Retry-After', async () => {
    const err = await errorFrom(json(429, { error: { code: 'rate_limited', message: 'slow down', field: null } }, { 'retry-after': '7' }));
    expect(err).toMatchObject({ status: 429, code: 'rate_limited', message: 'slow down', field: null, retryAfter: 7 });
    const field = await errorFrom(json(422, { error: { code: 'validation_failed', message: 'bad', field: 'requests[1].num_images' } }));
    expect(field.field).toBe('requests[1].num_images');
  });
  it('copes with a body that is not JSON', async () => {
    const err = await errorFrom(new Response('<html>bad gateway</html>', { status: 502 }));
    expect(err.code).toBe('http_error');
    expect(err.message).toMatch(/502/);
  });
});

describe('createClient', () => {
  it('sends the bearer token, JSON bodies and headers; parses the answer', async () => {
    const fetch = vi.fn<typeof globalThis.fetch>(async () => json(202, { job_ids: ['j1'], jobs: [] }));
    const auth: AuthHooks = { token: async () => 'T1', onUnauthorized: async () => false };
    const api = createClient({ fetch, auth });
    const res = await api.post('/api/generate/single', { body: { prompt: 'fox' }, headers: { 'Idempotency-Key': 'k1' } });
    expect(res.job_ids).toEqual(['j1']);
    const [url, init] = fetch.mock.calls[0]!;
    expect(url).toBe('/api/generate/single');
    expect(init?.method).toBe('POST');
    expect(init?.body).toBe('{"prompt":"fox"}');
    expect(init?.headers).toMatchObject({ authorization: 'Bearer T1', 'Idempotency-Key': 'k1', 'content-type': 'application/json' });
  });

  it('retries once after a successful refresh on 401', async () => {
    let token = 'old';
    const fetch = vi.fn<typeof globalThis.fetch>(async (_url, init) => {
      const h = init?.headers as Record<string, string>;
      return h.authorization === 'Bearer old' ? json(401, { error: { code: 'token_expired', message: 'expired' } }) : json(200, { id: 'u' });
    });
    const onUnauthorized = vi.fn(async (used: string, err: ApiError) => {
      expect(used).toBe('old');
      expect(err.code).toBe('token_expired');
      token = 'new';
      return true;
    });
    const api = createClient({ fetch, auth: { token: async () => token, onUnauthorized } });
    await expect(api.get('/api/auth/me')).resolves.toEqual({ id: 'u' });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    expect(fetch).toHaveBeenCalledTimes(2);
  });

  it('gives up on 401 when no refresh is possible, and never loops', async () => {
    const fetch = vi.fn<typeof globalThis.fetch>(async () => json(401, { error: { code: 'token_expired', message: 'expired' } }));
    const onUnauthorized = vi.fn(async () => true);
    const api = createClient({ fetch, auth: { token: async () => 't', onUnauthorized } });
    await expect(api.get('/api/auth/me')).rejects.toMatchObject({ status: 401, code: 'token_expired' });
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('anonymous calls carry no token', async () => {
    const fetch = vi.fn<typeof globalThis.fetch>(async () => json(401, { error: { code: 'invalid_credentials', message: 'wrong username or password' } }));
    const token = vi.fn(async () => 't');
    const api = createClient({ fetch, auth: { token, onUnauthorized: async () => true } });
    await expect(api.post('/api/auth/login', { body: { username: 'a', password: 'b' }, anonymous: true })).rejects.toMatchObject({
      message: 'wrong username or password',
    });
    expect(token).not.toHaveBeenCalled();
    expect((fetch.mock.calls[0]![1]?.headers as Record<string, string>).authorization).toBeUndefined();
  });

  it('answers 204 with undefined, query strings from typed params', async () => {
    const fetch = vi.fn<typeof globalThis.fetch>(async () => new Response(null, { status: 204 }));
    const api = createClient({ fetch });
    await expect(api.delete('/api/auth/api-keys/{id}', { path: { id: 'k' } })).resolves.toBeUndefined();
    await api.get('/api/jobs', { query: { status: 'running', limit: 5 } }).catch(() => undefined);
    expect(fetch.mock.calls[1]![0]).toBe('/api/jobs?status=running&limit=5');
  });

  it('turns a network failure into an ApiError', async () => {
    const api = createClient({ fetch: async () => Promise.reject(new TypeError('Failed to fetch')) });
    await expect(api.get('/api/system/health')).rejects.toMatchObject({ status: 0, code: 'network_error' });
  });

  it('is typed by the OpenAPI contract', () => {
    const api = createClient({ fetch: async () => json(200, {}) });
    // These lines only need to compile (or not): a contract change breaks tsc here and in the app.
    const typed = () => {
      // @ts-expect-error unknown path
      void api.get('/api/nope');
      // @ts-expect-error the body must be an ImageRequest (prompt is required)
      void api.post('/api/generate/single', { body: { width: 8 } });
      // @ts-expect-error path parameters are required
      void api.get('/api/jobs/{id}', {});
      // @ts-expect-error status must be a JobStatus
      void api.get('/api/jobs', { query: { status: 'done' } });
    };
    expect(typeof typed).toBe('function');
  });
});
