// User preferences kept in this browser: language and theme.
export type Lang = 'en' | 'fr';
export type Theme = 'dark' | 'light';

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
      lang: raw?.lang === 'fr' || raw?.lang === 'en' ? raw.lang : fallback.lang,
      theme: raw?.theme === 'light' || raw?.theme === 'dark' ? raw.theme : fallback.theme,
    };
  } catch {
    return fallback;
  }
}

let prefs: Prefs = load();
const listeners = new Set<() => void>();

function apply(): void {
  document.documentElement.lang = prefs.lang;
  document.documentElement.dataset.theme = prefs.theme;
}
apply();

export const prefsStore = {
  get: (): Prefs => prefs,
  subscribe: (fn: () => void): (() => void) => {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  set: (change: Partial<Prefs>): void => {
    prefs = { ...prefs, ...change };
    try {
      localStorage.setItem(KEY, JSON.stringify(prefs));
    } catch {
      // private mode: keep it for this page
    }
    apply();
    for (const fn of listeners) fn();
  },
};
