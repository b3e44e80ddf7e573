import { ApiError } from '../api/client';
import { parseGenerationHealth, type SystemHealth } from '../api/types';
import { useInterval, useResource, useServices } from '../app/hooks';
import { PageHeader } from '../app/Shell';
import { Empty, ErrorBanner, Loading } from '../components/ui';
import { useT, type MessageKey } from '../i18n';
import { formatDuration, formatNumber, formatRelative } from '../lib/format';
import { engineLabel } from './generate/Generate';

const REFRESH_MS = 5000;

function Health({ status }: { status: string }) {
  const { t } = useT();
  const known = ['ok', 'degraded', 'down', 'not_configured', 'unavailable', 'ready', 'active'];
  const key = (known.includes(status) ? `health.${status}` : 'health.unknown') as MessageKey;
  const tone = status === 'ok' || status === 'ready' || status === 'active' ? 'ok' : status === 'not_configured' ? 'neutral' : status === 'degraded' ? 'warn' : 'bad';
  return <span className={`health health-${tone}`}>{t(key)}</span>;
}

function detailText(detail: unknown): string {
  if (!detail || typeof detail !== 'object') return '';
  return Object.entries(detail as Record<string, unknown>)
    .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v as string | number | boolean | null)}`)
    .join(' · ');
}

export function System() {
  const { t, lang } = useT();
  const { api } = useServices();
  // /api/system/health answers 503 with the same body when the database is down: show it.
  const sys = useResource<SystemHealth>(
    async (signal) => {
      try {
        return await api.get('/api/system/health', { signal });
      } catch (err) {
        if (err instanceof ApiError && err.status === 503) {
          const res = await fetch('/api/system/health', { signal });
          return (await res.json()) as SystemHealth;
        }
        throw err;
      }
    },
    [api],
  );
  const gen = useResource(async (signal) => parseGenerationHealth(await api.get('/api/generation/health', { signal })), [api]);
  useInterval(() => {
    sys.reload();
    gen.reload();
  }, REFRESH_MS);

  return (
    <>
      <PageHeader
        title={t('system.title')}
        subtitle={t('system.subtitle', { secs: REFRESH_MS / 1000 })}
        actions={
          <button type="button" className="btn btn-small" onClick={() => (sys.reload(), gen.reload())}>
            {t('action.refresh')}
          </button>
        }
      />
      <div className="system-grid">
        <section className="panel" aria-labelledby="sys-deps">
          <div className="section-head">
            <h2 id="sys-deps">{t('system.dependencies')}</h2>
            {sys.data && <Health status={sys.data.status} />}
          </div>
          {sys.error ? <ErrorBanner error={sys.error} onRetry={sys.reload} /> : null}
          {sys.loading && !sys.data && <Loading />}
          {sys.data && (
            <>
              <p className="muted">
                {t('system.version', { version: sys.data.version })} · {t('system.uptime', { uptime: formatDuration(sys.data.uptime_secs, lang) })}
              </p>
              <table className="table">
                <thead>
                  <tr>
                    <th scope="col">{t('system.dependency')}</th>
                    <th scope="col">{t('system.status')}</th>
                    <th scope="col">{t('system.latency')}</th>
                    <th scope="col">{t('system.detail')}</th>
                  </tr>
                </thead>
                <tbody>
                  {Object.entries(sys.data.dependencies).map(([name, dep]) => (
                    <tr key={name}>
                      <th scope="row" data-label={t('system.dependency')}>
                        {name}
                      </th>
                      <td data-label={t('system.status')}>
                        <Health status={dep.status} />
                      </td>
                      <td data-label={t('system.latency')}>{typeof dep.latency_ms === 'number' ? `${formatNumber(dep.latency_ms, lang, 2)} ms` : '—'}</td>
                      <td data-label={t('system.detail')} className="cell-wrap">
                        {dep.error ? <span className="field-error">{dep.error}</span> : detailText(dep.detail) || '—'}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </section>

        <section className="panel" aria-labelledby="sys-queue">
          <div className="section-head">
            <h2 id="sys-queue">{t('system.queue')}</h2>
            {gen.data && <Health status={gen.data.status} />}
          </div>
          {gen.error ? <ErrorBanner error={gen.error} onRetry={gen.reload} /> : null}
          {gen.loading && !gen.data && <Loading />}
          {gen.data && (
            <dl className="stat-cards">
              <div className="stat">
                <dt>{t('gen.priority.interactive')}</dt>
                <dd>{gen.data.queue.interactive}</dd>
              </div>
              <div className="stat">
                <dt>{t('gen.priority.batch')}</dt>
                <dd>{gen.data.queue.batch}</dd>
              </div>
              <div className="stat">
                <dt>{t('status.running')}</dt>
                <dd>{gen.data.queue.running}</dd>
              </div>
              <div className="stat">
                <dt>{t('system.oldest')}</dt>
                <dd>{gen.data.queue.oldest_queued_age_secs === null ? '—' : formatDuration(gen.data.queue.oldest_queued_age_secs, lang)}</dd>
              </div>
            </dl>
          )}
        </section>

        <section className="panel system-wide" aria-labelledby="sys-engines">
          <h2 id="sys-engines">{t('system.engines')}</h2>
          {gen.data && gen.data.engines.length === 0 && <Empty title={t('system.no_engines')} />}
          <ul className="engine-cards">
            {gen.data?.engines.map((e) => (
              <li key={e.name} className="engine-card">
                <div className="section-head">
                  <h3>{engineLabel(e, t)}</h3>
                  <Health status={e.state} />
                </div>
                <p className="muted">{t('system.engine_workers', { n: e.workers })}</p>
                <ul className="model-list">
                  {e.models.map((m) => (
                    <li key={m.name}>
                      <code>{m.name}</code> — {m.description}
                    </li>
                  ))}
                </ul>
                <p className="caps">
                  {t('system.caps', {
                    min: e.capabilities.min_size,
                    max: e.capabilities.max_size,
                    steps: e.capabilities.max_steps,
                    images: e.capabilities.max_images,
                  })}
                  <br />
                  {t('system.schedulers', { list: e.capabilities.schedulers.join(', ') })} ·{' '}
                  {e.capabilities.supports_loras ? t('system.loras_yes') : t('system.loras_no')}
                </p>
              </li>
            ))}
          </ul>
        </section>

        <section className="panel system-wide" aria-labelledby="sys-workers">
          <h2 id="sys-workers">{t('system.workers')}</h2>
          {gen.data && gen.data.workers.length === 0 && <Empty title={t('system.no_workers')}>{t('system.no_workers_hint')}</Empty>}
          {gen.data && gen.data.workers.length > 0 && (
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">{t('system.worker')}</th>
                  <th scope="col">{t('system.status')}</th>
                  <th scope="col">{t('system.heartbeat')}</th>
                  <th scope="col">{t('system.jobs_running')}</th>
                  <th scope="col">{t('system.engines')}</th>
                  <th scope="col">{t('system.started')}</th>
                </tr>
              </thead>
              <tbody>
                {gen.data.workers.map((w) => (
                  <tr key={w.id}>
                    <th scope="row" data-label={t('system.worker')}>
                      <span>
                        {w.name} <span className="muted">@ {w.host}</span>
                      </span>
                    </th>
                    <td data-label={t('system.status')}>
                      <Health status={w.status} />
                    </td>
                    <td data-label={t('system.heartbeat')}>
                      {w.heartbeat_age_secs === null ? '—' : t('system.ago', { secs: formatNumber(w.heartbeat_age_secs, lang, 1) })}
                    </td>
                    <td data-label={t('system.jobs_running')}>
                      {w.current_jobs.length} / {w.concurrency}
                    </td>
                    <td data-label={t('system.engines')}>{w.engines.join(', ')}</td>
                    <td data-label={t('system.started')}>{formatRelative(w.started_at, lang)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </div>
    </>
  );
}
