import { describe, expect, it } from 'vitest';
import { dayToInstant } from './Jobs';
import { safeNext } from './Login';

describe('safeNext', () => {
  it('follows only paths inside the app', () => {
    expect(safeNext('/jobs?status=running')).toBe('/jobs?status=running');
    expect(safeNext(null)).toBe('/generate');
    expect(safeNext('https://evil.example')).toBe('/generate');
    expect(safeNext('//evil.example')).toBe('/generate');
    expect(safeNext('/login')).toBe('/generate');
  });
});

describe('dayToInstant', () => {
  it('turns a local day into an RFC 3339 instant (plus days)', () => {
    const from = dayToInstant('2026-03-01');
    expect(from).toBe(new Date(2026, 2, 1).toISOString());
    expect(dayToInstant('2026-03-31', 1)).toBe(new Date(2026, 3, 1).toISOString());
    expect(dayToInstant('')).toBeUndefined();
    expect(dayToInstant('03/01/2026')).toBeUndefined();
  });
});
