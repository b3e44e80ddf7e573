//! Turns a request into a drawing plan: palette, shapes, field parameters and style.
//!
//! Words are read in order and looked up in sorted tables (never a hash map), so the plan is
//! a pure function of the request and the image seed.

use seidra_core::job::ImageRequest;

use super::noise::{Rng, hash_str, mix64, seed32};

/// Entries in the colour look-up table; the field value in `[0, 1]` indexes it.
pub(crate) const LUT_SIZE: usize = 1024;

/// How the scheduler changes the look of the final pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheduler {
    /// `ddim`: smooth gradients.
    Ddim,
    /// `euler`: posterised bands with contour lines.
    Euler,
    /// `euler_a`: stochastic steps and film grain.
    EulerA,
    /// `dpmpp_2m`: second-order steps and folded, marble-like veins.
    DpmPp2m,
}

impl Scheduler {
    /// Names accepted in `ImageRequest::scheduler`, in the order advertised.
    pub(crate) const NAMES: [&'static str; 4] = ["ddim", "euler", "euler_a", "dpmpp_2m"];

    /// Parses a request's scheduler name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "ddim" => Some(Self::Ddim),
            "euler" => Some(Self::Euler),
            "euler_a" => Some(Self::EulerA),
            "dpmpp_2m" => Some(Self::DpmPp2m),
            _ => None,
        }
    }
}

/// A shape drawn over the field, in normalised coordinates (the longer image side spans
/// `[-0.5, 0.5]`, y grows downwards).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Back-lit mountain range: everything below a ridged line.
    Ridge {
        /// Mean height of the crest line.
        base: f32,
        /// Crest amplitude.
        height: f32,
        /// Horizontal frequency of the crest noise.
        freq: f32,
        /// Noise seed of the crest.
        seed: u32,
        /// Palette position of the range.
        tone: f32,
    },
    /// Soft ribbon following a sum of two sines.
    Wave {
        /// Mean height.
        y0: f32,
        /// Amplitude.
        amp: f32,
        /// Angular frequency.
        k: f32,
        /// Phase.
        phase: f32,
        /// Half thickness.
        thick: f32,
        /// Palette shift at the ribbon's core.
        shift: f32,
    },
    /// Shaded sphere.
    Sphere {
        /// Centre x.
        cx: f32,
        /// Centre y.
        cy: f32,
        /// Radius.
        r: f32,
        /// Palette position of the lit side.
        tone: f32,
    },
    /// Thin glowing ring.
    Ring {
        /// Centre x.
        cx: f32,
        /// Centre y.
        cy: f32,
        /// Radius.
        r: f32,
        /// Half thickness.
        thick: f32,
        /// Palette shift on the ring.
        shift: f32,
    },
}

/// Everything the sampler and the renderer need for one image.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Colour per field value, RGB in 0..=255 (contrast, saturation and style baked in).
    pub lut: Vec<[f32; 3]>,
    /// Shapes in drawing order.
    pub shapes: Vec<Shape>,
    /// Scheduler (sampler update rule and final-pass style).
    pub scheduler: Scheduler,
    /// Seed of the prompt-conditioned structure field.
    pub cond_seed: u32,
    /// Seed of the negative-prompt field; `None` when the negative prompt is empty.
    pub uncond_seed: Option<u32>,
    /// Base frequency of the structure field.
    pub base_freq: f32,
    /// Domain-warp strength.
    pub warp: f32,
    /// Classifier-free-guidance push applied to the structure (grows with guidance_scale).
    pub cfg: f32,
    /// Seed of the sampler's starting and ancestral noise.
    pub noise_seed: u32,
    /// Seed of the light field.
    pub light_seed: u32,
    /// Glow centre and strength.
    pub glow: (f32, f32, f32),
    /// Vignette strength.
    pub vignette: f32,
    /// Amplitude of the full-resolution detail noise.
    pub detail_amp: f32,
    /// Frequency of the detail noise (cycles across the longer side).
    pub detail_freq: f32,
    /// Seed of the detail noise.
    pub detail_seed: u32,
    /// Amplitude of per-pixel grain (only `euler_a`).
    pub grain: f32,
    /// Seed of the grain.
    pub grain_seed: u32,
}

/// Words that carry no picture and would only dilute the palette.
const STOP_WORDS: [&str; 24] = [
    "a", "an", "and", "are", "as", "at", "by", "for", "from", "in", "into", "is", "it", "its", "my", "of", "on", "or",
    "some", "the", "to", "very", "with", "without",
];

/// Colour words and their HSV (hue degrees, saturation, value), sorted by word for binary
/// search.
const COLOUR_WORDS: &[(&str, f32, f32, f32)] = &[
    ("amber", 40.0, 0.9, 0.9),
    ("aqua", 180.0, 0.7, 0.9),
    ("azure", 210.0, 0.75, 0.95),
    ("beige", 38.0, 0.25, 0.9),
    ("black", 230.0, 0.2, 0.06),
    ("blue", 220.0, 0.8, 0.75),
    ("bronze", 30.0, 0.7, 0.55),
    ("brown", 25.0, 0.65, 0.4),
    ("copper", 22.0, 0.75, 0.7),
    ("coral", 10.0, 0.6, 0.95),
    ("crimson", 350.0, 0.85, 0.6),
    ("cyan", 185.0, 0.75, 0.9),
    ("desert", 35.0, 0.5, 0.85),
    ("emerald", 145.0, 0.8, 0.6),
    ("fire", 18.0, 0.95, 0.95),
    ("forest", 130.0, 0.6, 0.35),
    ("gold", 45.0, 0.75, 0.9),
    ("golden", 45.0, 0.75, 0.9),
    ("grass", 105.0, 0.7, 0.6),
    ("gray", 220.0, 0.05, 0.55),
    ("green", 125.0, 0.7, 0.65),
    ("grey", 220.0, 0.05, 0.55),
    ("ice", 195.0, 0.3, 0.97),
    ("indigo", 255.0, 0.75, 0.45),
    ("lava", 12.0, 0.95, 0.85),
    ("lavender", 265.0, 0.35, 0.9),
    ("lemon", 55.0, 0.8, 0.97),
    ("lime", 90.0, 0.8, 0.85),
    ("magenta", 310.0, 0.8, 0.85),
    ("midnight", 240.0, 0.7, 0.15),
    ("mint", 150.0, 0.4, 0.9),
    ("navy", 228.0, 0.8, 0.3),
    ("night", 235.0, 0.6, 0.18),
    ("ocean", 205.0, 0.8, 0.55),
    ("olive", 70.0, 0.6, 0.5),
    ("orange", 28.0, 0.9, 0.95),
    ("pink", 330.0, 0.45, 0.95),
    ("purple", 285.0, 0.65, 0.6),
    ("red", 0.0, 0.85, 0.8),
    ("rose", 345.0, 0.55, 0.85),
    ("sand", 40.0, 0.35, 0.85),
    ("sea", 200.0, 0.75, 0.6),
    ("silver", 210.0, 0.06, 0.8),
    ("sky", 200.0, 0.55, 0.95),
    ("snow", 205.0, 0.08, 0.97),
    ("storm", 215.0, 0.3, 0.35),
    ("sunset", 15.0, 0.8, 0.95),
    ("teal", 178.0, 0.75, 0.55),
    ("violet", 275.0, 0.6, 0.75),
    ("yellow", 55.0, 0.85, 0.95),
];

fn colour_word(word: &str) -> Option<(f32, f32, f32)> {
    COLOUR_WORDS.binary_search_by(|(w, ..)| w.cmp(&word)).ok().map(|i| {
        let (_, h, s, v) = COLOUR_WORDS[i];
        (h, s, v)
    })
}

/// Lower-cased alphanumeric words, in order, at most 64 (prompts are ≤ 2000 characters).
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).take(64).collect()
}

fn content_words(text: &str) -> Vec<String> {
    words(text).into_iter().filter(|w| !STOP_WORDS.contains(&w.as_str())).collect()
}

fn has_any(words: &[String], wanted: &[&str]) -> bool {
    words.iter().any(|w| wanted.contains(&w.as_str()))
}

/// What the negative prompt asks to avoid.
#[derive(Debug, Default)]
struct Avoid {
    words: Vec<String>,
    hues: Vec<f32>,
    spheres: bool,
    rings: bool,
    waves: bool,
    ridges: bool,
    texture: bool,
    darkness: bool,
    glare: bool,
}

impl Avoid {
    fn parse(negative: &str) -> Self {
        let words = content_words(negative);
        let hues = words.iter().filter_map(|w| colour_word(w)).filter(|c| c.1 > 0.15).map(|c| c.0).collect();
        Self {
            hues,
            spheres: has_any(
                &words,
                &["ball", "balls", "circle", "circles", "orb", "orbs", "round", "sphere", "spheres"],
            ),
            rings: has_any(&words, &["circle", "circles", "halo", "halos", "ring", "rings"]),
            waves: has_any(&words, &["line", "lines", "ribbon", "ribbons", "stripes", "wave", "waves"]),
            ridges: has_any(&words, &["hill", "hills", "landscape", "mountain", "mountains", "ridge", "ridges"]),
            texture: has_any(&words, &["detail", "grain", "grainy", "noise", "noisy", "texture", "textured"]),
            darkness: has_any(&words, &["dark", "darkness", "dim", "gloomy", "shadow", "shadows"]),
            glare: has_any(&words, &["bright", "glare", "glow", "overexposed", "shiny"]),
            words,
        }
    }
}

/// Circular distance between two hues, degrees.
fn hue_distance(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m]
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Palette stops (HSV) from the prompt words; colour words keep their colour, other words
/// hash to a hue, and the negative prompt pushes stops away from the hues it names.
fn palette_stops(words: &[String], prompt_hash: u64, seed: u64, avoid: &Avoid) -> Vec<(f32, f32, f32)> {
    let mut stops: Vec<(f32, f32, f32)> = Vec::with_capacity(6);
    for w in words.iter().take(6) {
        if let Some(c) = colour_word(w) {
            stops.push(c);
        } else {
            let h = hash_str(w);
            let mut r = Rng::new(h);
            stops.push(((h % 3600) as f32 / 10.0, r.range(0.45, 0.9), r.range(0.3, 0.95)));
        }
    }
    // Too few words: complete with a split-complementary scheme around the first hue.
    let mut r = Rng::new(prompt_hash ^ 0x005E_ED0F_C010);
    let h0 = stops.first().map_or((prompt_hash % 360) as f32, |s| s.0);
    let extra = [(h0 + 150.0, 0.25), (h0 + 210.0, 0.9), (h0 + 30.0, 0.55)];
    for (h, v) in extra {
        if stops.len() >= 3 {
            break;
        }
        stops.push((h, r.range(0.5, 0.85), v));
    }
    // Batches share a palette family; the seed nudges hues a little.
    let jitter = (mix64(seed ^ 0x00C0_10E5) % 21) as f32 - 10.0;
    for s in &mut stops {
        s.0 += jitter;
        for &a in &avoid.hues {
            if hue_distance(s.0, a) < 60.0 {
                // Push to 75° away on the side the stop already was.
                let side = if (s.0 - a).rem_euclid(360.0) < 180.0 { 1.0 } else { -1.0 };
                s.0 = a + side * 75.0;
            }
        }
    }
    // Order by brightness so the field reads as depth; then spread values for contrast.
    stops.sort_by(|a, b| a.2.total_cmp(&b.2));
    let n = stops.len();
    let (lo, hi) = if avoid.darkness { (0.35, 0.97) } else { (0.08, 0.96) };
    for (i, s) in stops.iter_mut().enumerate() {
        let rank = i as f32 / (n - 1).max(1) as f32;
        s.2 = 0.5 * s.2 + 0.5 * (lo + (hi - lo) * rank);
    }
    stops
}

/// Style transform of the field value, baked into the look-up table.
fn styled(t: f32, scheduler: Scheduler, levels: f32, folds: f32) -> (f32, f32) {
    match scheduler {
        Scheduler::Ddim | Scheduler::EulerA => (t, 1.0),
        Scheduler::Euler => {
            // Posterise with a short soft ramp between bands and a dark contour line.
            let x = t * levels;
            let band = x.floor();
            let frac = x - band;
            let v = (band + smoothstep(0.88, 1.0, frac)) / levels;
            let line = 1.0 - 0.45 * (1.0 - smoothstep(0.0, 0.07, frac));
            (v.min(1.0), line)
        }
        Scheduler::DpmPp2m => {
            // Fold the field into veins, then sharpen the crests.
            let x = t * folds;
            let tri = 1.0 - (2.0 * (x - x.floor()) - 1.0).abs();
            (0.25 * t + 0.75 * tri.powf(0.65), 1.0)
        }
    }
}

fn build_lut(stops: &[(f32, f32, f32)], guidance: f32, scheduler: Scheduler, levels: f32, folds: f32) -> Vec<[f32; 3]> {
    let rgb: Vec<[f32; 3]> = stops.iter().map(|&(h, s, v)| hsv_to_rgb(h, s, v)).collect();
    // Guidance: low values give washed-out, flat images; high ones punchy, oversaturated ones.
    let g = guidance / 7.5;
    let contrast = 0.7 + 0.3 * g.min(1.0) + 0.35 * (g - 1.0).max(0.0);
    let saturation = 0.3 + 0.7 * g.min(1.0) + 0.2 * (g - 1.0).max(0.0);
    let n = rgb.len();
    (0..LUT_SIZE)
        .map(|i| {
            let t = i as f32 / (LUT_SIZE - 1) as f32;
            let tc = (0.5 + (t - 0.5) * contrast).clamp(0.0, 1.0);
            let (ts, shade) = styled(tc, scheduler, levels, folds);
            let pos = ts * (n - 1) as f32;
            let k = (pos.floor() as usize).min(n.saturating_sub(2));
            let f = smoothstep(0.0, 1.0, pos - k as f32);
            let a = rgb[k];
            let b = rgb[(k + 1).min(n - 1)];
            let mut c = [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
            let luma = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
            for ch in &mut c {
                *ch = ((luma + (*ch - luma) * saturation) * shade).clamp(0.0, 1.0) * 255.0;
            }
            c
        })
        .collect()
}

/// One shape per content word (at most ten); the word fixes the kind and tone, the word
/// and the seed fix the placement.
fn shapes(words: &[String], prompt_hash: u64, seed: u64, aspect: (f32, f32), avoid: &Avoid) -> Vec<Shape> {
    let (hx, hy) = (aspect.0 * 0.5, aspect.1 * 0.5);
    let fallback = [format!("#{prompt_hash:x}")];
    let source: &[String] = if words.is_empty() { &fallback } else { words };
    let mut out: Vec<(u8, f32, Shape)> = Vec::new();
    for (i, w) in source.iter().take(10).enumerate() {
        if avoid.words.contains(w) {
            continue;
        }
        let wh = hash_str(w);
        let mut r = Rng::new(wh ^ mix64(seed.wrapping_add(i as u64)));
        let tone = 0.15 + 0.8 * ((wh >> 20) % 1000) as f32 / 1000.0;
        match wh % 4 {
            0 if !avoid.ridges => {
                let base = r.range(0.15, 0.5) * aspect.1;
                let shape = Shape::Ridge {
                    base,
                    height: r.range(0.12, 0.35) * aspect.1,
                    freq: r.range(2.5, 7.0),
                    seed: seed32(wh ^ seed),
                    tone: tone * 0.6,
                };
                out.push((0, base, shape));
            }
            1 if !avoid.waves => {
                let y0 = r.range(-0.35, 0.35) * aspect.1;
                let shape = Shape::Wave {
                    y0,
                    amp: r.range(0.02, 0.12),
                    k: r.range(4.0, 16.0),
                    phase: r.range(0.0, std::f32::consts::TAU),
                    thick: r.range(0.006, 0.03),
                    shift: if wh & 0x100 == 0 { 0.3 } else { -0.3 },
                };
                out.push((1, y0, shape));
            }
            2 if !avoid.spheres => {
                let rad = r.range(0.04, 0.2);
                let shape = Shape::Sphere { cx: r.range(-hx, hx), cy: r.range(-hy, hy), r: rad, tone };
                // Larger spheres first so small ones stay visible.
                out.push((2, -rad, shape));
            }
            3 if !avoid.rings => {
                let rad = r.range(0.06, 0.3);
                let shape = Shape::Ring {
                    cx: r.range(-hx, hx),
                    cy: r.range(-hy, hy),
                    r: rad,
                    thick: r.range(0.003, 0.012),
                    shift: if wh & 0x200 == 0 { 0.35 } else { -0.35 },
                };
                out.push((3, -rad, shape));
            }
            _ => {}
        }
    }
    // Far things first: ranges top to bottom, then ribbons, spheres and rings.
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    out.into_iter().map(|(_, _, s)| s).collect()
}

impl Plan {
    /// Builds the plan for image `seed` of `request` (whose scheduler was checked).
    pub(crate) fn new(request: &ImageRequest, scheduler: Scheduler, seed: u64) -> Self {
        let words = content_words(&request.prompt);
        let prompt_hash = hash_str(&words.join(" ")) ^ hash_str(&request.prompt).rotate_left(17);
        let avoid = Avoid::parse(&request.negative_prompt);
        let negative_hash = hash_str(request.negative_prompt.trim());
        let mut r = Rng::new(prompt_hash);
        let (w, h) = (request.width as f32, request.height as f32);
        let longest = w.max(h);
        let aspect = (w / longest, h / longest);

        let stops = palette_stops(&words, prompt_hash, seed, &avoid);
        let levels = r.range(4.0, 8.99).floor();
        let folds = r.range(1.5, 3.0);
        let lut = build_lut(&stops, request.guidance_scale, scheduler, levels, folds);
        let base_freq = r.range(1.2, 3.0);
        let warp = r.range(0.15, 0.6);
        let glow = (r.range(-0.35, 0.35) * aspect.0, r.range(-0.4, 0.1) * aspect.1, r.range(0.2, 0.6));
        let detail_freq = r.range(18.0, 40.0);
        let detail_amp = if avoid.texture { 0.0 } else { r.range(0.04, 0.09) };
        let grain = match scheduler {
            Scheduler::EulerA if !avoid.texture => 0.12,
            _ => 0.0,
        };

        Self {
            lut,
            shapes: shapes(&words, prompt_hash, seed, aspect, &avoid),
            scheduler,
            cond_seed: seed32(prompt_hash ^ mix64(seed)),
            uncond_seed: (!request.negative_prompt.trim().is_empty()).then(|| seed32(negative_hash ^ mix64(seed))),
            base_freq,
            warp,
            // CFG: x = cond + (g - 1) * (cond - uncond), scaled down so 30 stays drawable.
            cfg: 0.06 * (request.guidance_scale - 1.0),
            noise_seed: seed32(seed ^ 0xA11C_E5ED),
            light_seed: seed32(prompt_hash ^ 0x1167),
            glow: (glow.0, glow.1, if avoid.glare { glow.2 * 0.3 } else { glow.2 }),
            vignette: if avoid.darkness { 0.1 } else { 0.45 },
            detail_amp,
            detail_freq,
            detail_seed: seed32(prompt_hash ^ seed.rotate_left(29) ^ 0xDE7A),
            grain,
            grain_seed: seed32(seed ^ 0x6A41),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_table_is_sorted() {
        assert!(COLOUR_WORDS.windows(2).all(|p| p[0].0 < p[1].0));
        assert_eq!(colour_word("red"), Some((0.0, 0.85, 0.8)));
        assert_eq!(colour_word("fox"), None);
    }

    #[test]
    fn words_are_lowercased_and_stop_words_dropped() {
        assert_eq!(content_words("A Red fox, in the SNOW!"), vec!["red", "fox", "snow"]);
    }

    #[test]
    fn negative_colour_pushes_hue_away() {
        let avoid = Avoid::parse("red");
        let stops = palette_stops(&["red".to_owned()], 1, 0, &avoid);
        assert!(stops.iter().all(|s| hue_distance(s.0, 0.0) >= 60.0), "{stops:?}");
    }
}
