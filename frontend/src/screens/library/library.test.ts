import { describe, expect, it } from 'vitest';
import { chunks, click, extend, NO_SELECTION, retain, selectAll, toggle } from './selection';
import { gridMetrics, moveIndex, pagesFor, scrollToReveal, visibleWindow } from './windowing';

describe('gridMetrics', () => {
  it('fits as many columns of the minimum width as the width allows', () => {
    expect(gridMetrics(1000, 180, 10)).toEqual({ columns: 5, tile: 192, rowHeight: 202 });
    expect(gridMetrics(375 - 32, 140, 8)).toMatchObject({ columns: 2 });
  });
  it('always has one column, even when narrower than a tile', () => {
    expect(gridMetrics(100, 180, 10)).toMatchObject({ columns: 1, tile: 100 });
    expect(gridMetrics(0, 180, 10).columns).toBe(1);
  });
});

describe('visibleWindow', () => {
  const base = { viewport: 600, rowHeight: 200, columns: 5, count: 10_000, overscan: 1 };
  it('renders only the visible rows plus overscan at the top', () => {
    const w = visibleWindow({ ...base, scrollTop: 0 });
    expect(w).toEqual({ start: 0, end: 20, offsetY: 0, totalHeight: 2000 * 200 });
  });
  it('renders a handful of rows deep in a 10,000-item list', () => {
    const w = visibleWindow({ ...base, scrollTop: 100_050 });
    // rows 500..503 are visible (0.25 row into 500); one row of overscan each side
    expect(w.start).toBe(499 * 5);
    expect(w.end).toBe(505 * 5);
    expect(w.offsetY).toBe(499 * 200);
    expect(w.end - w.start).toBeLessThanOrEqual(30);
  });
  it('clamps past the end and handles a partial last row', () => {
    const w = visibleWindow({ ...base, count: 23, scrollTop: 99_999 });
    expect(w.end).toBe(23);
    expect(w.totalHeight).toBe(5 * 200);
    expect(w.start).toBe(5) // clamped to the last screenful (rows 2–4) minus one row of overscan;
  });
  it('is empty for an empty list', () => {
    expect(visibleWindow({ ...base, count: 0, scrollTop: 0 })).toEqual({ start: 0, end: 0, offsetY: 0, totalHeight: 0 });
  });
});

describe('pagesFor / scrollToReveal / moveIndex', () => {
  it('lists the pages a range touches', () => {
    expect(pagesFor(0, 20, 100)).toEqual([0]);
    expect(pagesFor(95, 130, 100)).toEqual([0, 1]);
    expect(pagesFor(200, 200, 100)).toEqual([]);
    expect(pagesFor(2495, 2525, 100)).toEqual([24, 25]);
  });
  it('scrolls just enough to reveal an item', () => {
    expect(scrollToReveal(0, 5, 200, 0, 600)).toBeNull();
    expect(scrollToReveal(20, 5, 200, 0, 600, 10)).toBe(800 + 190 - 600);
    expect(scrollToReveal(5, 5, 200, 500, 600)).toBe(200);
  });
  it('moves by one, by a row, and clamps', () => {
    expect(moveIndex(6, 'ArrowRight', 5, 10)).toBe(7);
    expect(moveIndex(6, 'ArrowDown', 5, 10)).toBe(9);
    expect(moveIndex(2, 'ArrowUp', 5, 10)).toBe(0);
    expect(moveIndex(4, 'End', 5, 10)).toBe(9);
    expect(moveIndex(4, 'x', 5, 10)).toBe(4);
  });
});

describe('selection', () => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
  const idAt = (i: number) => ids[i];
  it('click toggles and sets the anchor', () => {
    let s = toggle(NO_SELECTION, 1, idAt);
    expect([...s.ids]).toEqual(['b']);
    expect(s.anchor).toBe(1);
    s = toggle(s, 1, idAt);
    expect(s.ids.size).toBe(0);
  });
  it('shift-click selects the range from the anchor, in either direction', () => {
    let s = click(NO_SELECTION, 1, idAt, false);
    s = click(s, 4, idAt, true);
    expect([...s.ids].sort()).toEqual(['b', 'c', 'd', 'e']);
    expect(s.anchor).toBe(1);
    s = click(toggle(NO_SELECTION, 4, idAt), 2, idAt, true);
    expect([...s.ids].sort()).toEqual(['c', 'd', 'e']);
  });
  it('shift-click without an anchor toggles; unloaded items are skipped', () => {
    expect([...extend(NO_SELECTION, 3, idAt).ids]).toEqual(['d']);
    const sparse = (i: number) => (i === 2 ? undefined : ids[i]);
    const s = extend(toggle(NO_SELECTION, 0, sparse), 3, sparse);
    expect([...s.ids].sort()).toEqual(['a', 'b', 'd']);
    expect(toggle(NO_SELECTION, 2, sparse)).toBe(NO_SELECTION);
  });
  it('select all, retain after delete, and chunks of 500', () => {
    const all = selectAll(ids);
    expect(all.ids.size).toBe(6);
    const kept = retain(all, (id) => id !== 'c');
    expect(kept.ids.has('c')).toBe(false);
    expect(kept.ids.size).toBe(5);
    expect(retain(kept, () => true)).toBe(kept);
    expect(chunks(Array.from({ length: 1201 }, (_, i) => i)).map((c) => c.length)).toEqual([500, 500, 201]);
  });
});
