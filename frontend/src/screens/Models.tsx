// Models: the catalogue of base models, LoRAs and VAEs (everyone), and for admins the rescan
// report, downloads by URL followed live (a `model_download` job), and removal.
import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import type { JobView, ModelView, RescanReport } from '../api/types';
import { isActive } from '../api/types';
import { useJobs, useLifecycle, useResource, useServices, useSession } from '../app/hooks';
import { PageHeader } from '../app/Shell';
import { JobProgress } from '../components/jobs';
import { toast } from '../components/toasts';
import { ConfirmButton, CopyButton, describedBy, ErrorBanner, errorMessage, Field, ListStates } from '../components/ui';
import { useT, type MessageKey } from '../i18n';
import { formatBytes, formatDateTime } from '../lib/format';
import { setQuery, useLocation } from '../lib/router';

const KINDS = ['base', 'lora', 'vae', 'unknown'] as const;
type Kind = (typeof KINDS)[number];

const ARCH_LABEL: Record<string, string> = { sd15: 'SD 1.5', sd21: 'SD 2.1', sdxl: 'SDXL', unknown: '—' };

export function Models() {
  const { t } = useT();
  const { api } = useServices();
  const session = useSession();
  const admin = session?.user.role === 'admin';
  const { search } = useLocation();
  const kindParam = search.get('kind');
  const kind: Kind | null = KINDS.includes(kindParam as Kind) ? (kindParam as Kind) : null;
  const catalogue = useResource((signal) => api.get('/api/models', { query: kind ? { kind } : {}, signal }), [api, kind]);
  const [downloads, setDownloads] = useState<string[]>([]);
  useLifecycle((what, jobId) => {
    if (what === 'finished' && jobId && downloads.includes(jobId)) catalogue.reload();
  });

  const items = catalogue.data?.items ?? [];
  return (
    <>
      <PageHeader title={t('models.title')} subtitle={t('models.subtitle')} />
      <div className="models-grid">
        <section className="panel" aria-labelledby="models-list-title">
          <h2 id="models-list-title">{t('models.catalogue', { n: catalogue.data?.total ?? 0 })}</h2>
          <div className="chips" role="group" aria-label={t('models.filter')}>
            {[null, ...KINDS].map((k) => (
              <button
                key={k ?? 'all'}
                type="button"
                className={`chip${k === kind ? ' chip-on' : ''}`}
                aria-pressed={k === kind}
                onClick={() => setQuery({ kind: k })}
              >
                {k ? t(`models.kind.${k}` as MessageKey) : t('models.kind.all')}
              </button>
            ))}
          </div>
          <ListStates resource={catalogue} count={items.length} emptyTitle={t(admin ? 'models.empty_admin' : 'models.empty')} />
          {items.length > 0 && <ModelTable items={items} admin={admin} onChanged={catalogue.reload} />}
        </section>
        {admin && (
          <aside className="models-side">
            <DownloadForm onQueued={(id) => setDownloads((cur) => [id, ...cur])} />
            <Downloads ids={downloads} />
            <Rescan onDone={catalogue.reload} />
          </aside>
        )}
      </div>
    </>
  );
}

function ModelTable({ items, admin, onChanged }: { items: ModelView[]; admin: boolean; onChanged: () => void }) {
  const { t, lang } = useT();
  const { api } = useServices();
  const [withFile, setWithFile] = useState(false);
  const remove = async (m: ModelView) => {
    try {
      await api.delete('/api/models/{id}', { path: { id: m.id }, query: { delete_file: withFile } });
      toast(t('models.removed', { name: m.name }), 'success');
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
    onChanged();
  };
  return (
    <>
      {admin && (
        <label className="check">
          <input type="checkbox" checked={withFile} onChange={(e) => setWithFile(e.target.checked)} />
          {t('models.delete_file')}
        </label>
      )}
      <div className="table-scroll">
        <table className="table models-table">
          <thead>
            <tr>
              <th scope="col">{t('models.name')}</th>
              <th scope="col">{t('models.kind')}</th>
              <th scope="col">{t('models.architecture')}</th>
              <th scope="col">{t('models.size')}</th>
              <th scope="col">{t('models.sha256')}</th>
              {admin && <th scope="col">{t('models.actions')}</th>}
            </tr>
          </thead>
          <tbody>
            {items.map((m) => (
              <tr key={m.id}>
                <th scope="row">
                  <span className="model-name">{m.name}</span>
                  <span className="hint model-path">{m.path}</span>
                  <span className="hint">
                    {t(`models.source.${m.source}` as MessageKey)} · {formatDateTime(m.updated_at, lang)}
                  </span>
                  {m.description && <span className="hint">{m.description}</span>}
                </th>
                <td>
                  <span className={`badge badge-${m.kind}`}>{t(`models.kind.${m.kind}` as MessageKey)}</span>
                </td>
                <td>{ARCH_LABEL[m.architecture] ?? m.architecture}</td>
                <td>{formatBytes(m.bytes, lang)}</td>
                <td>
                  {m.sha256 ? (
                    <span className="sha">
                      <code title={m.sha256}>{m.sha256.slice(0, 10)}…</code>
                      <CopyButton text={m.sha256} />
                    </span>
                  ) : (
                    '—'
                  )}
                </td>
                {admin && (
                  <td>
                    <ConfirmButton
                      label={t('models.remove')}
                      confirmLabel={withFile ? t('models.remove_confirm_file') : t('models.remove_confirm')}
                      ariaLabel={t('models.remove_named', { name: m.name })}
                      onConfirm={() => void remove(m)}
                    />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function DownloadForm({ onQueued }: { onQueued: (jobId: string) => void }) {
  const { t } = useT();
  const { api, jobs } = useServices();
  const [url, setUrl] = useState('');
  const [name, setName] = useState('');
  const [sha, setSha] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    if (!url.trim()) {
      setErrors({ url: t('models.url_required') });
      return;
    }
    setBusy(true);
    try {
      const body = { url: url.trim(), ...(name.trim() ? { name: name.trim() } : {}), ...(sha.trim() ? { sha256: sha.trim() } : {}) };
      const res = await api.post('/api/models/download', { body });
      jobs.upsert(...res.jobs);
      for (const job of res.jobs) onQueued(job.id);
      setUrl('');
      setName('');
      setSha('');
      toast(t('models.download_queued'), 'success');
    } catch (err) {
      const field = err instanceof ApiError ? err.field : undefined;
      if (err instanceof ApiError && field && ['url', 'file_name', 'sha256', 'name'].includes(field)) {
        setErrors({ [field === 'file_name' ? 'url' : field]: err.message });
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="models-download-title">
      <h2 id="models-download-title">{t('models.download')}</h2>
      <p className="hint">{t('models.download_hint')}</p>
      <form onSubmit={(e) => void submit(e)} noValidate aria-label={t('models.download')}>
        <ErrorBanner error={error} />
        <Field id="model-url" label={t('models.url')} error={errors.url}>
          <input {...describedBy('model-url', errors.url)} type="url" inputMode="url" value={url} placeholder="https://…/model.safetensors" onChange={(e) => setUrl(e.target.value)} />
        </Field>
        <Field id="model-name" label={t('models.display_name')} error={errors.name}>
          <input {...describedBy('model-name', errors.name)} value={name} maxLength={120} onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field id="model-sha" label={t('models.expected_sha')} error={errors.sha256} hint={t('models.expected_sha_hint')}>
          <input {...describedBy('model-sha', errors.sha256, 'hint')} value={sha} spellCheck={false} maxLength={64} onChange={(e) => setSha(e.target.value)} />
        </Field>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? t('state.working') : t('models.download_start')}
        </button>
      </form>
    </section>
  );
}

function Downloads({ ids }: { ids: string[] }) {
  const { t } = useT();
  const rows = useJobs(ids);
  if (rows.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="models-downloads-title">
      <h2 id="models-downloads-title">{t('models.downloads')}</h2>
      <ul className="download-list">
        {rows.map((job: JobView) => (
          <li key={job.id} className="download-item">
            <span className="model-name">{job.model}</span>
            <JobProgress job={job} />
            {!isActive(job.status) && job.error && (
              <p className="field-error" role="alert">
                {job.error.message}
              </p>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Rescan({ onDone }: { onDone: () => void }) {
  const { t } = useT();
  const { api } = useServices();
  const [report, setReport] = useState<RescanReport | null>(null);
  const [busy, setBusy] = useState(false);
  const rescan = async () => {
    setBusy(true);
    try {
      setReport(await api.post('/api/models/rescan', {}));
      onDone();
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="panel" aria-labelledby="models-rescan-title">
      <h2 id="models-rescan-title">{t('models.rescan_title')}</h2>
      <p className="hint">{t('models.rescan_hint')}</p>
      <button type="button" className="btn" disabled={busy} onClick={() => void rescan()}>
        {busy ? t('state.working') : t('models.rescan')}
      </button>
      {report && (
        <div role="status" className="rescan-report">
          <p>{t('models.rescan_report', { added: report.added, updated: report.updated, removed: report.removed })}</p>
          {report.refused.length > 0 && (
            <>
              <h3>{t('models.refused', { n: report.refused.length })}</h3>
              <ul>
                {report.refused.map((r) => (
                  <li key={r.path}>
                    <code>{r.path}</code> — {r.reason}
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
      )}
    </section>
  );
}
