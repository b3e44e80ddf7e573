// The ruler and the tracks: clips placed by time, dragged to move, their edges dragged to
// resize (pointer events, snapping unless Alt is held), and the same by keyboard on the focused
// clip. Every edit goes through the pure functions of `timeline.ts`.
import { useEffect, useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';
import type { MediaView } from '../../api/types';
import { useServices } from '../../app/hooks';
import { ConfirmButton } from '../../components/ui';
import { useT, type MessageKey } from '../../i18n';
import { mediaLabel, useWaveform } from './media';
import {
  duration as timelineDuration,
  findClip,
  formatTime,
  MAX_TRACKS,
  MEDIA_KIND,
  moveClip,
  moveTrack,
  removeClip,
  removeTrack,
  resizeClip,
  snapTargets,
  tickStep,
  visiblePeaks,
  type EditorClip,
  type EditorTrack,
  type Timeline,
} from './timeline';

/** Keyboard steps, seconds (Shift: the big one). */
const STEP = 0.1;
const BIG_STEP = 1;
/** Pointer travel before a press becomes a drag, pixels. */
const DRAG_SLOP = 3;
/** Snapping distance, pixels. */
const SNAP_PX = 8;

export const KIND_LABEL: Record<EditorTrack['kind'], MessageKey> = {
  image: 'video.kind.image',
  video: 'video.kind.video',
  audio: 'video.kind.audio',
  narration: 'video.kind.narration',
  title: 'video.kind.title',
};

interface Drag {
  key: string;
  mode: 'move' | 'start' | 'end';
  x0: number;
  origin: Timeline;
  start: number;
  end: number;
  moved: boolean;
}

export interface TracksProps {
  timeline: Timeline;
  /** Pixels per second. */
  zoom: number;
  snap: boolean;
  selected: string | null;
  /** The player's position, seconds, or null. */
  playhead: number | null;
  invalidClip: string | null;
  media: ReadonlyMap<string, MediaView>;
  onSelect: (clipKey: string | null) => void;
  /** A finished edit (one undo step). */
  onChange: (next: Timeline) => void;
  /** A drag in progress: shown, not yet an undo step (`commit` ends it). */
  onPreview: (next: Timeline | null, commit?: boolean) => void;
  onAddMedia: (trackKey: string) => void;
  onAddText: (trackKey: string) => void;
  onAnnounce: (text: string) => void;
}

export function Tracks({ timeline, zoom, snap, selected, playhead, invalidClip, media, onSelect, onChange, onPreview, onAddMedia, onAddText, onAnnounce }: TracksProps) {
  const { t } = useT();
  const drag = useRef<Drag | null>(null);
  const focusAfter = useRef<string | null>(null);
  // While dragging, clips keep their DOM order: React moving the dragged node would drop its
  // pointer capture (and end the drag) when it passes a neighbour.
  const [frozen, setFrozen] = useState<ReadonlyMap<string, number> | null>(null);
  const inOrder = (clips: EditorClip[]) => (frozen ? [...clips].sort((a, b) => (frozen.get(a.key) ?? 0) - (frozen.get(b.key) ?? 0)) : clips);
  const total = timelineDuration(timeline);
  // Room to grow: the timeline plus a margin, at least 30 s.
  const span = Math.max(30, Math.ceil(total + 10));
  const width = span * zoom;

  // A keyboard edit may reorder clips (React moves their nodes, which drops focus): restore it.
  useEffect(() => {
    const key = focusAfter.current;
    if (!key) return;
    focusAfter.current = null;
    const el = document.querySelector<HTMLElement>(`[data-clip="${key}"]`);
    if (el && document.activeElement !== el) el.focus();
  });

  const describe = (c: EditorClip) => t('video.clip_at', { start: formatTime(c.start), end: formatTime(c.start + c.duration), length: c.duration.toFixed(1) });

  const onPointerDown = (e: PointerEvent<HTMLButtonElement>, clip: EditorClip) => {
    if (e.button !== 0) return;
    const edge = (e.target as HTMLElement).dataset.edge;
    e.currentTarget.setPointerCapture(e.pointerId);
    drag.current = {
      key: clip.key,
      mode: edge === 'start' || edge === 'end' ? edge : 'move',
      x0: e.clientX,
      origin: timeline,
      start: clip.start,
      end: clip.start + clip.duration,
      moved: false,
    };
    onSelect(clip.key);
  };
  const onPointerMove = (e: PointerEvent<HTMLButtonElement>) => {
    const d = drag.current;
    if (!d) return;
    const dx = e.clientX - d.x0;
    if (!d.moved && Math.abs(dx) < DRAG_SLOP) return;
    if (!d.moved) setFrozen(new Map(d.origin.tracks.flatMap((tr) => tr.clips.map((c, i) => [c.key, i] as const))));
    d.moved = true;
    const dt = dx / zoom;
    const s = snap && !e.altKey ? { targets: snapTargets(d.origin, d.key, span), threshold: SNAP_PX / zoom } : null;
    const next =
      d.mode === 'move' ? moveClip(d.origin, d.key, d.start + dt, s) : d.mode === 'end' ? resizeClip(d.origin, d.key, 'end', d.end + dt, s) : resizeClip(d.origin, d.key, 'start', d.start + dt, s);
    onPreview(next);
  };
  const onPointerUp = (e: PointerEvent<HTMLButtonElement>) => {
    const d = drag.current;
    drag.current = null;
    if (e.currentTarget.hasPointerCapture(e.pointerId)) e.currentTarget.releasePointerCapture(e.pointerId);
    setFrozen(null);
    if (d?.moved) onPreview(null, true);
  };
  const onPointerCancel = () => {
    if (drag.current?.moved) onPreview(null);
    drag.current = null;
    setFrozen(null);
  };

  const onKeyDown = (e: KeyboardEvent<HTMLButtonElement>, track: EditorTrack, clip: EditorClip) => {
    const step = e.shiftKey ? BIG_STEP : STEP;
    let next: Timeline | null = null;
    const ctrl = e.ctrlKey || e.metaKey;
    if ((e.key === 'ArrowLeft' || e.key === 'ArrowRight') && !ctrl && !e.altKey) {
      next = moveClip(timeline, clip.key, clip.start + (e.key === 'ArrowLeft' ? -step : step));
    } else if ((e.key === 'ArrowLeft' || e.key === 'ArrowRight') && ctrl) {
      next = resizeClip(timeline, clip.key, 'end', clip.start + clip.duration + (e.key === 'ArrowLeft' ? -step : step));
    } else if (e.key === '[' || e.key === ']') {
      next = resizeClip(timeline, clip.key, 'start', clip.start + (e.key === '[' ? -step : step));
    } else if (e.key === 'Delete' || e.key === 'Backspace') {
      e.preventDefault();
      const i = track.clips.findIndex((c) => c.key === clip.key);
      const neighbour = track.clips[i + 1] ?? track.clips[i - 1];
      onChange(removeClip(timeline, clip.key));
      onSelect(neighbour?.key ?? null);
      onAnnounce(t('video.clip_removed'));
      if (neighbour) focusAfter.current = neighbour.key;
      else document.getElementById(`add-${track.key}`)?.focus();
      return;
    } else if (e.key === 'ArrowUp' || e.key === 'ArrowDown' || e.key === 'Home' || e.key === 'End') {
      e.preventDefault();
      const target = neighbourClip(timeline, track, clip, e.key);
      if (target) {
        onSelect(target.key);
        document.querySelector<HTMLElement>(`[data-clip="${target.key}"]`)?.focus();
      }
      return;
    } else {
      return;
    }
    e.preventDefault();
    if (next === timeline) return;
    onChange(next);
    onSelect(clip.key);
    focusAfter.current = clip.key;
    const moved = findClip(next, clip.key)?.clip;
    if (moved) onAnnounce(describe(moved));
  };

  const step = tickStep(zoom);
  const ticks: number[] = [];
  for (let s = 0; s <= span; s += step) ticks.push(s);

  return (
    <div className="tl-scroll" role="region" aria-label={t('video.timeline_region')}>
      <div className="tl-inner" style={{ width: `calc(var(--tl-head) + ${width}px)` }}>
        <div className="tl-row tl-ruler-row" aria-hidden="true">
          <div className="tl-head tl-ruler-head">{formatTime(total)}</div>
          <div className="tl-lane tl-ruler" style={{ width }}>
            {ticks.map((s) => (
              <span key={s} className="tl-tick" style={{ left: s * zoom }}>
                {formatTime(s)}
              </span>
            ))}
          </div>
        </div>
        {timeline.tracks.map((track, i) => (
          <div className="tl-row" key={track.key}>
            <div className="tl-head">
              <span className="tl-track-name">
                {i + 1}. {t(KIND_LABEL[track.kind])}
              </span>
              <span className="tl-head-actions">
                {MEDIA_KIND[track.kind] ? (
                  <button type="button" id={`add-${track.key}`} className="btn btn-small" onClick={() => onAddMedia(track.key)} aria-label={t('video.add_media_named', { n: i + 1, kind: t(KIND_LABEL[track.kind]) })}>
                    {t('video.add')}
                  </button>
                ) : (
                  <button type="button" id={`add-${track.key}`} className="btn btn-small" onClick={() => onAddText(track.key)} aria-label={t('video.add_text_named', { n: i + 1, kind: t(KIND_LABEL[track.kind]) })}>
                    {t('video.add')}
                  </button>
                )}
                <button type="button" className="btn btn-small btn-ghost btn-icon" disabled={i === 0} aria-label={t('video.track_up', { n: i + 1 })} onClick={() => onChange(moveTrack(timeline, track.key, -1))}>
                  <span aria-hidden="true">↑</span>
                </button>
                <button
                  type="button"
                  className="btn btn-small btn-ghost btn-icon"
                  disabled={i === timeline.tracks.length - 1}
                  aria-label={t('video.track_down', { n: i + 1 })}
                  onClick={() => onChange(moveTrack(timeline, track.key, 1))}
                >
                  <span aria-hidden="true">↓</span>
                </button>
                <ConfirmButton
                  label="✕"
                  className="btn btn-small btn-ghost btn-icon"
                  confirmLabel={t('video.track_remove_confirm')}
                  ariaLabel={t('video.track_remove', { n: i + 1 })}
                  onConfirm={() => onChange(removeTrack(timeline, track.key))}
                />
              </span>
            </div>
            <div className={`tl-lane tl-lane-${track.kind}`} style={{ width }} role="group" aria-label={t('video.track_label', { n: i + 1, kind: t(KIND_LABEL[track.kind]), count: track.clips.length })}>
              {inOrder(track.clips).map((clip) => {
                const item = clip.media_id ? media.get(clip.media_id) : undefined;
                const label = clip.text ?? mediaLabel(item, t(KIND_LABEL[track.kind]));
                return (
                  <button
                    key={clip.key}
                    type="button"
                    data-clip={clip.key}
                    className={`tl-clip tl-clip-${track.kind}${clip.key === selected ? ' tl-clip-on' : ''}${clip.key === invalidClip ? ' tl-clip-invalid' : ''}`}
                    style={{ left: clip.start * zoom, width: Math.max(4, clip.duration * zoom) }}
                    aria-pressed={clip.key === selected}
                    aria-label={`${t(KIND_LABEL[track.kind])}: ${label}, ${describe(clip)}`}
                    aria-describedby="tl-keys"
                    aria-invalid={clip.key === invalidClip ? true : undefined}
                    onClick={() => onSelect(clip.key)}
                    onPointerDown={(e) => onPointerDown(e, clip)}
                    onPointerMove={onPointerMove}
                    onPointerUp={onPointerUp}
                    onPointerCancel={onPointerCancel}
                    onKeyDown={(e) => onKeyDown(e, track, clip)}
                  >
                    {track.kind === 'image' && item?.thumb_256_url && <img className="tl-thumb" src={item.thumb_256_url} alt="" draggable={false} />}
                    {(track.kind === 'audio' || track.kind === 'video') && clip.media_id && (
                      <Waveform mediaId={clip.media_id} seconds={item?.duration_secs ?? clip.mediaDuration} inPoint={clip.in_point ?? 0} length={clip.duration} />
                    )}
                    <span className="tl-clip-label">{label}</span>
                    <span className="tl-edge tl-edge-start" data-edge="start" aria-hidden="true" />
                    <span className="tl-edge tl-edge-end" data-edge="end" aria-hidden="true" />
                  </button>
                );
              })}
            </div>
          </div>
        ))}
        {playhead !== null && <div className="tl-playhead" style={{ left: `calc(var(--tl-head) + ${playhead * zoom}px)` }} aria-hidden="true" />}
        {timeline.tracks.length >= MAX_TRACKS && <p className="hint">{t('video.max_tracks', { n: MAX_TRACKS })}</p>}
      </div>
    </div>
  );
}

function neighbourClip(tl: Timeline, track: EditorTrack, clip: EditorClip, key: string): EditorClip | undefined {
  if (key === 'Home') return track.clips[0];
  if (key === 'End') return track.clips[track.clips.length - 1];
  const i = tl.tracks.indexOf(track);
  const step = key === 'ArrowUp' ? -1 : 1;
  for (let j = i + step; j >= 0 && j < tl.tracks.length; j += step) {
    const clips = tl.tracks[j]?.clips ?? [];
    if (!clips.length) continue;
    return clips.reduce((best, c) => (Math.abs(c.start - clip.start) < Math.abs(best.start - clip.start) ? c : best));
  }
  return undefined;
}

/** Peaks of the sound under a clip, drawn as mirrored bars (decorative: the label says what it is). */
function Waveform({ mediaId, seconds, inPoint, length }: { mediaId: string; seconds: number | null | undefined; inPoint: number; length: number }) {
  const { api } = useServices();
  const wave = useWaveform(api, mediaId, seconds);
  if (!wave) return null;
  const peaks = visiblePeaks(wave.peaks, wave.duration_secs, inPoint, length);
  if (!peaks.length) return null;
  const d = peaks.map((p, i) => `M${i + 0.5} ${50 - p * 48}V${50 + p * 48}`).join('');
  return (
    <svg className="tl-wave" viewBox={`0 0 ${peaks.length} 100`} preserveAspectRatio="none" aria-hidden="true" focusable="false">
      <path d={d} />
    </svg>
  );
}
