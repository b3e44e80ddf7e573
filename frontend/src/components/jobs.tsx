// Job pieces shared by Generate and Jobs: live progress, outputs grid, cancel/retry actions.
import { useEffect, useState } from 'react';
import { ApiError } from '../api/client';
import type { JobView, OutputView } from '../api/types';
import { isActive } from '../api/types';
import { useServices } from '../app/hooks';
import { useT } from '../i18n';
import { formatDuration } from '../lib/format';
import { navigate } from '../lib/router';
import { fromRequest, saveDraft } from '../screens/generate/form';
import { toast } from './toasts';
import { errorMessage, ProgressBar } from './ui';

export function JobProgress({ job }: { job: JobView }) {
  const { t, lang } = useT();
  const active = isActive(job.status);
  const stage = job.stage ? t('job.stage', { stage: job.stage }) : null;
  const eta = active && job.status === 'running' && typeof job.eta_secs === 'number' ? t('job.eta', { eta: formatDuration(job.eta_secs, lang) }) : null;
  return (
    <div className="job-progress">
      <ProgressBar value={job.status === 'succeeded' ? 1 : job.progress} status={job.status} label={t('job.progress_label', { pct: Math.round(job.progress * 100) })} />
      <p className="job-progress-text">
        <span>{Math.round((job.status === 'succeeded' ? 1 : job.progress) * 100)}%</span>
        {active && stage && <span>{stage}</span>}
        {eta && <span>{eta}</span>}
        {job.cancel_requested && active && <span>{t('job.cancelling')}</span>}
      </p>
    </div>
  );
}

/** Signed URLs expire: fetch the job again (for fresh ones) when an image fails to load. */
export function OutputsGrid({ job, compact }: { job: JobView; compact?: boolean }) {
  const { t } = useT();
  const { loadJob } = useServices();
  const [failed, setFailed] = useState(false);
  const outputs = (job.outputs ?? []).filter((o): o is OutputView => typeof o.url === 'string');
  useEffect(() => {
    if (job.status === 'succeeded' && outputs.length === 0) void loadJob(job.id).catch(() => undefined);
  }, [job.status, job.id, outputs.length, loadJob]);
  if (job.status !== 'succeeded') return null;
  if (outputs.length === 0) return <p className="muted">{t('state.loading')}</p>;
  return (
    <ul className={`outputs ${compact ? 'outputs-compact' : ''}`} aria-label={t('job.outputs')}>
      {outputs.map((o, i) => (
        <li key={o.media_id} className="output">
          <a href={o.url} target="_blank" rel="noreferrer" className="output-link">
            <img
              src={o.url}
              width={o.width ?? undefined}
              height={o.height ?? undefined}
              alt={t('job.image_alt', { n: i + 1, total: outputs.length, prompt: job.prompt.slice(0, 80) })}
              loading="lazy"
              onError={() => {
                if (!failed) {
                  setFailed(true);
                  void loadJob(job.id).catch(() => undefined);
                }
              }}
            />
          </a>
          {!compact && (
            <p className="output-meta">
              {o.width}×{o.height}
              {typeof o.seed === 'number' && <> · {t('job.seed', { seed: o.seed })}</>}
            </p>
          )}
        </li>
      ))}
    </ul>
  );
}

export function useJobActions() {
  const { t } = useT();
  const { api, jobs } = useServices();
  const [busy, setBusy] = useState<string | null>(null);
  const cancel = async (job: JobView) => {
    setBusy(job.id);
    try {
      const updated = await api.post('/api/jobs/{id}/cancel', { path: { id: job.id } });
      jobs.upsert(updated);
      toast(t(updated.status === 'cancelled' ? 'job.cancelled_toast' : 'job.cancel_requested_toast'), 'success');
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
      if (err instanceof ApiError && err.status === 409) void api.get('/api/jobs/{id}', { path: { id: job.id } }).then((j) => jobs.upsert(j), () => undefined);
    } finally {
      setBusy(null);
    }
  };
  const retry = async (job: JobView): Promise<string | null> => {
    setBusy(job.id);
    try {
      const res = await api.post('/api/jobs/{id}/retry', { path: { id: job.id } });
      jobs.upsert(...res.jobs);
      toast(t('job.retried_toast'), 'success');
      return res.job_ids[0] ?? null;
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
      return null;
    } finally {
      setBusy(null);
    }
  };
  const reuse = (job: JobView) => {
    saveDraft(fromRequest(job.request));
    navigate('/generate?reuse=1');
  };
  return { busy, cancel, retry, reuse };
}
