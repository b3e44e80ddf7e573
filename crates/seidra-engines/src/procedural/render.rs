//! The cost model: a low-resolution latent (1/8 of the image per side) is refined once per
//! step by a small k-diffusion-style sampler; one full-resolution pass then decodes it with
//! detail noise, shapes, light and the colour table, and the result is PNG-encoded.
//!
//! Per-step work is proportional to the latent (1/64 of the pixels), so 150 steps cost about
//! as much as one full-resolution pass.

use tokio_util::sync::CancellationToken;

use super::noise::{fbm, gaussian, hash_signed, mix64, perlin, perlin_row_add, ridged_1d, seed32};
use super::plan::{LUT_SIZE, Plan, Scheduler, Shape};

/// Latent cells per image pixel along each side.
const LATENT_DIV: u32 = 8;
/// Noise level the sampler starts from.
const SIGMA_MAX: f32 = 1.5;
/// Last non-zero noise level.
const SIGMA_MIN: f32 = 0.03;
/// Rows rendered between two cancellation checks in the full-resolution pass.
const CANCEL_CHECK_ROWS: usize = 64;

/// The prompt-conditioned target and the static light field, at latent resolution.
#[derive(Debug, Clone)]
pub(crate) struct Latent {
    /// Cells across.
    pub w: usize,
    /// Cells down.
    pub h: usize,
    /// Low-frequency part of the guided target.
    coarse: Vec<f32>,
    /// High-frequency part of the guided target (revealed as noise falls).
    fine: Vec<f32>,
    /// Brightness multiplier.
    light: Vec<f32>,
}

impl Latent {
    /// Evaluates the target fields for an image of `width`×`height`.
    pub(crate) fn new(plan: &Plan, width: u32, height: u32) -> Self {
        let w = (width / LATENT_DIV).max(8) as usize;
        let h = (height / LATENT_DIV).max(8) as usize;
        let longest = width.max(height) as f32;
        let (ax, ay) = (width as f32 / longest, height as f32 / longest);
        let f = plan.base_freq;
        let warp = plan.warp * 4.0;
        let seed = plan.cond_seed;
        let mut coarse = Vec::with_capacity(w * h);
        let mut fine = Vec::with_capacity(w * h);
        let mut light = Vec::with_capacity(w * h);
        for j in 0..h {
            let py = ((j as f32 + 0.5) / h as f32 - 0.5) * ay;
            for i in 0..w {
                let px = ((i as f32 + 0.5) / w as f32 - 0.5) * ax;
                let (x, y) = (px * f, py * f);
                // Two-level domain warp: the flowing, marbled structure.
                let qx = fbm(x + 1.7, y + 9.2, 3, seed ^ 0x51);
                let qy = fbm(x + 8.3, y + 2.8, 3, seed ^ 0x52);
                let (wx, wy) = (x + warp * qx, y + warp * qy);
                let (c, fi) = fbm_split(wx, wy, seed);
                // Classifier-free guidance against the negative prompt's own field (a zero
                // field when there is none, which makes guidance a pure contrast push).
                let uncond = plan.uncond_seed.map_or(0.0, |s| 0.8 * fbm(x * 1.3, y * 1.3, 3, s));
                coarse.push(1.4 * (c + plan.cfg * (c - uncond)));
                fine.push(1.4 * fi * (1.0 + plan.cfg));
                light.push(light_at(plan, px, py));
            }
        }
        Self { w, h, coarse, fine, light }
    }

    fn cells(&self) -> usize {
        self.w * self.h
    }
}

/// Four-octave fractal noise split into its two coarse and two fine octaves.
fn fbm_split(x: f32, y: f32, seed: u32) -> (f32, f32) {
    let mut coarse = 0.0;
    let mut fine = 0.0;
    let mut amp = 0.5;
    let mut freq = 1.0;
    for o in 0..4u32 {
        let n = amp * perlin(x * freq, y * freq, seed.wrapping_add(o.wrapping_mul(0x9E37_79B9)));
        if o < 2 {
            coarse += n;
        } else {
            fine += n;
        }
        amp *= 0.5;
        freq *= 2.0;
    }
    (coarse, fine)
}

fn light_at(plan: &Plan, px: f32, py: f32) -> f32 {
    let r2 = px * px + py * py;
    let (gx, gy, gs) = plan.glow;
    let d2 = (px - gx) * (px - gx) + (py - gy) * (py - gy);
    let glow = gs * (-d2 / 0.06).exp();
    let wobble = 0.15 * fbm(px * 2.5, py * 2.5, 2, plan.light_seed);
    (1.0 - plan.vignette * 1.6 * r2 + glow + wobble).clamp(0.25, 1.6)
}

/// Noise levels for `steps` steps, ending with 0.
fn sigmas(scheduler: Scheduler, steps: u32) -> Vec<f32> {
    let n = steps.max(1) as usize;
    let mut s: Vec<f32> = match scheduler {
        // DDIM uses evenly spaced timesteps: quadratic in sigma here.
        Scheduler::Ddim => (0..n)
            .map(|i| {
                let r = 1.0 - i as f32 / n as f32;
                SIGMA_MIN + (SIGMA_MAX - SIGMA_MIN) * r * r
            })
            .collect(),
        // The k-diffusion samplers use the Karras schedule (rho = 7).
        _ if n == 1 => vec![SIGMA_MAX],
        _ => {
            let rho = 7.0f32;
            let (a, b) = (SIGMA_MAX.powf(1.0 / rho), SIGMA_MIN.powf(1.0 / rho));
            (0..n).map(|i| (a + (i as f32 / (n - 1) as f32) * (b - a)).powf(rho)).collect()
        }
    };
    s.push(0.0);
    s
}

/// A tiny sampler over the latent: the "model" predicts the target, trusting a blurred copy
/// of the current state more while the noise is high, so few steps leave a rougher image.
pub(crate) struct Sampler<'a> {
    plan: &'a Plan,
    latent: &'a Latent,
    sigmas: Vec<f32>,
    step: usize,
    /// Current noisy state.
    x: Vec<f32>,
    /// Latest prediction of the clean latent (what previews show).
    denoised: Vec<f32>,
    /// Previous prediction, for the second-order sampler.
    old_denoised: Option<Vec<f32>>,
    /// Previous log-sigma step, for the second-order sampler.
    h_last: f32,
    scratch: Vec<f32>,
}

impl<'a> Sampler<'a> {
    /// Starts from seeded Gaussian noise at the highest noise level.
    pub(crate) fn new(plan: &'a Plan, latent: &'a Latent, steps: u32) -> Self {
        let sigmas = sigmas(plan.scheduler, steps);
        let s0 = sigmas[0];
        let mut x = Vec::with_capacity(latent.cells());
        for j in 0..latent.h {
            for i in 0..latent.w {
                x.push(s0 * gaussian(i as i32, j as i32, plan.noise_seed));
            }
        }
        Self {
            plan,
            latent,
            sigmas,
            step: 0,
            denoised: vec![0.0; x.len()],
            scratch: vec![0.0; x.len()],
            x,
            old_denoised: None,
            h_last: 0.0,
        }
    }

    /// The model's prediction at `sigma` into `self.denoised`.
    fn denoise(&mut self, sigma: f32) {
        let (w, h) = (self.latent.w, self.latent.h);
        // Separable [1 2 1] / 4 blur with clamped edges: x -> scratch (rows) -> denoised (cols).
        for j in 0..h {
            let row = &self.x[j * w..(j + 1) * w];
            let out = &mut self.scratch[j * w..(j + 1) * w];
            for i in 0..w {
                let l = row[i.saturating_sub(1)];
                let r = row[(i + 1).min(w - 1)];
                out[i] = 0.25 * (l + r) + 0.5 * row[i];
            }
        }
        let trust = 0.55 * sigma / (sigma + 0.6);
        let fine_gain = 1.0 / (1.0 + (sigma / 0.35) * (sigma / 0.35));
        for j in 0..h {
            let up = j.saturating_sub(1) * w;
            let mid = j * w;
            let down = (j + 1).min(h - 1) * w;
            for i in 0..w {
                let blurred = 0.25 * (self.scratch[up + i] + self.scratch[down + i]) + 0.5 * self.scratch[mid + i];
                let target = self.latent.coarse[mid + i] + fine_gain * self.latent.fine[mid + i];
                self.denoised[mid + i] = target + (blurred - target) * trust;
            }
        }
    }

    /// Runs one sampler step; returns false once every step has run.
    pub(crate) fn step(&mut self) -> bool {
        let Some((&sigma, &next)) = self.sigmas.get(self.step).zip(self.sigmas.get(self.step + 1)) else {
            return false;
        };
        self.denoise(sigma);
        let x = &mut self.x;
        let den = &self.denoised;
        match self.plan.scheduler {
            Scheduler::Ddim | Scheduler::Euler => {
                let k = (next - sigma) / sigma;
                for (xv, d) in x.iter_mut().zip(den) {
                    *xv += (*xv - d) * k;
                }
            }
            Scheduler::EulerA => {
                let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).max(0.0).sqrt().min(next);
                let down = (next * next - up * up).max(0.0).sqrt();
                let k = (down - sigma) / sigma;
                let seed = seed32(u64::from(self.plan.noise_seed) ^ mix64(self.step as u64 + 1));
                let w = self.latent.w;
                for (idx, (xv, d)) in x.iter_mut().zip(den).enumerate() {
                    *xv += (*xv - d) * k;
                    if up > 0.0 {
                        *xv += up * gaussian((idx % w) as i32, (idx / w) as i32, seed);
                    }
                }
            }
            Scheduler::DpmPp2m => {
                if next == 0.0 {
                    x.copy_from_slice(den);
                } else {
                    let h = sigma.ln() - next.ln();
                    let ratio = next / sigma;
                    let e = (-h).exp() - 1.0;
                    match &self.old_denoised {
                        Some(old) if self.h_last > 0.0 => {
                            let r = self.h_last / h;
                            let (a, b) = (1.0 + 1.0 / (2.0 * r), 1.0 / (2.0 * r));
                            for ((xv, d), o) in x.iter_mut().zip(den).zip(old) {
                                *xv = ratio * *xv - e * (a * d - b * o);
                            }
                        }
                        _ => {
                            for (xv, d) in x.iter_mut().zip(den) {
                                *xv = ratio * *xv - e * d;
                            }
                        }
                    }
                    self.h_last = h;
                }
                match &mut self.old_denoised {
                    Some(old) => old.copy_from_slice(den),
                    None => self.old_denoised = Some(den.clone()),
                }
            }
        }
        self.step += 1;
        true
    }

    /// The current prediction of the clean latent.
    pub(crate) fn preview_latent(&self) -> &[f32] {
        &self.denoised
    }

    /// The final latent (after the last step).
    pub(crate) fn result(&self) -> &[f32] {
        &self.x
    }
}

/// Catmull-Rom taps and weights for resampling `cells` latent cells onto `pixels` pixels.
fn cubic_taps(cells: usize, pixels: u32) -> Vec<([usize; 4], [f32; 4])> {
    let scale = cells as f32 / pixels as f32;
    let last = cells as isize - 1;
    (0..pixels)
        .map(|p| {
            let pos = (p as f32 + 0.5) * scale - 0.5;
            let base = pos.floor();
            let f = pos - base;
            let b = base as isize;
            let idx = [-1isize, 0, 1, 2].map(|o| (b + o).clamp(0, last) as usize);
            let (f2, f3) = (f * f, f * f * f);
            let wts = [
                0.5 * (-f3 + 2.0 * f2 - f),
                0.5 * (3.0 * f3 - 5.0 * f2 + 2.0),
                0.5 * (-3.0 * f3 + 4.0 * f2 + f),
                0.5 * (f3 - f2),
            ];
            (idx, wts)
        })
        .collect()
}

/// Per-column data of a shape that depends only on x.
enum Prepared<'p> {
    Ridge { line: Vec<f32>, tone: f32, top: f32 },
    Wave { centre: Vec<f32>, shape: &'p Shape },
    Circle(&'p Shape),
}

/// Decodes `state` (a latent from the sampler) into RGB8 pixels of `width`×`height`.
/// Returns `None` when `cancel` fires mid-way.
pub(crate) fn render_rgb(
    plan: &Plan,
    latent: &Latent,
    state: &[f32],
    width: u32,
    height: u32,
    cancel: &CancellationToken,
) -> Option<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    let m = width.max(height) as f32;
    let half_w = width as f32 * 0.5;
    let half_h = height as f32 * 0.5;
    let edge = 1.2 / m;
    let col_px: Vec<f32> = (0..w).map(|x| (x as f32 + 0.5 - half_w) / m).collect();
    let xtaps = cubic_taps(latent.w, width);
    let ytaps = cubic_taps(latent.h, height);

    let prepared: Vec<Prepared<'_>> = plan
        .shapes
        .iter()
        .map(|s| match s {
            Shape::Ridge { base, height, freq, seed, tone } => {
                let line: Vec<f32> = col_px.iter().map(|&px| base - height * ridged_1d(px * freq, 3, *seed)).collect();
                let top = line.iter().copied().fold(f32::INFINITY, f32::min);
                Prepared::Ridge { line, tone: *tone, top }
            }
            Shape::Wave { y0, amp, k, phase, .. } => {
                let centre = col_px
                    .iter()
                    .map(|&px| y0 + amp * ((k * px + phase).sin() + 0.3 * (2.3 * k * px + 1.7 * phase).sin()))
                    .collect();
                Prepared::Wave { centre, shape: s }
            }
            Shape::Sphere { .. } | Shape::Ring { .. } => Prepared::Circle(s),
        })
        .collect();

    let detail_dx = plan.detail_freq / m;
    let mut rgb = vec![0u8; w * h * 3];
    let mut row_s = vec![0.0f32; latent.w];
    let mut row_l = vec![0.0f32; latent.w];
    let mut t = vec![0.0f32; w];
    let mut light = vec![0.0f32; w];

    for (y, ((yi, yw), out)) in ytaps.iter().zip(rgb.chunks_exact_mut(w * 3)).enumerate() {
        if y % CANCEL_CHECK_ROWS == 0 && cancel.is_cancelled() {
            return None;
        }
        let py = (y as f32 + 0.5 - half_h) / m;
        // Vertical resampling of the latent rows once per image row.
        for c in 0..latent.w {
            let (mut s, mut l) = (0.0, 0.0);
            for k in 0..4 {
                let at = yi[k] * latent.w + c;
                s += yw[k] * state[at];
                l += yw[k] * latent.light[at];
            }
            row_s[c] = s;
            row_l[c] = l;
        }
        for (x, (xi, xw)) in xtaps.iter().enumerate() {
            let s = xw[0] * row_s[xi[0]] + xw[1] * row_s[xi[1]] + xw[2] * row_s[xi[2]] + xw[3] * row_s[xi[3]];
            let l = xw[0] * row_l[xi[0]] + xw[1] * row_l[xi[1]] + xw[2] * row_l[xi[2]] + xw[3] * row_l[xi[3]];
            t[x] = 0.5 + s;
            light[x] = l;
        }
        if plan.detail_amp > 0.0 {
            let x0 = -half_w / m * plan.detail_freq + 0.5 * detail_dx;
            let dy = py * plan.detail_freq;
            perlin_row_add(&mut t, x0, detail_dx, dy, plan.detail_seed, plan.detail_amp);
            perlin_row_add(&mut t, 2.0 * x0, 2.0 * detail_dx, 2.0 * dy, plan.detail_seed ^ 0x2, plan.detail_amp * 0.5);
        }
        for p in &prepared {
            apply_shape(p, &mut t, &col_px, py, m, half_w, edge);
        }
        let scale = (LUT_SIZE - 1) as f32;
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            let mut v = t[x];
            if plan.grain > 0.0 {
                v += plan.grain * hash_signed(x as i32, y as i32, plan.grain_seed);
            }
            let i = (v.clamp(0.0, 1.0) * scale + 0.5) as usize;
            let c = plan.lut[i.min(LUT_SIZE - 1)];
            let l = light[x];
            // `as u8` saturates, which is the clamp we want.
            px[0] = (c[0] * l) as u8;
            px[1] = (c[1] * l) as u8;
            px[2] = (c[2] * l) as u8;
        }
    }
    Some(rgb)
}

/// Pixel columns `[lo, hi)` covered by `[cx - r, cx + r]` in normalised units.
fn column_span(cx: f32, r: f32, m: f32, half_w: f32, w: usize) -> (usize, usize) {
    let lo = ((cx - r) * m + half_w - 1.0).floor().max(0.0) as usize;
    let hi = (((cx + r) * m + half_w + 1.0).ceil().max(0.0) as usize).min(w);
    (lo.min(w), hi)
}

fn apply_shape(p: &Prepared<'_>, t: &mut [f32], col_px: &[f32], py: f32, m: f32, half_w: f32, edge: f32) {
    match p {
        Prepared::Ridge { line, tone, top } => {
            if py < top - edge {
                return;
            }
            for (v, &yr) in t.iter_mut().zip(line) {
                let d = py - yr;
                let alpha = (d / edge + 0.5).clamp(0.0, 1.0);
                if alpha > 0.0 {
                    // Back-lit: brightest at the crest, darkening with depth; some of the
                    // field shows through as rock texture.
                    let tv = tone + 0.22 / (1.0 + d * 20.0) - 0.35 * d;
                    *v += (tv - *v) * 0.88 * alpha;
                }
            }
        }
        Prepared::Wave { centre, shape } => {
            let Shape::Wave { y0, amp, thick, shift, .. } = shape else { return };
            if (py - y0).abs() > 1.3 * amp + thick + edge {
                return;
            }
            for (v, &yc) in t.iter_mut().zip(centre) {
                let d = (py - yc).abs();
                if d < *thick {
                    let q = d / thick;
                    *v += shift * (1.0 - q * q);
                }
            }
        }
        Prepared::Circle(Shape::Sphere { cx, cy, r, tone }) => {
            let dy = py - cy;
            if dy.abs() > r + edge {
                return;
            }
            let (lo, hi) = column_span(*cx, *r, m, half_w, t.len());
            let inv_r = 1.0 / r;
            for x in lo..hi {
                let dx = col_px[x] - cx;
                let d2 = dx * dx + dy * dy;
                let d = d2.sqrt();
                let alpha = ((r - d) / edge + 0.5).clamp(0.0, 1.0);
                if alpha > 0.0 {
                    // Lambert-ish shading lit from the upper left.
                    let z = (1.0 - d2 * inv_r * inv_r).max(0.0).sqrt();
                    let tv = tone - 0.2 + 0.35 * z - 0.15 * (dx + dy) * inv_r;
                    t[x] += (tv - t[x]) * alpha;
                }
            }
        }
        Prepared::Circle(Shape::Ring { cx, cy, r, thick, shift }) => {
            let dy = py - cy;
            let outer = r + thick + edge;
            if dy.abs() > outer {
                return;
            }
            let (lo, hi) = column_span(*cx, outer, m, half_w, t.len());
            let width = thick + edge;
            for x in lo..hi {
                let dx = col_px[x] - cx;
                let d = (dx * dx + dy * dy).sqrt();
                let q = (d - r).abs() / width;
                if q < 1.0 {
                    t[x] += shift * (1.0 - q * q);
                }
            }
        }
        Prepared::Circle(_) => {}
    }
}

/// Encodes RGB8 pixels as PNG: fdeflate's fast mode with adaptive row filters, which
/// compresses these smooth images well at a fraction of zlib's cost.
pub(crate) fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(rgb.len() / 3);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_decrease_to_zero() {
        for s in [Scheduler::Ddim, Scheduler::Euler, Scheduler::EulerA, Scheduler::DpmPp2m] {
            for n in [1, 2, 30, 150] {
                let sig = sigmas(s, n);
                assert_eq!(sig.len(), n as usize + 1);
                assert_eq!(sig.last(), Some(&0.0));
                assert!(sig.windows(2).all(|p| p[0] > p[1]), "{s:?} {n} {sig:?}");
            }
        }
    }

    #[test]
    fn cubic_weights_sum_to_one() {
        for (_, w) in cubic_taps(16, 128) {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}
