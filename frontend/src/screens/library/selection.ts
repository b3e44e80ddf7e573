// Multi-selection over a list that is loaded in pages: click toggles, shift-click selects the
// range from the anchor (the last item toggled), select-all takes the loaded ids.

export interface Selection {
  ids: ReadonlySet<string>;
  /** Index of the last item toggled: where a shift range starts. */
  anchor: number | null;
}

export const NO_SELECTION: Selection = { ids: new Set(), anchor: null };

/** `idAt` answers undefined for an index not loaded yet (it is skipped). */
export type IdAt = (index: number) => string | undefined;

export function toggle(sel: Selection, index: number, idAt: IdAt): Selection {
  const id = idAt(index);
  if (id === undefined) return sel;
  const ids = new Set(sel.ids);
  if (ids.has(id)) ids.delete(id);
  else ids.add(id);
  return { ids, anchor: index };
}

/** Adds every loaded item between the anchor and `index` (inclusive); with no anchor, toggles. */
export function extend(sel: Selection, index: number, idAt: IdAt): Selection {
  if (sel.anchor === null) return toggle(sel, index, idAt);
  const ids = new Set(sel.ids);
  const [from, to] = sel.anchor <= index ? [sel.anchor, index] : [index, sel.anchor];
  for (let i = from; i <= to; i++) {
    const id = idAt(i);
    if (id !== undefined) ids.add(id);
  }
  return { ids, anchor: sel.anchor };
}

/** A click: shift extends from the anchor, anything else toggles. */
export function click(sel: Selection, index: number, idAt: IdAt, shift: boolean): Selection {
  return shift ? extend(sel, index, idAt) : toggle(sel, index, idAt);
}

export function selectAll(ids: readonly string[]): Selection {
  return { ids: new Set(ids), anchor: null };
}

/** Drops ids that no longer exist (after a delete). */
export function retain(sel: Selection, keep: (id: string) => boolean): Selection {
  const ids = new Set([...sel.ids].filter(keep));
  return ids.size === sel.ids.size ? sel : { ids, anchor: sel.anchor };
}

/** Splits ids into chunks the bulk endpoint accepts (1–500 per call). */
export function chunks<T>(items: readonly T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
