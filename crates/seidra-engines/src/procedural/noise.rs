//! Deterministic hashing, a tiny RNG and 2D gradient noise.
//!
//! Everything here is pure integer hashing plus IEEE float arithmetic in a fixed order, so
//! the same inputs give bit-identical outputs run after run (no tables built from global
//! state, no hash-map iteration, no threads).

/// SplitMix64 finaliser: a cheap, well-mixed 64-bit hash step.
pub(crate) fn mix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stable 64-bit hash of a string (FNV-1a, then mixed): the same word always maps to the
/// same hue, shape and placement, across runs and platforms.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h)
}

/// Folds a 64-bit value into a 32-bit noise seed.
pub(crate) fn seed32(z: u64) -> u32 {
    let m = mix64(z);
    (m ^ (m >> 32)) as u32
}

/// SplitMix64 stream: small, fast and fully reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Starts a stream from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(mix64(seed))
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f32 {
        unit_from_bits(self.next_u64())
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
}

/// Maps the top 24 bits of `bits` to `[0, 1)` exactly (24 bits fit an f32 mantissa).
pub(crate) fn unit_from_bits(bits: u64) -> f32 {
    (bits >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// 32-bit lattice hash of an integer point; the noise functions' only source of randomness.
#[inline]
pub(crate) fn hash2(ix: i32, iy: i32, seed: u32) -> u32 {
    let mut h = (ix as u32).wrapping_mul(0x27D4_EB2D) ^ (iy as u32).wrapping_mul(0x1656_67B1) ^ seed;
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^= h >> 15;
    h
}

/// Hash of a lattice point mapped to `[-1, 1)`: per-pixel grain and per-cell latent noise.
#[inline]
pub(crate) fn hash_signed(ix: i32, iy: i32, seed: u32) -> f32 {
    (hash2(ix, iy, seed) >> 8) as f32 * (2.0 / 16_777_216.0) - 1.0
}

/// Approximately standard-normal value per lattice point (Irwin–Hall sum of four uniforms),
/// used for the sampler's starting noise; avoids transcendental functions.
pub(crate) fn gaussian(ix: i32, iy: i32, seed: u32) -> f32 {
    let a = hash_signed(ix, iy, seed);
    let b = hash_signed(ix, iy, seed ^ 0x68E3_1DA4);
    let c = hash_signed(ix, iy, seed ^ 0xB529_7A4D);
    let d = hash_signed(ix, iy, seed ^ 0x1B56_C4E9);
    // Each term has variance 1/3; four of them sum to variance 4/3.
    (a + b + c + d) * 0.866_025_4
}

/// Sixteen unit gradients evenly spaced around the circle (Perlin-style noise with fewer
/// axis-aligned artefacts than the classic eight).
const GRADIENTS: [(f32, f32); 16] = {
    const R: f32 = std::f32::consts::FRAC_1_SQRT_2;
    [
        (1.0, 0.0),
        (0.923_879_5, 0.382_683_4),
        (R, R),
        (0.382_683_4, 0.923_879_5),
        (0.0, 1.0),
        (-0.382_683_4, 0.923_879_5),
        (-R, R),
        (-0.923_879_5, 0.382_683_4),
        (-1.0, 0.0),
        (-0.923_879_5, -0.382_683_4),
        (-R, -R),
        (-0.382_683_4, -0.923_879_5),
        (0.0, -1.0),
        (0.382_683_4, -0.923_879_5),
        (R, -R),
        (0.923_879_5, -0.382_683_4),
    ]
};

/// Scales raw 2D gradient noise (about ±0.7) to about ±1.
const NOISE_SCALE: f32 = 1.4;

#[inline]
fn gradient(ix: i32, iy: i32, seed: u32) -> (f32, f32) {
    GRADIENTS[(hash2(ix, iy, seed) >> 28) as usize]
}

/// Quintic fade: C2-continuous, so noise derivatives have no creases.
#[inline]
pub(crate) fn fade(t: f32) -> f32 {
    t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
}

#[inline]
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// 2D gradient noise in about `[-1, 1]`, zero on lattice points.
pub(crate) fn perlin(x: f32, y: f32, seed: u32) -> f32 {
    let xf = x.floor();
    let yf = y.floor();
    let (ix, iy) = (xf as i32, yf as i32);
    let (fx, fy) = (x - xf, y - yf);
    let g00 = gradient(ix, iy, seed);
    let g10 = gradient(ix.wrapping_add(1), iy, seed);
    let g01 = gradient(ix, iy.wrapping_add(1), seed);
    let g11 = gradient(ix.wrapping_add(1), iy.wrapping_add(1), seed);
    let n00 = g00.0 * fx + g00.1 * fy;
    let n10 = g10.0 * (fx - 1.0) + g10.1 * fy;
    let n01 = g01.0 * fx + g01.1 * (fy - 1.0);
    let n11 = g11.0 * (fx - 1.0) + g11.1 * (fy - 1.0);
    let u = fade(fx);
    lerp(lerp(n00, n10, u), lerp(n01, n11, u), fade(fy)) * NOISE_SCALE
}

/// Fractal sum of `octaves` noise layers (lacunarity 2, gain 0.5), each with its own seed.
pub(crate) fn fbm(x: f32, y: f32, octaves: u32, seed: u32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 0.5;
    let mut freq = 1.0;
    for o in 0..octaves {
        sum += amp * perlin(x * freq, y * freq, seed.wrapping_add(o.wrapping_mul(0x9E37_79B9)));
        amp *= 0.5;
        freq *= 2.0;
    }
    sum
}

/// Adds `amp * perlin(x0 + i * dx, y)` to every `out[i]`: the per-pixel detail layer.
///
/// Consecutive pixels usually share a lattice cell, so the four corner gradients are only
/// re-hashed when the cell changes; that keeps full-resolution detail to a few flops a pixel.
pub(crate) fn perlin_row_add(out: &mut [f32], x0: f32, dx: f32, y: f32, seed: u32, amp: f32) {
    let yf = y.floor();
    let iy = yf as i32;
    let fy = y - yf;
    let fy1 = fy - 1.0;
    let v = fade(fy);
    let amp = amp * NOISE_SCALE;
    let mut cell = i32::MIN;
    let (mut a0, mut a1, mut b0, mut b1) = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0));
    for (i, o) in out.iter_mut().enumerate() {
        let x = x0 + dx * i as f32;
        let xf = x.floor();
        let ix = xf as i32;
        if ix != cell {
            cell = ix;
            a0 = gradient(ix, iy, seed);
            a1 = gradient(ix.wrapping_add(1), iy, seed);
            // Fold the y term in once per cell: n = gx * fx + (gy * fy).
            let c0 = gradient(ix, iy.wrapping_add(1), seed);
            let c1 = gradient(ix.wrapping_add(1), iy.wrapping_add(1), seed);
            a0.1 *= fy;
            a1.1 *= fy;
            b0 = (c0.0, c0.1 * fy1);
            b1 = (c1.0, c1.1 * fy1);
        }
        let fx = x - xf;
        let fx1 = fx - 1.0;
        let n00 = a0.0 * fx + a0.1;
        let n10 = a1.0 * fx1 + a1.1;
        let n01 = b0.0 * fx + b0.1;
        let n11 = b1.0 * fx1 + b1.1;
        let u = fade(fx);
        *o += amp * lerp(lerp(n00, n10, u), lerp(n01, n11, u), v);
    }
}

/// 1D ridged noise in `[0, 1]` (sharp crests): mountain silhouettes.
pub(crate) fn ridged_1d(x: f32, octaves: u32, seed: u32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 0.5;
    let mut norm = 0.0;
    let mut freq = 1.0;
    for o in 0..octaves {
        // Off the lattice's mid-line, where 1D slices of 2D noise are flattest.
        let n = perlin(x * freq, 0.27 + o as f32 * 7.31, seed.wrapping_add(o));
        let r = 1.0 - n.abs().min(1.0);
        sum += amp * r * r;
        norm += amp;
        amp *= 0.5;
        freq *= 2.1;
    }
    if norm > 0.0 { sum / norm } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_and_varied() {
        let mut min = f32::MAX;
        let mut max = f32::MIN;
        for j in 0..200 {
            for i in 0..200 {
                let v = perlin(i as f32 * 0.173, j as f32 * 0.119, 7);
                min = min.min(v);
                max = max.max(v);
            }
        }
        assert!(min > -1.2 && max < 1.2, "{min} {max}");
        assert!(max - min > 1.0, "noise too flat: {min} {max}");
    }

    #[test]
    fn row_noise_matches_point_noise() {
        let mut row = vec![0.0f32; 300];
        perlin_row_add(&mut row, -3.2, 0.037, 5.61, 99, 1.0);
        for (i, v) in row.iter().enumerate() {
            let p = perlin(-3.2 + 0.037 * i as f32, 5.61, 99);
            assert!((v - p).abs() < 1e-4, "{i}: {v} vs {p}");
        }
    }

    #[test]
    fn gaussian_has_unit_variance() {
        let n = 20_000;
        let (mut sum, mut sq) = (0.0f64, 0.0f64);
        for i in 0..n {
            let g = f64::from(gaussian(i, i / 7, 3));
            sum += g;
            sq += g * g;
        }
        let mean = sum / f64::from(n);
        let var = sq / f64::from(n) - mean * mean;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.1, "{mean} {var}");
    }

    #[test]
    fn words_hash_stably() {
        assert_eq!(hash_str("fox"), hash_str("fox"));
        assert_ne!(hash_str("fox"), hash_str("box"));
        let mut r = Rng::new(1);
        let v: Vec<f32> = (0..4).map(|_| r.unit()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
    }
}
