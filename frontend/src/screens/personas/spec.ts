// The persona editor as plain data: a PersonaSpec as strings (what inputs hold) and back, with
// the client-side checks that name a field the way the server does (its JSON path).
import type { PersonaSpec } from '../../api/types';
import type { MessageKey, Params } from '../../i18n';

export interface LoraRow {
  name: string;
  weight: string;
}

export interface PersonaForm {
  name: string;
  description: string;
  prompt_template: string;
  negative_prompt: string;
  tags: string;
  nsfw: boolean;
  engine: string;
  model_name: string;
  width: string;
  height: string;
  num_inference_steps: string;
  guidance_scale: string;
  scheduler: string;
  seed_mode: 'random' | 'fixed';
  seed: string;
  loras: LoraRow[];
  voice_engine: string;
  voice: string;
  rate: string;
  pitch: string;
  video_style: string;
  fps: string;
  duration_secs: string;
}

/** The form fields that hold text. */
export type TextField = { [K in keyof PersonaForm]: PersonaForm[K] extends string ? K : never }[keyof PersonaForm];

export const EMPTY_PERSONA: PersonaForm = {
  name: '',
  description: '',
  prompt_template: '{prompt}',
  negative_prompt: '',
  tags: '',
  nsfw: false,
  engine: '',
  model_name: '',
  width: '',
  height: '',
  num_inference_steps: '',
  guidance_scale: '',
  scheduler: '',
  seed_mode: 'random',
  seed: '',
  loras: [],
  voice_engine: '',
  voice: '',
  rate: '',
  pitch: '',
  video_style: '',
  fps: '',
  duration_secs: '',
};

/** Form field → the server's JSON path (used as the input id suffix and for its 422s). */
export const FIELD_PATH: Partial<Record<keyof PersonaForm, string>> = {
  engine: 'image.engine',
  model_name: 'image.model_name',
  width: 'image.width',
  height: 'image.height',
  num_inference_steps: 'image.num_inference_steps',
  guidance_scale: 'image.guidance_scale',
  scheduler: 'image.scheduler',
  seed: 'image.seed_policy',
  voice_engine: 'voice.engine',
  voice: 'voice.voice',
  rate: 'voice.rate',
  pitch: 'voice.pitch',
  video_style: 'video.style',
  fps: 'video.fps',
  duration_secs: 'video.duration_secs',
};

export const pathOf = (field: keyof PersonaForm): string => FIELD_PATH[field] ?? field;

const str = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? String(v) : typeof v === 'string' ? v : '');

export function toForm(spec: PersonaSpec): PersonaForm {
  const img = spec.image ?? {};
  const voice = spec.voice ?? {};
  const video = spec.video ?? {};
  const seed = img.seed_policy?.mode === 'fixed' ? img.seed_policy.seed : null;
  return {
    name: spec.name,
    description: spec.description ?? '',
    prompt_template: spec.prompt_template ?? '',
    negative_prompt: spec.negative_prompt ?? '',
    tags: (spec.tags ?? []).join(', '),
    nsfw: spec.nsfw === true,
    engine: str(img.engine),
    model_name: str(img.model_name),
    width: str(img.width),
    height: str(img.height),
    num_inference_steps: str(img.num_inference_steps),
    guidance_scale: str(img.guidance_scale),
    scheduler: str(img.scheduler),
    seed_mode: seed === null ? 'random' : 'fixed',
    seed: seed === null ? '' : String(seed),
    loras: (img.loras ?? []).map((l) => ({ name: l.name, weight: str(l.weight ?? 1) })),
    voice_engine: str(voice.engine),
    voice: str(voice.voice),
    rate: str(voice.rate),
    pitch: str(voice.pitch),
    video_style: str(video.style),
    fps: str(video.fps),
    duration_secs: str(video.duration_secs),
  };
}

export interface SpecError {
  key: MessageKey;
  params?: Params;
}

export function splitTags(raw: string): string[] {
  return [...new Set(raw.split(',').map((t) => t.trim()).filter(Boolean))];
}

/** Builds the spec; numbers must parse (ranges are the server's to judge, on the same field). */
export function toSpec(form: PersonaForm): { spec?: PersonaSpec; errors: Record<string, SpecError> } {
  const errors: Record<string, SpecError> = {};
  const name = form.name.trim();
  if (!name) errors.name = { key: 'personas.err.name' };
  const num = (field: TextField, int: boolean): number | null => {
    const raw = form[field].trim();
    if (!raw) return null;
    const v = Number(raw);
    if (!Number.isFinite(v) || (int && (!Number.isInteger(v) || v < 0))) {
      errors[pathOf(field)] = { key: int ? 'personas.err.int' : 'personas.err.number' };
      return null;
    }
    return v;
  };
  const opt = (v: string): string | null => (v.trim() ? v.trim() : null);
  const width = num('width', true);
  const height = num('height', true);
  const steps = num('num_inference_steps', true);
  const guidance = num('guidance_scale', false);
  const rate = num('rate', false);
  const pitch = num('pitch', false);
  const fps = num('fps', true);
  const duration = num('duration_secs', true);
  let seed: number | null = null;
  if (form.seed_mode === 'fixed') {
    seed = num('seed', true);
    if (seed === null && !errors['image.seed_policy']) errors['image.seed_policy'] = { key: 'personas.err.seed' };
  }
  const loras = form.loras.map((row, i) => {
    const w = Number(row.weight);
    if (!row.name.trim()) errors[`image.loras[${i}].name`] = { key: 'personas.err.lora_name' };
    if (row.weight.trim() === '' || !Number.isFinite(w)) errors[`image.loras[${i}].weight`] = { key: 'personas.err.number' };
    return { name: row.name.trim(), weight: w };
  });
  if (Object.keys(errors).length) return { errors };
  const spec: PersonaSpec = {
    name,
    description: form.description.trim(),
    prompt_template: form.prompt_template,
    negative_prompt: form.negative_prompt.trim(),
    tags: splitTags(form.tags),
    nsfw: form.nsfw,
    image: {
      engine: opt(form.engine),
      model_name: opt(form.model_name),
      width,
      height,
      num_inference_steps: steps,
      guidance_scale: guidance,
      scheduler: opt(form.scheduler),
      loras,
      seed_policy: seed === null ? { mode: 'random' } : { mode: 'fixed', seed },
    },
    voice: { engine: opt(form.voice_engine), voice: opt(form.voice), rate, pitch },
    video: { style: opt(form.video_style), fps, duration_secs: duration },
  };
  return { spec, errors };
}
