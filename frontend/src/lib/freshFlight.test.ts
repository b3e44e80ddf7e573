import { describe, expect, it } from 'vitest';
import { freshFlight } from './freshFlight';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('freshFlight', () => {
  it('coalesces callers, and answers late callers with a request started after their call', async () => {
    const calls: ReturnType<typeof deferred<string>>[] = [];
    const load = freshFlight((_key: string) => {
      const d = deferred<string>();
      calls.push(d);
      return d.promise;
    });
    const first = load('j1');
    const second = load('j1'); // arrives while #1 is in flight: needs a newer answer
    const third = load('j1'); // shares that newer answer
    expect(calls).toHaveLength(1);
    calls[0]!.resolve('stale');
    await expect(first).resolves.toBe('stale');
    await Promise.resolve();
    await Promise.resolve();
    expect(calls).toHaveLength(2);
    calls[1]!.resolve('fresh');
    await expect(second).resolves.toBe('fresh');
    await expect(third).resolves.toBe('fresh');
    // once idle, a new call starts a new request
    const fourth = load('j1');
    expect(calls).toHaveLength(3);
    calls[2]!.resolve('again');
    await expect(fourth).resolves.toBe('again');
  });

  it('keeps keys apart and survives failures', async () => {
    let n = 0;
    const load = freshFlight(async (key: string) => {
      n += 1;
      if (key === 'bad') throw new Error('boom');
      return key;
    });
    await expect(load('a')).resolves.toBe('a');
    await expect(load('bad')).rejects.toThrow('boom');
    await expect(load('bad')).rejects.toThrow('boom');
    expect(n).toBe(3);
  });
});
