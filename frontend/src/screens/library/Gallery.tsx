// A windowed grid: only the rows in view (plus a little overscan) are in the DOM, whatever the
// number of items; the pages those rows need are asked for as they come into view. Keyboard:
// arrows/Home/End/PageUp/PageDown move, Space selects (Shift: a range), Enter opens, F favourites.
import { useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent, type MouseEvent } from 'react';
import type { MediaView } from '../../api/types';
import { useT } from '../../i18n';
import { gridMetrics, moveIndex, pagesFor, scrollToReveal, visibleWindow } from './windowing';
import { PAGE_SIZE } from './useMediaList';

const MIN_TILE = 150;
const GAP = 8;
const OVERSCAN = 2;

export interface GalleryProps {
  count: number;
  itemAt: (index: number) => MediaView | undefined;
  need: (pages: number[]) => void;
  selected: ReadonlySet<string>;
  /** A selection gesture on item `index` (shift: a range from the anchor). */
  onSelect: (index: number, shift: boolean) => void;
  onOpen: (index: number) => void;
  onFavorite: (item: MediaView) => void;
  onSelectAll: () => void;
  onClear: () => void;
  /** Changes whenever loaded items do (re-render trigger). */
  version: number;
}

export function thumbOf(m: MediaView): string | null {
  return m.thumb_256_url ?? (m.kind === 'image' ? m.file.url : null);
}

export function Gallery({ count, itemAt, need, selected, onSelect, onOpen, onFavorite, onSelectAll, onClear }: GalleryProps) {
  const { t } = useT();
  const scroller = useRef<HTMLDivElement>(null);
  const [box, setBox] = useState({ width: 0, height: 0 });
  const [scrollTop, setScrollTop] = useState(0);
  const [focus, setFocus] = useState(0);
  const focusPending = useRef(false);
  const frame = useRef(0);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = () => setBox({ width: el.clientWidth, height: el.clientHeight });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const { columns, tile, rowHeight } = gridMetrics(box.width, MIN_TILE, GAP);
  const win = visibleWindow({ scrollTop, viewport: box.height, rowHeight, columns, count, overscan: OVERSCAN });
  const { start, end } = win;

  useEffect(() => {
    if (end > start) need(pagesFor(start, end, PAGE_SIZE));
  }, [start, end, need]);

  const current = Math.min(focus, Math.max(0, count - 1));

  useEffect(() => {
    if (!focusPending.current) return;
    focusPending.current = false;
    scroller.current?.querySelector<HTMLElement>(`[data-index="${current}"] .tile-open`)?.focus();
  });

  const onScroll = () => {
    cancelAnimationFrame(frame.current);
    frame.current = requestAnimationFrame(() => setScrollTop(scroller.current?.scrollTop ?? 0));
  };

  const moveTo = (index: number) => {
    const el = scroller.current;
    if (el) {
      const target = scrollToReveal(index, columns, rowHeight, el.scrollTop, el.clientHeight, GAP);
      if (target !== null) {
        el.scrollTop = target;
        setScrollTop(target);
      }
    }
    focusPending.current = true;
    setFocus(index);
  };

  const onKeyDown = (e: KeyboardEvent<HTMLElement>, index: number) => {
    const pageRows = Math.max(1, Math.floor(box.height / Math.max(1, rowHeight)));
    if (['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown'].includes(e.key)) {
      e.preventDefault();
      const next = moveIndex(index, e.key, columns, count, pageRows);
      if (e.shiftKey && next !== index) onSelect(next, true);
      moveTo(next);
    } else if (e.key === ' ') {
      e.preventDefault();
      onSelect(index, e.shiftKey);
    } else if ((e.key === 'a' || e.key === 'A') && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      onSelectAll();
    } else if (e.key === 'Escape' && selected.size > 0) {
      e.preventDefault();
      onClear();
    } else if ((e.key === 'f' || e.key === 'F') && !e.ctrlKey && !e.metaKey) {
      const item = itemAt(index);
      if (item) onFavorite(item);
    }
  };

  const onTileClick = (e: MouseEvent, index: number) => {
    setFocus(index);
    if (e.shiftKey || e.ctrlKey || e.metaKey) {
      e.preventDefault();
      onSelect(index, e.shiftKey);
    } else onOpen(index);
  };

  // The grid keeps one tab stop, on a rendered tile.
  const tabStop = current >= start && current < end ? current : start;
  const tiles = [];
  for (let i = start; i < end; i++) {
    const m = itemAt(i);
    const isSel = m ? selected.has(m.id) : false;
    const label = m ? (m.prompt || m.original_name || t(`library.kind.${m.kind === 'audio' || m.kind === 'video' ? m.kind : 'image'}`)).slice(0, 120) : t('state.loading');
    const thumb = m ? thumbOf(m) : null;
    tiles.push(
      <li key={m?.id ?? `i${i}`} className={`tile${isSel ? ' tile-on' : ''}`} data-index={i} aria-posinset={i + 1} aria-setsize={count} style={{ width: tile, height: tile }}>
        <button
          type="button"
          className="tile-open"
          tabIndex={i === tabStop ? 0 : -1}
          aria-label={m ? t('library.open', { label }) : label}
          aria-describedby="gallery-keys"
          disabled={!m}
          onClick={(e) => onTileClick(e, i)}
          onKeyDown={(e) => onKeyDown(e, i)}
          onFocus={() => setFocus(i)}
        >
          {thumb ? <img src={thumb} alt="" loading="lazy" decoding="async" draggable={false} /> : <span className="tile-kind" aria-hidden="true">{m ? (m.kind === 'audio' ? '♪' : m.kind === 'video' ? '▶' : '▦') : ''}</span>}
        </button>
        {m && (
          <>
            <input
              type="checkbox"
              className="tile-check"
              tabIndex={-1}
              checked={isSel}
              aria-label={t('library.select_named', { label })}
              onClick={(e) => {
                e.preventDefault();
                setFocus(i);
                onSelect(i, e.shiftKey);
              }}
              onChange={() => undefined}
            />
            <button
              type="button"
              tabIndex={-1}
              className={`tile-star${m.favorite ? ' star-on' : ''}`}
              aria-pressed={m.favorite}
              aria-label={t('library.favorite_named', { label })}
              onClick={() => onFavorite(m)}
            >
              <span aria-hidden="true">{m.favorite ? '★' : '☆'}</span>
            </button>
            {m.tags.length > 0 && <span className="tile-tags">{m.tags.slice(0, 3).join(' · ')}</span>}
          </>
        )}
      </li>,
    );
  }

  return (
    <div className="gallery-scroll" ref={scroller} onScroll={onScroll}>
      <div className="gallery-space" style={{ height: win.totalHeight }}>
        <ul
          className="gallery-grid"
          aria-label={t('library.gallery', { n: count })}
          style={{ transform: `translateY(${win.offsetY}px)`, gridTemplateColumns: `repeat(${columns}, ${tile}px)`, gap: GAP }}
        >
          {tiles}
        </ul>
      </div>
    </div>
  );
}
