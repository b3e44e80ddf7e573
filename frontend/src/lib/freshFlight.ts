// Coalesces loads of the same key without ever answering a caller with data older than its
// call: a call made while a request is in flight waits for one more request (shared by every
// caller that arrived meanwhile), which starts when the current one ends.
export function freshFlight<K, V>(load: (key: K) => Promise<V>): (key: K) => Promise<V> {
  interface Flight {
    current: Promise<V>;
    next: Promise<V> | null;
  }
  const flights = new Map<K, Flight>();
  const settle = (key: K, flight: Flight) => {
    if (!flight.next && flights.get(key) === flight) flights.delete(key);
  };
  return (key: K) => {
    const flight = flights.get(key);
    if (!flight) {
      const created: Flight = { current: Promise.resolve(undefined as V), next: null };
      created.current = load(key).finally(() => settle(key, created));
      flights.set(key, created);
      return created.current;
    }
    flight.next ??= flight.current
      .catch(() => undefined)
      .then(() => {
        const p = load(key);
        flight.current = p.finally(() => settle(key, flight));
        flight.next = null;
        return p;
      });
    return flight.next;
  };
}
