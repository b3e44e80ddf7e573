// Video Studio: the user's timelines (create, rename, delete, open) and the editor of the one
// opened (`?id=`). Loaded lazily: the editor is the largest screen and most visits never open it.
import { useState, type FormEvent } from 'react';
import { ApiError } from '../../api/client';
import type { components } from '../../api/schema';
import { useResource, useServices } from '../../app/hooks';
import { PageHeader } from '../../app/Shell';
import { toast } from '../../components/toasts';
import { ConfirmButton, describedBy, ErrorBanner, errorMessage, Field, ListStates, Loading } from '../../components/ui';
import { useT } from '../../i18n';
import { formatDateTime } from '../../lib/format';
import type { Lang } from '../../lib/prefs';
import { setQuery, useLocation } from '../../lib/router';
import { Editor } from './Editor';
import { TalkingHead } from './TalkingHead';
import { emptySpec, formatTime } from './timeline';

export type TimelineView = components['schemas']['TimelineView'];

export function Video() {
  const { t, lang } = useT();
  const { api } = useServices();
  const { search } = useLocation();
  const selected = search.get('id');
  const list = useResource((signal) => api.get('/api/video/timelines', { query: { limit: 200 }, signal }), [api]);
  const items = list.data?.items ?? [];

  return (
    <>
      <PageHeader title={t('video.title')} subtitle={t('video.subtitle')} />
      <div className="video-grid">
        <section className="panel video-list-panel" aria-labelledby="video-list-title">
          <h2 id="video-list-title">{t('video.list', { n: list.data?.total ?? 0 })}</h2>
          <CreateForm
            onCreated={(tl) => {
              list.reload();
              setQuery({ id: tl.id });
            }}
          />
          <ListStates resource={list} count={items.length} emptyTitle={t('video.empty')} />
          <ul className="video-list">
            {items.map((tl) => (
              <TimelineItem key={tl.id} item={tl} open={tl.id === selected} lang={lang} onChanged={list.reload} />
            ))}
          </ul>
        </section>
        {selected ? (
          <Detail key={selected} id={selected} onSaved={list.reload} />
        ) : (
          <div>
            <section className="panel video-pick">
              <p className="muted">{t('video.pick')}</p>
            </section>
            <TalkingHead />
          </div>
        )}
      </div>
    </>
  );
}

function CreateForm({ onCreated }: { onCreated: (tl: TimelineView) => void }) {
  const { t } = useT();
  const { api } = useServices();
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) {
      setError(t('video.name_required'));
      document.getElementById('new-timeline-name')?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const created = await api.post('/api/video/timelines', { body: emptySpec(name.trim()) });
      toast(t('video.created', { name: created.name }), 'success');
      setName('');
      onCreated(created);
    } catch (err) {
      setError(errorMessage(err, t('error.generic')));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="video-create" onSubmit={(e) => void submit(e)} noValidate aria-label={t('video.new')}>
      <Field id="new-timeline-name" label={t('video.new_name')} error={error}>
        <div className="inline">
          <input {...describedBy('new-timeline-name', error)} value={name} maxLength={200} onChange={(e) => setName(e.target.value)} />
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {t('video.create')}
          </button>
        </div>
      </Field>
    </form>
  );
}

function TimelineItem({ item, open, lang, onChanged }: { item: TimelineView; open: boolean; lang: Lang; onChanged: () => void }) {
  const { t } = useT();
  const { api } = useServices();
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(item.name);
  const [error, setError] = useState<string | null>(null);
  const inputId = `rename-${item.id}`;

  const rename = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api.put('/api/video/timelines/{id}', { path: { id: item.id }, body: { ...item.spec, name: name.trim() } });
      setRenaming(false);
      onChanged();
    } catch (err) {
      setError(errorMessage(err, t('error.generic')));
    }
  };
  const remove = async () => {
    try {
      await api.delete('/api/video/timelines/{id}', { path: { id: item.id } });
      toast(t('video.deleted', { name: item.name }), 'success');
      if (open) setQuery({ id: null });
      onChanged();
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };

  return (
    <li className={`video-item${open ? ' video-item-on' : ''}`}>
      {renaming ? (
        <form className="video-rename" onSubmit={(e) => void rename(e)} noValidate>
          <Field id={inputId} label={t('video.rename_label', { name: item.name })} error={error}>
            <input {...describedBy(inputId, error)} value={name} maxLength={200} autoFocus onChange={(e) => setName(e.target.value)} onKeyDown={(e) => e.key === 'Escape' && setRenaming(false)} />
          </Field>
          <div className="inline">
            <button type="submit" className="btn btn-small btn-primary">
              {t('action.save')}
            </button>
            <button type="button" className="btn btn-small btn-ghost" onClick={() => setRenaming(false)}>
              {t('video.cancel')}
            </button>
          </div>
        </form>
      ) : (
        <>
          <button type="button" className="video-open" aria-current={open ? 'true' : undefined} onClick={() => setQuery({ id: item.id })}>
            <span className="model-name">{item.name}</span>
            <span className="hint">
              {formatTime(item.duration_secs)} · {t('video.revision', { v: item.revision })} · {formatDateTime(item.updated_at, lang)}
            </span>
          </button>
          <div className="video-item-actions">
            <button
              type="button"
              className="btn btn-small btn-ghost"
              aria-label={t('video.rename_named', { name: item.name })}
              onClick={() => {
                // The open timeline is renamed in the editor, where its unsaved edits live.
                if (open) document.getElementById('tl-name')?.focus();
                else {
                  setName(item.name);
                  setRenaming(true);
                }
              }}
            >
              {t('video.rename')}
            </button>
            <ConfirmButton label={t('video.delete')} confirmLabel={t('video.delete_confirm')} ariaLabel={t('video.delete_named', { name: item.name })} onConfirm={() => void remove()} />
          </div>
        </>
      )}
    </li>
  );
}

function Detail({ id, onSaved }: { id: string; onSaved: () => void }) {
  const { t } = useT();
  const { api } = useServices();
  const timeline = useResource((signal) => api.get('/api/video/timelines/{id}', { path: { id }, signal }), [api, id]);
  if (timeline.error) {
    const gone = timeline.error instanceof ApiError && timeline.error.status === 404;
    return (
      <section className="panel">
        <ErrorBanner error={timeline.error} onRetry={gone ? undefined : timeline.reload} />
        {gone && (
          <button type="button" className="btn btn-small" onClick={() => setQuery({ id: null })}>
            {t('video.back')}
          </button>
        )}
      </section>
    );
  }
  if (!timeline.data) return <Loading />;
  return (
    <Editor
      key={`${timeline.data.id}`}
      initial={timeline.data}
      onSaved={(saved) => {
        timeline.setData(saved);
        onSaved();
      }}
    />
  );
}
