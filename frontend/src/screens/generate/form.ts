// The Generate form as plain data: defaults, validation mirroring the server's rules (the server
// stays the authority: its 422s land on the same fields), conversion to an ImageRequest and
// back ("reuse settings"), the saved draft, and the double-submit guard.
import type { EngineCapabilities, EngineInfo, ImageRequest, PersonaImageDefaults, PriorityClass } from '../../api/types';
import type { MessageKey, Params } from '../../i18n';
import { randomId } from '../../lib/format';

export interface LoraRow {
  name: string;
  weight: string;
}

export interface GenerateForm {
  prompt: string;
  negative_prompt: string;
  engine: string;
  model_name: string;
  width: string;
  height: string;
  num_inference_steps: string;
  guidance_scale: string;
  scheduler: string;
  num_images: string;
  seed: string;
  seedLocked: boolean;
  priority: PriorityClass;
  loras: LoraRow[];
  /** Persona whose prompt template and negative prompt the server applies ('' = none). */
  persona_id: string;
  /** Image-to-image: library item to start from ('' = text-to-image). */
  init_image: string;
  /** Denoising strength for image-to-image, 0 < s ≤ 1. */
  strength: string;
}

export const DEFAULT_FORM: GenerateForm = {
  prompt: '',
  negative_prompt: '',
  engine: '',
  model_name: '',
  width: '512',
  height: '512',
  num_inference_steps: '30',
  guidance_scale: '7.5',
  scheduler: 'euler_a',
  num_images: '1',
  seed: '',
  seedLocked: false,
  priority: 'interactive',
  loras: [],
  persona_id: '',
  init_image: '',
  strength: '0.75',
};

export const MAX_SEED = Number.MAX_SAFE_INTEGER; // 2^53 − 1, what JSON numbers carry exactly
export const MAX_TEXT = 2000;

export const DEFAULT_CAPS: EngineCapabilities = {
  job_types: ['image'],
  max_images: 8,
  max_size: 2048,
  min_size: 64,
  max_steps: 150,
  size_multiple: 8,
  schedulers: ['ddim', 'euler', 'euler_a', 'dpmpp_2m'],
  supports_loras: true,
  supports_negative_prompt: true,
  supports_img2img: false,
};

export type SizeShape = 'square' | 'landscape' | 'portrait';
export const SIZE_PRESETS: { width: number; height: number; shape: SizeShape; ratio: string }[] = [
  { width: 256, height: 256, shape: 'square', ratio: '1:1' },
  { width: 512, height: 512, shape: 'square', ratio: '1:1' },
  { width: 768, height: 768, shape: 'square', ratio: '1:1' },
  { width: 1024, height: 1024, shape: 'square', ratio: '1:1' },
  { width: 768, height: 512, shape: 'landscape', ratio: '3:2' },
  { width: 1024, height: 576, shape: 'landscape', ratio: '16:9' },
  { width: 512, height: 768, shape: 'portrait', ratio: '2:3' },
  { width: 576, height: 1024, shape: 'portrait', ratio: '9:16' },
  { width: 1536, height: 1536, shape: 'square', ratio: '1:1' },
  { width: 2048, height: 2048, shape: 'square', ratio: '1:1' },
];

export function presetsFor(caps: EngineCapabilities) {
  return SIZE_PRESETS.filter(
    (p) =>
      p.width >= caps.min_size &&
      p.height >= caps.min_size &&
      p.width <= caps.max_size &&
      p.height <= caps.max_size &&
      p.width % caps.size_multiple === 0 &&
      p.height % caps.size_multiple === 0,
  );
}

export interface FieldError {
  key: MessageKey;
  params?: Params;
}
export type FormErrors = Record<string, FieldError>;

/** Image engines first (procedural preferred as the default: it always works). */
export function imageEngines(engines: EngineInfo[]): EngineInfo[] {
  return engines.filter((e) => e.capabilities.job_types.includes('image'));
}

export function defaultEngine(engines: EngineInfo[]): EngineInfo | undefined {
  const image = imageEngines(engines);
  return image.find((e) => e.name === 'procedural') ?? image[0];
}

const isInt = (s: string) => /^-?\d+$/.test(s.trim());
const isNum = (s: string) => s.trim() !== '' && Number.isFinite(Number(s));

/** Validates the form and builds the request; `request` is absent when there are errors. */
export function toRequest(form: GenerateForm, caps: EngineCapabilities = DEFAULT_CAPS): { request?: ImageRequest; errors: FormErrors } {
  const errors: FormErrors = {};
  const prompt = form.prompt.trim();
  if (!prompt) errors.prompt = { key: 'gen.err.prompt_required' };
  else if (prompt.length > MAX_TEXT) errors.prompt = { key: 'gen.err.too_long', params: { max: MAX_TEXT } };
  if (form.negative_prompt.length > MAX_TEXT) errors.negative_prompt = { key: 'gen.err.too_long', params: { max: MAX_TEXT } };

  const size = (field: 'width' | 'height') => {
    const v = Number(form[field]);
    if (!isInt(form[field]) || v < caps.min_size || v > caps.max_size || v % caps.size_multiple !== 0) {
      errors[field] = { key: 'gen.err.size', params: { min: caps.min_size, max: caps.max_size, multiple: caps.size_multiple } };
    }
    return v;
  };
  const width = size('width');
  const height = size('height');

  const intIn = (field: 'num_inference_steps' | 'num_images', min: number, max: number) => {
    const raw = form[field];
    const v = Number(raw);
    if (!isInt(raw) || v < min || v > max) errors[field] = { key: 'gen.err.int_range', params: { min, max } };
    return v;
  };
  const steps = intIn('num_inference_steps', 1, caps.max_steps);
  const count = intIn('num_images', 1, caps.max_images);

  const guidance = Number(form.guidance_scale);
  if (!isNum(form.guidance_scale) || guidance < 0 || guidance > 30) errors.guidance_scale = { key: 'gen.err.num_range', params: { min: 0, max: 30 } };

  if (caps.schedulers.length && !caps.schedulers.includes(form.scheduler)) {
    errors.scheduler = { key: 'gen.err.scheduler', params: { list: caps.schedulers.join(', ') } };
  }

  let seed: number | undefined;
  if (form.seedLocked) {
    const v = Number(form.seed);
    if (!isInt(form.seed) || v < 0 || v > MAX_SEED) errors.seed = { key: 'gen.err.seed', params: { max: MAX_SEED } };
    else seed = v;
  }

  const loras = form.loras.map((row, i) => {
    const w = Number(row.weight);
    if (!caps.supports_loras) errors[`loras[${i}].name`] = { key: 'gen.err.loras_unsupported' };
    else if (!row.name.trim()) errors[`loras[${i}].name`] = { key: 'gen.err.lora_name' };
    if (!isNum(row.weight) || w < -2 || w > 2) errors[`loras[${i}].weight`] = { key: 'gen.err.num_range', params: { min: -2, max: 2 } };
    return { name: row.name.trim(), weight: w };
  });

  const strength = Number(form.strength);
  if (form.init_image) {
    if (!caps.supports_img2img) errors.init_image = { key: 'gen.err.img2img_unsupported' };
    if (!isNum(form.strength) || strength <= 0 || strength > 1) errors.strength = { key: 'gen.err.strength' };
  }

  if (Object.keys(errors).length) return { errors };
  const request: ImageRequest = {
    prompt,
    negative_prompt: caps.supports_negative_prompt ? form.negative_prompt.trim() : '',
    width,
    height,
    num_inference_steps: steps,
    guidance_scale: guidance,
    num_images: count,
    scheduler: form.scheduler,
    priority: form.priority,
    loras,
    metadata: { ui: 'seidra-studio' },
  };
  if (form.engine) request.engine = form.engine;
  if (form.model_name) request.model_name = form.model_name;
  if (seed !== undefined) request.seed = seed;
  if (form.persona_id) request.persona_id = form.persona_id;
  if (form.init_image) {
    request.init_image = form.init_image;
    request.strength = strength;
  }
  return { request, errors };
}

/** The form that reproduces a job's accepted request (seed locked to the one it used). */
export function fromRequest(raw: unknown): GenerateForm {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const s = (v: unknown, d: string) => (typeof v === 'string' ? v : d);
  const n = (v: unknown, d: string) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : d);
  // Decimal fields the server keeps as 32-bit floats come back widened (0.4 → 0.4000000059604645):
  // 7 significant digits give the value that was typed.
  const f = (v: unknown, d: string) => (typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(7))) : d);
  const loras = Array.isArray(r.loras)
    ? r.loras.map((l) => {
        const o = (l ?? {}) as Record<string, unknown>;
        return { name: s(o.name, ''), weight: f(o.weight, '1') };
      })
    : [];
  const seed = typeof r.seed === 'number' ? String(r.seed) : '';
  return {
    prompt: s(r.prompt, ''),
    negative_prompt: s(r.negative_prompt, ''),
    engine: s(r.engine, ''),
    model_name: s(r.model_name, ''),
    width: n(r.width, DEFAULT_FORM.width),
    height: n(r.height, DEFAULT_FORM.height),
    num_inference_steps: n(r.num_inference_steps, DEFAULT_FORM.num_inference_steps),
    guidance_scale: f(r.guidance_scale, DEFAULT_FORM.guidance_scale),
    scheduler: s(r.scheduler, DEFAULT_FORM.scheduler),
    num_images: n(r.num_images, DEFAULT_FORM.num_images),
    seed,
    seedLocked: seed !== '',
    priority: r.priority === 'batch' ? 'batch' : 'interactive',
    loras,
    // A stored request already has its persona's template applied: applying it again would double it.
    persona_id: '',
    init_image: s(r.init_image, ''),
    strength: f(r.strength, DEFAULT_FORM.strength),
  };
}

/** Image defaults of a persona, laid over the form (the fields the persona leaves unset are kept). */
export function applyPersona(form: GenerateForm, personaId: string, image: PersonaImageDefaults | undefined): GenerateForm {
  const d = image ?? {};
  const next: GenerateForm = { ...form, persona_id: personaId };
  if (!personaId) return next;
  const num = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : null);
  if (d.engine) next.engine = d.engine;
  if (d.model_name) next.model_name = d.model_name;
  next.width = num(d.width) ?? next.width;
  next.height = num(d.height) ?? next.height;
  next.num_inference_steps = num(d.num_inference_steps) ?? next.num_inference_steps;
  next.guidance_scale = num(d.guidance_scale) ?? next.guidance_scale;
  if (d.scheduler) next.scheduler = d.scheduler;
  if (d.loras?.length) next.loras = d.loras.map((l) => ({ name: l.name, weight: String(l.weight ?? 1) }));
  if (d.seed_policy?.mode === 'fixed') {
    next.seed = String(d.seed_policy.seed);
    next.seedLocked = true;
  } else if (d.seed_policy?.mode === 'random') {
    next.seedLocked = false;
  }
  return next;
}

/** Whether `fitToEngine` would change the form (model or scheduler the engine lacks). */
export function needsFit(form: GenerateForm, engine: EngineInfo | undefined): boolean {
  if (!engine) return false;
  const caps = engine.capabilities;
  return (
    form.engine !== engine.name ||
    (engine.models.length > 0 && !engine.models.some((m) => m.name === form.model_name)) ||
    (caps.schedulers.length > 0 && !caps.schedulers.includes(form.scheduler))
  );
}

/** Keeps engine-dependent fields valid after the engine (or its capabilities) changed. */
export function fitToEngine(form: GenerateForm, engine: EngineInfo | undefined): GenerateForm {
  if (!engine) return form;
  const caps = engine.capabilities;
  const next = { ...form, engine: engine.name };
  if (engine.models.length > 0 && !engine.models.some((m) => m.name === next.model_name)) next.model_name = engine.models[0]?.name ?? '';
  if (caps.schedulers.length && !caps.schedulers.includes(next.scheduler)) {
    next.scheduler = caps.schedulers.includes('euler_a') ? 'euler_a' : (caps.schedulers[0] ?? next.scheduler);
  }
  return next;
}

export function randomSeed(): number {
  const [a = 0, b = 0] = crypto.getRandomValues(new Uint32Array(2));
  return (a % 2 ** 21) * 2 ** 32 + b; // uniform over 0 ..= 2^53 − 1
}

const DRAFT_KEY = 'seidra.generate.draft';

export function saveDraft(form: GenerateForm, storage: Storage = sessionStorage): void {
  try {
    storage.setItem(DRAFT_KEY, JSON.stringify(form));
  } catch {
    // ignore
  }
}

/** Forgets the draft (on sign-out: the next account in this tab must not inherit it). */
export function clearDraft(storage: Storage = sessionStorage): void {
  try {
    storage.removeItem(DRAFT_KEY);
  } catch {
    // ignore
  }
}

export function loadDraft(storage: Storage = sessionStorage): GenerateForm {
  try {
    const raw = JSON.parse(storage.getItem(DRAFT_KEY) ?? 'null') as Partial<GenerateForm> | null;
    if (!raw || typeof raw !== 'object') return DEFAULT_FORM;
    return { ...DEFAULT_FORM, ...raw, loras: Array.isArray(raw.loras) ? raw.loras : [] };
  } catch {
    return DEFAULT_FORM;
  }
}

/**
 * Idempotency keys per submit: a double-click (same body within `windowMs`) reuses the key, so
 * the server answers with the same job; an attempt whose outcome is unknown (network error)
 * keeps its key for the same body, so retrying it cannot create a second job.
 */
export class SubmitGuard {
  private last: { body: string; key: string; at: number; unknown: boolean } | null = null;
  constructor(
    private readonly windowMs = 2000,
    private readonly now: () => number = Date.now,
  ) {}

  keyFor(body: unknown): string {
    const text = JSON.stringify(body);
    const t = this.now();
    if (this.last && this.last.body === text && (this.last.unknown || t - this.last.at < this.windowMs)) {
      this.last.at = t;
      return this.last.key;
    }
    this.last = { body: text, key: randomId(), at: t, unknown: false };
    return this.last.key;
  }

  /** ok: accepted; unknown: no answer (network); rejected: the server refused it. */
  settle(outcome: 'ok' | 'unknown' | 'rejected'): void {
    if (!this.last) return;
    if (outcome === 'rejected') this.last = null;
    else {
      this.last.unknown = outcome === 'unknown';
      this.last.at = this.now();
    }
  }
}
