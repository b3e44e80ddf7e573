// Settings → Content policy (admins): whether users may enable NSFW content, and the
// admin-defined blocked categories (built-in ones are shown, read-only).
import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import type { Applies, BlockedCategory, ContentPolicyView } from '../api/types';
import { useResource, useServices } from '../app/hooks';
import { toast } from '../components/toasts';
import { describedBy, ErrorBanner, Field, Loading } from '../components/ui';
import { useT } from '../i18n';

interface Row {
  name: string;
  terms: string;
  applies: Applies;
}

const toRows = (cats: BlockedCategory[]): Row[] => cats.map((c) => ({ name: c.name, terms: c.terms.join(', '), applies: c.applies ?? 'always' }));

export function ContentPolicy() {
  const { t } = useT();
  const { api } = useServices();
  const policy = useResource((signal) => api.get('/api/admin/content-policy', { signal }), [api]);
  const data = policy.data;
  const [seed, setSeed] = useState<ContentPolicyView | undefined>(undefined);
  const [nsfw, setNsfw] = useState(false);
  const [rows, setRows] = useState<Row[]>([]);
  if (data !== seed) {
    setSeed(data);
    if (data) {
      setNsfw(data.nsfw_allowed);
      setRows(toRows(data.categories));
    }
  }
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const update = (i: number, change: Partial<Row>) => setRows((cur) => cur.map((r, j) => (j === i ? { ...r, ...change } : r)));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    setBusy(true);
    try {
      const categories: BlockedCategory[] = rows.map((r) => ({
        name: r.name.trim(),
        applies: r.applies,
        terms: r.terms
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
      }));
      policy.setData(await api.put('/api/admin/content-policy', { body: { nsfw_allowed: nsfw, categories } }));
      toast(t('settings.saved'), 'success');
    } catch (err) {
      // Fields look like `categories[1].terms[0]`: show it on that row's input.
      const m = err instanceof ApiError ? /^categories\[(\d+)\]\.(name|terms|applies)/.exec(err.field ?? '') : null;
      if (m && err instanceof ApiError) setErrors({ [`policy-${m[1]}-${m[2] === 'name' ? 'name' : 'terms'}`]: err.message });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel settings-wide" aria-labelledby="policy-title">
      <h2 id="policy-title">{t('policy.title')}</h2>
      <p className="hint">{t('policy.intro')}</p>
      {policy.error ? <ErrorBanner error={policy.error} onRetry={policy.reload} /> : null}
      {policy.loading && !data && <Loading />}
      {data && (
        <form onSubmit={(e) => void submit(e)} noValidate aria-label={t('policy.title')}>
          <ErrorBanner error={error} />
          <p className="hint">{t('policy.version', { version: data.version })}</p>
          <label className="check">
            <input type="checkbox" checked={nsfw} onChange={(e) => setNsfw(e.target.checked)} />
            {t('policy.nsfw_allowed')}
          </label>
          <h3>{t('policy.builtin')}</h3>
          <ul className="policy-builtin">
            {data.effective_categories
              .filter((c) => c.builtin)
              .map((c) => (
                <li key={c.name}>
                  <strong>{c.name}</strong> ({c.applies === 'always' ? t('policy.applies.always') : t('policy.applies.unless_nsfw')}) — {t('policy.term_count', { n: c.terms.length })}
                </li>
              ))}
          </ul>
          <h3>{t('policy.categories')}</h3>
          {rows.map((r, i) => (
            <fieldset key={i} className="policy-row">
              <legend className="sr-only">{t('policy.category_n', { n: i + 1 })}</legend>
              <Field id={`policy-${i}-name`} label={t('policy.name')} error={errors[`policy-${i}-name`]}>
                <input {...describedBy(`policy-${i}-name`, errors[`policy-${i}-name`])} value={r.name} maxLength={50} onChange={(e) => update(i, { name: e.target.value })} />
              </Field>
              <Field id={`policy-${i}-terms`} label={t('policy.terms')} error={errors[`policy-${i}-terms`]} hint={t('policy.terms_hint')}>
                <input {...describedBy(`policy-${i}-terms`, errors[`policy-${i}-terms`], 'hint')} value={r.terms} onChange={(e) => update(i, { terms: e.target.value })} />
              </Field>
              <Field id={`policy-${i}-applies`} label={t('policy.applies')}>
                <select id={`policy-${i}-applies`} value={r.applies} onChange={(e) => update(i, { applies: e.target.value === 'unless_nsfw' ? 'unless_nsfw' : 'always' })}>
                  <option value="always">{t('policy.applies.always')}</option>
                  <option value="unless_nsfw">{t('policy.applies.unless_nsfw')}</option>
                </select>
              </Field>
              <button
                type="button"
                className="btn btn-small btn-ghost"
                aria-label={t('policy.remove_label', { n: i + 1 })}
                onClick={() => setRows((cur) => cur.filter((_, j) => j !== i))}
              >
                {t('action.remove')}
              </button>
            </fieldset>
          ))}
          <div className="form-actions">
            <button type="button" className="btn btn-small" onClick={() => setRows((cur) => [...cur, { name: '', terms: '', applies: 'always' }])}>
              {t('policy.add')}
            </button>
            <button type="submit" className="btn btn-primary" disabled={busy}>
              {busy ? t('state.working') : t('action.save')}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
