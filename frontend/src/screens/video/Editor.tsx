// The timeline editor: format, tracks and clips (see Tracks), the selected clip's fields, undo,
// narration (a TTS job whose audio lands on a sound track), save (the API's 422 is shown on the
// field and clip it names), and renders: the final MP4 (`storyboard` job) and the proxy preview
// (`video_proxy` job), followed live and played in place.
import { useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent, type ReactNode } from 'react';
import { ApiError } from '../../api/client';
import type { JobView, MediaView } from '../../api/types';
import { isActive } from '../../api/types';
import { useJob, useServices } from '../../app/hooks';
import { JobProgress, useJobActions } from '../../components/jobs';
import { toast } from '../../components/toasts';
import { describedBy, ErrorBanner, Field, StatusBadge } from '../../components/ui';
import { useT } from '../../i18n';
import { MediaPicker } from './Picker';
import { mediaLabel, rememberMedia, useMediaItems, videoOutput } from './media';
import {
  addMediaClip,
  addTextClip,
  addTrack,
  duration as timelineDuration,
  fieldTarget,
  findClip,
  fromSpec,
  MAX_TRACKS,
  MEDIA_KIND,
  moveClip,
  patchClip,
  removeClip,
  resizeClip,
  setMediaDurations,
  toSpec,
  type EditorTrack,
  type FieldTarget,
  type Timeline,
  type TrackKind,
} from './timeline';
import { KIND_LABEL, Tracks } from './Tracks';
import type { TimelineView } from './Video';

type RenderKind = 'render' | 'proxy';
/** A typed whole number, or the current value when it is not one (the server checks ranges). */
const whole = (v: string, current: number): number => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : current);
const JOB_TYPE: Record<RenderKind, 'storyboard' | 'video_proxy'> = { render: 'storyboard', proxy: 'video_proxy' };
const ZOOM = { min: 8, max: 320, initial: 60 };

/** Unsaved edits of timelines left for another screen, restored on return (same revision only). */
const drafts = new Map<string, { revision: number; timeline: Timeline }>();

interface History {
  past: Timeline[];
  present: Timeline;
  future: Timeline[];
}

interface ShownError extends FieldTarget {
  message: string;
  path: string;
}

export function Editor({ initial, onSaved }: { initial: TimelineView; onSaved: (saved: TimelineView) => void }) {
  const { t } = useT();
  const { api, jobs } = useServices();
  const id = initial.id;
  const [restored] = useState(() => {
    const d = drafts.get(id);
    return d && d.revision === initial.revision ? d.timeline : null;
  });
  const [hist, setHist] = useState<History>(() => ({ past: [], present: restored ?? fromSpec(initial.spec), future: [] }));
  const [preview, setPreviewState] = useState<Timeline | null>(null);
  const previewRef = useRef<Timeline | null>(null);
  const [revision, setRevision] = useState(initial.revision);
  const [dirty, setDirty] = useState(!!restored);
  const [selected, setSelected] = useState<string | null>(null);
  const [zoom, setZoom] = useState(ZOOM.initial);
  const [snap, setSnap] = useState(true);
  const [busy, setBusy] = useState<'save' | RenderKind | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [fieldError, setFieldError] = useState<ShownError | null>(null);
  const [conflict, setConflict] = useState<number | null>(null);
  const [picking, setPicking] = useState<string | null>(null);
  const [announce, setAnnounce] = useState('');
  const [jobIds, setJobIds] = useState<Partial<Record<RenderKind, string>>>({});
  const [showing, setShowing] = useState<RenderKind>('render');
  /** Where the player is, seconds (drawn across the tracks while a render plays). */
  const [playhead, setPlayhead] = useState<number | null>(null);

  // Lengths of the sounds and videos used (they bound resizes).
  const raw = preview ?? hist.present;
  const mediaIds = raw.tracks.flatMap((tr) => tr.clips.map((c) => c.media_id).filter((m): m is string => !!m));
  const media = useMediaItems(api, mediaIds);
  const lengths = useMemo(() => new Map([...media.values()].map((m) => [m.id, m.duration_secs ?? null])), [media]);
  const tl = useMemo(() => setMediaDurations(raw, lengths), [raw, lengths]);

  // Keep unsaved edits when leaving (another timeline, another screen) and warn on unload.
  const latest = useRef({ tl, dirty, revision });
  useEffect(() => {
    latest.current = { tl, dirty, revision };
  });
  useEffect(() => {
    const onUnload = (e: BeforeUnloadEvent) => {
      if (latest.current.dirty) e.preventDefault();
    };
    window.addEventListener('beforeunload', onUnload);
    return () => {
      window.removeEventListener('beforeunload', onUnload);
      const l = latest.current;
      if (l.dirty) drafts.set(id, { revision: l.revision, timeline: l.tl });
    };
  }, [id]);

  // The latest render and proxy of this timeline, if any (they survive a reload).
  useEffect(() => {
    let live = true;
    for (const kind of ['render', 'proxy'] as const) {
      api.get('/api/jobs', { query: { type: JOB_TYPE[kind], limit: 20 } }).then(
        (page) => {
          const job = page.items.find((j) => (j.request as { timeline_id?: unknown }).timeline_id === id);
          if (!live || !job) return;
          jobs.upsert(job);
          setJobIds((ids) => (ids[kind] ? ids : { ...ids, [kind]: job.id }));
        },
        () => undefined,
      );
    }
    return () => {
      live = false;
    };
  }, [api, jobs, id]);

  const change = (next: Timeline) => {
    // An edit that changed nothing (a clamped move) is no undo step; a committed drag always is.
    if (next === hist.present || (!preview && next === tl)) return;
    setHist((h) => ({ past: [...h.past.slice(-99), h.present], present: next, future: [] }));
    setDirty(true);
  };
  const onPreview = (next: Timeline | null, commit = false) => {
    if (commit && previewRef.current) change(previewRef.current);
    previewRef.current = next;
    setPreviewState(next);
  };
  const undo = () => {
    const prev = hist.past[hist.past.length - 1];
    if (!prev) return;
    setHist((h) => ({ past: h.past.slice(0, -1), present: prev, future: [h.present, ...h.future] }));
    setDirty(true);
    setAnnounce(t('video.undone'));
  };
  const redo = () => {
    const next = hist.future[0];
    if (!next) return;
    setHist((h) => ({ past: [...h.past, h.present], present: next, future: h.future.slice(1) }));
    setDirty(true);
    setAnnounce(t('video.redone'));
  };

  const showError = (err: unknown) => {
    if (err instanceof ApiError && err.field) {
      const target = fieldTarget(tl, err.field);
      setFieldError({ ...target, message: err.message, path: err.field });
      if (target.clipKey) {
        setSelected(target.clipKey);
        requestAnimationFrame(() => document.querySelector<HTMLElement>(`[data-clip="${target.clipKey}"]`)?.focus());
      } else if (['name', 'width', 'height', 'fps'].includes(target.field)) {
        requestAnimationFrame(() => document.getElementById(`tl-${target.field}`)?.focus());
      }
    }
    setError(err);
  };

  const save = async (force = false): Promise<boolean> => {
    setBusy('save');
    setError(null);
    setFieldError(null);
    setConflict(null);
    try {
      // If-Match makes the server refuse (409) when someone saved meanwhile (another tab);
      // "overwrite" saves without it.
      const headers = force ? undefined : { 'If-Match': `"${revision}"` };
      const saved = await api.put('/api/video/timelines/{id}', { path: { id }, body: toSpec(tl), headers });
      setRevision(saved.revision);
      setDirty(false);
      drafts.delete(id);
      onSaved(saved);
      toast(t('video.saved', { name: saved.name, v: saved.revision }), 'success');
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.code === 'revision_conflict') {
        const current = await api.get('/api/video/timelines/{id}', { path: { id } }).catch(() => null);
        setConflict(current?.revision ?? revision + 1);
      } else {
        showError(err);
      }
      return false;
    } finally {
      setBusy(null);
    }
  };

  const render = async (kind: RenderKind) => {
    if (dirty && !(await save())) return;
    setBusy(kind);
    setError(null);
    setFieldError(null);
    try {
      const res = kind === 'render' ? await api.post('/api/video/timelines/{id}/render', { path: { id }, body: {} }) : await api.post('/api/video/timelines/{id}/proxy', { path: { id } });
      jobs.upsert(...res.jobs);
      const jobId = res.job_ids[0];
      if (jobId) setJobIds((ids) => ({ ...ids, [kind]: jobId }));
      setShowing(kind);
      toast(t(kind === 'render' ? 'video.render_queued' : 'video.proxy_queued'), 'info');
    } catch (err) {
      showError(err);
    } finally {
      setBusy(null);
    }
  };

  const addMedia = (trackKey: string, item: MediaView) => {
    rememberMedia(item);
    const { timeline, key } = addMediaClip(tl, trackKey, { id: item.id, duration: item.duration_secs });
    if (!key) {
      toast(t('video.track_full'), 'error');
      return;
    }
    change(timeline);
    setSelected(key);
    setAnnounce(t('video.clip_added', { name: mediaLabel(item, '') }));
  };
  const addText = (trackKey: string) => {
    const { timeline, key } = addTextClip(tl, trackKey, t('video.default_title'));
    if (!key) return;
    change(timeline);
    setSelected(key);
    requestAnimationFrame(() => document.getElementById('clip-text')?.focus());
  };
  /** Narration audio: onto the first sound track (one is added when there is none). */
  const addNarration = (item: MediaView) => {
    let next = tl;
    let track = next.tracks.find((tr) => tr.kind === 'audio');
    if (!track) {
      next = addTrack(next, 'audio');
      track = next.tracks[next.tracks.length - 1];
    }
    if (!track || track.kind !== 'audio') {
      toast(t('video.max_tracks', { n: MAX_TRACKS }), 'error');
      return;
    }
    rememberMedia(item);
    const { timeline, key } = addMediaClip(next, track.key, { id: item.id, duration: item.duration_secs });
    if (!key) return;
    change(timeline);
    setSelected(key);
    setAnnounce(t('video.narration_added'));
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement;
    const mod = e.ctrlKey || e.metaKey;
    if (!mod || typing) {
      if (mod && e.key.toLowerCase() === 's') {
        e.preventDefault();
        void save();
      }
      return;
    }
    const k = e.key.toLowerCase();
    if (k === 'z' && !e.shiftKey) undo();
    else if ((k === 'z' && e.shiftKey) || k === 'y') redo();
    else if (k === 's') void save();
    else return;
    e.preventDefault();
  };

  const selection = selected ? findClip(tl, selected) : null;
  const pickingTrack = picking ? tl.tracks.find((tr) => tr.key === picking) : undefined;
  const pickKind = pickingTrack ? MEDIA_KIND[pickingTrack.kind] : null;
  const topError = (name: string) => (fieldError && !fieldError.trackKey && fieldError.field === name ? fieldError.message : null);
  const total = timelineDuration(tl);

  return (
    <section className="video-editor" aria-labelledby="editor-title" onKeyDown={onKeyDown}>
      <div className="panel">
        <div className="section-head">
          <h2 id="editor-title">{t('video.editing', { name: initial.name })}</h2>
          <span className="hint">
            {t('video.revision', { v: revision })}
            {dirty && <> · {t('video.unsaved')}</>}
          </span>
        </div>
        {restored && dirty && <p className="banner banner-info">{t('video.restored')}</p>}
        {conflict !== null && (
          <div className="banner banner-warn" role="alert">
            <div>{t('video.conflict', { v: conflict })}</div>
            <div className="inline">
              <button type="button" className="btn btn-small" onClick={() => void save(true)}>
                {t('video.overwrite')}
              </button>
              <button
                type="button"
                className="btn btn-small btn-ghost"
                onClick={() => {
                  drafts.delete(id);
                  setDirty(false);
                  window.location.reload();
                }}
              >
                {t('video.discard_reload')}
              </button>
            </div>
          </div>
        )}
        <ErrorBanner error={error} title={error instanceof ApiError && error.field ? t('video.error_at', { field: error.field }) : undefined} />
        <div className="grid-4">
          <DraftField id="tl-name" label={t('video.name')} value={tl.name} error={topError('name')} maxLength={200} onCommit={(v) => change({ ...tl, name: v })} />
          <DraftField id="tl-width" label={t('video.width')} value={String(tl.width)} error={topError('width')} numeric onCommit={(v) => change({ ...tl, width: whole(v, tl.width) })} />
          <DraftField id="tl-height" label={t('video.height')} value={String(tl.height)} error={topError('height')} numeric onCommit={(v) => change({ ...tl, height: whole(v, tl.height) })} />
          <DraftField id="tl-fps" label={t('video.fps')} value={String(tl.fps)} error={topError('fps')} numeric onCommit={(v) => change({ ...tl, fps: whole(v, tl.fps) })} />
        </div>
        <div className="toolbar tl-toolbar" role="toolbar" aria-label={t('video.tools')}>
          <button type="button" className="btn btn-primary" disabled={busy !== null} onClick={() => void save()}>
            {busy === 'save' ? t('state.working') : t('video.save')}
          </button>
          <button type="button" className="btn btn-small" disabled={!hist.past.length} onClick={undo}>
            {t('video.undo')}
          </button>
          <button type="button" className="btn btn-small" disabled={!hist.future.length} onClick={redo}>
            {t('video.redo')}
          </button>
          <label className="tl-zoom">
            <span>{t('video.zoom')}</span>
            <input type="range" min={ZOOM.min} max={ZOOM.max} value={zoom} onChange={(e) => setZoom(Number(e.target.value))} aria-valuetext={t('video.zoom_value', { n: zoom })} />
          </label>
          <label className="check">
            <input type="checkbox" checked={snap} onChange={(e) => setSnap(e.target.checked)} />
            {t('video.snap')}
          </label>
          <AddTrack disabled={tl.tracks.length >= MAX_TRACKS} onAdd={(kind) => change(addTrack(tl, kind))} />
        </div>
        <p id="tl-keys" className="hint">
          {t('video.keys')}
        </p>
        {tl.tracks.length === 0 ? (
          <p className="muted">{t('video.no_tracks')}</p>
        ) : (
          <Tracks
            timeline={tl}
            zoom={zoom}
            snap={snap}
            selected={selected}
            playhead={playhead}
            invalidClip={fieldError?.clipKey ?? null}
            media={media}
            onSelect={setSelected}
            onChange={change}
            onPreview={onPreview}
            onAddMedia={setPicking}
            onAddText={addText}
            onAnnounce={setAnnounce}
          />
        )}
        {total === 0 && tl.tracks.length > 0 && <p className="muted">{t('video.no_clips')}</p>}
        <span className="sr-live" role="status">
          {announce}
        </span>
      </div>
      <div className="video-side">
        {selection ? (
          <Inspector
            key={selection.clip.key}
            timeline={tl}
            track={selection.track}
            trackIndex={selection.t}
            clipKey={selection.clip.key}
            media={selection.clip.media_id ? media.get(selection.clip.media_id) : undefined}
            error={fieldError && fieldError.clipKey === selection.clip.key ? fieldError : null}
            onChange={change}
            onRemove={() => {
              change(removeClip(tl, selection.clip.key));
              setSelected(null);
            }}
          />
        ) : (
          <section className="panel">
            <h2>{t('video.clip')}</h2>
            <p className="muted">{t('video.select_clip')}</p>
          </section>
        )}
        <Narration onReady={addNarration} />
      </div>
      <RenderPanel name={tl.name} jobIds={jobIds} showing={showing} busy={busy} onShow={setShowing} onRender={(k) => void render(k)} onTime={setPlayhead} />
      {pickingTrack && pickKind && (
        <MediaPicker
          kind={pickKind}
          title={t('video.pick_title', { n: tl.tracks.indexOf(pickingTrack) + 1, kind: t(KIND_LABEL[pickingTrack.kind]) })}
          onPick={(item) => {
            addMedia(pickingTrack.key, item);
            setPicking(null);
          }}
          onClose={() => setPicking(null)}
        />
      )}
    </section>
  );
}

function AddTrack({ disabled, onAdd }: { disabled: boolean; onAdd: (kind: TrackKind) => void }) {
  const { t } = useT();
  const [kind, setKind] = useState<TrackKind>('image');
  return (
    <span className="inline">
      <label className="sr-only" htmlFor="new-track-kind">
        {t('video.track_kind')}
      </label>
      <select id="new-track-kind" value={kind} onChange={(e) => setKind(e.target.value as TrackKind)}>
        {(['image', 'video', 'audio', 'title'] as const).map((k) => (
          <option key={k} value={k}>
            {t(KIND_LABEL[k])}
          </option>
        ))}
      </select>
      <button type="button" className="btn btn-small" disabled={disabled} onClick={() => onAdd(kind)}>
        {t('video.add_track')}
      </button>
    </span>
  );
}

/** An input edited freely and applied on Enter or when it loses focus (one undo step). */
function DraftField({
  id,
  label,
  value,
  error,
  numeric,
  maxLength,
  hint,
  onCommit,
  area,
}: {
  id: string;
  label: string;
  value: string;
  error?: string | null;
  numeric?: boolean;
  maxLength?: number;
  hint?: ReactNode;
  onCommit: (value: string) => void;
  area?: boolean;
}) {
  const [draft, setDraft] = useState<string | null>(null);
  const commit = () => {
    if (draft !== null && draft !== value) onCommit(numeric ? draft.replace(',', '.') : draft);
    setDraft(null);
  };
  const common = {
    ...describedBy(id, error, hint ? 'hint' : null),
    value: draft ?? value,
    maxLength,
    onBlur: commit,
  };
  return (
    <Field id={id} label={label} error={error} hint={hint}>
      {area ? (
        <textarea rows={2} {...common} onChange={(e) => setDraft(e.target.value)} />
      ) : (
        <input
          {...common}
          inputMode={numeric ? 'decimal' : undefined}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') {
              e.preventDefault();
              commit();
            } else if (e.key === 'Escape') setDraft(null);
          }}
        />
      )}
    </Field>
  );
}

function Inspector({
  timeline,
  track,
  trackIndex,
  clipKey,
  media,
  error,
  onChange,
  onRemove,
}: {
  timeline: Timeline;
  track: EditorTrack;
  trackIndex: number;
  clipKey: string;
  media: MediaView | undefined;
  error: ShownError | null;
  onChange: (next: Timeline) => void;
  onRemove: () => void;
}) {
  const { t } = useT();
  const clip = findClip(timeline, clipKey)?.clip;
  if (!clip) return null;
  const at = (field: string) => (error && error.field === field ? error.message : null);
  const num = (v: string): number | null => {
    const n = Number(v);
    return v.trim() !== '' && Number.isFinite(n) ? n : null;
  };
  const sound = track.kind === 'audio' || track.kind === 'video';
  const fade = clip.transition?.kind === 'crossfade' ? clip.transition.duration ?? 0 : 0;
  return (
    <section className="panel tl-inspector" aria-labelledby="clip-title">
      <h2 id="clip-title">{t('video.clip')}</h2>
      <p className="hint">
        {t(KIND_LABEL[track.kind])} · {t('video.track_n', { n: trackIndex + 1 })}
        {media && <> · {mediaLabel(media, '')}</>}
      </p>
      {error && !['start', 'duration', 'in_point', 'text', 'volume', 'transition.duration'].includes(error.field) && (
        <p className="field-error" role="alert">
          {error.path}: {error.message}
        </p>
      )}
      <div className="grid-2">
        <DraftField id="clip-start" label={t('video.start')} numeric value={clip.start.toFixed(2)} error={at('start')} onCommit={(v) => num(v) !== null && onChange(moveClip(timeline, clipKey, num(v) ?? 0))} />
        <DraftField
          id="clip-duration"
          label={t('video.length')}
          numeric
          value={clip.duration.toFixed(2)}
          error={at('duration')}
          onCommit={(v) => num(v) !== null && onChange(resizeClip(timeline, clipKey, 'end', clip.start + (num(v) ?? 0)))}
        />
        {sound && (
          <DraftField
            id="clip-in_point"
            label={t('video.in_point')}
            numeric
            value={(clip.in_point ?? 0).toFixed(2)}
            error={at('in_point')}
            hint={clip.mediaDuration ? t('video.media_length', { secs: clip.mediaDuration.toFixed(1) }) : undefined}
            onCommit={(v) => {
              const n = num(v);
              if (n === null) return;
              const max = clip.mediaDuration != null ? Math.max(0, clip.mediaDuration - clip.duration) : Infinity;
              onChange(patchClip(timeline, clipKey, { in_point: Math.round(Math.min(max, Math.max(0, n)) * 1000) / 1000 }));
            }}
          />
        )}
        {sound && (
          <DraftField
            id="clip-volume"
            label={t('video.volume')}
            numeric
            value={String(clip.volume ?? 1)}
            error={at('volume')}
            onCommit={(v) => {
              const n = num(v);
              if (n !== null) onChange(patchClip(timeline, clipKey, { volume: Math.min(4, Math.max(0, n)) }));
            }}
          />
        )}
        <DraftField
          id="clip-transition-duration"
          label={t('video.crossfade')}
          numeric
          value={fade.toFixed(2)}
          hint={t('video.crossfade_hint')}
          error={at('transition.duration')}
          onCommit={(v) => {
            const n = num(v);
            if (n === null) return;
            const d = Math.min(clip.duration, Math.max(0, n));
            onChange(patchClip(timeline, clipKey, { transition: d > 0 ? { kind: 'crossfade', duration: Math.round(d * 1000) / 1000 } : null }));
          }}
        />
      </div>
      {(track.kind === 'title' || track.kind === 'narration') && (
        <DraftField id="clip-text" label={t('video.text')} area value={clip.text ?? ''} error={at('text')} maxLength={5000} onCommit={(v) => onChange(patchClip(timeline, clipKey, { text: v }))} />
      )}
      <button type="button" className="btn btn-small btn-danger" onClick={onRemove}>
        {t('video.remove_clip')}
      </button>
    </section>
  );
}

/** Text → a TTS job; its audio is handed to `onReady` once (when the job succeeds). */
function Narration({ onReady }: { onReady: (item: MediaView) => void }) {
  const { t } = useT();
  const { api, jobs } = useServices();
  const [text, setText] = useState('');
  const [voice, setVoice] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const job = useJob(jobId);
  const handled = useRef(new Set<string>());
  const readyRef = useRef(onReady);
  useEffect(() => {
    readyRef.current = onReady;
  });

  const audio = job?.status === 'succeeded' ? job.outputs?.[0] : undefined;
  useEffect(() => {
    if (!job || !audio || handled.current.has(job.id)) return;
    handled.current.add(job.id);
    api.get('/api/media/{id}', { path: { id: audio.media_id } }).then(
      (item) => readyRef.current(item),
      (err: unknown) => setError(err),
    );
  }, [api, job, audio]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    if (!text.trim()) {
      setErrors({ text: t('video.narration_required') });
      document.getElementById('narration-text')?.focus();
      return;
    }
    setBusy(true);
    try {
      const res = await api.post('/api/generate/speech', { body: { text: text.trim(), ...(voice.trim() ? { voice: voice.trim() } : {}) } });
      jobs.upsert(...res.jobs);
      setJobId(res.job_ids[0] ?? null);
    } catch (err) {
      if (err instanceof ApiError && (err.field === 'text' || err.field === 'voice')) {
        setErrors({ [err.field]: err.message });
        document.getElementById(`narration-${err.field}`)?.focus();
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="panel" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="narration-title">
      <h2 id="narration-title">{t('video.narration')}</h2>
      <ErrorBanner error={error} />
      <Field id="narration-text" label={t('video.narration_text')} error={errors.text} hint={t('video.narration_hint')}>
        <textarea {...describedBy('narration-text', errors.text, 'hint')} rows={3} maxLength={5000} value={text} onChange={(e) => setText(e.target.value)} />
      </Field>
      <Field id="narration-voice" label={t('video.voice')} error={errors.voice} hint={t('video.voice_hint')}>
        <input {...describedBy('narration-voice', errors.voice, 'hint')} value={voice} maxLength={100} placeholder="en" onChange={(e) => setVoice(e.target.value)} />
      </Field>
      <button type="submit" className="btn" disabled={busy || (job ? isActive(job.status) : false)}>
        {t('video.narrate')}
      </button>
      {job && (
        <div className="tl-job" aria-live="polite">
          <StatusBadge status={job.status} />
          <JobProgress job={job} />
          {job.error && <p className="field-error">{job.error.message}</p>}
          {job.status === 'succeeded' && <p className="hint">{t('video.narration_done')}</p>}
        </div>
      )}
    </form>
  );
}

function RenderPanel({
  name,
  jobIds,
  showing,
  busy,
  onShow,
  onRender,
  onTime,
}: {
  name: string;
  jobIds: Partial<Record<RenderKind, string>>;
  showing: RenderKind;
  busy: string | null;
  onShow: (kind: RenderKind) => void;
  onRender: (kind: RenderKind) => void;
  onTime: (secs: number | null) => void;
}) {
  const { t } = useT();
  const renderJob = useJob(jobIds.render ?? null);
  const proxyJob = useJob(jobIds.proxy ?? null);
  const shown = showing === 'render' ? renderJob : proxyJob;
  return (
    <section className="panel video-render" aria-labelledby="render-title">
      <h2 id="render-title">{t('video.output')}</h2>
      <div className="grid-2">
        <RenderRow kind="proxy" job={proxyJob} busy={busy} showing={showing === 'proxy'} onShow={onShow} onRender={onRender} />
        <RenderRow kind="render" job={renderJob} busy={busy} showing={showing === 'render'} onShow={onShow} onRender={onRender} />
      </div>
      <Player job={shown} kind={showing} name={name} onTime={onTime} />
    </section>
  );
}

function RenderRow({ kind, job, busy, showing, onShow, onRender }: { kind: RenderKind; job: JobView | undefined; busy: string | null; showing: boolean; onShow: (k: RenderKind) => void; onRender: (k: RenderKind) => void }) {
  const { t } = useT();
  const { cancel, busy: acting } = useJobActions();
  const active = job ? isActive(job.status) : false;
  return (
    <div className="render-row" aria-live="polite">
      <div className="inline">
        <button type="button" className={kind === 'render' ? 'btn btn-primary' : 'btn'} disabled={busy !== null || active} onClick={() => onRender(kind)}>
          {busy === kind ? t('state.working') : t(kind === 'render' ? 'video.render' : 'video.proxy')}
        </button>
        {job && <StatusBadge status={job.status} />}
        {job && active && (
          <button type="button" className="btn btn-small btn-ghost" disabled={acting === job.id} onClick={() => void cancel(job)}>
            {t('action.cancel_job')}
          </button>
        )}
        {job?.status === 'succeeded' && !showing && (
          <button type="button" className="btn btn-small" onClick={() => onShow(kind)}>
            {t('video.play')}
          </button>
        )}
      </div>
      <p className="hint">{t(kind === 'render' ? 'video.render_hint' : 'video.proxy_hint')}</p>
      {job && active && <JobProgress job={job} />}
      {job?.error && <p className="field-error">{job.error.message}</p>}
    </div>
  );
}

function Player({ job, kind, name, onTime }: { job: JobView | undefined; kind: RenderKind; name: string; onTime: (secs: number | null) => void }) {
  const { t } = useT();
  const { loadJob } = useServices();
  const out = videoOutput(job);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    // A finished job read before its outputs were signed: fetch it once more.
    if (job?.status === 'succeeded' && !out) void loadJob(job.id).catch(() => undefined);
  }, [job?.status, job?.id, out, loadJob]);
  if (!job) return <p className="muted">{t('video.no_output')}</p>;
  if (!out) return null;
  const file = `${name.replace(/[^\w.-]+/g, '_') || 'timeline'}${kind === 'proxy' ? '-proxy' : ''}.mp4`;
  return (
    <figure className="video-player">
      {/* eslint-disable-next-line jsx-a11y/media-has-caption -- renders carry no caption track (narration text is in the timeline) */}
      <video
        key={out.url}
        controls
        preload="metadata"
        src={out.url}
        aria-label={t(kind === 'render' ? 'video.player_render' : 'video.player_proxy', { name })}
        onTimeUpdate={(e) => onTime(e.currentTarget.currentTime > 0 ? e.currentTarget.currentTime : null)}
        onEmptied={() => onTime(null)}
        onError={() => {
          // Signed URLs expire: get fresh ones once per URL.
          if (failed !== out.url) {
            setFailed(out.url);
            void loadJob(job.id).catch(() => undefined);
          }
        }}
      />
      <figcaption className="inline">
        <span>{t(kind === 'render' ? 'video.player_render' : 'video.player_proxy', { name })}</span>
        <a className="btn btn-small" href={out.url} download={file}>
          {t('video.download')}
        </a>
      </figcaption>
    </figure>
  );
}
