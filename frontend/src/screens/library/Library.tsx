// Library: every image, sound and video the user made or uploaded. A windowed gallery loaded as
// it scrolls, filters and full-text search, multi-select with bulk actions, a lightbox with the
// provenance, ZIP export followed live, and uploads (picker or drag-and-drop). New media from
// finished jobs appear without a reload.
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from 'react';
import type { MediaView } from '../../api/types';
import { isActive } from '../../api/types';
import { useJob, useLifecycle, useResource, useServices } from '../../app/hooks';
import { PageHeader } from '../../app/Shell';
import { JobProgress } from '../../components/jobs';
import { toast } from '../../components/toasts';
import { ConfirmButton, ErrorBanner, errorMessage, Field, Loading, Empty } from '../../components/ui';
import { useT, type MessageKey } from '../../i18n';
import { formatBytes } from '../../lib/format';
import { splitTags } from '../personas/spec';
import { Gallery } from './Gallery';
import { Lightbox } from './Lightbox';
import { chunks, click, NO_SELECTION, retain, selectAll, type Selection } from './selection';
import { uploadFiles } from './upload';
import { useMediaList } from './useMediaList';

const KINDS = ['image', 'audio', 'video'] as const;

interface Filters {
  type: string;
  favorite: boolean;
  tag: string;
  persona: string;
  from: string;
  to: string;
  sort: string;
}

const NO_FILTERS: Filters = { type: '', favorite: false, tag: '', persona: '', from: '', to: '', sort: 'newest' };
const SORTS = ['newest', 'oldest', 'largest'] as const;

/** A date input (local day) as the start of that day, or the start of the next one for `to`. */
function dayBound(day: string, end: boolean): string | undefined {
  if (!day) return undefined;
  const d = new Date(`${day}T00:00:00`);
  if (Number.isNaN(d.getTime())) return undefined;
  if (end) d.setDate(d.getDate() + 1);
  return d.toISOString();
}

export function Library() {
  const { t, lang } = useT();
  const { api, session, jobs } = useServices();
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [searchText, setSearchText] = useState('');
  const [q, setQ] = useState('');
  useEffect(() => {
    const id = setTimeout(() => setQ(searchText.trim()), 300);
    return () => clearTimeout(id);
  }, [searchText]);

  const query = useMemo(
    () => ({
      type: filters.type || undefined,
      favorite: filters.favorite ? true : undefined,
      tags: filters.tag.trim() || undefined,
      persona_id: filters.persona || undefined,
      from: dayBound(filters.from, false),
      to: dayBound(filters.to, true),
      q: q || undefined,
      sort: filters.sort === 'newest' ? undefined : filters.sort,
    }),
    [filters, q],
  );
  const list = useMediaList(api, query);
  const count = list.total ?? 0;
  const personas = useResource((signal) => api.get('/api/personas', { query: { limit: 100 }, signal }), [api]);
  const stats = useResource((signal) => api.get('/api/media/stats', { signal }), [api]);

  const [selection, setSelection] = useState<Selection>(NO_SELECTION);
  const [open, setOpen] = useState<number | null>(null);
  const [exportJob, setExportJob] = useState<string | null>(null);

  // Selection is per filter: a new filter starts with none.
  const key = JSON.stringify(query);
  const [selKey, setSelKey] = useState(key);
  if (selKey !== key) {
    setSelKey(key);
    setSelection(NO_SELECTION);
    setOpen(null);
  }

  const refresh = useCallback(() => {
    list.reload();
    stats.reload();
  }, [list, stats]);
  useLifecycle((what) => {
    if (what === 'finished' || what === 'resync') refresh();
  });

  const idAt = (i: number) => list.itemAt(i)?.id;
  const setFilter = <K extends keyof Filters>(k: K, v: Filters[K]) => setFilters((f) => ({ ...f, [k]: v }));

  const toggleFavorite = async (m: MediaView) => {
    try {
      list.update(await api.patch('/api/media/{id}', { path: { id: m.id }, body: { favorite: !m.favorite } }));
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };

  const ids = [...selection.ids];
  const [bulkTag, setBulkTag] = useState('');
  const [bulkBusy, setBulkBusy] = useState(false);
  const [bulkError, setBulkError] = useState<string | null>(null);
  const bulk = async (action: 'tag' | 'untag' | 'favorite' | 'unfavorite' | 'delete') => {
    setBulkError(null);
    const tags = splitTags(bulkTag);
    if ((action === 'tag' || action === 'untag') && tags.length === 0) {
      setBulkError(t('library.err.tag'));
      document.getElementById('bulk-tag')?.focus();
      return;
    }
    setBulkBusy(true);
    let ok = 0;
    let failed = 0;
    const done = new Set<string>();
    try {
      for (const part of chunks(ids)) {
        const res = await api.post('/api/media/bulk', { body: { action, ids: part, ...(tags.length && (action === 'tag' || action === 'untag') ? { tags } : {}) } });
        ok += res.succeeded;
        failed += res.failed;
        for (const r of res.results) if (r.ok) done.add(r.id);
      }
      toast(t(`library.bulk_done.${action}` as MessageKey, { n: ok }) + (failed ? ` ${t('library.bulk_failed', { n: failed })}` : ''), failed ? 'error' : 'success');
      if (action === 'delete') setSelection((s) => retain(s, (id) => !done.has(id)));
      if (action === 'tag' || action === 'untag') setBulkTag('');
    } catch (err) {
      setBulkError(errorMessage(err, t('error.generic')));
    } finally {
      setBulkBusy(false);
      refresh();
    }
  };

  const startExport = async () => {
    try {
      const res = await api.post('/api/media/export', { body: { ids } });
      jobs.upsert(...res.jobs);
      setExportJob(res.job_ids[0] ?? null);
      toast(t('library.export_queued', { n: ids.length }), 'success');
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };

  // Uploads: picker or drop anywhere on the gallery.
  const fileInput = useRef<HTMLInputElement>(null);
  const [uploadTags, setUploadTags] = useState('');
  const [uploadError, setUploadError] = useState<unknown>(null);
  const [uploading, setUploading] = useState(false);
  const [dragging, setDragging] = useState(false);
  const upload = async (files: File[]) => {
    if (!files.length) return;
    setUploading(true);
    setUploadError(null);
    try {
      const items = await uploadFiles(files, uploadTags, await session.token());
      toast(t('library.uploaded_n', { n: items.length }), 'success');
      refresh();
    } catch (err) {
      setUploadError(err);
    } finally {
      setUploading(false);
      if (fileInput.current) fileInput.current.value = '';
    }
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    void upload([...e.dataTransfer.files]);
  };

  const personaItems = personas.data?.items ?? [];
  const s = stats.data;
  return (
    <>
      <PageHeader
        title={t('library.title')}
        subtitle={s ? t('library.stats', { n: s.total, size: formatBytes(s.total_bytes, lang), fav: s.favorites }) : t('library.subtitle')}
      />
      <div className="library">
        <section className="panel library-filters" aria-labelledby="library-filters-title">
          <h2 id="library-filters-title" className="sr-only">
            {t('library.filters')}
          </h2>
          <div className="toolbar">
            <label className="sr-only" htmlFor="library-search">
              {t('library.search')}
            </label>
            <input id="library-search" type="search" value={searchText} placeholder={t('library.search')} onChange={(e) => setSearchText(e.target.value)} />
          </div>
          <div className="chips" role="group" aria-label={t('library.kind')}>
            {['', ...KINDS].map((k) => (
              <button key={k || 'all'} type="button" className={`chip${filters.type === k ? ' chip-on' : ''}`} aria-pressed={filters.type === k} onClick={() => setFilter('type', k)}>
                {t(`library.kind.${k || 'all'}` as MessageKey)}
              </button>
            ))}
            <button type="button" className={`chip${filters.favorite ? ' chip-on' : ''}`} aria-pressed={filters.favorite} onClick={() => setFilter('favorite', !filters.favorite)}>
              ★ {t('library.favorites')}
            </button>
          </div>
          <div className="filter-row">
            <Field id="filter-tag" label={t('library.tag')}>
              <input id="filter-tag" value={filters.tag} onChange={(e) => setFilter('tag', e.target.value)} />
            </Field>
            <Field id="filter-persona" label={t('gen.persona')}>
              <select id="filter-persona" value={filters.persona} onChange={(e) => setFilter('persona', e.target.value)}>
                <option value="">{t('library.any_persona')}</option>
                {personaItems.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.spec.name}
                  </option>
                ))}
              </select>
            </Field>
            <Field id="filter-from" label={t('library.from')}>
              <input id="filter-from" type="date" value={filters.from} onChange={(e) => setFilter('from', e.target.value)} />
            </Field>
            <Field id="filter-to" label={t('library.to')}>
              <input id="filter-to" type="date" value={filters.to} onChange={(e) => setFilter('to', e.target.value)} />
            </Field>
            <Field id="filter-sort" label={t('library.sort')}>
              <select id="filter-sort" value={filters.sort} onChange={(e) => setFilter('sort', e.target.value)}>
                {SORTS.map((k) => (
                  <option key={k} value={k}>
                    {t(`library.sort.${k}`)}
                  </option>
                ))}
              </select>
            </Field>
            {(JSON.stringify(filters) !== JSON.stringify(NO_FILTERS) || searchText) && (
              <button
                type="button"
                className="btn btn-small btn-ghost"
                onClick={() => {
                  setFilters(NO_FILTERS);
                  setSearchText('');
                }}
              >
                {t('library.reset')}
              </button>
            )}
          </div>
        </section>

        <section
          className={`panel library-main${dragging ? ' dropping' : ''}`}
          aria-labelledby="library-gallery-title"
          onDragOver={(e) => {
            if ([...e.dataTransfer.types].includes('Files')) {
              e.preventDefault();
              setDragging(true);
            }
          }}
          onDragLeave={(e) => {
            if (e.currentTarget === e.target) setDragging(false);
          }}
          onDrop={onDrop}
        >
          <div className="section-head library-head">
            {/* No count until the first page answers: "0 items" while loading would be a lie. */}
            <h2 id="library-gallery-title">{list.total === null ? t('state.loading') : t('library.count', { n: count })}</h2>
            <div className="inline upload">
              <label className="sr-only" htmlFor="upload-tags">
                {t('library.upload_tags')}
              </label>
              <input id="upload-tags" value={uploadTags} placeholder={t('library.upload_tags_short')} onChange={(e) => setUploadTags(e.target.value)} />
              <input
                ref={fileInput}
                id="upload-input"
                className="sr-only"
                type="file"
                multiple
                accept="image/*,audio/*,video/*"
                tabIndex={-1}
                aria-hidden="true"
                onChange={(e) => void upload([...(e.target.files ?? [])])}
              />
              <button type="button" className="btn btn-small" disabled={uploading} onClick={() => fileInput.current?.click()}>
                {uploading ? t('state.working') : t('library.upload')}
              </button>
            </div>
          </div>
          <p className="hint">{t('library.drop_hint')}</p>
          <ErrorBanner error={uploadError} title={t('library.upload_failed')} />

          <div className="bulk-bar" role="region" aria-label={t('library.selection')}>
            <span className="bulk-count" role="status">
              {t('library.selected', { n: selection.ids.size })}
            </span>
            <button type="button" className="btn btn-small" disabled={!count} onClick={() => setSelection(selectAll(list.loaded().map((m) => m.id)))}>
              {t('library.select_all')}
            </button>
            {selection.ids.size > 0 && (
              <>
                <button type="button" className="btn btn-small btn-ghost" onClick={() => setSelection(NO_SELECTION)}>
                  {t('library.clear')}
                </button>
                <div className={`bulk-tag${bulkError ? ' field-invalid' : ''}`}>
                  <label className="sr-only" htmlFor="bulk-tag">
                    {t('library.bulk_tag')}
                  </label>
                  <input
                    id="bulk-tag"
                    value={bulkTag}
                    placeholder={t('library.bulk_tag')}
                    aria-invalid={bulkError ? true : undefined}
                    aria-describedby={bulkError ? 'bulk-tag-error' : undefined}
                    onChange={(e) => setBulkTag(e.target.value)}
                  />
                  <button type="button" className="btn btn-small" disabled={bulkBusy} onClick={() => void bulk('tag')}>
                    {t('library.add_tag')}
                  </button>
                  <button type="button" className="btn btn-small" disabled={bulkBusy} onClick={() => void bulk('untag')}>
                    {t('library.remove_tag')}
                  </button>
                </div>
                <button type="button" className="btn btn-small" disabled={bulkBusy} onClick={() => void bulk('favorite')}>
                  ★ {t('library.bulk_favorite')}
                </button>
                <button type="button" className="btn btn-small" disabled={bulkBusy} onClick={() => void bulk('unfavorite')}>
                  ☆ {t('library.bulk_unfavorite')}
                </button>
                <button type="button" className="btn btn-small" disabled={bulkBusy} onClick={() => void startExport()}>
                  {t('library.export')}
                </button>
                <ConfirmButton label={t('library.delete')} confirmLabel={t('library.delete_confirm', { n: selection.ids.size })} disabled={bulkBusy} onConfirm={() => void bulk('delete')} />
              </>
            )}
            {bulkError && (
              <p className="field-error" id="bulk-tag-error" role="alert">
                {bulkError}
              </p>
            )}
          </div>
          {exportJob && <ExportStatus jobId={exportJob} onDismiss={() => setExportJob(null)} />}

          {list.error ? <ErrorBanner error={list.error} onRetry={list.reload} /> : null}
          {list.total === null && !list.error && <Loading />}
          {list.total === 0 && <Empty title={JSON.stringify(query) !== '{}' ? t('library.none_match') : t('library.empty')} />}
          <p id="gallery-keys" className="sr-only">
            {t('library.keys')}
          </p>
          {count > 0 && (
            <Gallery
              count={count}
              itemAt={list.itemAt}
              need={list.need}
              version={list.version}
              selected={selection.ids}
              onSelect={(i, shift) => setSelection((s) => click(s, i, idAt, shift))}
              onOpen={setOpen}
              onFavorite={(m) => void toggleFavorite(m)}
              onSelectAll={() => setSelection(selectAll(list.loaded().map((m) => m.id)))}
              onClear={() => setSelection(NO_SELECTION)}
            />
          )}
        </section>
      </div>
      {open !== null && count > 0 && (
        <Lightbox
          item={list.itemAt(open)}
          index={open}
          count={count}
          onMove={(i) => {
            list.need([Math.floor(i / 100)]);
            setOpen(i);
          }}
          onClose={() => setOpen(null)}
          onChanged={list.update}
          onDeleted={() => {
            setOpen(null);
            refresh();
          }}
        />
      )}
    </>
  );
}

function ExportStatus({ jobId, onDismiss }: { jobId: string; onDismiss: () => void }) {
  const { t, lang } = useT();
  const { api } = useServices();
  const job = useJob(jobId);
  const done = job?.status === 'succeeded';
  const ready = useResource(async (signal) => (done ? api.get('/api/media/export/{job_id}', { path: { job_id: jobId }, signal }) : null), [api, jobId, done]);
  return (
    <div className="export-status" role="status" aria-live="polite">
      <strong>{t('library.export_title')}</strong>
      {job && isActive(job.status) && <JobProgress job={job} />}
      {job?.error && <p className="field-error">{job.error.message}</p>}
      {ready.data && (
        <p>
          <a className="btn btn-small btn-primary" href={ready.data.download_url} download>
            {t('library.export_download', { n: ready.data.items, size: formatBytes(ready.data.bytes, lang) })}
          </a>
        </p>
      )}
      {ready.error ? <ErrorBanner error={ready.error} /> : null}
      <button type="button" className="btn btn-small btn-ghost" onClick={onDismiss}>
        {t('action.close')}
      </button>
    </div>
  );
}
