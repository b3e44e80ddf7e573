import { describe, expect, it } from 'vitest';
import type { EngineInfo } from '../../api/types';
import { applyPersona, clearDraft, DEFAULT_CAPS, DEFAULT_FORM, fitToEngine, fromRequest, loadDraft, MAX_SEED, needsFit, presetsFor, randomSeed, saveDraft, SubmitGuard, toRequest } from './form';

const procedural: EngineInfo = {
  name: 'procedural',
  state: 'ready',
  workers: 1,
  models: [{ name: 'procedural-v1', description: 'CPU' }],
  capabilities: { ...DEFAULT_CAPS, supports_loras: false, schedulers: ['ddim', 'euler', 'euler_a', 'dpmpp_2m'] },
};

describe('toRequest', () => {
  it('adds init_image and strength only when an image is chosen, on an engine that can use it', () => {
    const img2img = { ...DEFAULT_CAPS, supports_img2img: true };
    const plain = toRequest({ ...DEFAULT_FORM, prompt: 'a fox' }, img2img).request;
    expect(plain).not.toHaveProperty('init_image');
    expect(plain).not.toHaveProperty('strength');
    const form = { ...DEFAULT_FORM, prompt: 'a fox', init_image: '0191f1f0-0000-7000-8000-000000000001', strength: '0.4' };
    expect(toRequest(form, img2img).request).toMatchObject({ init_image: form.init_image, strength: 0.4 });
    expect(toRequest(form, DEFAULT_CAPS).errors).toEqual({ init_image: { key: 'gen.err.img2img_unsupported' } });
    for (const strength of ['0', '1.5', 'x']) {
      expect(toRequest({ ...form, strength }, img2img).errors).toEqual({ strength: { key: 'gen.err.strength' } });
    }
    // "Reuse settings" keeps the image and its strength.
    expect(fromRequest({ prompt: 'a fox', init_image: form.init_image, strength: 0.4 })).toMatchObject({ init_image: form.init_image, strength: '0.4' });
    expect(fromRequest({ prompt: 'a fox' })).toMatchObject({ init_image: '', strength: '0.75' });
  });

  it('builds an ImageRequest from a valid form', () => {
    const { request, errors } = toRequest({ ...DEFAULT_FORM, prompt: '  a fox  ', engine: 'procedural', model_name: 'procedural-v1', num_images: '2' });
    expect(errors).toEqual({});
    expect(request).toMatchObject({
      prompt: 'a fox',
      width: 512,
      height: 512,
      num_inference_steps: 30,
      guidance_scale: 7.5,
      num_images: 2,
      scheduler: 'euler_a',
      priority: 'interactive',
      engine: 'procedural',
      model_name: 'procedural-v1',
      loras: [],
    });
    expect(request).not.toHaveProperty('seed'); // unlocked: the server picks (and records) one
  });

  it('mirrors the server rules and names the API field at fault', () => {
    const { request, errors } = toRequest({
      ...DEFAULT_FORM,
      prompt: '',
      width: '250',
      height: '4096',
      num_inference_steps: '0',
      guidance_scale: '31',
      num_images: '9',
      scheduler: 'plms',
      seedLocked: true,
      seed: String(MAX_SEED + 1),
    });
    expect(request).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual(
      ['guidance_scale', 'height', 'num_images', 'num_inference_steps', 'prompt', 'scheduler', 'seed', 'width'].sort(),
    );
    expect(errors.width).toEqual({ key: 'gen.err.size', params: { min: 64, max: 2048, multiple: 8 } });
  });

  it('sends a locked seed, up to 2^53 − 1', () => {
    expect(toRequest({ ...DEFAULT_FORM, prompt: 'x', seedLocked: true, seed: String(MAX_SEED) }).request?.seed).toBe(MAX_SEED);
    expect(toRequest({ ...DEFAULT_FORM, prompt: 'x', seedLocked: true, seed: '-1' }).errors.seed).toBeDefined();
  });

  it('refuses LoRAs on an engine without them, validates weights otherwise', () => {
    const form = { ...DEFAULT_FORM, prompt: 'x', loras: [{ name: 'ink', weight: '0.8' }] };
    expect(toRequest(form, procedural.capabilities).errors['loras[0].name']?.key).toBe('gen.err.loras_unsupported');
    expect(toRequest(form, DEFAULT_CAPS).request?.loras).toEqual([{ name: 'ink', weight: 0.8 }]);
    expect(toRequest({ ...form, loras: [{ name: 'ink', weight: '3' }] }, DEFAULT_CAPS).errors['loras[0].weight']).toBeDefined();
  });

  it('limits sizes, steps and counts to the engine capabilities', () => {
    const caps = { ...DEFAULT_CAPS, max_size: 1024, max_images: 4, max_steps: 50, size_multiple: 64 };
    const { errors } = toRequest({ ...DEFAULT_FORM, prompt: 'x', width: '1088', height: '520', num_images: '5', num_inference_steps: '51' }, caps);
    expect(Object.keys(errors).sort()).toEqual(['height', 'num_images', 'num_inference_steps', 'width']);
    expect(presetsFor(caps).every((p) => p.width <= 1024 && p.width % 64 === 0)).toBe(true);
  });
});

describe('fromRequest ("reuse settings")', () => {
  it('round-trips an accepted request, locking its seed', () => {
    const accepted = {
      prompt: 'a fox',
      negative_prompt: 'blur',
      width: 768,
      height: 512,
      num_inference_steps: 42,
      guidance_scale: 6.5,
      num_images: 3,
      scheduler: 'ddim',
      seed: 8791470216868679,
      engine: 'procedural',
      model_name: 'procedural-v1',
      priority: 'batch',
      loras: [{ name: 'ink', weight: 0.5 }],
      metadata: null,
      persona_id: null,
    };
    const form = fromRequest(accepted);
    expect(form).toMatchObject({ seedLocked: true, seed: '8791470216868679', width: '768', priority: 'batch' });
    const { request } = toRequest(form, DEFAULT_CAPS);
    const { persona_id: _persona, ...rest } = accepted; // personas are not in this slice
    expect(request).toMatchObject({ ...rest, metadata: { ui: 'seidra-studio' } });
  });

  it('survives junk', () => {
    expect(fromRequest(null)).toMatchObject({ prompt: '', width: DEFAULT_FORM.width, seedLocked: false });
  });
});

describe('fitToEngine', () => {
  it('picks a model and a scheduler the engine has, and then needs nothing more', () => {
    const form = { ...DEFAULT_FORM, engine: 'other', model_name: 'sdxl', scheduler: 'plms' };
    expect(needsFit(form, procedural)).toBe(true);
    const fitted = fitToEngine(form, procedural);
    expect(fitted).toMatchObject({ engine: 'procedural', model_name: 'procedural-v1', scheduler: 'euler_a' });
    expect(needsFit(fitted, procedural)).toBe(false);
    const bare = { ...procedural, models: [], capabilities: { ...procedural.capabilities, schedulers: [] } };
    expect(needsFit(fitToEngine(form, bare), bare)).toBe(false);
  });
});

describe('randomSeed', () => {
  it('stays within 0 ..= 2^53 − 1', () => {
    for (let i = 0; i < 1000; i++) {
      const s = randomSeed();
      expect(Number.isSafeInteger(s) && s >= 0 && s <= MAX_SEED).toBe(true);
    }
  });
});

describe('SubmitGuard (Idempotency-Key per submit)', () => {
  it('reuses the key for a double-click with the same body, not for a later or different submit', () => {
    let t = 0;
    const guard = new SubmitGuard(2000, () => t);
    const a = guard.keyFor({ prompt: 'fox' });
    guard.settle('ok');
    t = 300;
    expect(guard.keyFor({ prompt: 'fox' })).toBe(a);
    guard.settle('ok');
    t = 5000;
    const b = guard.keyFor({ prompt: 'fox' });
    expect(b).not.toBe(a);
    expect(guard.keyFor({ prompt: 'wolf' })).not.toBe(b);
  });

  it('keeps the key after a network failure (the job may exist), drops it after a refusal', () => {
    let t = 0;
    const guard = new SubmitGuard(2000, () => t);
    const a = guard.keyFor({ prompt: 'fox' });
    guard.settle('unknown');
    t = 60_000;
    expect(guard.keyFor({ prompt: 'fox' })).toBe(a);
    guard.settle('rejected');
    expect(guard.keyFor({ prompt: 'fox' })).not.toBe(a);
  });
});

describe('applyPersona', () => {
  it('fills the form from the persona image defaults and keeps what it leaves unset', () => {
    const base = { ...DEFAULT_FORM, prompt: 'a fox', width: '512', guidance_scale: '7.5' };
    const form = applyPersona(base, 'p1', {
      width: 256,
      num_inference_steps: 12,
      scheduler: 'ddim',
      loras: [{ name: 'ink', weight: 0.5 }],
      seed_policy: { mode: 'fixed', seed: 42 },
    });
    expect(form).toMatchObject({ persona_id: 'p1', prompt: 'a fox', width: '256', height: DEFAULT_FORM.height, num_inference_steps: '12', guidance_scale: '7.5', scheduler: 'ddim', seed: '42', seedLocked: true });
    expect(form.loras).toEqual([{ name: 'ink', weight: '0.5' }]);
    expect(toRequest(form, DEFAULT_CAPS).request).toMatchObject({ persona_id: 'p1', width: 256, seed: 42 });
  });
  it('choosing no persona only clears the id; reuse never carries one', () => {
    const form = applyPersona({ ...DEFAULT_FORM, persona_id: 'p1', width: '256' }, '', { width: 768 });
    expect(form).toMatchObject({ persona_id: '', width: '256' });
    expect(toRequest({ ...form, prompt: 'x' }, DEFAULT_CAPS).request?.persona_id).toBeUndefined();
    expect(fromRequest({ prompt: 'x, ink', persona_id: 'p1' }).persona_id).toBe('');
  });
});

describe('fromRequest', () => {
  it('gives back the decimals that were typed, not their 32-bit widening', () => {
    const form = fromRequest({ prompt: 'x', guidance_scale: 7.300000190734863, strength: 0.4000000059604645, loras: [{ name: 'ink', weight: 0.699999988079071 }], seed: 9007199254740991 });
    expect(form).toMatchObject({ guidance_scale: '7.3', strength: '0.4', seed: '9007199254740991' });
    expect(form.loras).toEqual([{ name: 'ink', weight: '0.7' }]);
  });
});

describe('draft', () => {
  it('round-trips, and is forgotten on sign-out', () => {
    const store = new Map<string, string>();
    const storage = {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
      removeItem: (k: string) => void store.delete(k),
    } as Storage;
    saveDraft({ ...DEFAULT_FORM, prompt: 'a private prompt', init_image: '0191f1f0-0000-7000-8000-000000000001' }, storage);
    expect(loadDraft(storage)).toMatchObject({ prompt: 'a private prompt', init_image: '0191f1f0-0000-7000-8000-000000000001' });
    clearDraft(storage);
    expect(loadDraft(storage)).toEqual(DEFAULT_FORM);
  });
});
