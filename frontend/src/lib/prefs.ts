// User preferences: language and theme. Kept in this browser, and — while signed in — taken from
// the server's settings (`/api/settings`), which are the source of truth (see app/services.ts).
export type Lang = 'en' | 'fr';
/** `system` follows the operating system's light/dark preference. */
export type Theme = 'dark' | 'light' | 'system';

export const isLang = (v: unknown): v is Lang => v === 'en' || v === 'fr';
export const isTheme = (v: unknown): v is Theme => v === 'dark' || v === 'light' || v === 'system';

export interface Prefs {
  lang: Lang;
  theme: Theme;
}

const KEY = 'seidra.prefs';

export function defaultLang(languages: readonly string[] = typeof navigator === 'undefined' ? [] : navigator.languages): Lang {
  return languages.some((l) => l.toLowerCase().startsWith('fr')) && !languages[0]?.toLowerCase().startsWith('en') ? 'fr' : 'en';
}

function load(): Prefs {
  const fallback: Prefs = { lang: defaultLang(), theme: 'dark' };
  try {
    const raw = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Partial<Prefs> | null;
    return {
      lang: isLang(raw?.lang) ? raw.lang : fallback.lang,
      theme: isTheme(raw?.theme) ? raw.theme : fallback.theme,
    };
  } catch {
    return fallback;
  }
}

let prefs: Prefs = load();
const listeners = new Set<() => void>();

const darkQuery = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null;

function apply(): void {
  document.documentElement.lang = prefs.lang;
  document.documentElement.dataset.theme = prefs.theme === 'system' ? (darkQuery?.matches === false ? 'light' : 'dark') : prefs.theme;
}
apply();
darkQuery?.addEventListener?.('change', () => {
  if (prefs.theme === 'system') apply();
});

export const prefsStore = {
  get: (): Prefs => prefs,
  subscribe: (fn: () => void): (() => void) => {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  set: (change: Partial<Prefs>): void => {
    const next = { ...prefs, ...change };
    if (next.lang === prefs.lang && next.theme === prefs.theme) return;
    prefs = next;
    try {
      localStorage.setItem(KEY, JSON.stringify(prefs));
    } catch {
      // private mode: keep it for this page
    }
    apply();
    for (const fn of listeners) fn();
  },
};
