// Short confirmations ("Job cancelled") announced politely to screen readers.
import { useSyncExternalStore } from 'react';

export interface Toast {
  id: number;
  message: string;
  kind: 'info' | 'success' | 'error';
}

let toasts: Toast[] = [];
let nextId = 1;
const listeners = new Set<() => void>();
const emit = () => {
  for (const fn of listeners) fn();
};

/** Shows a message for `ms`; the same message again replaces the earlier one (no pile-up). */
export function toast(message: string, kind: Toast['kind'] = 'info', ms = 3500): void {
  const item = { id: nextId++, message, kind };
  toasts = [...toasts.filter((t) => t.message !== message).slice(-2), item];
  emit();
  setTimeout(() => dismiss(item.id), ms);
}

function dismiss(id: number): void {
  toasts = toasts.filter((t) => t.id !== id);
  emit();
}

export function Toaster() {
  const items = useSyncExternalStore(
    (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    () => toasts,
  );
  return (
    <div className="toasts" role="status" aria-live="polite">
      {items.map((t) => (
        <div key={t.id} className={`toast toast-${t.kind}`}>
          {t.message}
        </div>
      ))}
    </div>
  );
}
