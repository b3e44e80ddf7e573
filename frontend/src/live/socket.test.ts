import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, CLOSE_AUTH, CLOSE_SLOW, LiveSocket, liveUrl, type LiveMessage, type LiveStatus } from './socket';

class FakeWebSocket {
  static all: FakeWebSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(
    public url: string,
    public protocols: string[],
  ) {
    FakeWebSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(data);
  }
  close(code = 1000) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  // test helpers
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(msg: object) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code: number) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

const last = () => FakeWebSocket.all[FakeWebSocket.all.length - 1]!;
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('backoffDelay', () => {
  it('grows exponentially, with jitter, within bounds', () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const lo = backoffDelay(attempt, () => 0);
      const hi = backoffDelay(attempt, () => 0.999999);
      expect(lo).toBe(250);
      expect(hi).toBeLessThanOrEqual(30_000);
      expect(hi).toBeGreaterThanOrEqual(lo);
    }
    expect(backoffDelay(0, () => 1)).toBe(500);
    expect(backoffDelay(3, () => 1)).toBe(4000);
    expect(backoffDelay(10, () => 1)).toBe(30_000);
  });
});

describe('LiveSocket', () => {
  let messages: LiveMessage[];
  let statuses: LiveStatus[];
  let token: string | null;
  let reauth: ReturnType<typeof vi.fn<() => Promise<boolean>>>;
  let socket: LiveSocket;

  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.all = [];
    messages = [];
    statuses = [];
    token = 'T1';
    reauth = vi.fn(async () => true);
    socket = new LiveSocket({
      url: () => 'ws://studio/ws',
      token: async () => token,
      reauthenticate: reauth,
      onMessage: (m) => messages.push(m),
      onStatus: (s) => statuses.push(s),
      WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket,
      random: () => 0.5,
    });
  });
  afterEach(() => {
    socket.stop();
    vi.useRealTimers();
  });

  it('authenticates with the bearer subprotocol and forwards messages', async () => {
    socket.start();
    await flush();
    expect(last().url).toBe('ws://studio/ws');
    expect(last().protocols).toEqual(['bearer', 'T1']);
    last().open();
    last().receive({ id: 1, type: 'welcome' });
    last().receive({ id: 2, type: 'snapshot', jobs: [] });
    expect(messages.map((m) => m.type)).toEqual(['welcome', 'snapshot']);
    expect(statuses).toEqual(['connecting', 'open']);
  });

  it('keeps ONE connection: start twice opens one socket', async () => {
    socket.start();
    socket.start();
    await flush();
    expect(FakeWebSocket.all).toHaveLength(1);
  });

  it('reconnects with back-off after a drop, with a fresh token', async () => {
    socket.start();
    await flush();
    last().open();
    last().receive({ type: 'welcome' });
    token = 'T2';
    last().drop(1006);
    expect(socket.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(backoffDelay(0, () => 0.5) - 1);
    expect(FakeWebSocket.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    await flush();
    expect(FakeWebSocket.all).toHaveLength(2);
    expect(last().protocols).toEqual(['bearer', 'T2']);
    // it opened before the drop, so no re-authentication was needed
    expect(reauth).not.toHaveBeenCalled();
  });

  it('backs off further on repeated failures and resets after a welcome', async () => {
    socket.start();
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = FakeWebSocket.all.length;
      last().drop(1006);
      let waited = 0;
      while (FakeWebSocket.all.length === before) {
        await vi.advanceTimersByTimeAsync(50);
        await flush();
        waited += 50;
      }
      delays.push(waited);
    }
    expect(delays[3]!).toBeGreaterThan(delays[0]!);
    last().open();
    last().receive({ type: 'welcome' });
    const before = FakeWebSocket.all.length;
    last().drop(1006);
    await vi.advanceTimersByTimeAsync(backoffDelay(0, () => 0.5) + 1);
    await flush();
    expect(FakeWebSocket.all.length).toBe(before + 1);
  });

  it('re-authenticates after 4001 and after a handshake that never opened', async () => {
    socket.start();
    await flush();
    last().open();
    last().drop(CLOSE_AUTH);
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    expect(reauth).toHaveBeenCalledTimes(1);
    last().drop(1006); // never opened
    await vi.advanceTimersByTimeAsync(2000);
    await flush();
    expect(reauth).toHaveBeenCalledTimes(2);
  });

  it('stops when re-authentication says the session is over', async () => {
    reauth.mockResolvedValue(false);
    socket.start();
    await flush();
    last().drop(CLOSE_AUTH);
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    expect(socket.state).toBe('offline');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.all).toHaveLength(1);
  });

  it('reconnects quickly when closed for being too slow (4008)', async () => {
    socket.start();
    await flush();
    last().open();
    last().receive({ type: 'welcome' });
    last().drop(CLOSE_SLOW);
    await vi.advanceTimersByTimeAsync(300);
    await flush();
    expect(FakeWebSocket.all).toHaveLength(2);
  });

  it('pings to keep the connection alive, and closes a silent one', async () => {
    socket.start();
    await flush();
    const ws = last();
    ws.open();
    await vi.advanceTimersByTimeAsync(25_000);
    expect(ws.sent.map((s) => JSON.parse(s) as { type: string })).toContainEqual({ type: 'ping' });
    await vi.advanceTimersByTimeAsync(75_000);
    expect(ws.readyState).toBe(3);
  });

  it('stays closed without a session, and stop() closes', async () => {
    token = null;
    socket.start();
    await flush();
    expect(FakeWebSocket.all).toHaveLength(0);
    expect(socket.state).toBe('offline');
    socket.stop();
    token = 'T';
    socket.start();
    await flush();
    const ws = last();
    socket.stop();
    expect(ws.readyState).toBe(3);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.all).toHaveLength(1);
  });

  it('derives ws:// or wss:// from the page', () => {
    expect(liveUrl({ protocol: 'http:', host: 'studio:8080' })).toBe('ws://studio:8080/ws');
    expect(liveUrl({ protocol: 'https:', host: 'studio.example' })).toBe('wss://studio.example/ws');
  });
});
