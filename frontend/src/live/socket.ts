// The one WebSocket of the app (`/ws`): authenticates with the subprotocol pair
// ["bearer", <access token>], reconnects with exponential back-off and full jitter, and hands
// every message to `onMessage` — the server sends a `snapshot` of active jobs on every
// (re)connect, which is how the app resynchronises after a gap.

export type LiveStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'offline';

export interface LiveMessage {
  type: string;
  id?: number;
  [key: string]: unknown;
}

export interface LiveSocketOptions {
  /** Absolute ws(s):// URL of the endpoint. */
  url: () => string;
  /** A fresh access token, or null when signed out (then the socket stays closed). */
  token: () => Promise<string | null>;
  /**
   * Called when the server refused our credentials (close 4001, or a handshake that failed
   * before opening): should verify/refresh the session; false stops reconnecting.
   */
  reauthenticate: () => Promise<boolean>;
  onMessage: (message: LiveMessage) => void;
  onStatus?: (status: LiveStatus) => void;
  WebSocketImpl?: typeof WebSocket;
  random?: () => number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  pingIntervalMs?: number;
  /** No message (pongs included) for this long means a dead connection. */
  idleTimeoutMs?: number;
}

export const CLOSE_AUTH = 4001;
export const CLOSE_SLOW = 4008;

/** Delay before reconnect attempt `attempt` (0-based): full jitter over an exponential cap. */
export function backoffDelay(attempt: number, random: () => number, base = 500, max = 30_000): number {
  const cap = Math.min(max, base * 2 ** Math.min(attempt, 16));
  // Keep a floor of base/2 so a flapping server is never hammered in a tight loop.
  return Math.round(base / 2 + random() * Math.max(0, cap - base / 2));
}

export class LiveSocket {
  private ws: WebSocket | null = null;
  private status: LiveStatus = 'idle';
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastMessageAt = 0;
  private stopped = true;
  private readonly o: Required<Omit<LiveSocketOptions, 'onStatus'>> & Pick<LiveSocketOptions, 'onStatus'>;

  constructor(options: LiveSocketOptions) {
    this.o = {
      WebSocketImpl: globalThis.WebSocket,
      random: Math.random,
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      pingIntervalMs: 25_000,
      idleTimeoutMs: 70_000,
      ...options,
    };
  }

  get state(): LiveStatus {
    return this.status;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, 'bye');
    this.setStatus('idle');
  }

  /** Reconnect now (network came back, tab became visible after a long sleep…). */
  reconnectNow(): void {
    if (this.stopped || this.status === 'open' || this.status === 'connecting') return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    void this.connect();
  }

  send(message: object): boolean {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  private setStatus(status: LiveStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.o.onStatus?.(status);
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.timer = null;
    this.pingTimer = null;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setStatus(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let token: string | null;
    try {
      token = await this.o.token();
    } catch {
      token = null;
    }
    if (this.stopped) return;
    if (!token) {
      this.setStatus('offline');
      return;
    }
    let ws: WebSocket;
    try {
      ws = new this.o.WebSocketImpl(this.o.url(), ['bearer', token]);
    } catch {
      this.scheduleReconnect(false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.lastMessageAt = Date.now();
      this.setStatus('open');
      this.pingTimer = setInterval(() => {
        if (Date.now() - this.lastMessageAt > this.o.idleTimeoutMs) {
          ws.close(4000, 'idle');
          return;
        }
        this.send({ type: 'ping' });
      }, this.o.pingIntervalMs);
    };
    ws.onmessage = (event: MessageEvent) => {
      this.lastMessageAt = Date.now();
      let message: LiveMessage;
      try {
        message = JSON.parse(String(event.data)) as LiveMessage;
      } catch {
        return;
      }
      // A welcome proves the whole path works: forget earlier failures.
      if (message.type === 'welcome') this.attempt = 0;
      this.o.onMessage(message);
    };
    ws.onclose = (event: CloseEvent) => {
      if (this.ws !== ws) return; // stopped or replaced
      this.ws = null;
      if (this.pingTimer) clearInterval(this.pingTimer);
      this.pingTimer = null;
      if (this.stopped) return;
      // 4001: credentials refused. A handshake that never opened is most often an expired or
      // revoked token answered with a plain 401: let the session check/refresh itself.
      const authProblem = event.code === CLOSE_AUTH || !opened;
      this.scheduleReconnect(authProblem, event.code === CLOSE_SLOW);
    };
    ws.onerror = () => {
      // onclose follows and decides
    };
  }

  private scheduleReconnect(authProblem: boolean, slow = false): void {
    if (this.stopped) return;
    this.setStatus('reconnecting');
    const delay = slow ? this.o.baseDelayMs / 2 : backoffDelay(this.attempt, this.o.random, this.o.baseDelayMs, this.o.maxDelayMs);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      void (async () => {
        if (authProblem) {
          let ok = false;
          try {
            ok = await this.o.reauthenticate();
          } catch {
            ok = true; // unreachable server: keep trying with back-off
          }
          if (!ok) {
            this.stop();
            this.setStatus('offline');
            return;
          }
        }
        await this.connect();
      })();
    }, delay);
  }
}

/** `ws(s)://<this origin>/ws` */
export function liveUrl(location: Pick<Location, 'protocol' | 'host'> = window.location): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}
