// Windowing math for a grid of equal square tiles in a scrolling box: how many columns fit,
// which rows are visible (plus overscan), where they sit, and which pages of the list they need.

export interface GridMetrics {
  columns: number;
  /** Tile edge in pixels. */
  tile: number;
  /** Tile edge plus the gap below it. */
  rowHeight: number;
}

/** Columns of at least `minTile` px separated by `gap` px across `width` px (at least one). */
export function gridMetrics(width: number, minTile: number, gap: number): GridMetrics {
  const usable = Math.max(0, width);
  const columns = Math.max(1, Math.floor((usable + gap) / (minTile + gap)));
  const tile = Math.max(1, Math.floor((usable - gap * (columns - 1)) / columns));
  return { columns, tile, rowHeight: tile + gap };
}

export interface WindowInput {
  scrollTop: number;
  viewport: number;
  rowHeight: number;
  columns: number;
  count: number;
  /** Extra rows rendered above and below the visible ones. */
  overscan: number;
}

export interface Window {
  /** First and one-past-last item index to render. */
  start: number;
  end: number;
  /** Pixel offset of the first rendered row. */
  offsetY: number;
  /** Height of the whole grid (every row, rendered or not). */
  totalHeight: number;
}

export function visibleWindow({ scrollTop, viewport, rowHeight, columns, count, overscan }: WindowInput): Window {
  const cols = Math.max(1, columns);
  const rows = Math.ceil(Math.max(0, count) / cols);
  const totalHeight = rows * rowHeight;
  if (rows === 0 || rowHeight <= 0) return { start: 0, end: 0, offsetY: 0, totalHeight };
  const top = Math.min(Math.max(0, scrollTop), Math.max(0, totalHeight - viewport));
  const firstRow = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const lastRow = Math.min(rows - 1, Math.ceil((top + Math.max(0, viewport)) / rowHeight) - 1 + overscan);
  return { start: firstRow * cols, end: Math.min(count, (lastRow + 1) * cols), offsetY: firstRow * rowHeight, totalHeight };
}

/** Page numbers (of `pageSize` items) that hold items `start` up to (not including) `end`. */
export function pagesFor(start: number, end: number, pageSize: number): number[] {
  if (end <= start) return [];
  const first = Math.floor(start / pageSize);
  const last = Math.floor((end - 1) / pageSize);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** The scrollTop that brings item `index` fully into view (null when it already is). */
export function scrollToReveal(index: number, columns: number, rowHeight: number, scrollTop: number, viewport: number, gap = 0): number | null {
  const top = Math.floor(index / Math.max(1, columns)) * rowHeight;
  const bottom = top + rowHeight - gap;
  if (top < scrollTop) return top;
  if (bottom > scrollTop + viewport) return bottom - viewport;
  return null;
}

/** The index that an arrow key moves focus to (clamped to the list). */
export function moveIndex(index: number, key: string, columns: number, count: number, pageRows = 1): number {
  const step: Record<string, number> = {
    ArrowLeft: -1,
    ArrowRight: 1,
    ArrowUp: -columns,
    ArrowDown: columns,
    PageUp: -columns * pageRows,
    PageDown: columns * pageRows,
  };
  if (key === 'Home') return 0;
  if (key === 'End') return Math.max(0, count - 1);
  const d = step[key];
  if (d === undefined) return index;
  return Math.min(Math.max(0, index + d), Math.max(0, count - 1));
}
