import { describe, expect, it } from 'vitest';
import { missingFields, requestBody, type TalkingHeadForm } from './talkingHead';

const form = (over: Partial<TalkingHeadForm> = {}): TalkingHeadForm => ({
  imageId: 'img',
  audioId: 'aud',
  speak: false,
  text: '',
  preprocess: 'crop',
  enhancer: 'none',
  still: false,
  pose: '0',
  ...over,
});

describe('talking-head form', () => {
  it('names the missing inputs', () => {
    expect(missingFields(form())).toEqual({});
    expect(missingFields(form({ imageId: null }))).toEqual({ image: 'th.image_required' });
    expect(missingFields(form({ audioId: null }))).toEqual({ audio: 'th.audio_required' });
    expect(missingFields(form({ speak: true, text: '  ' }))).toEqual({ text: 'th.text_required' });
    expect(missingFields(form({ pose: '46' }))).toEqual({ pose_style: 'th.pose_invalid' });
    expect(missingFields(form({ pose: '1.5' }))).toEqual({ pose_style: 'th.pose_invalid' });
  });

  it('sends audio or text, never both', () => {
    expect(requestBody(form({ still: true, pose: '7', enhancer: 'gfpgan' }))).toEqual({
      image: 'img',
      audio: 'aud',
      preprocess: 'crop',
      enhancer: 'gfpgan',
      still: true,
      pose_style: 7,
    });
    const spoken = requestBody(form({ speak: true, text: ' Hello ' }));
    expect(spoken.text).toBe('Hello');
    expect(spoken.audio).toBeUndefined();
  });
});
