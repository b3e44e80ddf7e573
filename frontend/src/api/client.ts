// A small typed fetch wrapper over the generated OpenAPI types: every path, path parameter, query
// parameter, request body and response body is checked by `tsc`, so a contract change breaks the
// build, not the user. Errors always surface as `ApiError` carrying the server's
// `{"error":{"code","message","field"}}` envelope.
import type { paths } from './schema';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

type Op<P extends keyof paths, M extends HttpMethod> = NonNullable<paths[P][M]>;

/** Paths that have an operation for method `M`. */
export type PathsFor<M extends HttpMethod> = {
  [P in keyof paths]: [NonNullable<paths[P][M]>] extends [never] ? never : P;
}[keyof paths];

type Json<R> = R extends { content: { 'application/json': infer B } } ? B : undefined;
type Responses<O> = O extends { responses: infer R } ? R : never;
type SuccessCode = 200 | 201 | 202 | 204;
/** The union of the success bodies of an operation (`undefined` for 204). */
export type SuccessBody<O> = {
  [K in keyof Responses<O> & SuccessCode]: Json<Responses<O>[K]>;
}[keyof Responses<O> & SuccessCode];

type BodyOf<O> = O extends { requestBody?: infer RB }
  ? [NonNullable<RB>] extends [never]
    ? never
    : NonNullable<RB> extends { content: { 'application/json': infer B } }
      ? B
      : never
  : never;
type ParamsOf<O> = O extends { parameters: infer P } ? P : never;
type QueryOf<O> = ParamsOf<O> extends { query?: infer Q } ? NonNullable<Q> : never;
type PathParamsOf<O> = ParamsOf<O> extends { path: infer PP } ? NonNullable<PP> : never;

/** Options of one call: `path` is required when the route has parameters, `body` when it has one. */
export type CallOptions<O> = {
  query?: [QueryOf<O>] extends [never] ? undefined : QueryOf<O>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Send no Authorization header (login, register, refresh). */
  anonymous?: boolean;
} & ([BodyOf<O>] extends [never] ? { body?: undefined } : { body: BodyOf<O> }) &
  ([PathParamsOf<O>] extends [never] ? { path?: undefined } : { path: PathParamsOf<O> });

/** An error answer (or a failure to get one) from the API. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, field: string | null = null, retryAfter: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

/** How the client gets credentials and recovers from an expired one. */
export interface AuthHooks {
  /** A valid access token (refreshing first when it is about to expire), or null. */
  token(): Promise<string | null>;
  /** Called once on a 401 for a request sent with `used`; true when a retry may succeed. */
  onUnauthorized(used: string, error: ApiError): Promise<boolean>;
}

export interface ClientOptions {
  /** Origin prefix; empty means same origin (the SPA and the API share it). */
  baseUrl?: string;
  auth?: AuthHooks;
  fetch?: typeof fetch;
}

function scalar(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

/** Fills `{name}` segments and appends the query (null, undefined and '' are left out). */
export function buildUrl(path: string, params?: Record<string, unknown>, query?: Record<string, unknown>): string {
  const filled = path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = params?.[name];
    if (value === undefined || value === null || value === '') throw new Error(`missing path parameter '${name}' for ${path}`);
    return encodeURIComponent(scalar(value));
  });
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    search.append(k, scalar(v));
  }
  const qs = search.toString();
  return qs ? `${filled}?${qs}` : filled;
}

/** Turns a non-2xx response into an `ApiError`, reading the error envelope when there is one. */
export async function errorFrom(response: Response): Promise<ApiError> {
  const retryHeader = response.headers.get('retry-after');
  const retryAfter = retryHeader !== null && /^\d+$/.test(retryHeader) ? Number(retryHeader) : null;
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's HTML page…)
  }
  const detail = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null)?.error;
  if (detail && typeof detail.code === 'string' && typeof detail.message === 'string') {
    return new ApiError(response.status, detail.code, detail.message, typeof detail.field === 'string' ? detail.field : null, retryAfter);
  }
  const fallback = response.status >= 500 ? 'The server had a problem' : 'The request failed';
  return new ApiError(response.status, 'http_error', `${fallback} (HTTP ${response.status})`, null, retryAfter);
}

export type Client = ReturnType<typeof createClient>;

export function createClient(options: ClientOptions = {}) {
  const base = options.baseUrl ?? '';
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));

  async function send(method: HttpMethod, url: string, init: CallOptions<unknown>, token: string | null): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      return await doFetch(base + url, {
        method: method.toUpperCase(),
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection and try again.');
    }
  }

  async function call<M extends HttpMethod, P extends PathsFor<M>>(
    method: M,
    path: P,
    init: CallOptions<Op<P, M>>,
  ): Promise<SuccessBody<Op<P, M>>> {
    const opts = init as CallOptions<unknown>;
    const url = buildUrl(path, opts.path, opts.query);
    const auth = opts.anonymous ? undefined : options.auth;
    let token = auth ? await auth.token() : null;
    let response = await send(method, url, opts, token);
    if (response.status === 401 && auth && token) {
      const error = await errorFrom(response);
      if (!(await auth.onUnauthorized(token, error))) throw error;
      token = await auth.token();
      response = await send(method, url, opts, token);
    }
    if (!response.ok) throw await errorFrom(response);
    if (response.status === 204) return undefined as SuccessBody<Op<P, M>>;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as SuccessBody<Op<P, M>>;
  }

  // Each verb keeps `init` optional only when the route needs neither path parameters nor a body.
  type Args<O> = [PathParamsOf<O>] extends [never]
    ? [BodyOf<O>] extends [never]
      ? [init?: CallOptions<O>]
      : [init: CallOptions<O>]
    : [init: CallOptions<O>];

  return {
    get: <P extends PathsFor<'get'>>(path: P, ...[init]: Args<Op<P, 'get'>>) =>
      call('get', path, (init ?? {}) as CallOptions<Op<P, 'get'>>),
    post: <P extends PathsFor<'post'>>(path: P, ...[init]: Args<Op<P, 'post'>>) =>
      call('post', path, (init ?? {}) as CallOptions<Op<P, 'post'>>),
    put: <P extends PathsFor<'put'>>(path: P, ...[init]: Args<Op<P, 'put'>>) =>
      call('put', path, (init ?? {}) as CallOptions<Op<P, 'put'>>),
    patch: <P extends PathsFor<'patch'>>(path: P, ...[init]: Args<Op<P, 'patch'>>) =>
      call('patch', path, (init ?? {}) as CallOptions<Op<P, 'patch'>>),
    delete: <P extends PathsFor<'delete'>>(path: P, ...[init]: Args<Op<P, 'delete'>>) =>
      call('delete', path, (init ?? {}) as CallOptions<Op<P, 'delete'>>),
  };
}
