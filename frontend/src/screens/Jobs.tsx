import { useEffect, useRef, useState } from 'react';
import { JOB_STATUSES, isActive, type JobStatus, type JobView } from '../api/types';
import { useInterval, useJob, useJobs, useLifecycle, useResource, useServices, useSession } from '../app/hooks';
import { PageHeader } from '../app/Shell';
import { JobProgress, OutputsGrid, useJobActions } from '../components/jobs';
import { CopyButton, Drawer, Empty, ErrorBanner, Loading, StatusBadge } from '../components/ui';
import { useT, type MessageKey } from '../i18n';
import { formatDateTime, formatDuration, formatNumber, formatRelative } from '../lib/format';
import { Link, setQuery, useLocation } from '../lib/router';

const PAGE = 25;

/** `YYYY-MM-DD` (local day) → RFC 3339 instant at that local midnight, plus `days`. */
export function dayToInstant(day: string, days = 0): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return undefined;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + days);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function Jobs() {
  const { t, lang } = useT();
  const { api, jobs } = useServices();
  const session = useSession();
  const isAdmin = session?.user.role === 'admin';
  const { search } = useLocation();
  const status = (JOB_STATUSES as string[]).includes(search.get('status') ?? '') ? (search.get('status') as JobStatus) : undefined;
  const q = search.get('q') ?? '';
  const sort = search.get('sort') === 'oldest' ? 'oldest' : 'newest';
  const from = search.get('from') ?? '';
  const to = search.get('to') ?? '';
  const all = isAdmin && search.get('all') === '1';
  const offset = Math.max(0, Number(search.get('offset') ?? 0) || 0);
  const openId = search.get('job');

  // The box follows the URL (back/forward, "clear filters") and the URL follows the box, debounced.
  const [searchText, setSearchText] = useState(q);
  const [urlQ, setUrlQ] = useState(q);
  if (urlQ !== q) {
    setUrlQ(q);
    setSearchText(q);
  }
  useEffect(() => {
    if (searchText === q) return;
    const id = setTimeout(() => setQuery({ q: searchText, offset: null }), 350);
    return () => clearTimeout(id);
  }, [searchText, q]);

  const list = useResource(
    async (signal) => {
      const page = await api.get('/api/jobs', {
        query: { status, search: q || undefined, sort, from: dayToInstant(from), to: dayToInstant(to, 1), limit: PAGE, offset, all: all || undefined },
        signal,
      });
      jobs.upsert(...page.items);
      return page;
    },
    [api, jobs, status, q, sort, from, to, offset, all],
  );
  const stats = useResource((signal) => api.get('/api/jobs/stats', { query: { all: all || undefined }, signal }), [api, all]);
  const rows = useJobs(list.data?.items.map((j) => j.id) ?? []);

  // New jobs, finished jobs and reconnects change the list and the counts: reload (debounced).
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const reloadSoon = () => {
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      list.reload();
      stats.reload();
    }, 400);
  };
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
  }, []);
  useLifecycle((kind) => {
    if (kind === 'queued' || kind === 'finished' || kind === 'resync') reloadSoon();
  });
  // Other users' jobs send us no events: poll while looking at everyone's.
  useInterval(reloadSoon, all ? 3000 : null);

  const { busy, cancel, retry } = useJobActions();
  const total = list.data?.total ?? 0;
  const filtered = !!(status || q || from || to);

  return (
    <>
      <PageHeader
        title={t('jobs.title')}
        subtitle={t('jobs.subtitle')}
        actions={
          <button type="button" className="btn btn-small" onClick={() => (list.reload(), stats.reload())}>
            {t('action.refresh')}
          </button>
        }
      />
      <section aria-label={t('jobs.stats')} className="stats">
        {stats.error ? <ErrorBanner error={stats.error} onRetry={stats.reload} /> : null}
        {stats.data && (
          <dl className="stat-cards">
            <div className="stat">
              <dt>{t('jobs.total')}</dt>
              <dd>{formatNumber(stats.data.total, lang)}</dd>
            </div>
            {(['running', 'queued', 'succeeded', 'failed', 'cancelled'] as const).map((s) => (
              <div className="stat" key={s}>
                <dt>{t(`status.${s}` as MessageKey)}</dt>
                <dd>{formatNumber(stats.data?.by_status[s] ?? 0, lang)}</dd>
              </div>
            ))}
            <div className="stat">
              <dt>{t('jobs.avg_run')}</dt>
              <dd>{typeof stats.data.average_run_secs === 'number' ? formatDuration(stats.data.average_run_secs, lang) : '—'}</dd>
            </div>
          </dl>
        )}
      </section>

      <form className="filters panel" role="search" aria-label={t('jobs.filters')} onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="jobs-search">{t('jobs.search')}</label>
          <input id="jobs-search" type="search" value={searchText} maxLength={200} onChange={(e) => setSearchText(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="jobs-status">{t('jobs.status')}</label>
          <select id="jobs-status" value={status ?? ''} onChange={(e) => setQuery({ status: e.target.value, offset: null })}>
            <option value="">{t('jobs.any_status')}</option>
            {JOB_STATUSES.map((s) => (
              <option key={s} value={s}>
                {t(`status.${s}` as MessageKey)}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="jobs-sort">{t('jobs.sort')}</label>
          <select id="jobs-sort" value={sort} onChange={(e) => setQuery({ sort: e.target.value === 'oldest' ? 'oldest' : null, offset: null })}>
            <option value="newest">{t('jobs.newest')}</option>
            <option value="oldest">{t('jobs.oldest')}</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="jobs-from">{t('jobs.from')}</label>
          <input id="jobs-from" type="date" value={from} onChange={(e) => setQuery({ from: e.target.value, offset: null })} />
        </div>
        <div className="field">
          <label htmlFor="jobs-to">{t('jobs.to')}</label>
          <input id="jobs-to" type="date" value={to} onChange={(e) => setQuery({ to: e.target.value, offset: null })} />
        </div>
        {isAdmin && (
          <label className="check filters-check">
            <input type="checkbox" checked={all} onChange={(e) => setQuery({ all: e.target.checked ? '1' : null, offset: null })} />
            {t('jobs.all_users')}
          </label>
        )}
        {filtered && (
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setQuery({ status: null, q: null, from: null, to: null, offset: null })}>
            {t('jobs.clear_filters')}
          </button>
        )}
      </form>

      <section aria-labelledby="jobs-table-title" className="panel">
        <h2 id="jobs-table-title" className="sr-only">
          {t('jobs.list')}
        </h2>
        {list.error ? <ErrorBanner error={list.error} onRetry={list.reload} /> : null}
        {list.loading && !list.data && <Loading />}
        {list.data && rows.length === 0 && (
          <Empty title={filtered ? t('jobs.empty_filtered') : t('jobs.empty')}>
            {!filtered && (
              <p>
                {t('jobs.empty_hint')}{' '}
                <Link to="/generate" className="btn btn-small btn-primary">
                  {t('nav.generate')}
                </Link>
              </p>
            )}
          </Empty>
        )}
        {rows.length > 0 && (
          <table className="table jobs-table">
            <thead>
              <tr>
                <th scope="col">{t('jobs.col.prompt')}</th>
                <th scope="col">{t('jobs.col.status')}</th>
                <th scope="col">{t('jobs.col.progress')}</th>
                <th scope="col">{t('jobs.col.engine')}</th>
                <th scope="col">{t('jobs.col.queued')}</th>
                <th scope="col">
                  <span className="sr-only">{t('jobs.col.actions')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((job) => (
                <tr key={job.id} className={job.id === openId ? 'selected' : undefined}>
                  <td data-label={t('jobs.col.prompt')} className="cell-prompt">
                    <button type="button" className="btn-link-plain" onClick={() => setQuery({ job: job.id }, { replace: false })}>
                      {job.prompt || t('jobs.no_prompt')}
                    </button>
                  </td>
                  <td data-label={t('jobs.col.status')}>
                    <StatusBadge status={job.status} />
                  </td>
                  <td data-label={t('jobs.col.progress')} className="cell-progress">
                    <JobProgress job={job} />
                  </td>
                  <td data-label={t('jobs.col.engine')}>
                    <span>
                      {job.engine}
                      <span className="muted"> · {job.model}</span>
                    </span>
                  </td>
                  <td data-label={t('jobs.col.queued')}>
                    <time dateTime={job.queued_at} title={formatDateTime(job.queued_at, lang)}>
                      {formatRelative(job.queued_at, lang)}
                    </time>
                  </td>
                  <td className="cell-actions">
                    {isActive(job.status) && job.owner_id === session?.user.id && (
                      <button
                        type="button"
                        className="btn btn-small btn-danger"
                        disabled={busy === job.id || job.cancel_requested}
                        aria-label={t('jobs.cancel_label', { prompt: job.prompt.slice(0, 40) })}
                        onClick={() => void cancel(job)}
                      >
                        {t('action.cancel_job')}
                      </button>
                    )}
                    {(job.status === 'failed' || job.status === 'cancelled') && job.owner_id === session?.user.id && (
                      <button
                        type="button"
                        className="btn btn-small"
                        disabled={busy === job.id}
                        aria-label={t('jobs.retry_label', { prompt: job.prompt.slice(0, 40) })}
                        onClick={() => void retry(job)}
                      >
                        {t('action.retry')}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {list.data && total > 0 && (
          <nav className="pager" aria-label={t('jobs.pages')}>
            <button type="button" className="btn btn-small" disabled={offset === 0} onClick={() => setQuery({ offset: String(Math.max(0, offset - PAGE)) || null })}>
              {t('action.previous')}
            </button>
            <span>{t('jobs.range', { from: offset + 1, to: Math.min(total, offset + PAGE), total })}</span>
            <button type="button" className="btn btn-small" disabled={offset + PAGE >= total} onClick={() => setQuery({ offset: String(offset + PAGE) })}>
              {t('action.next')}
            </button>
          </nav>
        )}
      </section>
      {openId && <JobDrawer key={openId} id={openId} onClose={() => setQuery({ job: null }, { replace: false })} />}
    </>
  );
}

function JobDrawer({ id, onClose }: { id: string; onClose: () => void }) {
  const { t, lang } = useT();
  const { loadJob } = useServices();
  const session = useSession();
  const job = useJob(id);
  const [error, setError] = useState<unknown>(null);
  const [missing, setMissing] = useState(false);
  const { busy, cancel, retry, reuse } = useJobActions();

  useEffect(() => {
    loadJob(id).then(
      (j) => setMissing(j === null),
      (e: unknown) => setError(e),
    );
  }, [id, loadJob]);

  const own = job?.owner_id === session?.user.id;
  return (
    <Drawer title={t('jobs.details')} onClose={onClose} wide>
      {error ? <ErrorBanner error={error} /> : null}
      {missing && <Empty title={t('jobs.not_found')} />}
      {!job && !error && !missing && <Loading />}
      {job && <JobDetails job={job} lang={lang} />}
      {job && (
        <div className="drawer-actions">
          {isActive(job.status) && own && (
            <button type="button" className="btn btn-danger" disabled={busy === job.id || job.cancel_requested} onClick={() => void cancel(job)}>
              {t('action.cancel_job')}
            </button>
          )}
          {(job.status === 'failed' || job.status === 'cancelled') && own && (
            <button
              type="button"
              className="btn"
              disabled={busy === job.id}
              onClick={() => void retry(job).then((newId) => newId && setQuery({ job: newId }, { replace: false }))}
            >
              {t('action.retry')}
            </button>
          )}
          <button type="button" className="btn btn-ghost" onClick={() => reuse(job)}>
            {t('action.reuse')}
          </button>
        </div>
      )}
    </Drawer>
  );
}

function JobDetails({ job, lang }: { job: JobView; lang: 'en' | 'fr' }) {
  const { t } = useT();
  const requestText = JSON.stringify(job.request, null, 2);
  return (
    <>
      <p className="job-details-prompt">{job.prompt}</p>
      <div className="job-details-status">
        <StatusBadge status={job.status} />
        {job.status !== 'succeeded' && <JobProgress job={job} />}
      </div>
      {job.error && (
        <div className="banner banner-error" role="note">
          <strong>{job.error.code}</strong> — {job.error.message}
        </div>
      )}
      <OutputsGrid job={job} />
      <dl className="details">
        <dt>{t('jobs.field.id')}</dt>
        <dd>
          <code>{job.id}</code>
        </dd>
        <dt>{t('jobs.field.engine')}</dt>
        <dd>
          {job.engine} · {job.model}
        </dd>
        <dt>{t('gen.priority')}</dt>
        <dd>{t(`gen.priority.${job.priority}` as MessageKey)}</dd>
        <dt>{t('jobs.field.attempt')}</dt>
        <dd>
          {job.attempt} / {job.max_attempts}
        </dd>
        <dt>{t('jobs.field.queued')}</dt>
        <dd>{formatDateTime(job.queued_at, lang)}</dd>
        <dt>{t('jobs.field.started')}</dt>
        <dd>{formatDateTime(job.started_at, lang)}</dd>
        <dt>{t('jobs.field.finished')}</dt>
        <dd>{formatDateTime(job.finished_at, lang)}</dd>
        {job.negative_prompt && (
          <>
            <dt>{t('gen.negative')}</dt>
            <dd>{job.negative_prompt}</dd>
          </>
        )}
        {job.retry_of && (
          <>
            <dt>{t('jobs.field.retry_of')}</dt>
            <dd>
              <button type="button" className="btn-link-plain" onClick={() => setQuery({ job: job.retry_of ?? null }, { replace: false })}>
                <code>{job.retry_of}</code>
              </button>
            </dd>
          </>
        )}
        {job.batch_id && (
          <>
            <dt>{t('jobs.field.batch')}</dt>
            <dd>
              <code>{job.batch_id}</code>
            </dd>
          </>
        )}
      </dl>
      <div className="section-head">
        <h3>{t('jobs.request')}</h3>
        <CopyButton text={requestText} label={t('jobs.copy_request')} />
      </div>
      <pre className="code" tabIndex={0} aria-label={t('jobs.request')}>
        {requestText}
      </pre>
    </>
  );
}
