import { describe, expect, it } from 'vitest';
import { en } from './en';
import { fr } from './fr';
import { translate, type MessageKey } from './index';

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('dictionaries', () => {
  it('French has every key, none empty, with the same placeholders and plural forms', () => {
    for (const key of Object.keys(en) as MessageKey[]) {
      expect(fr[key], key).toBeTruthy();
      expect(placeholders(fr[key]), key).toEqual(placeholders(en[key]));
      expect(fr[key].includes('|'), key).toBe(en[key].includes('|'));
    }
    expect(Object.keys(fr).sort()).toEqual(Object.keys(en).sort());
  });

  it('fills placeholders and picks plural forms by language', () => {
    expect(translate('en', 'gen.submit', { n: 1 })).toBe('Generate 1 image');
    expect(translate('en', 'gen.submit', { n: 2 })).toBe('Generate 2 images');
    expect(translate('fr', 'job.n_images', { n: 0 })).toBe('0 image'); // French: 0 is singular
    expect(translate('fr', 'jobs.range', { from: 1, to: 25, total: 40 })).toBe('1–25 sur 40');
  });
});
