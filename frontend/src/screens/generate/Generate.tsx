import { useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { ApiError } from '../../api/client';
import { isActive, parseGenerationHealth, type EngineInfo, type JobView } from '../../api/types';
import { useJobs, useResource, useServices } from '../../app/hooks';
import { PageHeader } from '../../app/Shell';
import { JobProgress, OutputsGrid, useJobActions } from '../../components/jobs';
import { toast } from '../../components/toasts';
import { describedBy, Empty, ErrorBanner, Field, Loading, StatusBadge } from '../../components/ui';
import { useT, type MessageKey } from '../../i18n';
import { formatRelative } from '../../lib/format';
import { Link, setQuery, useLocation } from '../../lib/router';
import { MediaPicker } from '../video/Picker';
import {
  applyPersona,
  DEFAULT_CAPS,
  defaultEngine,
  fitToEngine,
  fromRequest,
  imageEngines,
  loadDraft,
  needsFit,
  presetsFor,
  randomSeed,
  saveDraft,
  SubmitGuard,
  toRequest,
  type FieldError,
  type FormErrors,
  type GenerateForm,
} from './form';

const RECENT = 8;

export function engineLabel(engine: EngineInfo, t: (k: MessageKey, p?: Record<string, string | number>) => string): string {
  if (engine.name === 'procedural') return t('gen.engine.procedural');
  if (engine.name === 'noop') return t('gen.engine.noop');
  return engine.name;
}

export function Generate() {
  const { t, lang } = useT();
  const { api, jobs } = useServices();
  const { search } = useLocation();
  const [form, setForm] = useState<GenerateForm>(() => loadDraft());
  const [errors, setErrors] = useState<FormErrors>({});
  const [serverError, setServerError] = useState<unknown>(null);
  const [submitting, setSubmitting] = useState(false);
  const [sessionIds, setSessionIds] = useState<string[]>([]);
  const guard = useRef(new SubmitGuard());
  const inFlight = useRef(false);
  const promptRef = useRef<HTMLTextAreaElement>(null);

  const health = useResource(async (signal) => parseGenerationHealth(await api.get('/api/generation/health', { signal })), [api]);
  const engines = useMemo(() => imageEngines(health.data?.engines ?? []), [health.data]);
  const engine = engines.find((e) => e.name === form.engine) ?? defaultEngine(engines);
  const caps = engine?.capabilities ?? DEFAULT_CAPS;
  const presets = presetsFor(caps);
  const personas = useResource((signal) => api.get('/api/personas', { query: { limit: 100 }, signal }), [api]);
  const personaItems = personas.data?.items ?? [];
  const persona = personaItems.find((p) => p.id === form.persona_id);
  // A deleted (or another account's) persona left in the draft is dropped once the list is known.
  if (personas.data && form.persona_id && !persona) setForm({ ...form, persona_id: '' });
  // "Use in Generate" from Personas arrives as ?persona=ID.
  const wanted = search.get('persona');
  const wantedPersona = wanted ? personaItems.find((p) => p.id === wanted) : undefined;
  if (wantedPersona && form.persona_id !== wantedPersona.id) setForm(applyPersona(form, wantedPersona.id, wantedPersona.spec.image));
  const personasKnown = !!personas.data;
  useEffect(() => {
    if (wanted && personasKnown) setQuery({ persona: null });
  }, [wanted, personasKnown]);
  const presetValue = presets.find((p) => String(p.width) === form.width && String(p.height) === form.height);

  // Once engines are known, make engine-dependent fields valid for the chosen engine.
  if (needsFit(form, engine)) setForm(fitToEngine(form, engine));

  useEffect(() => saveDraft(form), [form]);

  // "Reuse settings" from another screen arrives through the saved draft (read on mount).
  useEffect(() => {
    if (search.get('reuse')) {
      setQuery({ reuse: null });
      toast(t('gen.reused'), 'info');
      promptRef.current?.focus();
    }
  }, [search, t]);

  const recent = useResource(async (signal) => {
    const page = await api.get('/api/jobs', { query: { limit: RECENT, sort: 'newest', type: 'image' }, signal });
    jobs.upsert(...page.items);
    return page.items.map((j) => j.id);
  }, [api, jobs]);
  const ids = useMemo(() => [...new Set([...sessionIds, ...(recent.data ?? [])])].slice(0, RECENT + sessionIds.length), [sessionIds, recent.data]);
  const shown = useJobs(ids);

  const set = <K extends keyof GenerateForm>(key: K, value: GenerateForm[K]) => {
    setForm((f) => ({ ...f, [key]: value }));
    if (errors[key]) setErrors(({ [key]: _drop, ...rest }) => rest);
  };

  const [picking, setPicking] = useState(false);
  // The chosen init image, for its thumbnail (a draft keeps only its id). Answers are tagged
  // with the id they are for, so a previous pick's thumbnail never shows for a new one.
  const initItem = useResource(async (signal) => {
    const id = form.init_image;
    if (!id) return null;
    try {
      return { id, item: await api.get('/api/media/{id}', { path: { id }, signal }) };
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return { id, item: null };
      throw err;
    }
  }, [api, form.init_image]);
  const init = initItem.data && initItem.data.id === form.init_image ? initItem.data : null;
  // An image deleted since (or another account's, from an old draft) is dropped.
  if (init && !init.item) setForm({ ...form, init_image: '' });
  const initThumb = init?.item ? (init.item.thumb_256_url ?? init.item.file.url) : null;

  const err = (field: string): string | null => {
    const e: FieldError | undefined = errors[field];
    return e ? t(e.key, e.params) : null;
  };

  const submit = async (e?: FormEvent) => {
    e?.preventDefault();
    if (inFlight.current) return;
    setServerError(null);
    const { request, errors: found } = toRequest(form, caps);
    setErrors(found);
    if (!request) {
      const first = Object.keys(found)[0];
      if (first) document.getElementById(first)?.focus();
      return;
    }
    inFlight.current = true;
    setSubmitting(true);
    const key = guard.current.keyFor(request);
    try {
      const res = await api.post('/api/generate/single', { body: request, headers: { 'Idempotency-Key': key } });
      guard.current.settle('ok');
      jobs.upsert(...res.jobs);
      setSessionIds((prev) => [...res.job_ids.filter((id) => !prev.includes(id)), ...prev]);
      toast(t('gen.submitted', { n: res.job_ids.length }), 'success');
    } catch (err) {
      const unknown = err instanceof ApiError && err.status === 0;
      guard.current.settle(unknown ? 'unknown' : 'rejected');
      const input = err instanceof ApiError && err.field ? document.getElementById(err.field) : null;
      if (err instanceof ApiError && err.field && input) {
        // The message goes next to the field it names.
        setErrors({ [err.field]: { key: 'error.server', params: { message: err.message } } });
        input.focus();
      } else {
        setServerError(err);
      }
    } finally {
      inFlight.current = false;
      setSubmitting(false);
    }
  };

  const onPromptKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void submit();
    }
  };

  const lastSeed = shown.find((j) => j.status === 'succeeded')?.request as { seed?: number } | undefined;

  return (
    <>
      <PageHeader title={t('gen.title')} subtitle={t('gen.subtitle')} />
      <div className="generate">
        <form className="panel generate-form" onSubmit={(e) => void submit(e)} noValidate aria-label={t('gen.form')}>
          {health.error ? (
            <ErrorBanner error={health.error} title={t('gen.engines_error')} onRetry={health.reload} />
          ) : null}
          {health.data && health.data.status !== 'ok' && <div className="banner banner-warn">{t('gen.no_worker')}</div>}
          {serverError ? <ErrorBanner error={serverError} /> : null}

          <Field id="prompt" label={t('gen.prompt')} error={err('prompt')} hint={t('gen.prompt_hint')}>
            <textarea
              ref={promptRef}
              {...describedBy('prompt', err('prompt'), 'hint')}
              rows={3}
              maxLength={2000}
              required
              value={form.prompt}
              placeholder={t('gen.prompt_placeholder')}
              onChange={(e) => set('prompt', e.target.value)}
              onKeyDown={onPromptKey}
            />
          </Field>
          <Field
            id="negative_prompt"
            label={t('gen.negative')}
            error={err('negative_prompt')}
            hint={caps.supports_negative_prompt ? undefined : t('gen.negative_unsupported')}
          >
            <textarea
              {...describedBy('negative_prompt', err('negative_prompt'), caps.supports_negative_prompt ? null : 'hint')}
              rows={2}
              maxLength={2000}
              disabled={!caps.supports_negative_prompt}
              value={form.negative_prompt}
              onChange={(e) => set('negative_prompt', e.target.value)}
            />
          </Field>

          <fieldset>
            <legend>{t('gen.section.model')}</legend>
            <Field id="persona_id" label={t('gen.persona')} hint={persona ? t('gen.persona_hint', { name: persona.spec.name }) : t('gen.persona_pick_hint')}>
              <select
                {...describedBy('persona_id', null, 'hint')}
                value={form.persona_id}
                onChange={(e) => {
                  const chosen = personaItems.find((p) => p.id === e.target.value);
                  setForm((f) => applyPersona(f, chosen?.id ?? '', chosen?.spec.image));
                }}
              >
                <option value="">{t('gen.persona_none')}</option>
                {personaItems.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.favorite ? '★ ' : ''}
                    {p.spec.name}
                  </option>
                ))}
              </select>
            </Field>
            <Field
              id="engine"
              label={t('gen.engine')}
              error={err('engine')}
              hint={engine?.name === 'procedural' ? t('gen.engine.procedural_hint') : undefined}
            >
                <select
                  {...describedBy('engine', err('engine'), engine?.name === 'procedural' ? 'hint' : null)}
                  value={engine?.name ?? ''}
                  disabled={!engines.length}
                  onChange={(e) => setForm((f) => fitToEngine(f, engines.find((x) => x.name === e.target.value)))}
                >
                  {!engines.length && <option value="">{health.loading ? t('state.loading') : t('gen.engine_default')}</option>}
                  {engines.map((en) => (
                    <option key={en.name} value={en.name}>
                      {engineLabel(en, t)}
                      {en.state !== 'ready' ? ` (${en.state})` : ''}
                    </option>
                  ))}
                </select>
            </Field>
            <Field
              id="model_name"
              label={t('gen.model')}
              error={err('model_name')}
              hint={engine?.models.find((m) => m.name === form.model_name)?.description}
            >
              <select
                {...describedBy('model_name', err('model_name'), engine?.models.find((m) => m.name === form.model_name)?.description)}
                value={form.model_name}
                disabled={!engine?.models.length}
                onChange={(e) => set('model_name', e.target.value)}
              >
                {!engine?.models.length && <option value="">{t('gen.model_default')}</option>}
                {engine?.models.map((m) => (
                  <option key={m.name} value={m.name}>
                    {m.name}
                  </option>
                ))}
              </select>
            </Field>
          </fieldset>

          <fieldset>
            <legend>{t('gen.section.size')}</legend>
            <Field id="size_preset" label={t('gen.preset')}>
              <select
                id="size_preset"
                value={presetValue ? `${presetValue.width}x${presetValue.height}` : 'custom'}
                onChange={(e) => {
                  const [w, h] = e.target.value.split('x');
                  if (w && h) setForm((f) => ({ ...f, width: w, height: h }));
                  setErrors(({ width: _w, height: _h, ...rest }) => rest);
                }}
              >
                {presets.map((p) => (
                  <option key={`${p.width}x${p.height}`} value={`${p.width}x${p.height}`}>
                    {t(`gen.shape.${p.shape}` as MessageKey)} {p.ratio} — {p.width}×{p.height}
                  </option>
                ))}
                <option value="custom">{t('gen.preset_custom')}</option>
              </select>
            </Field>
            <div className="grid-2">
              <Field id="width" label={t('gen.width')} error={err('width')}>
                <input
                  {...describedBy('width', err('width'))}
                  type="number"
                  inputMode="numeric"
                  min={caps.min_size}
                  max={caps.max_size}
                  step={caps.size_multiple}
                  value={form.width}
                  onChange={(e) => set('width', e.target.value)}
                />
              </Field>
              <Field id="height" label={t('gen.height')} error={err('height')}>
                <input
                  {...describedBy('height', err('height'))}
                  type="number"
                  inputMode="numeric"
                  min={caps.min_size}
                  max={caps.max_size}
                  step={caps.size_multiple}
                  value={form.height}
                  onChange={(e) => set('height', e.target.value)}
                />
              </Field>
            </div>
          </fieldset>

          <fieldset>
            <legend>{t('gen.section.sampling')}</legend>
            <div className="grid-3">
              <Field id="num_inference_steps" label={t('gen.steps')} error={err('num_inference_steps')}>
                <input
                  {...describedBy('num_inference_steps', err('num_inference_steps'))}
                  type="number"
                  inputMode="numeric"
                  min={1}
                  max={caps.max_steps}
                  value={form.num_inference_steps}
                  onChange={(e) => set('num_inference_steps', e.target.value)}
                />
              </Field>
              <Field id="guidance_scale" label={t('gen.guidance')} error={err('guidance_scale')}>
                <input
                  {...describedBy('guidance_scale', err('guidance_scale'))}
                  type="number"
                  inputMode="decimal"
                  min={0}
                  max={30}
                  step={0.5}
                  value={form.guidance_scale}
                  onChange={(e) => set('guidance_scale', e.target.value)}
                />
              </Field>
              <Field id="scheduler" label={t('gen.scheduler')} error={err('scheduler')}>
                <select {...describedBy('scheduler', err('scheduler'))} value={form.scheduler} onChange={(e) => set('scheduler', e.target.value)}>
                  {caps.schedulers.map((s) => (
                    <option key={s} value={s}>
                      {s}
                    </option>
                  ))}
                </select>
              </Field>
            </div>
          </fieldset>

          <fieldset>
            <legend>{t('gen.section.output')}</legend>
            <div className="grid-2">
              <Field id="num_images" label={t('gen.count')} error={err('num_images')} hint={t('gen.count_hint', { max: caps.max_images })}>
                <input
                  {...describedBy('num_images', err('num_images'), 'hint')}
                  type="number"
                  inputMode="numeric"
                  min={1}
                  max={caps.max_images}
                  value={form.num_images}
                  onChange={(e) => set('num_images', e.target.value)}
                />
              </Field>
              <div className="field">
                <span className="label" id="priority-label">
                  {t('gen.priority')}
                </span>
                <div className="segmented" role="radiogroup" aria-labelledby="priority-label">
                  {(['interactive', 'batch'] as const).map((p) => (
                    <label key={p} className={form.priority === p ? 'checked' : ''}>
                      <input type="radio" name="priority" value={p} checked={form.priority === p} onChange={() => set('priority', p)} />
                      {t(`gen.priority.${p}`)}
                    </label>
                  ))}
                </div>
              </div>
            </div>
            <Field
              id="seed"
              label={t('gen.seed')}
              error={err('seed')}
              hint={form.seedLocked ? t('gen.seed_locked_hint') : t('gen.seed_random_hint')}
            >
              <div className="seed-row">
                <input
                  {...describedBy('seed', err('seed'), 'hint')}
                  type="text"
                  inputMode="numeric"
                  value={form.seedLocked ? form.seed : ''}
                  placeholder={t('gen.seed_random')}
                  disabled={!form.seedLocked}
                  onChange={(e) => set('seed', e.target.value.trim())}
                />
                <label className="check">
                  <input
                    type="checkbox"
                    checked={form.seedLocked}
                    onChange={(e) => {
                      const locked = e.target.checked;
                      setForm((f) => ({ ...f, seedLocked: locked, seed: locked && !f.seed ? String(randomSeed()) : f.seed }));
                    }}
                  />
                  {t('gen.seed_lock')}
                </label>
                <button type="button" className="btn btn-small" onClick={() => setForm((f) => ({ ...f, seed: String(randomSeed()), seedLocked: true }))}>
                  {t('gen.seed_new')}
                </button>
              </div>
              {typeof lastSeed?.seed === 'number' && (
                <button
                  type="button"
                  className="btn btn-link btn-small"
                  onClick={() => setForm((f) => ({ ...f, seed: String(lastSeed.seed), seedLocked: true }))}
                >
                  {t('gen.seed_use_last', { seed: lastSeed.seed })}
                </button>
              )}
            </Field>
          </fieldset>

          <fieldset disabled={!caps.supports_loras} aria-describedby="loras-hint">
            <legend>{t('gen.section.loras')}</legend>
            <p className="hint" id="loras-hint">
              {caps.supports_loras ? t('gen.loras_hint') : t('gen.loras_unsupported', { engine: engine ? engineLabel(engine, t) : '' })}
            </p>
            {form.loras.map((row, i) => (
              <div className="lora-row" key={i}>
                <Field id={`loras[${i}].name`} label={t('gen.lora_name', { n: i + 1 })} error={err(`loras[${i}].name`)}>
                  <input
                    {...describedBy(`loras[${i}].name`, err(`loras[${i}].name`))}
                    value={row.name}
                    onChange={(e) => set('loras', form.loras.map((r, j) => (j === i ? { ...r, name: e.target.value } : r)))}
                  />
                </Field>
                <Field id={`loras[${i}].weight`} label={t('gen.lora_weight')} error={err(`loras[${i}].weight`)}>
                  <input
                    {...describedBy(`loras[${i}].weight`, err(`loras[${i}].weight`))}
                    type="number"
                    step={0.05}
                    min={-2}
                    max={2}
                    value={row.weight}
                    onChange={(e) => set('loras', form.loras.map((r, j) => (j === i ? { ...r, weight: e.target.value } : r)))}
                  />
                </Field>
                <button
                  type="button"
                  className="btn btn-small btn-ghost"
                  aria-label={t('gen.lora_remove', { n: i + 1 })}
                  onClick={() => set('loras', form.loras.filter((_, j) => j !== i))}
                >
                  {t('action.remove')}
                </button>
              </div>
            ))}
            <button type="button" className="btn btn-small" onClick={() => set('loras', [...form.loras, { name: '', weight: '0.8' }])}>
              {t('gen.lora_add')}
            </button>
          </fieldset>

          <fieldset aria-describedby="img2img-hint">
            <legend>{t('gen.section.img2img')}</legend>
            <p className="hint" id="img2img-hint">
              {caps.supports_img2img ? t('gen.img2img_hint') : t('gen.img2img_unsupported', { engine: engine ? engineLabel(engine, t) : '' })}
            </p>
            <Field id="init_image" label={t('gen.init_image')} error={err('init_image')}>
              <div className="init-image">
                {form.init_image && initThumb ? <img src={initThumb} alt={t('gen.init_image_alt')} width={96} /> : null}
                <button
                  type="button"
                  className="btn btn-small"
                  {...describedBy('init_image', err('init_image'))}
                  // Named by the field's label and its own text ("Init image Choose from the library").
                  aria-labelledby="init_image-label init_image"
                  onClick={() => setPicking(true)}
                >
                  {form.init_image ? t('gen.init_image_change') : t('gen.init_image_choose')}
                </button>
                {form.init_image && (
                  <button type="button" className="btn btn-small btn-ghost" onClick={() => set('init_image', '')}>
                    {t('action.remove')}
                  </button>
                )}
              </div>
            </Field>
            {form.init_image && (
              <Field id="strength" label={t('gen.strength', { value: form.strength })} error={err('strength')} hint={t('gen.strength_hint')}>
                <input
                  {...describedBy('strength', err('strength'), 'hint')}
                  type="range"
                  min={0.05}
                  max={1}
                  step={0.05}
                  value={form.strength}
                  onChange={(e) => set('strength', e.target.value)}
                />
              </Field>
            )}
          </fieldset>
          {picking && (
            <MediaPicker
              kind="image"
              title={t('gen.init_image_choose')}
              onClose={() => setPicking(false)}
              onPick={(item) => {
                set('init_image', item.id);
                setPicking(false);
              }}
            />
          )}

          <div className="form-actions sticky-actions">
            <button type="submit" className="btn btn-primary" disabled={submitting}>
              {submitting ? t('gen.submitting') : t('gen.submit', { n: Number(form.num_images) || 1 })}
            </button>
            <span className="hint">{t('gen.shortcut')}</span>
          </div>
        </form>

        <section className="generate-results" aria-labelledby="results-title">
          <div className="section-head">
            <h2 id="results-title">{t('gen.results')}</h2>
            <Link to="/jobs" className="btn btn-small btn-ghost">
              {t('gen.all_jobs')}
            </Link>
          </div>
          {recent.error ? <ErrorBanner error={recent.error} onRetry={recent.reload} /> : null}
          {recent.loading && !recent.data && <Loading />}
          {!recent.loading && shown.length === 0 && !recent.error && <Empty title={t('gen.results_empty')}>{t('gen.results_empty_hint')}</Empty>}
          <ul className="job-cards">
            {shown.map((job) => (
              <li key={job.id}>
                <JobCard
                  job={job}
                  lang={lang}
                  onNewJob={(id) => setSessionIds((prev) => [id, ...prev])}
                  onReuse={(j) => {
                    setForm(fromRequest(j.request));
                    setErrors({});
                    toast(t('gen.reused'), 'info');
                    promptRef.current?.focus();
                  }}
                />
              </li>
            ))}
          </ul>
        </section>
      </div>
    </>
  );
}

function JobCard({
  job,
  lang,
  onNewJob,
  onReuse,
}: {
  job: JobView;
  lang: 'en' | 'fr';
  onNewJob: (id: string) => void;
  onReuse: (job: JobView) => void;
}) {
  const { t } = useT();
  const { busy, cancel, retry } = useJobActions();
  const request = job.request as { width?: number; height?: number; num_images?: number; seed?: number };
  return (
    <article className={`job-card job-card-${job.status}`} aria-label={t('job.card_label', { prompt: job.prompt.slice(0, 60) })}>
      <header className="job-card-head">
        <p className="job-card-prompt" title={job.prompt}>
          {job.prompt}
        </p>
        <StatusBadge status={job.status} />
      </header>
      <p className="job-card-meta">
        {request.width}×{request.height} · {t('job.n_images', { n: request.num_images ?? 1 })} · {job.engine} · {formatRelative(job.queued_at, lang)}
      </p>
      {job.status !== 'succeeded' && <JobProgress job={job} />}
      {job.error && <p className="field-error">{job.error.message}</p>}
      <OutputsGrid job={job} />
      <div className="job-card-actions">
        {isActive(job.status) && (
          <button type="button" className="btn btn-small btn-danger" disabled={busy === job.id || job.cancel_requested} onClick={() => void cancel(job)}>
            {t('action.cancel_job')}
          </button>
        )}
        {(job.status === 'failed' || job.status === 'cancelled') && (
          <button type="button" className="btn btn-small" disabled={busy === job.id} onClick={() => void retry(job).then((id) => id && onNewJob(id))}>
            {t('action.retry')}
          </button>
        )}
        <button type="button" className="btn btn-small btn-ghost" onClick={() => onReuse(job)}>
          {t('action.reuse')}
        </button>
        <Link to={`/jobs?job=${job.id}`} className="btn btn-small btn-ghost">
          {t('action.details')}
        </Link>
      </div>
    </article>
  );
}

