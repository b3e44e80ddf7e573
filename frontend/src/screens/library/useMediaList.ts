// The library list, loaded page by page as the gallery scrolls: a sparse cache of pages for one
// filter; a filter change starts over, a reload (a job finished) re-reads the loaded pages while
// still showing the old ones.
import { useCallback, useEffect, useRef, useState } from 'react';
import type { Client } from '../../api/client';
import type { MediaView } from '../../api/types';

export const PAGE_SIZE = 100;


export interface MediaList {
  total: number | null;
  error: unknown;
  /** The item at `index`, when its page is loaded. */
  itemAt: (index: number) => MediaView | undefined;
  /** Every loaded item, in order (for "select all" and the lightbox). */
  loaded: () => MediaView[];
  /** Loads the pages holding these items (once each). */
  need: (pages: number[]) => void;
  reload: () => void;
  /** Replaces an item in place (after a PATCH). */
  update: (item: MediaView) => void;
  version: number;
}

export function useMediaList(api: Client, query: Record<string, string | number | boolean | undefined>): MediaList {
  const key = JSON.stringify(query);
  const pages = useRef(new Map<number, MediaView[]>());
  const inFlight = useRef(new Set<number>());
  const generation = useRef(0);
  const [total, setTotal] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [version, setVersion] = useState(0);
  const queryRef = useRef(query);
  useEffect(() => {
    queryRef.current = query;
  });

  const fetchPage = useCallback(
    (page: number) => {
      const gen = generation.current;
      inFlight.current.add(page);
      api
        .get('/api/media', { query: { ...queryRef.current, limit: PAGE_SIZE, offset: page * PAGE_SIZE } })
        .then(
          (res) => {
            if (gen !== generation.current) return;
            pages.current.set(page, res.items);
            setTotal(res.total);
            setError(null);
          },
          (err: unknown) => {
            if (gen === generation.current) setError(err);
          },
        )
        .finally(() => {
          if (gen !== generation.current) return;
          inFlight.current.delete(page);
          setVersion((v) => v + 1);
        });
    },
    [api],
  );

  // A new filter: forget everything and read the first page.
  useEffect(() => {
    generation.current += 1;
    pages.current = new Map();
    inFlight.current = new Set();
    // Resetting for a new filter is the one synchronous update this effect makes.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    setTotal(null);
    setError(null);
    setVersion((v) => v + 1);
    fetchPage(0);
  }, [key, fetchPage]);

  const need = useCallback(
    (wanted: number[]) => {
      for (const p of wanted) if (!pages.current.has(p) && !inFlight.current.has(p)) fetchPage(p);
    },
    [fetchPage],
  );

  const reload = useCallback(() => {
    generation.current += 1;
    inFlight.current = new Set();
    const loaded = [...pages.current.keys()];
    for (const p of loaded.length ? loaded : [0]) fetchPage(p);
  }, [fetchPage]);

  const itemAt = useCallback((index: number) => pages.current.get(Math.floor(index / PAGE_SIZE))?.[index % PAGE_SIZE], []);
  const loaded = useCallback(
    () =>
      [...pages.current.entries()]
        .sort(([a], [b]) => a - b)
        .flatMap(([, items]) => items),
    [],
  );
  const update = useCallback((item: MediaView) => {
    for (const [p, items] of pages.current) {
      const i = items.findIndex((m) => m.id === item.id);
      if (i >= 0) pages.current.set(p, items.map((m, j) => (j === i ? item : m)));
    }
    setVersion((v) => v + 1);
  }, []);

  return { total, error, itemAt, loaded, need, reload, update, version };
}
