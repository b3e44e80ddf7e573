// Talking head: a portrait from the library animated by speech (an audio item, or text spoken
// by the server's voice engine) on a SadTalker-compatible engine (`POST /api/generate/video`,
// a `talking_head` job), followed live and played in place.
import { useState, type FormEvent } from 'react';
import { ApiError } from '../../api/client';
import type { MediaView } from '../../api/types';
import { isActive } from '../../api/types';
import { useJob, useServices } from '../../app/hooks';
import { JobProgress, useJobActions } from '../../components/jobs';
import { toast } from '../../components/toasts';
import { describedBy, ErrorBanner, Field, StatusBadge } from '../../components/ui';
import { useT } from '../../i18n';
import { MediaPicker } from './Picker';
import { mediaLabel, videoOutput } from './media';
import { ENHANCERS, missingFields, PREPROCESS, requestBody, type Enhancer, type Preprocess } from './talkingHead';

const FIELDS = ['image', 'audio', 'text', 'voice', 'pose_style', 'engine'] as const;

export function TalkingHead() {
  const { t } = useT();
  const { api, jobs } = useServices();
  const { cancel, busy: acting } = useJobActions();
  const [image, setImage] = useState<MediaView | null>(null);
  const [audio, setAudio] = useState<MediaView | null>(null);
  const [speak, setSpeak] = useState(false);
  const [text, setText] = useState('');
  const [preprocess, setPreprocess] = useState<Preprocess>('crop');
  const [enhancer, setEnhancer] = useState<Enhancer>('none');
  const [still, setStill] = useState(false);
  const [pose, setPose] = useState('0');
  const [picking, setPicking] = useState<'image' | 'audio' | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [jobId, setJobId] = useState<string | null>(null);
  const job = useJob(jobId);
  const out = videoOutput(job);
  const active = job ? isActive(job.status) : false;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    const form = { imageId: image?.id ?? null, audioId: audio?.id ?? null, speak, text, preprocess, enhancer, still, pose };
    const missing = missingFields(form);
    if (Object.keys(missing).length > 0) {
      setErrors(Object.fromEntries(Object.entries(missing).map(([field, key]) => [field, t(key)])));
      return;
    }
    const body = requestBody(form);
    setBusy(true);
    try {
      const res = await api.post('/api/generate/video', { body });
      jobs.upsert(...res.jobs);
      setJobId(res.job_ids[0] ?? null);
      toast(t('th.queued'), 'info');
    } catch (err) {
      const field = err instanceof ApiError ? err.field : undefined;
      if (err instanceof ApiError && field && (FIELDS as readonly string[]).includes(field)) {
        setErrors({ [field]: err.message });
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="panel" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="th-title">
      <h2 id="th-title">{t('th.title')}</h2>
      <p className="hint">{t('th.hint')}</p>
      <ErrorBanner error={error} />
      <Field id="th-image" label={t('th.image')} error={errors.image}>
        <div className="inline">
          <span id="th-image-name">{image ? mediaLabel(image, t('video.untitled')) : t('th.none')}</span>
          <button
              type="button"
              className="btn btn-small"
              {...describedBy('th-image', errors.image)}
              aria-labelledby="th-image-label th-image"
              onClick={() => setPicking('image')}
            >
            {t('th.pick_image')}
          </button>
        </div>
      </Field>
      <fieldset className="inline">
        <legend>{t('th.voice_source')}</legend>
        <label>
          <input type="radio" name="th-source" checked={!speak} onChange={() => setSpeak(false)} /> {t('th.use_audio')}
        </label>
        <label>
          <input type="radio" name="th-source" checked={speak} onChange={() => setSpeak(true)} /> {t('th.use_text')}
        </label>
      </fieldset>
      {speak ? (
        <Field id="th-text" label={t('th.text')} error={errors.text ?? errors.voice}>
          <textarea {...describedBy('th-text', errors.text ?? errors.voice)} rows={3} maxLength={5000} value={text} onChange={(e) => setText(e.target.value)} />
        </Field>
      ) : (
        <Field id="th-audio" label={t('th.audio')} error={errors.audio}>
          <div className="inline">
            <span>{audio ? mediaLabel(audio, t('video.untitled')) : t('th.none')}</span>
            <button
              type="button"
              className="btn btn-small"
              {...describedBy('th-audio', errors.audio)}
              aria-labelledby="th-audio-label th-audio"
              onClick={() => setPicking('audio')}
            >
              {t('th.pick_audio')}
            </button>
          </div>
        </Field>
      )}
      <div className="grid-2">
        <Field id="th-preprocess" label={t('th.preprocess')}>
          <select id="th-preprocess" value={preprocess} onChange={(e) => setPreprocess(e.target.value as Preprocess)}>
            {PREPROCESS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
        <Field id="th-enhancer" label={t('th.enhancer')}>
          <select id="th-enhancer" value={enhancer} onChange={(e) => setEnhancer(e.target.value as Enhancer)}>
            {ENHANCERS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
        <Field id="th-pose" label={t('th.pose')} error={errors.pose_style}>
          <input {...describedBy('th-pose', errors.pose_style)} type="number" min={0} max={45} value={pose} onChange={(e) => setPose(e.target.value)} />
        </Field>
        <label className="inline">
          <input type="checkbox" checked={still} onChange={(e) => setStill(e.target.checked)} /> {t('th.still')}
        </label>
      </div>
      {errors.engine && <p className="field-error">{errors.engine}</p>}
      <div className="inline">
        <button type="submit" className="btn btn-primary" disabled={busy || active}>
          {busy ? t('state.working') : t('th.submit')}
        </button>
        {job && <StatusBadge status={job.status} />}
        {job && active && (
          <button type="button" className="btn btn-small btn-ghost" disabled={acting === job.id} onClick={() => void cancel(job)}>
            {t('action.cancel_job')}
          </button>
        )}
      </div>
      {job && (
        <div className="tl-job" aria-live="polite">
          {active && <JobProgress job={job} />}
          {job.error && <p className="field-error">{job.error.message}</p>}
        </div>
      )}
      {out && (
        <figure className="video-player">
          {/* eslint-disable-next-line jsx-a11y/media-has-caption -- the speech is the user's own audio or text */}
          <video key={out.url} controls preload="metadata" src={out.url} aria-label={t('th.player')} />
        </figure>
      )}
      {picking && (
        <MediaPicker
          kind={picking}
          title={t(picking === 'image' ? 'th.pick_image' : 'th.pick_audio')}
          onClose={() => setPicking(null)}
          onPick={(m) => {
            if (picking === 'image') setImage(m);
            else setAudio(m);
            setPicking(null);
          }}
        />
      )}
    </form>
  );
}
