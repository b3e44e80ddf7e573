// Dictionary-based translations. `en` defines the keys; `fr` must provide every one of them
// (checked by tsc), so a missing translation breaks the build.
import { useSyncExternalStore } from 'react';
import { prefsStore, type Lang } from '../lib/prefs';
import { en } from './en';
import { fr } from './fr';

export type MessageKey = keyof typeof en;
export type Dictionary = Record<MessageKey, string>;
export type Params = Record<string, string | number>;

export const dictionaries: Record<Lang, Dictionary> = { en, fr };

/**
 * `{name}` placeholders are filled from `params`. A message with a `|` has a singular and a
 * plural form, chosen by the language's plural rules for `params.n` ("{n} image|{n} images").
 */
export function translate(lang: Lang, key: MessageKey, params?: Params): string {
  let template: string = dictionaries[lang][key] ?? en[key] ?? key;
  if (template.includes('|')) {
    const [one = '', other = one] = template.split('|');
    const n = typeof params?.n === 'number' ? params.n : Number(params?.n ?? 0);
    template = new Intl.PluralRules(lang).select(n) === 'one' ? one : other;
  }
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
}

export type T = (key: MessageKey, params?: Params) => string;

export function useT(): { t: T; lang: Lang } {
  const prefs = useSyncExternalStore(prefsStore.subscribe, prefsStore.get);
  const lang = prefs.lang;
  return { t: (key, params) => translate(lang, key, params), lang };
}
