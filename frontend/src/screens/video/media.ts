// Library items and waveforms the editor shows, fetched once per id and shared by every clip
// (a timeline often repeats the same image or sound).
import { useEffect, useState } from 'react';
import type { Client } from '../../api/client';
import type { JobView, MediaView } from '../../api/types';
import type { components } from '../../api/schema';

export type WaveformView = components['schemas']['WaveformView'];

const items = new Map<string, Promise<MediaView | null>>();
const waves = new Map<string, Promise<WaveformView | null>>();

/** Peaks per second of sound asked for (bounded by the API's 4000). */
const PEAKS_PER_SEC = 20;

function mediaItem(api: Client, id: string): Promise<MediaView | null> {
  let p = items.get(id);
  if (!p) {
    p = api.get('/api/media/{id}', { path: { id } }).catch(() => {
      items.delete(id); // a later render may try again
      return null;
    });
    items.set(id, p);
  }
  return p;
}

/** Seeds the cache with items already at hand (the picker's page). */
export function rememberMedia(item: MediaView): void {
  items.set(item.id, Promise.resolve(item));
}

/** The library items with these ids, as they arrive. */
export function useMediaItems(api: Client, ids: readonly string[]): ReadonlyMap<string, MediaView> {
  const key = [...new Set(ids)].sort().join(',');
  const [found, setFound] = useState<ReadonlyMap<string, MediaView>>(new Map());
  useEffect(() => {
    let live = true;
    const wanted = key ? key.split(',') : [];
    void Promise.all(wanted.map((id) => mediaItem(api, id))).then((list) => {
      if (!live) return;
      setFound(new Map(list.filter((m): m is MediaView => !!m).map((m) => [m.id, m])));
    });
    return () => {
      live = false;
    };
  }, [api, key]);
  return found;
}

/** The waveform of an audio or video item (null while loading or when it has none). */
export function useWaveform(api: Client, id: string | null | undefined, seconds: number | null | undefined): WaveformView | null {
  const [wave, setWave] = useState<WaveformView | null>(null);
  useEffect(() => {
    if (!id) return;
    let live = true;
    let p = waves.get(id);
    if (!p) {
      const peaks = Math.min(4000, Math.max(50, Math.round((seconds ?? 10) * PEAKS_PER_SEC)));
      p = api.get('/api/media/{id}/waveform', { path: { id }, query: { peaks } }).catch(() => {
        waves.delete(id);
        return null;
      });
      waves.set(id, p);
    }
    void p.then((w) => {
      if (live) setWave(w);
    });
    return () => {
      live = false;
    };
  }, [api, id, seconds]);
  return wave;
}

/** The MP4 a finished render or proxy job produced (its signed URL), if any. */
export function videoOutput(job: JobView | undefined): { url: string; mediaId: string } | null {
  if (!job || job.status !== 'succeeded') return null;
  const out = (job.outputs ?? []).find((o) => typeof o.url === 'string' && o.mime.startsWith('video/'));
  return out ? { url: out.url, mediaId: out.media_id } : null;
}

/** A short human name for a library item. */
export function mediaLabel(m: MediaView | undefined, fallback: string): string {
  const text = m?.original_name || m?.prompt || '';
  return text ? (text.length > 60 ? `${text.slice(0, 59)}…` : text) : fallback;
}
