// The lightbox: one item large with its provenance (prompt, negative, seed, model, engine,
// parameters, job), tags and favourite, "Reuse settings", download and delete. ←/→ move through
// the loaded items, Escape closes, Tab stays inside, focus returns where it was.
import { useEffect, useId, useRef, useState, type KeyboardEvent } from 'react';
import type { MediaView } from '../../api/types';
import { useResource, useServices } from '../../app/hooks';
import { toast } from '../../components/toasts';
import { ConfirmButton, describedBy, ErrorBanner, errorMessage, Field, Loading } from '../../components/ui';
import { useT } from '../../i18n';
import { formatBytes, formatDateTime } from '../../lib/format';
import { Link, navigate } from '../../lib/router';
import { fromRequest, saveDraft } from '../generate/form';
import { splitTags } from '../personas/spec';

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), audio[controls], video[controls], [tabindex]:not([tabindex="-1"])';

export function Lightbox({
  item,
  index,
  count,
  onMove,
  onClose,
  onChanged,
  onDeleted,
}: {
  item: MediaView | undefined;
  index: number;
  count: number;
  onMove: (index: number) => void;
  onClose: () => void;
  onChanged: (item: MediaView) => void;
  onDeleted: (id: string) => void;
}) {
  const { t } = useT();
  const ref = useRef<HTMLDivElement>(null);
  const titleId = useId();
  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    ref.current?.querySelector<HTMLElement>('h2')?.focus();
    return () => previous?.focus?.();
  }, []);

  const onKeyDown = (e: KeyboardEvent) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    if (e.key === 'Escape') {
      e.stopPropagation();
      onClose();
    } else if (e.key === 'ArrowLeft' && !typing && index > 0) {
      e.preventDefault();
      onMove(index - 1);
    } else if (e.key === 'ArrowRight' && !typing && index < count - 1) {
      e.preventDefault();
      onMove(index + 1);
    } else if (e.key === 'Tab' && ref.current) {
      const items = [...ref.current.querySelectorAll<HTMLElement>(FOCUSABLE)];
      const first = items[0];
      const last = items[items.length - 1];
      if (!first || !last) return;
      if (e.shiftKey && (document.activeElement === first || !ref.current.contains(document.activeElement))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }
  };

  return (
    <div className="lightbox-backdrop" role="presentation" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div ref={ref} className="lightbox" role="dialog" aria-modal="true" aria-labelledby={titleId} onKeyDown={onKeyDown}>
        <div className="lightbox-head">
          <h2 id={titleId} tabIndex={-1}>
            {t('library.item_of', { n: index + 1, total: count })}
          </h2>
          <div className="lightbox-nav">
            <button type="button" className="btn btn-small" disabled={index <= 0} onClick={() => onMove(index - 1)} aria-label={t('library.previous')}>
              <span aria-hidden="true">←</span>
            </button>
            <button type="button" className="btn btn-small" disabled={index >= count - 1} onClick={() => onMove(index + 1)} aria-label={t('library.next')}>
              <span aria-hidden="true">→</span>
            </button>
            <button type="button" className="btn btn-ghost btn-icon" onClick={onClose} aria-label={t('action.close')}>
              <span aria-hidden="true">✕</span>
            </button>
          </div>
        </div>
        {item ? <Details key={item.id} summary={item} onChanged={onChanged} onDeleted={onDeleted} /> : <Loading />}
      </div>
    </div>
  );
}

function Details({ summary, onChanged, onDeleted }: { summary: MediaView; onChanged: (item: MediaView) => void; onDeleted: (id: string) => void }) {
  const { t, lang } = useT();
  const { api } = useServices();
  // The full item: provenance and a fresh signed URL.
  const full = useResource((signal) => api.get('/api/media/{id}', { path: { id: summary.id }, signal }), [api, summary.id]);
  const m = full.data ?? summary;
  const [tags, setTags] = useState(summary.tags.join(', '));
  const [tagError, setTagError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const patch = async (body: { tags?: string[]; favorite?: boolean }) => {
    setBusy(true);
    setTagError(null);
    try {
      const updated = await api.patch('/api/media/{id}', { path: { id: m.id }, body });
      full.setData(updated);
      onChanged(updated);
      setTags(updated.tags.join(', '));
      if (body.tags) toast(t('library.tags_saved'), 'success');
    } catch (err) {
      if (body.tags) setTagError(errorMessage(err, t('error.generic')));
      else toast(errorMessage(err, t('error.generic')), 'error');
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    try {
      await api.delete('/api/media/{id}', { path: { id: m.id } });
      toast(t('library.deleted', { n: 1 }), 'success');
      onDeleted(m.id);
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };
  const reuse = () => {
    saveDraft(fromRequest(m.parameters));
    navigate('/generate?reuse=1');
  };

  const src = m.thumb_768_url ?? m.file.url;
  const params = m.parameters && Object.keys(m.parameters).length ? m.parameters : null;
  return (
    <div className="lightbox-body">
      <div className="lightbox-media">
        {m.kind === 'audio' ? (
          // eslint-disable-next-line jsx-a11y/media-has-caption -- generated and uploaded media carry no caption track
          <audio controls src={m.file.url} />
        ) : m.kind === 'video' ? (
          // eslint-disable-next-line jsx-a11y/media-has-caption -- generated and uploaded media carry no caption track
          <video controls src={m.file.url} />
        ) : (
          <img src={src} alt={m.prompt ? m.prompt.slice(0, 200) : (m.original_name ?? t('library.kind.image'))} width={m.file.width ?? undefined} height={m.file.height ?? undefined} />
        )}
      </div>
      <div className="lightbox-side">
        <ErrorBanner error={full.error} onRetry={full.reload} />
        <div className="inline">
          <button type="button" className={`btn btn-small${m.favorite ? ' star-on' : ''}`} aria-pressed={m.favorite} disabled={busy} onClick={() => void patch({ favorite: !m.favorite })}>
            <span aria-hidden="true">{m.favorite ? '★' : '☆'}</span> {t('library.favorite')}
          </button>
          {params && m.kind === 'image' && (
            <button type="button" className="btn btn-small btn-primary" onClick={reuse}>
              {t('action.reuse')}
            </button>
          )}
          <a className="btn btn-small" href={m.file.url} download target="_blank" rel="noreferrer">
            {t('library.download')}
          </a>
          <ConfirmButton label={t('library.delete')} confirmLabel={t('library.delete_confirm_one')} onConfirm={() => void remove()} />
        </div>
        <h3 className="subhead">{t('library.provenance')}</h3>
        <dl className="kv provenance">
          {m.source === 'upload' ? (
            <>
              <dt>{t('library.source')}</dt>
              <dd>{t('library.uploaded', { name: m.original_name ?? '—' })}</dd>
            </>
          ) : null}
          <dt>{t('gen.prompt')}</dt>
          <dd>{m.prompt || '—'}</dd>
          <dt>{t('gen.negative')}</dt>
          <dd>{m.negative_prompt || '—'}</dd>
          <dt>{t('gen.seed')}</dt>
          <dd>{typeof m.seed === 'number' ? m.seed : '—'}</dd>
          <dt>{t('gen.model')}</dt>
          <dd>{m.model ?? '—'}</dd>
          <dt>{t('gen.engine')}</dt>
          <dd>{m.engine ?? '—'}</dd>
          {m.persona_id && (
            <>
              <dt>{t('gen.persona')}</dt>
              <dd>
                <Link to={`/personas?id=${m.persona_id}`}>{t('library.persona_link', { v: m.persona_version ?? 1 })}</Link>
              </dd>
            </>
          )}
          <dt>{t('library.file')}</dt>
          <dd>
            {m.file.width && m.file.height ? `${m.file.width}×${m.file.height} · ` : ''}
            {formatBytes(m.file.bytes, lang)} · {m.file.mime}
          </dd>
          <dt>{t('library.created')}</dt>
          <dd>{formatDateTime(m.created_at, lang)}</dd>
          {m.job_id && (
            <>
              <dt>{t('library.job')}</dt>
              <dd>
                <Link to={`/jobs?job=${m.job_id}`}>{t('library.open_job')}</Link>
              </dd>
            </>
          )}
        </dl>
        {params && (
          <details className="params-box">
            <summary>{t('library.parameters')}</summary>
            <pre className="params" tabIndex={0} aria-label={t('library.parameters')}>{JSON.stringify(params, null, 2)}</pre>
          </details>
        )}
        <form
          className="tag-form"
          onSubmit={(e) => {
            e.preventDefault();
            void patch({ tags: splitTags(tags) });
          }}
        >
          <Field id="lightbox-tags" label={t('library.tags')} error={tagError} hint={t('personas.tags_hint')}>
            <div className="inline">
              <input {...describedBy('lightbox-tags', tagError, 'hint')} value={tags} onChange={(e) => setTags(e.target.value)} />
              <button type="submit" className="btn btn-small" disabled={busy}>
                {t('library.save_tags')}
              </button>
            </div>
          </Field>
        </form>
      </div>
    </div>
  );
}
