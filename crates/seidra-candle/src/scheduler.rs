//! DDIM, Euler and Euler-ancestral samplers with a seeded noise source.
//!
//! candle ships DDIM and Euler-ancestral too, but its CPU random generator cannot be seeded
//! (`Device::Cpu.set_seed` fails), so Euler-ancestral would never repeat itself. These follow
//! diffusers' `DDIMScheduler` (eta 0) and `Euler(Ancestral)DiscreteScheduler` with the
//! config's timestep spacing ("leading"; "trailing" for SDXL-Turbo; "linspace"), and draw all
//! noise from [`Noise`] on the host, so a seed gives the same latents on every device.

use candle_core::{Device, Result, Tensor};

use crate::config::SchedulerJson;

/// Sampler names accepted in `ImageRequest::scheduler`.
pub const NAMES: [&str; 3] = ["ddim", "euler", "euler_a"];

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Deterministic DDIM (eta = 0).
    Ddim,
    /// Euler, no added noise.
    Euler,
    /// Euler-ancestral: fresh noise every step.
    EulerAncestral,
}

impl Kind {
    /// Parses a request's scheduler name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ddim" => Some(Self::Ddim),
            "euler" => Some(Self::Euler),
            "euler_a" | "euler_ancestral" => Some(Self::EulerAncestral),
            _ => None,
        }
    }
}

/// Deterministic standard-normal numbers (SplitMix64 + Box–Muller).
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5EED_CA4D_1E00_0001)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        // 53 random bits in (0, 1].
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// A tensor of `dims` standard-normal values.
    pub fn tensor(&mut self, dims: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let mut values = Vec::with_capacity(n + 1);
        while values.len() < n {
            let (r, theta) = ((-2.0 * self.uniform().ln()).sqrt(), std::f64::consts::TAU * self.uniform());
            values.push((r * theta.cos()) as f32);
            values.push((r * theta.sin()) as f32);
        }
        values.truncate(n);
        Tensor::from_vec(values, dims, device)
    }
}

/// A sampler prepared for a number of steps.
#[derive(Debug)]
pub struct Sampler {
    kind: Kind,
    v_prediction: bool,
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<usize>,
    /// Euler: sigma per timestep, then 0.
    sigmas: Vec<f64>,
    step_ratio: usize,
    final_alpha: f64,
}

impl Sampler {
    /// Prepares `steps` inference steps.
    pub fn new(kind: Kind, config: &SchedulerJson, steps: usize) -> Self {
        let t = config.num_train_timesteps.max(1);
        let steps = steps.clamp(1, t);
        let betas: Vec<f64> = (0..t)
            .map(|i| {
                let f = if t == 1 { 0.0 } else { i as f64 / (t - 1) as f64 };
                if config.beta_schedule == "linear" {
                    config.beta_start + f * (config.beta_end - config.beta_start)
                } else {
                    let (a, b) = (config.beta_start.sqrt(), config.beta_end.sqrt());
                    (a + f * (b - a)).powi(2)
                }
            })
            .collect();
        let mut acc = 1.0;
        let alphas_cumprod: Vec<f64> = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let step_ratio = t / steps;
        let timesteps: Vec<usize> = match config.timestep_spacing.as_str() {
            // t = 999, 749, … for 4 steps: a single step starts from pure noise (SDXL-Turbo).
            "trailing" => {
                let ratio = t as f64 / steps as f64;
                (0..steps).map(|i| ((t as f64 - i as f64 * ratio).round() as usize).saturating_sub(1)).collect()
            }
            "linspace" if steps > 1 => {
                (0..steps).rev().map(|i| (i as f64 * (t - 1) as f64 / (steps - 1) as f64).round() as usize).collect()
            }
            "linspace" => vec![t - 1],
            // "leading" (validated when the model loads).
            _ => (0..steps).rev().map(|i| (i * step_ratio + config.steps_offset).min(t - 1)).collect(),
        };
        let mut sigmas: Vec<f64> =
            timesteps.iter().map(|&ts| ((1.0 - alphas_cumprod[ts]) / alphas_cumprod[ts]).sqrt()).collect();
        sigmas.push(0.0);
        let final_alpha = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        Self {
            kind,
            v_prediction: config.prediction_type == "v_prediction",
            alphas_cumprod,
            timesteps,
            sigmas,
            step_ratio,
            final_alpha,
        }
    }

    /// Timesteps, noisiest first.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Scale of the initial noise.
    pub fn init_noise_sigma(&self) -> f64 {
        match self.kind {
            Kind::Ddim => 1.0,
            _ => (self.sigmas[0].powi(2) + 1.0).sqrt(),
        }
    }

    /// Scales the UNet input for step `index`.
    pub fn scale_input(&self, sample: &Tensor, index: usize) -> Result<Tensor> {
        match self.kind {
            Kind::Ddim => Ok(sample.clone()),
            _ => sample / (self.sigmas[index].powi(2) + 1.0).sqrt(),
        }
    }

    /// One update from the model output at step `index`.
    pub fn step(&self, output: &Tensor, index: usize, sample: &Tensor, noise: &mut Noise) -> Result<Tensor> {
        match self.kind {
            Kind::Ddim => self.ddim(output, index, sample),
            Kind::Euler | Kind::EulerAncestral => self.euler(output, index, sample, noise),
        }
    }

    fn ddim(&self, output: &Tensor, index: usize, sample: &Tensor) -> Result<Tensor> {
        let t = self.timesteps[index];
        let alpha = self.alphas_cumprod[t];
        let alpha_prev = t.checked_sub(self.step_ratio).map_or(self.final_alpha, |p| self.alphas_cumprod[p]);
        let (sa, sb) = (alpha.sqrt(), (1.0 - alpha).sqrt());
        let (x0, eps) = if self.v_prediction {
            ((sample * sa)? - (output * sb)?, (output * sa)? + (sample * sb)?)
        } else {
            (((sample - (output * sb)?)? / sa), Ok(output.clone()))
        };
        (x0? * alpha_prev.sqrt())? + (eps? * (1.0 - alpha_prev).sqrt())?
    }

    fn euler(&self, output: &Tensor, index: usize, sample: &Tensor, noise: &mut Noise) -> Result<Tensor> {
        let (sigma, sigma_to) = (self.sigmas[index], self.sigmas[index + 1]);
        let x0 = if self.v_prediction {
            ((output * (-sigma / (sigma * sigma + 1.0).sqrt()))? + (sample / (sigma * sigma + 1.0))?)?
        } else {
            (sample - (output * sigma)?)?
        };
        let derivative = ((sample - &x0)? / sigma)?;
        let (sigma_down, sigma_up) = if self.kind == Kind::EulerAncestral && sigma > 0.0 {
            let up = (sigma_to.powi(2) * (sigma.powi(2) - sigma_to.powi(2)) / sigma.powi(2)).max(0.0).sqrt();
            ((sigma_to.powi(2) - up.powi(2)).max(0.0).sqrt(), up)
        } else {
            (sigma_to, 0.0)
        };
        let next = (sample + (derivative * (sigma_down - sigma))?)?;
        if sigma_up > 0.0 {
            let n = noise.tensor(next.dims(), next.device())?.to_dtype(next.dtype())?;
            next + (n * sigma_up)?
        } else {
            Ok(next)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn timesteps_and_noise_are_deterministic() {
        let s = Sampler::new(Kind::Ddim, &SchedulerJson::default(), 4);
        assert_eq!(s.timesteps(), [751, 501, 251, 1]);
        let a = Noise::new(3).tensor(&[5], &Device::Cpu).unwrap().to_vec1::<f32>().unwrap();
        let b = Noise::new(3).tensor(&[5], &Device::Cpu).unwrap().to_vec1::<f32>().unwrap();
        let c = Noise::new(4).tensor(&[5], &Device::Cpu).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Trailing spacing (SDXL-Turbo) starts at the noisiest timestep, even for one step.
        let trailing = SchedulerJson { timestep_spacing: "trailing".into(), ..SchedulerJson::default() };
        assert_eq!(Sampler::new(Kind::EulerAncestral, &trailing, 1).timesteps(), [999]);
        assert_eq!(Sampler::new(Kind::EulerAncestral, &trailing, 4).timesteps(), [999, 749, 499, 249]);
        let linspace = SchedulerJson { timestep_spacing: "linspace".into(), ..SchedulerJson::default() };
        assert_eq!(Sampler::new(Kind::Euler, &linspace, 3).timesteps(), [999, 500, 0]);
        let e = Sampler::new(Kind::EulerAncestral, &SchedulerJson::default(), 10);
        assert!(e.init_noise_sigma() > 1.0, "{}", e.init_noise_sigma());
    }
}
