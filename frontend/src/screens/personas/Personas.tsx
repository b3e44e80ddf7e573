// Personas: reusable characters (prompt template, negative prompt, image/voice/video defaults).
// List with search and favourites, an editor whose saves are new versions, the version history,
// duplicate, a live preview job, and removal.
import { useState, type FormEvent } from 'react';
import { ApiError } from '../../api/client';
import type { PersonaSpec, PersonaVersionView, PersonaView } from '../../api/types';
import { isActive, parseGenerationHealth } from '../../api/types';
import { useJob, useResource, useServices } from '../../app/hooks';
import { PageHeader } from '../../app/Shell';
import { JobProgress, OutputsGrid } from '../../components/jobs';
import { toast } from '../../components/toasts';
import { ConfirmButton, describedBy, ErrorBanner, errorMessage, Field, ListStates, Loading } from '../../components/ui';
import { useT } from '../../i18n';
import { formatDateTime } from '../../lib/format';
import { navigate, setQuery, useLocation } from '../../lib/router';
import { EMPTY_PERSONA, pathOf, toForm, toSpec, type PersonaForm, type SpecError, type TextField } from './spec';

export function Personas() {
  const { t } = useT();
  const { api } = useServices();
  const { search } = useLocation();
  const selected = search.get('id');
  const [q, setQ] = useState('');
  const [favOnly, setFavOnly] = useState(false);
  const list = useResource(
    (signal) => api.get('/api/personas', { query: { limit: 100, ...(q.trim() ? { q: q.trim() } : {}), ...(favOnly ? { favorite: true } : {}) }, signal }),
    [api, q, favOnly],
  );
  const items = list.data?.items ?? [];

  const toggleFavorite = async (p: PersonaView) => {
    try {
      await api.patch('/api/personas/{id}', { path: { id: p.id }, body: { favorite: !p.favorite } });
      list.reload();
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };

  return (
    <>
      <PageHeader
        title={t('personas.title')}
        subtitle={t('personas.subtitle')}
        actions={
          <button type="button" className="btn btn-primary" onClick={() => setQuery({ id: 'new' })}>
            {t('personas.new')}
          </button>
        }
      />
      <div className="personas-grid">
        <section className="panel" aria-labelledby="personas-list-title">
          <h2 id="personas-list-title">{t('personas.list', { n: list.data?.total ?? 0 })}</h2>
          <div className="toolbar">
            <label className="sr-only" htmlFor="persona-search">
              {t('personas.search')}
            </label>
            <input id="persona-search" type="search" value={q} placeholder={t('personas.search')} onChange={(e) => setQ(e.target.value)} />
            <button type="button" className={`chip${favOnly ? ' chip-on' : ''}`} aria-pressed={favOnly} onClick={() => setFavOnly(!favOnly)}>
              ★ {t('personas.favorites')}
            </button>
          </div>
          <ListStates resource={list} count={items.length} emptyTitle={q || favOnly ? t('personas.none_match') : t('personas.empty')} />
          <ul className="persona-list">
            {items.map((p) => (
              <li key={p.id} className={`persona-item${p.id === selected ? ' persona-item-on' : ''}`}>
                <button type="button" className="persona-open" aria-current={p.id === selected ? 'true' : undefined} onClick={() => setQuery({ id: p.id })}>
                  <span className="model-name">{p.spec.name}</span>
                  <span className="hint">
                    {t('personas.version', { v: p.version })}
                    {p.spec.tags?.length ? ` · ${p.spec.tags.join(', ')}` : ''}
                  </span>
                </button>
                <button
                  type="button"
                  className={`btn btn-ghost btn-icon star${p.favorite ? ' star-on' : ''}`}
                  aria-pressed={p.favorite}
                  aria-label={t('personas.favorite_named', { name: p.spec.name })}
                  onClick={() => void toggleFavorite(p)}
                >
                  <span aria-hidden="true">{p.favorite ? '★' : '☆'}</span>
                </button>
              </li>
            ))}
          </ul>
        </section>
        {selected === 'new' ? (
          <Editor
            key="new"
            persona={null}
            onSaved={(p) => {
              list.reload();
              setQuery({ id: p.id });
            }}
          />
        ) : selected ? (
          <Detail key={selected} id={selected} onChanged={list.reload} />
        ) : (
          <section className="panel">
            <p className="muted">{t('personas.pick')}</p>
          </section>
        )}
      </div>
    </>
  );
}

function Detail({ id, onChanged }: { id: string; onChanged: () => void }) {
  const { t } = useT();
  const { api } = useServices();
  const persona = useResource((signal) => api.get('/api/personas/{id}', { path: { id }, signal }), [api, id]);
  const [versionsTick, setVersionsTick] = useState(0);
  const [restore, setRestore] = useState<{ spec: PersonaSpec; n: number } | null>(null);
  if (persona.error) return <ErrorBanner error={persona.error} onRetry={persona.reload} />;
  if (!persona.data) return <Loading />;
  const p = persona.data;

  const duplicate = async () => {
    try {
      const copy = await api.post('/api/personas/{id}/duplicate', { path: { id: p.id } });
      toast(t('personas.duplicated', { name: copy.spec.name }), 'success');
      onChanged();
      setQuery({ id: copy.id });
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };
  const remove = async () => {
    try {
      await api.delete('/api/personas/{id}', { path: { id: p.id } });
      toast(t('personas.deleted', { name: p.spec.name }), 'success');
      onChanged();
      setQuery({ id: null });
    } catch (err) {
      toast(errorMessage(err, t('error.generic')), 'error');
    }
  };

  return (
    <div className="persona-detail">
      <div className="panel persona-actions" role="group" aria-label={t('personas.actions')}>
        <button type="button" className="btn btn-small" onClick={() => navigate(`/generate?persona=${p.id}`)}>
          {t('personas.use')}
        </button>
        <button type="button" className="btn btn-small" onClick={() => void duplicate()}>
          {t('personas.duplicate')}
        </button>
        <ConfirmButton label={t('personas.delete')} confirmLabel={t('personas.delete_confirm')} ariaLabel={t('personas.delete_named', { name: p.spec.name })} onConfirm={() => void remove()} />
      </div>
      <Editor
        key={`${p.id}:${p.version}:${restore?.n ?? 0}`}
        persona={p}
        initial={restore?.spec}
        onSaved={(saved) => {
          persona.setData(saved);
          setRestore(null);
          setVersionsTick((n) => n + 1);
          onChanged();
        }}
      />
      <Preview persona={p} />
      <Versions id={p.id} current={p.version} tick={versionsTick} onRestore={(spec) => setRestore((r) => ({ spec, n: (r?.n ?? 0) + 1 }))} />
    </div>
  );
}

type Errors = Record<string, SpecError | { server: string }>;

function Editor({ persona, initial, onSaved }: { persona: PersonaView | null; initial?: PersonaSpec; onSaved: (p: PersonaView) => void }) {
  const { t } = useT();
  const { api } = useServices();
  const [form, setForm] = useState<PersonaForm>(() => (initial ? toForm(initial) : persona ? toForm(persona.spec) : EMPTY_PERSONA));
  const [errors, setErrors] = useState<Errors>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const idFor = (path: string) => `persona-${path.replace(/[[\].]/g, '-')}`;
  const msg = (path: string): string | null => {
    const e = errors[path];
    if (!e) return null;
    return 'server' in e ? e.server : t(e.key, e.params);
  };
  const set = <K extends keyof PersonaForm>(key: K, value: PersonaForm[K]) => {
    setForm((f) => ({ ...f, [key]: value }));
    const path = pathOf(key);
    if (errors[path]) setErrors(({ [path]: _drop, ...rest }) => rest);
  };
  // Suggestions from the engines the workers offer (free text stays allowed: a persona may name
  // an engine that is offline now).
  const health = useResource(async (signal) => parseGenerationHealth(await api.get('/api/generation/health', { signal })), [api]);
  const engines = health.data?.engines.filter((e) => e.capabilities.job_types.includes('image')) ?? [];
  const suggestions: Partial<Record<TextField, string[]>> = {
    engine: engines.map((e) => e.name),
    model_name: [...new Set(engines.flatMap((e) => e.models.map((m) => m.name)))],
    scheduler: [...new Set(engines.flatMap((e) => e.capabilities.schedulers))],
  };
  const text = (key: TextField, label: string, opts: { area?: boolean; hint?: string; type?: string; max?: number } = {}) => {
    const path = pathOf(key);
    const id = idFor(path);
    const e = msg(path);
    const common = { ...describedBy(id, e, opts.hint), value: form[key], onChange: (ev: { target: { value: string } }) => set(key, ev.target.value) };
    return (
      <Field id={id} label={label} error={e} hint={opts.hint}>
        {opts.area ? (
          <textarea rows={3} maxLength={opts.max ?? 2000} {...common} />
        ) : (
          <input type={opts.type ?? 'text'} inputMode={opts.type === 'number' ? 'decimal' : undefined} maxLength={opts.max} list={suggestions[key]?.length ? `${id}-list` : undefined} {...common} />
        )}
        {suggestions[key]?.length ? (
          <datalist id={`${id}-list`}>
            {suggestions[key].map((v) => (
              <option key={v} value={v} />
            ))}
          </datalist>
        ) : null}
      </Field>
    );
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const { spec, errors: found } = toSpec(form);
    setErrors(found);
    if (!spec) {
      const first = Object.keys(found)[0];
      if (first) document.getElementById(idFor(first))?.focus();
      return;
    }
    setBusy(true);
    try {
      const saved = persona ? await api.put('/api/personas/{id}', { path: { id: persona.id }, body: spec }) : await api.post('/api/personas', { body: spec });
      toast(t(persona ? 'personas.saved' : 'personas.created', { name: saved.spec.name, v: saved.version }), 'success');
      onSaved(saved);
    } catch (err) {
      const input = err instanceof ApiError && err.field ? document.getElementById(idFor(err.field)) : null;
      if (err instanceof ApiError && err.field && input) {
        setErrors({ [err.field]: { server: err.message } });
        input.focus();
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="panel persona-form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="persona-form-title">
      <h2 id="persona-form-title">{persona ? t('personas.edit', { name: persona.spec.name, v: persona.version }) : t('personas.new')}</h2>
      {initial && <p className="banner banner-warn">{t('personas.restoring')}</p>}
      <ErrorBanner error={error} />
      {text('name', t('personas.name'), { max: 100 })}
      {text('description', t('personas.description'), { area: true })}
      {text('prompt_template', t('personas.template'), { area: true, hint: t('personas.template_hint') })}
      {text('negative_prompt', t('personas.negative'), { area: true, hint: t('personas.negative_hint') })}
      {text('tags', t('personas.tags'), { hint: t('personas.tags_hint') })}
      <label className="check">
        <input type="checkbox" checked={form.nsfw} onChange={(e) => set('nsfw', e.target.checked)} />
        {t('personas.nsfw')}
      </label>
      <fieldset>
        <legend>{t('personas.image')}</legend>
        <div className="grid-2">
          {text('engine', t('gen.engine'))}
          {text('model_name', t('gen.model'))}
          {text('width', t('gen.width'), { type: 'number' })}
          {text('height', t('gen.height'), { type: 'number' })}
          {text('num_inference_steps', t('gen.steps'), { type: 'number' })}
          {text('guidance_scale', t('gen.guidance'), { type: 'number' })}
          {text('scheduler', t('gen.scheduler'))}
          <Field id={idFor('image.seed_policy')} label={t('personas.seed')} error={msg('image.seed_policy')}>
            <div className="inline">
              <select aria-label={t('personas.seed_mode')} value={form.seed_mode} onChange={(e) => set('seed_mode', e.target.value as 'random' | 'fixed')}>
                <option value="random">{t('personas.seed_random')}</option>
                <option value="fixed">{t('personas.seed_fixed')}</option>
              </select>
              {form.seed_mode === 'fixed' && (
                <input {...describedBy(idFor('image.seed_policy'), msg('image.seed_policy'))} type="number" inputMode="numeric" value={form.seed} onChange={(e) => set('seed', e.target.value)} />
              )}
            </div>
          </Field>
        </div>
        <h3 className="subhead">{t('gen.section.loras')}</h3>
        {form.loras.map((row, i) => (
          <div className="grid-2 lora-row" key={i}>
            <Field id={idFor(`image.loras[${i}].name`)} label={t('gen.lora_name', { n: i + 1 })} error={msg(`image.loras[${i}].name`)}>
              <input
                {...describedBy(idFor(`image.loras[${i}].name`), msg(`image.loras[${i}].name`))}
                value={row.name}
                onChange={(e) => setForm((f) => ({ ...f, loras: f.loras.map((r, j) => (j === i ? { ...r, name: e.target.value } : r)) }))}
              />
            </Field>
            <Field id={idFor(`image.loras[${i}].weight`)} label={t('gen.lora_weight')} error={msg(`image.loras[${i}].weight`)}>
              <div className="inline">
                <input
                  {...describedBy(idFor(`image.loras[${i}].weight`), msg(`image.loras[${i}].weight`))}
                  type="number"
                  step="0.05"
                  value={row.weight}
                  onChange={(e) => setForm((f) => ({ ...f, loras: f.loras.map((r, j) => (j === i ? { ...r, weight: e.target.value } : r)) }))}
                />
                <button type="button" className="btn btn-small btn-ghost" onClick={() => setForm((f) => ({ ...f, loras: f.loras.filter((_, j) => j !== i) }))}>
                  {t('gen.lora_remove', { n: i + 1 })}
                </button>
              </div>
            </Field>
          </div>
        ))}
        <button type="button" className="btn btn-small" onClick={() => setForm((f) => ({ ...f, loras: [...f.loras, { name: '', weight: '1' }] }))}>
          {t('gen.lora_add')}
        </button>
      </fieldset>
      <fieldset>
        <legend>{t('personas.voice')}</legend>
        <div className="grid-2">
          {text('voice_engine', t('personas.voice_engine'))}
          {text('voice', t('personas.voice_name'))}
          {text('rate', t('personas.rate'), { type: 'number' })}
          {text('pitch', t('personas.pitch'), { type: 'number' })}
        </div>
      </fieldset>
      <fieldset>
        <legend>{t('personas.video')}</legend>
        <div className="grid-2">
          {text('video_style', t('personas.style'))}
          {text('fps', t('personas.fps'), { type: 'number' })}
          {text('duration_secs', t('personas.duration'), { type: 'number' })}
        </div>
      </fieldset>
      <button type="submit" className="btn btn-primary" disabled={busy}>
        {busy ? t('state.working') : persona ? t('personas.save_version') : t('personas.create')}
      </button>
    </form>
  );
}

function Preview({ persona }: { persona: PersonaView }) {
  const { t } = useT();
  const { api, jobs } = useServices();
  const [subject, setSubject] = useState('');
  const [jobId, setJobId] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const job = useJob(jobId);
  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      const res = await api.post('/api/personas/{id}/preview', { path: { id: persona.id }, body: subject.trim() ? { prompt: subject.trim() } : {} });
      jobs.upsert(...res.jobs);
      setJobId(res.job_ids[0] ?? null);
    } catch (err) {
      setError(errorMessage(err, t('error.generic')));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="panel" aria-labelledby="persona-preview-title">
      <h2 id="persona-preview-title">{t('personas.preview')}</h2>
      <Field id="persona-preview-subject" label={t('personas.preview_subject')} error={error} hint={t('personas.preview_hint')}>
        <div className="inline">
          <input {...describedBy('persona-preview-subject', error, 'hint')} value={subject} maxLength={2000} placeholder="portrait" onChange={(e) => setSubject(e.target.value)} />
          <button type="button" className="btn" disabled={busy || (job ? isActive(job.status) : false)} onClick={() => void start()}>
            {t('personas.preview_start')}
          </button>
        </div>
      </Field>
      {job && (
        <div className="persona-preview" aria-live="polite">
          <JobProgress job={job} />
          {job.error && <p className="field-error">{job.error.message}</p>}
          <OutputsGrid job={job} />
        </div>
      )}
    </section>
  );
}

function Versions({ id, current, tick, onRestore }: { id: string; current: number; tick: number; onRestore: (spec: PersonaSpec) => void }) {
  const { t, lang } = useT();
  const { api } = useServices();
  const versions = useResource((signal) => api.get('/api/personas/{id}/versions', { path: { id }, signal }), [api, id, tick]);
  const [viewing, setViewing] = useState<PersonaVersionView | null>(null);
  const items = versions.data ?? [];
  return (
    <section className="panel" aria-labelledby="persona-versions-title">
      <h2 id="persona-versions-title">{t('personas.versions')}</h2>
      <ListStates resource={versions} count={items.length} emptyTitle={t('personas.no_versions')} />
      <ol className="version-list">
        {items.map((v) => (
          <li key={v.version}>
            <button type="button" className="btn-link" aria-expanded={viewing?.version === v.version} onClick={() => setViewing(viewing?.version === v.version ? null : v)}>
              {t('personas.version', { v: v.version })}
            </button>
            <span className="hint"> · {formatDateTime(v.created_at, lang)}</span>
            {v.version === current && <span className="badge"> {t('personas.current')}</span>}
          </li>
        ))}
      </ol>
      {viewing && (
        <div className="version-view" role="region" aria-label={t('personas.version', { v: viewing.version })}>
          <dl className="kv">
            <dt>{t('personas.name')}</dt>
            <dd>{viewing.spec.name}</dd>
            <dt>{t('personas.template')}</dt>
            <dd>{viewing.spec.prompt_template || '—'}</dd>
            <dt>{t('personas.negative')}</dt>
            <dd>{viewing.spec.negative_prompt || '—'}</dd>
            <dt>{t('personas.tags')}</dt>
            <dd>{viewing.spec.tags?.join(', ') || '—'}</dd>
            <dt>{t('personas.image')}</dt>
            <dd>
              <code className="params">{JSON.stringify(viewing.spec.image ?? {})}</code>
            </dd>
          </dl>
          {viewing.version !== current && (
            <button type="button" className="btn btn-small" onClick={() => onRestore(viewing.spec)}>
              {t('personas.restore', { v: viewing.version })}
            </button>
          )}
        </div>
      )}
    </section>
  );
}
