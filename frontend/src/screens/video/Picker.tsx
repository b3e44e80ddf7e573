// Choosing a library item for a track: the user's media of the track's kind, searchable, in a
// modal drawer (keyboard: Tab through the items, Enter adds, Escape closes).
import { useState } from 'react';
import type { MediaView } from '../../api/types';
import { useResource, useServices } from '../../app/hooks';
import { Drawer, ListStates } from '../../components/ui';
import { useT } from '../../i18n';
import { Link } from '../../lib/router';
import { mediaLabel } from './media';
import { formatTime } from './timeline';

export function MediaPicker({ kind, title, onPick, onClose }: { kind: 'image' | 'video' | 'audio'; title: string; onPick: (item: MediaView) => void; onClose: () => void }) {
  const { t } = useT();
  const { api } = useServices();
  const [q, setQ] = useState('');
  const list = useResource((signal) => api.get('/api/media', { query: { type: kind, limit: 60, ...(q.trim() ? { q: q.trim() } : {}) }, signal }), [api, kind, q]);
  const items = list.data?.items ?? [];
  return (
    <Drawer title={title} onClose={onClose} wide>
      <label className="sr-only" htmlFor="picker-search">
        {t('video.picker_search')}
      </label>
      <input id="picker-search" type="search" value={q} placeholder={t('video.picker_search')} onChange={(e) => setQ(e.target.value)} />
      <p className="hint">{t('video.picker_count', { n: list.data?.total ?? 0 })}</p>
      <ListStates resource={list} count={items.length} emptyTitle={q ? t('video.picker_none_match') : t('video.picker_empty')} />
      {list.data && items.length === 0 && !q && (
        <p>
          <Link to="/library">{t('video.picker_library')}</Link>
        </p>
      )}
      <ul className="picker-grid">
        {items.map((m) => {
          const label = mediaLabel(m, t('video.untitled'));
          const thumb = m.thumb_256_url ?? (m.kind === 'image' ? m.file.url : null);
          return (
            <li key={m.id}>
              <button type="button" className="picker-item" onClick={() => onPick(m)} aria-label={t('video.picker_add', { name: label })}>
                {thumb ? <img src={thumb} alt="" loading="lazy" /> : <span className="picker-icon" aria-hidden="true">{kind === 'audio' ? '♪' : '▶'}</span>}
                <span className="picker-name">{label}</span>
                {typeof m.duration_secs === 'number' && <span className="hint">{formatTime(m.duration_secs)}</span>}
              </button>
            </li>
          );
        })}
      </ul>
    </Drawer>
  );
}
