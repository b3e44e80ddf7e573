import { describe, expect, it } from 'vitest';
import {
  addMediaClip,
  addTextClip,
  addTrack,
  duration,
  emptySpec,
  fieldTarget,
  findClip,
  fitStart,
  formatTime,
  fromSpec,
  gaps,
  moveClip,
  moveTrack,
  nearestTarget,
  removeClip,
  resizeClip,
  setMediaDurations,
  snapTargets,
  tickStep,
  toSpec,
  visiblePeaks,
  MAX_DURATION,
  MAX_TRACKS,
  type Timeline,
  type TimelineSpec,
} from './timeline';

const M1 = '00000000-0000-4000-8000-000000000001';
const M2 = '00000000-0000-4000-8000-000000000002';
const A1 = '00000000-0000-4000-8000-0000000000a1';

function spec(): TimelineSpec {
  return {
    name: 'Trip',
    width: 640,
    height: 360,
    fps: 25,
    tracks: [
      {
        kind: 'image',
        clips: [
          { start: 4, duration: 2, media_id: M2, pan_zoom: { start_zoom: 1, end_zoom: 1.5 } },
          { start: 0, duration: 3, media_id: M1 },
        ],
      },
      { kind: 'audio', clips: [{ start: 1, duration: 4, in_point: 2, media_id: A1, volume: 0.5 }] },
    ],
  };
}

const keyAt = (tl: Timeline, t: number, c: number): string => {
  const k = tl.tracks[t]?.clips[c]?.key;
  if (!k) throw new Error(`no clip ${t}/${c}`);
  return k;
};
const clipOf = (tl: Timeline, key: string) => {
  const f = findClip(tl, key);
  if (!f) throw new Error(`no clip ${key}`);
  return f.clip;
};

describe('spec conversion', () => {
  it('sorts clips by start, keeps every other field and round-trips', () => {
    const tl = fromSpec(spec());
    expect(tl.tracks[0]?.clips.map((c) => c.start)).toEqual([0, 4]);
    const back = toSpec(tl);
    expect(back.tracks?.[0]?.clips?.[1]).toEqual({ start: 4, duration: 2, media_id: M2, pan_zoom: { start_zoom: 1, end_zoom: 1.5 } });
    expect(back.tracks?.[1]?.clips?.[0]).toEqual({ start: 1, duration: 4, in_point: 2, media_id: A1, volume: 0.5 });
    expect(JSON.stringify(back)).not.toContain('key');
    expect(toSpec(fromSpec(back))).toEqual(back);
  });

  it('rounds times to the millisecond', () => {
    const tl = fromSpec(spec());
    const moved = moveClip(tl, keyAt(tl, 0, 1), 0.1 + 0.2 + 3.7);
    expect(toSpec(moved).tracks?.[0]?.clips?.[1]?.start).toBe(4);
    const k = keyAt(tl, 0, 0);
    const odd = { ...tl, tracks: tl.tracks.map((t, i) => (i === 0 ? { ...t, clips: t.clips.map((c) => (c.key === k ? { ...c, duration: 1 / 3 } : c)) } : t)) };
    expect(toSpec(odd).tracks?.[0]?.clips?.[0]?.duration).toBe(0.333);
  });

  it('a new timeline has a picture track and a sound track', () => {
    expect(emptySpec('x').tracks?.map((t) => t.kind)).toEqual(['image', 'audio']);
    expect(duration(fromSpec(spec()))).toBe(6);
  });
});

describe('moving', () => {
  it('never overlaps a neighbour: clamps flush against it, or jumps to the nearest gap', () => {
    const tl = fromSpec(spec()); // image track: [0,3) and [4,6)
    const first = keyAt(tl, 0, 0);
    expect(clipOf(moveClip(tl, first, 0.5), first).start).toBe(0.5);
    expect(clipOf(moveClip(tl, first, 1.5), first).start).toBe(1); // flush against the clip at 4
    // Dropped on the second clip, nearer its end: goes after it.
    expect(clipOf(moveClip(tl, first, 5.5), first).start).toBe(6);
    // Order follows the times.
    expect(moveClip(tl, first, 7).tracks[0]?.clips.map((c) => c.key)).toEqual([keyAt(tl, 0, 1), first]);
  });

  it('clamps at 0 and before the longest timeline', () => {
    const tl = fromSpec(spec());
    const second = keyAt(tl, 0, 1);
    expect(clipOf(moveClip(tl, second, -10), second).start).toBe(3); // 0 is taken by [0,3)
    const first = keyAt(tl, 0, 0);
    expect(clipOf(moveClip(tl, first, -10), first).start).toBe(0);
    expect(clipOf(moveClip(tl, second, 99999), second).start).toBe(MAX_DURATION - 2);
  });

  it('snaps either edge to other clips (all tracks) and to whole seconds', () => {
    const tl = fromSpec(spec());
    const second = keyAt(tl, 0, 1);
    const targets = snapTargets(tl, second, 10);
    expect(targets).toContain(3); // end of the first image
    expect(targets).toContain(5); // end of the audio clip
    expect(targets).toContain(7); // a whole second
    const snap = { targets, threshold: 0.15 };
    expect(clipOf(moveClip(tl, second, 3.1, snap), second).start).toBe(3); // start edge → 3
    expect(clipOf(moveClip(tl, second, 4.9, snap), second).start).toBe(5); // start edge → 5
    expect(clipOf(moveClip(tl, second, 6.4, snap), second).start).toBe(6.4); // nothing near (8.4 end)
    expect(clipOf(moveClip(tl, second, 6.93, snap), second).start).toBe(7); // start → 7 beats end 8.93 → 9
    expect(nearestTarget(2.5, { targets: [2, 3], threshold: 0.4 })).toBeNull();
    expect(nearestTarget(2.7, { targets: [2, 3], threshold: 0.4 })).toBe(3);
    expect(nearestTarget(2.7, null)).toBeNull();
  });

  it('finds gaps and the nearest fitting start', () => {
    const tl = fromSpec(spec());
    const clips = tl.tracks[0]?.clips ?? [];
    expect(gaps(clips, null)).toEqual([
      [3, 4],
      [6, Infinity],
    ]);
    expect(fitStart(clips, null, 3.2, 0.5)).toBe(3.2);
    expect(fitStart(clips, null, 3.2, 2)).toBe(6); // the 1 s gap is too short
  });
});

describe('resizing', () => {
  it('the end stays after the start, before the next clip, and within the media', () => {
    const tl = fromSpec(spec());
    const first = keyAt(tl, 0, 0);
    expect(clipOf(resizeClip(tl, first, 'end', 3.5), first).duration).toBe(3.5);
    expect(clipOf(resizeClip(tl, first, 'end', 10), first).duration).toBe(4); // next clip at 4
    expect(clipOf(resizeClip(tl, first, 'end', -1), first).duration).toBe(0.1);
    const audio = setMediaDurations(tl, new Map([[A1, 7]]));
    const a = keyAt(audio, 1, 0);
    // in_point 2 of a 7 s sound: at most 5 s of it from start 1 → ends at 6.
    expect(clipOf(resizeClip(audio, a, 'end', 20), a).duration).toBe(5);
  });

  it('trimming the start of a sound moves its in-point; never before the media begins', () => {
    const tl = fromSpec(spec());
    const a = keyAt(tl, 1, 0); // start 1, duration 4, in_point 2
    const later = clipOf(resizeClip(tl, a, 'start', 2), a);
    expect([later.start, later.duration, later.in_point]).toEqual([2, 3, 3]);
    const earlier = clipOf(resizeClip(tl, a, 'start', 0), a); // only 1 s of room before (start 1 ≥ 0)
    expect([earlier.start, earlier.duration, earlier.in_point]).toEqual([0, 5, 1]);
    const tight = fromSpec({ ...spec(), tracks: [{ kind: 'audio', clips: [{ start: 5, duration: 2, in_point: 0.5, media_id: A1 }] }] });
    const t = keyAt(tight, 0, 0);
    expect(clipOf(resizeClip(tight, t, 'start', 1), t).start).toBe(4.5);
  });

  it('a still grows to the left up to the previous clip, keeping its end', () => {
    const tl = fromSpec(spec());
    const second = keyAt(tl, 0, 1); // [4,6), previous ends at 3
    const c = clipOf(resizeClip(tl, second, 'start', 1), second);
    expect([c.start, c.duration, c.in_point]).toEqual([3, 3, undefined]);
    const snapped = clipOf(resizeClip(tl, second, 'start', 4.46, { targets: [4.5], threshold: 0.1 }), second);
    expect([snapped.start, snapped.duration]).toEqual([4.5, 1.5]);
    expect(clipOf(resizeClip(tl, second, 'start', 9), second).duration).toBe(0.1);
  });
});

describe('adding and removing', () => {
  it('adds media after the last clip: stills 3 s, sounds their length', () => {
    let tl = fromSpec(spec());
    const image = tl.tracks[0]?.key ?? '';
    const audio = tl.tracks[1]?.key ?? '';
    const r1 = addMediaClip(tl, image, { id: M1 });
    tl = r1.timeline;
    expect(clipOf(tl, r1.key ?? '')).toMatchObject({ start: 6, duration: 3, media_id: M1, in_point: 0 });
    const r2 = addMediaClip(tl, audio, { id: A1, duration: 2.5 });
    expect(clipOf(r2.timeline, r2.key ?? '')).toMatchObject({ start: 5, duration: 2.5, mediaDuration: 2.5 });
    expect(addTextClip(tl, image, 'x').key).toBeNull(); // an image track takes media
    const titled = addTrack(tl, 'title');
    const r3 = addTextClip(titled, titled.tracks[2]?.key ?? '', 'The end');
    expect(toSpec(r3.timeline).tracks?.[2]).toEqual({ kind: 'title', clips: [{ start: 0, duration: 3, text: 'The end' }] });
    expect(removeClip(r2.timeline, r2.key ?? '').tracks[1]?.clips).toHaveLength(1);
  });

  it('tracks: at most 16, and reorderable', () => {
    let tl = fromSpec(emptySpec('x'));
    for (let i = 0; i < 20; i++) tl = addTrack(tl, 'video');
    expect(tl.tracks).toHaveLength(MAX_TRACKS);
    const two = fromSpec(emptySpec('x'));
    const first = two.tracks[0]?.key ?? '';
    expect(moveTrack(two, first, 1).tracks.map((t) => t.kind)).toEqual(['audio', 'image']);
    expect(moveTrack(two, first, -1)).toBe(two);
  });
});

describe('API errors and the ruler', () => {
  it('maps a field path to the clip in sent order', () => {
    const tl = fromSpec(spec());
    // Sent order of the image track is by start: clips[1] is the one at 4 s.
    expect(fieldTarget(tl, 'tracks[0].clips[1].start')).toEqual({ trackKey: tl.tracks[0]?.key, clipKey: keyAt(tl, 0, 1), field: 'start' });
    expect(fieldTarget(tl, 'tracks[1].clips[0].transition.duration').field).toBe('transition.duration');
    expect(fieldTarget(tl, 'tracks[1].clips').clipKey).toBeNull();
    expect(fieldTarget(tl, 'width')).toEqual({ trackKey: null, clipKey: null, field: 'width' });
    expect(fieldTarget(tl, 'tracks[9].clips[0].start').trackKey).toBeNull();
  });

  it('ticks and times', () => {
    expect(tickStep(200)).toBe(0.5);
    expect(tickStep(40)).toBe(2);
    expect(tickStep(1)).toBe(120);
    expect(formatTime(75.25)).toBe('1:15.3');
    expect(formatTime(3)).toBe('0:03.0');
  });

  it('shows the peaks under the clip only', () => {
    const peaks = Array.from({ length: 100 }, (_, i) => i / 100); // 10 s of sound, 10 peaks/s
    expect(visiblePeaks(peaks, 10, 2, 3)).toEqual(peaks.slice(20, 50));
    expect(visiblePeaks(peaks, 10, 9, 5)).toEqual(peaks.slice(90));
    expect(visiblePeaks([], 10, 0, 1)).toEqual([]);
  });
});
