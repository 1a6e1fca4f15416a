//! Latent Consistency Model sampler (Luo et al. 2023): each step jumps to a clean-sample
//! estimate through the consistency boundary condition, then re-noises to the next timestep.

use candle_core::Tensor;
use serde::Deserialize;

use super::common::{self, BetaSchedule, Prediction};
use super::{Scheduler, StepInput};
use crate::error::{EngineError, Result};

fn d_50() -> usize {
    50
}
fn d_ten() -> f64 {
    10.0
}
fn d_true() -> bool {
    true
}

/// LCMScheduler config fields (diffusers defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct LcmConfig {
    #[serde(flatten)]
    pub betas: BetaSchedule,
    #[serde(default = "d_50")]
    pub original_inference_steps: usize,
    #[serde(default = "d_true")]
    pub set_alpha_to_one: bool,
    #[serde(default = "common::d_epsilon")]
    pub prediction_type: Prediction,
    #[serde(default = "d_ten")]
    pub timestep_scaling: f64,
    #[serde(default)]
    pub thresholding: bool,
    #[serde(default)]
    pub clip_sample: bool,
    #[serde(default = "d_one")]
    pub clip_sample_range: f64,
}

fn d_one() -> f64 {
    1.0
}

/// LCM sampler state.
#[derive(Debug, Clone)]
pub struct Lcm {
    alphas_cumprod: Vec<f64>,
    final_alpha: f64,
    timesteps: Vec<f64>,
    cfg: LcmConfig,
}

impl Lcm {
    /// Builds the sampler for `steps` inference steps from its config.
    pub fn new(cfg: LcmConfig, steps: usize) -> Result<Self> {
        let ac = cfg.betas.alphas_cumprod()?;
        let n = cfg.betas.num_train_timesteps;
        let orig = cfg.original_inference_steps;
        if steps > orig || orig == 0 || orig > n {
            return Err(EngineError::invalid(
                "steps",
                format!("LCM supports at most original_inference_steps = {orig} steps"),
            ));
        }
        if cfg.thresholding {
            return Err(EngineError::invalid(
                "scheduler.thresholding",
                "dynamic thresholding is not supported",
            ));
        }
        let k = n / orig;
        let origin: Vec<usize> = (1..=orig).rev().map(|i| i * k - 1).collect();
        let timesteps = (0..steps)
            .map(|i| {
                let idx = (i as f64 * origin.len() as f64 / steps as f64).floor() as usize;
                origin[idx] as f64
            })
            .collect();
        let final_alpha = if cfg.set_alpha_to_one { 1.0 } else { ac[0] };
        Ok(Self {
            alphas_cumprod: ac,
            final_alpha,
            timesteps,
            cfg,
        })
    }
}

impl Scheduler for Lcm {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, _step: usize) -> Result<Tensor> {
        Ok(sample.clone())
    }

    fn needs_noise(&self, step: usize) -> bool {
        step + 1 < self.timesteps.len()
    }

    fn step(&mut self, input: StepInput<'_>) -> Result<Tensor> {
        let i = input.step;
        let t = self.timesteps[i];
        let last = i + 1 == self.timesteps.len();
        let prev_t = if last { t } else { self.timesteps[i + 1] };
        let a_t = self.alphas_cumprod[t as usize];
        let a_prev = if prev_t >= 0.0 {
            self.alphas_cumprod[prev_t as usize]
        } else {
            self.final_alpha
        };
        let scaled = t * self.cfg.timestep_scaling;
        let sd2 = 0.25; // sigma_data = 0.5
        let c_skip = sd2 / (scaled * scaled + sd2);
        let c_out = scaled / (scaled * scaled + sd2).sqrt();
        let x0 = common::predict_x0_vp(
            self.cfg.prediction_type,
            input.sample,
            input.model_output,
            a_t,
        )?;
        let denoised = ((x0 * c_out)? + (input.sample * c_skip)?)?;
        if last {
            return Ok(denoised);
        }
        let noise = input.noise.ok_or_else(|| {
            EngineError::invalid("noise", "LCM needs noise on every step but the last")
        })?;
        Ok(((denoised * a_prev.sqrt())? + (noise * (1.0 - a_prev).sqrt())?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_util::sd15_config, SchedulerKind};
    use super::*;

    #[test]
    fn timesteps_skip_through_the_original_50() {
        let s = SchedulerKind::Lcm.build(&sd15_config(), 4).unwrap();
        assert_eq!(s.timesteps(), &[999.0, 759.0, 499.0, 259.0]);
        assert!((0..3).all(|i| s.needs_noise(i)) && !s.needs_noise(3));
    }

    #[test]
    fn more_steps_than_original_is_a_steps_error() {
        let r = SchedulerKind::Lcm.build(&sd15_config(), 51);
        assert!(matches!(
            r,
            Err(EngineError::InvalidRequest { field: "steps", .. })
        ));
    }
}
