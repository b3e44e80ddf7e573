// The talking-head form's request: local checks (which field is missing) and the body sent to
// `POST /api/generate/video`. Pure, so it is unit-tested.
import type { components } from '../../api/schema';

export type TalkingHeadRequest = components['schemas']['TalkingHeadRequest'];
export type Preprocess = components['schemas']['Preprocess'];
export type Enhancer = components['schemas']['Enhancer'];

export const PREPROCESS: Preprocess[] = ['crop', 'resize', 'full', 'extcrop', 'extfull'];
export const ENHANCERS: Enhancer[] = ['none', 'gfpgan', 'RestoreFormer'];

/** What the form holds. */
export interface TalkingHeadForm {
  imageId: string | null;
  audioId: string | null;
  speak: boolean;
  text: string;
  preprocess: Preprocess;
  enhancer: Enhancer;
  still: boolean;
  pose: string;
}

/** Missing inputs by field (`image`, `audio`, `text`, `pose_style`), as message keys. */
export function missingFields(f: TalkingHeadForm): Record<string, 'th.image_required' | 'th.audio_required' | 'th.text_required' | 'th.pose_invalid'> {
  const out: ReturnType<typeof missingFields> = {};
  if (!f.imageId) out.image = 'th.image_required';
  if (f.speak && !f.text.trim()) out.text = 'th.text_required';
  if (!f.speak && !f.audioId) out.audio = 'th.audio_required';
  const pose = Number(f.pose);
  if (f.pose.trim() === '' || !Number.isInteger(pose) || pose < 0 || pose > 45) out.pose_style = 'th.pose_invalid';
  return out;
}

/** The request body: either `audio` or `text`, never both. */
export function requestBody(f: TalkingHeadForm): TalkingHeadRequest {
  return {
    ...(f.imageId ? { image: f.imageId } : {}),
    ...(f.speak ? { text: f.text.trim() } : f.audioId ? { audio: f.audioId } : {}),
    preprocess: f.preprocess,
    enhancer: f.enhancer,
    still: f.still,
    pose_style: Number(f.pose),
  };
}
