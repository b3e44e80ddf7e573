// The timeline editor's model and every edit on it, as pure functions (unit-tested): clips kept
// in start order per track, moves that never overlap a neighbour (a clip dropped on another goes
// to the nearest gap it fits in), resizes bounded by the neighbours and by the media's length,
// snapping to other clips' edges and to whole seconds, and the conversion to and from the API's
// `TimelineSpec` (whose field paths, `tracks[i].clips[j].start`, index the same order).
import type { components } from '../../api/schema';

type S = components['schemas'];
export type TimelineSpec = S['TimelineSpec'];
export type TrackKind = S['TrackKind'];
export type SpecClip = S['Clip'];

/** Limits the server enforces (`seidra_core::timeline`). */
export const MAX_TRACKS = 16;
export const MAX_CLIPS = 200;
export const MAX_DURATION = 3600;
/** Shortest clip the editor makes, seconds. */
export const MIN_CLIP = 0.1;
/** Length of a new still, seconds. */
export const DEFAULT_STILL = 3;
/** Media kinds each track takes (narration and title clips carry text instead). */
export const MEDIA_KIND: Record<TrackKind, 'image' | 'video' | 'audio' | null> = {
  image: 'image',
  video: 'video',
  audio: 'audio',
  narration: null,
  title: null,
};

export interface EditorClip extends SpecClip {
  /** Stable identity in the editor (not sent). */
  key: string;
  /** Length of the media (video and audio), seconds, when known: bounds `in_point + duration`. */
  mediaDuration?: number | null;
}

export interface EditorTrack {
  key: string;
  kind: TrackKind;
  clips: EditorClip[];
}

export interface Timeline {
  name: string;
  width: number;
  height: number;
  fps: number;
  tracks: EditorTrack[];
}

let counter = 0;
/** A fresh editor key. */
export const newKey = (prefix: string): string => `${prefix}${(counter += 1)}`;

/** Seconds rounded to the millisecond (what is stored; avoids 0.30000000000000004). */
export const round = (t: number): number => Math.round(t * 1000) / 1000;
const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const end = (c: { start: number; duration: number }): number => c.start + c.duration;
const byStart = (a: EditorClip, b: EditorClip): number => a.start - b.start;

/** The editor model of a stored timeline (clips sorted by start, keys assigned). */
export function fromSpec(spec: TimelineSpec): Timeline {
  return {
    name: spec.name,
    width: spec.width,
    height: spec.height,
    fps: spec.fps,
    tracks: (spec.tracks ?? []).map((t) => ({
      key: newKey('t'),
      kind: t.kind,
      clips: (t.clips ?? []).map((c) => ({ ...c, key: newKey('c') })).sort(byStart),
    })),
  };
}

/** The API body: editor-only fields dropped, times rounded, clips in start order. */
export function toSpec(tl: Timeline): TimelineSpec {
  return {
    name: tl.name,
    width: tl.width,
    height: tl.height,
    fps: tl.fps,
    tracks: tl.tracks.map((t) => ({
      kind: t.kind,
      clips: [...t.clips].sort(byStart).map(({ key: _key, mediaDuration: _len, ...clip }) => {
        const out: SpecClip = { ...clip, start: round(clip.start), duration: round(clip.duration) };
        if (clip.in_point !== undefined) out.in_point = round(clip.in_point);
        return out;
      }),
    })),
  };
}

/** A new timeline's content: a picture track and a sound track. */
export function emptySpec(name: string): TimelineSpec {
  return { name, width: 1280, height: 720, fps: 25, tracks: [{ kind: 'image', clips: [] }, { kind: 'audio', clips: [] }] };
}

/** End of the last clip, seconds. */
export function duration(tl: Timeline): number {
  return tl.tracks.reduce((m, t) => t.clips.reduce((n, c) => Math.max(n, end(c)), m), 0);
}

export function findClip(tl: Timeline, clipKey: string): { track: EditorTrack; clip: EditorClip; t: number; c: number } | null {
  for (const [t, track] of tl.tracks.entries()) {
    const c = track.clips.findIndex((x) => x.key === clipKey);
    const clip = track.clips[c];
    if (clip) return { track, clip, t, c };
  }
  return null;
}

function replaceClip(tl: Timeline, clipKey: string, patch: (c: EditorClip) => EditorClip): Timeline {
  return {
    ...tl,
    tracks: tl.tracks.map((t) => (t.clips.some((c) => c.key === clipKey) ? { ...t, clips: t.clips.map((c) => (c.key === clipKey ? patch(c) : c)).sort(byStart) } : t)),
  };
}

// ------------------------------------------------------------------------------------ snapping

export interface Snap {
  /** Candidate times, seconds. */
  targets: number[];
  /** How close counts, seconds (a few pixels at the current zoom). */
  threshold: number;
}

/** Times to snap to: every other clip's edges (all tracks), 0, and whole seconds up to `until`. */
export function snapTargets(tl: Timeline, exceptKey: string | null, until: number): number[] {
  const out = new Set<number>([0]);
  for (const t of tl.tracks) for (const c of t.clips) if (c.key !== exceptKey) out.add(round(c.start)).add(round(end(c)));
  for (let s = 1; s <= Math.ceil(until); s++) out.add(s);
  return [...out].sort((a, b) => a - b);
}

/** The target nearest `t` within the threshold, or null. Clip edges win ties over seconds. */
export function nearestTarget(t: number, snap: Snap | null): number | null {
  if (!snap) return null;
  let best: number | null = null;
  for (const x of snap.targets) {
    const d = Math.abs(x - t);
    if (d <= snap.threshold && (best === null || d < Math.abs(best - t))) best = x;
  }
  return best;
}

// ------------------------------------------------------------------------------------ placing

/** Free intervals of a track, ignoring one clip: [lo, hi) with hi = Infinity for the last. */
export function gaps(clips: readonly EditorClip[], exceptKey: string | null): [number, number][] {
  const others = clips.filter((c) => c.key !== exceptKey).sort(byStart);
  const out: [number, number][] = [];
  let lo = 0;
  for (const c of others) {
    if (c.start > lo) out.push([lo, c.start]);
    lo = Math.max(lo, end(c));
  }
  out.push([lo, Infinity]);
  return out;
}

/** The start nearest `wanted` at which a clip of `length` fits without overlapping any other. */
export function fitStart(clips: readonly EditorClip[], exceptKey: string | null, wanted: number, length: number): number {
  let best = Infinity;
  for (const [lo, hi] of gaps(clips, exceptKey)) {
    if (hi - lo + 1e-9 < length) continue;
    const s = clamp(wanted, lo, hi - length);
    if (Math.abs(s - wanted) < Math.abs(best - wanted)) best = s;
  }
  return best;
}

/**
 * Moves a clip so it starts near `wanted`: snapped (either edge, whichever is closer to a
 * target), at least 0, and into the nearest gap of its track where it fits.
 */
export function moveClip(tl: Timeline, clipKey: string, wanted: number, snap: Snap | null = null): Timeline {
  const found = findClip(tl, clipKey);
  if (!found) return tl;
  const { track, clip } = found;
  let start = Math.max(0, wanted);
  const byStartEdge = nearestTarget(start, snap);
  const byEndEdge = nearestTarget(start + clip.duration, snap);
  const dStart = byStartEdge === null ? Infinity : Math.abs(byStartEdge - start);
  const dEnd = byEndEdge === null ? Infinity : Math.abs(byEndEdge - (start + clip.duration));
  if (byStartEdge !== null && dStart <= dEnd) start = byStartEdge;
  else if (byEndEdge !== null) start = Math.max(0, byEndEdge - clip.duration);
  start = Math.min(start, MAX_DURATION - clip.duration);
  const placed = round(fitStart(track.clips, clipKey, start, clip.duration));
  if (!Number.isFinite(placed)) return tl;
  return replaceClip(tl, clipKey, (c) => ({ ...c, start: placed }));
}

/**
 * Moves one edge of a clip to near `time` (snapped). The end stays after the start by at least
 * MIN_CLIP, before the next clip and within the media; the start stays after the previous clip,
 * at 0 or later, and (video and audio) cannot reach before the media's beginning: trimming the
 * start moves the in-point with it, so the picture or sound under the clip stays in place.
 */
export function resizeClip(tl: Timeline, clipKey: string, edge: 'start' | 'end', time: number, snap: Snap | null = null): Timeline {
  const found = findClip(tl, clipKey);
  if (!found) return tl;
  const { track, clip } = found;
  const sorted = [...track.clips].sort(byStart);
  const i = sorted.findIndex((c) => c.key === clipKey);
  const prev = sorted[i - 1];
  const next = sorted[i + 1];
  const hasInPoint = track.kind === 'video' || track.kind === 'audio';
  const inPoint = clip.in_point ?? 0;
  const snapped = nearestTarget(time, snap) ?? time;
  if (edge === 'end') {
    const room = Math.min(next ? next.start : MAX_DURATION, clip.mediaDuration != null ? clip.start + clip.mediaDuration - inPoint : Infinity);
    const newEnd = clamp(snapped, clip.start + MIN_CLIP, Math.max(clip.start + MIN_CLIP, room));
    return replaceClip(tl, clipKey, (c) => ({ ...c, duration: round(newEnd - c.start) }));
  }
  const clipEnd = end(clip);
  let lo = Math.max(0, prev ? end(prev) : 0);
  if (hasInPoint) lo = Math.max(lo, clip.start - inPoint);
  const newStart = round(clamp(snapped, Math.min(lo, clipEnd - MIN_CLIP), clipEnd - MIN_CLIP));
  const shift = newStart - clip.start;
  return replaceClip(tl, clipKey, (c) => ({
    ...c,
    start: newStart,
    duration: round(clipEnd - newStart),
    ...(hasInPoint ? { in_point: round(Math.max(0, inPoint + shift)) } : {}),
  }));
}

/** A clip from a library item, placed after the last clip of the track. */
export function addMediaClip(tl: Timeline, trackKey: string, media: { id: string; duration?: number | null }): { timeline: Timeline; key: string | null } {
  const track = tl.tracks.find((t) => t.key === trackKey);
  if (!track || !MEDIA_KIND[track.kind] || track.clips.length >= MAX_CLIPS) return { timeline: tl, key: null };
  const length = track.kind === 'image' || !media.duration ? DEFAULT_STILL : media.duration;
  const start = track.clips.reduce((m, c) => Math.max(m, end(c)), 0);
  const room = MAX_DURATION - start;
  if (room < MIN_CLIP) return { timeline: tl, key: null };
  const clip: EditorClip = {
    key: newKey('c'),
    start: round(start),
    duration: round(Math.min(length, room)),
    in_point: 0,
    media_id: media.id,
    mediaDuration: track.kind === 'image' ? null : (media.duration ?? null),
  };
  return { timeline: { ...tl, tracks: tl.tracks.map((t) => (t === track ? { ...t, clips: [...t.clips, clip].sort(byStart) } : t)) }, key: clip.key };
}

/** A text clip (title card) after the last clip of the track. */
export function addTextClip(tl: Timeline, trackKey: string, text: string): { timeline: Timeline; key: string | null } {
  const track = tl.tracks.find((t) => t.key === trackKey);
  if (!track || MEDIA_KIND[track.kind] || track.clips.length >= MAX_CLIPS) return { timeline: tl, key: null };
  const start = track.clips.reduce((m, c) => Math.max(m, end(c)), 0);
  if (start + MIN_CLIP > MAX_DURATION) return { timeline: tl, key: null };
  const clip: EditorClip = { key: newKey('c'), start: round(start), duration: Math.min(DEFAULT_STILL, round(MAX_DURATION - start)), text };
  return { timeline: { ...tl, tracks: tl.tracks.map((t) => (t === track ? { ...t, clips: [...t.clips, clip] } : t)) }, key: clip.key };
}

export function removeClip(tl: Timeline, clipKey: string): Timeline {
  return { ...tl, tracks: tl.tracks.map((t) => ({ ...t, clips: t.clips.filter((c) => c.key !== clipKey) })) };
}

/** Sets a clip's other fields (text, volume, transition…) as they are. */
export function patchClip(tl: Timeline, clipKey: string, patch: Partial<SpecClip>): Timeline {
  return replaceClip(tl, clipKey, (c) => ({ ...c, ...patch }));
}

/** Records the media lengths learnt after loading (bounds later resizes). */
export function setMediaDurations(tl: Timeline, lengths: ReadonlyMap<string, number | null>): Timeline {
  let changed = false;
  const tracks = tl.tracks.map((t) => {
    if (t.kind !== 'video' && t.kind !== 'audio') return t;
    return {
      ...t,
      clips: t.clips.map((c) => {
        const len = c.media_id ? lengths.get(c.media_id) : undefined;
        if (len === undefined || c.mediaDuration === len) return c;
        changed = true;
        return { ...c, mediaDuration: len };
      }),
    };
  });
  return changed ? { ...tl, tracks } : tl;
}

export function addTrack(tl: Timeline, kind: TrackKind): Timeline {
  if (tl.tracks.length >= MAX_TRACKS) return tl;
  return { ...tl, tracks: [...tl.tracks, { key: newKey('t'), kind, clips: [] }] };
}

export function removeTrack(tl: Timeline, trackKey: string): Timeline {
  return { ...tl, tracks: tl.tracks.filter((t) => t.key !== trackKey) };
}

/** Moves a track up (−1) or down (+1) in the layer order. */
export function moveTrack(tl: Timeline, trackKey: string, by: -1 | 1): Timeline {
  const i = tl.tracks.findIndex((t) => t.key === trackKey);
  const j = i + by;
  if (i < 0 || j < 0 || j >= tl.tracks.length) return tl;
  const tracks = [...tl.tracks];
  [tracks[i], tracks[j]] = [tracks[j] as EditorTrack, tracks[i] as EditorTrack];
  return { ...tl, tracks };
}

// ------------------------------------------------------------------------------------ errors

/** Where an API error's field points: a track, a clip (by editor key) and the clip's field. */
export interface FieldTarget {
  trackKey: string | null;
  clipKey: string | null;
  /** The rest of the path (`start`, `transition.duration`), or the top-level field. */
  field: string;
}

/** Resolves `tracks[1].clips[0].start` against the editor (tracks and clips in sent order). */
export function fieldTarget(tl: Timeline, field: string): FieldTarget {
  const m = /^tracks\[(\d+)\](?:\.clips\[(\d+)\])?\.?(.*)$/.exec(field);
  if (!m) return { trackKey: null, clipKey: null, field };
  const track = tl.tracks[Number(m[1])];
  if (!track) return { trackKey: null, clipKey: null, field };
  const clip = m[2] === undefined ? undefined : [...track.clips].sort(byStart)[Number(m[2])];
  return { trackKey: track.key, clipKey: clip?.key ?? null, field: m[3] ?? '' };
}

// ------------------------------------------------------------------------------------ ruler

/** Ruler tick spacing (seconds) giving labelled ticks at least ~70 px apart. */
export function tickStep(pxPerSec: number): number {
  for (const s of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (s * pxPerSec >= 70) return s;
  return 600;
}

/** `m:ss.s` for a time in seconds. */
export function formatTime(t: number): string {
  const neg = t < 0;
  const abs = Math.abs(t);
  const m = Math.floor(abs / 60);
  const s = abs - m * 60;
  return `${neg ? '-' : ''}${m}:${s.toFixed(1).padStart(4, '0')}`;
}

/** The slice of a media's peaks under a clip (in_point … in_point + duration). */
export function visiblePeaks(peaks: readonly number[], mediaDuration: number, inPoint: number, length: number): number[] {
  if (!peaks.length || mediaDuration <= 0) return [];
  const per = peaks.length / mediaDuration;
  const from = clamp(Math.floor(inPoint * per), 0, peaks.length);
  const to = clamp(Math.ceil((inPoint + length) * per), from, peaks.length);
  return peaks.slice(from, to);
}
