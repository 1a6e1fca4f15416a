//! DDIM (Song et al. 2020) with eta = 0: deterministic, one model call per step.

use candle_core::Tensor;
use serde::Deserialize;

use super::common::{self, BetaSchedule, Prediction, Spacing};
use super::{Scheduler, StepInput};
use crate::error::Result;

fn d_true() -> bool {
    true
}
fn d_leading() -> Spacing {
    Spacing::Leading
}
fn d_one() -> f64 {
    1.0
}

/// DDIMScheduler config fields (diffusers defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct DdimConfig {
    #[serde(flatten)]
    pub betas: BetaSchedule,
    #[serde(default = "d_true")]
    pub clip_sample: bool,
    #[serde(default = "d_one")]
    pub clip_sample_range: f64,
    #[serde(default = "d_true")]
    pub set_alpha_to_one: bool,
    #[serde(default)]
    pub steps_offset: usize,
    #[serde(default = "common::d_epsilon")]
    pub prediction_type: Prediction,
    #[serde(default = "d_leading")]
    pub timestep_spacing: Spacing,
    #[serde(default)]
    pub thresholding: bool,
}

/// DDIM sampler state.
#[derive(Debug, Clone)]
pub struct Ddim {
    alphas_cumprod: Vec<f64>,
    final_alpha: f64,
    timesteps: Vec<f64>,
    stride: usize,
    cfg: DdimConfig,
}

impl Ddim {
    /// Builds the sampler for `steps` inference steps from its config.
    pub fn new(cfg: DdimConfig, steps: usize) -> Result<Self> {
        if cfg.thresholding {
            return Err(crate::error::EngineError::invalid(
                "scheduler.thresholding",
                "dynamic thresholding is not supported",
            ));
        }
        let ac = cfg.betas.alphas_cumprod()?;
        let n = cfg.betas.num_train_timesteps;
        let final_alpha = if cfg.set_alpha_to_one { 1.0 } else { ac[0] };
        let timesteps = common::spaced_timesteps(cfg.timestep_spacing, n, steps, cfg.steps_offset)
            .into_iter()
            .map(|t| common::round_even(t).clamp(0.0, (n - 1) as f64))
            .collect();
        Ok(Self {
            alphas_cumprod: ac,
            final_alpha,
            timesteps,
            stride: n / steps,
            cfg,
        })
    }
}

impl Scheduler for Ddim {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, _step: usize) -> Result<Tensor> {
        Ok(sample.clone())
    }

    fn step(&mut self, input: StepInput<'_>) -> Result<Tensor> {
        let t = self.timesteps[input.step] as usize;
        let prev = t as i64 - self.stride as i64;
        let a_t = self.alphas_cumprod[t];
        let a_prev = if prev >= 0 {
            self.alphas_cumprod[prev as usize]
        } else {
            self.final_alpha
        };
        let sample = input.sample;
        let out = input.model_output;
        let mut x0 = common::predict_x0_vp(self.cfg.prediction_type, sample, out, a_t)?;
        let eps = match self.cfg.prediction_type {
            Prediction::Epsilon => out.clone(),
            Prediction::VPrediction => ((out * a_t.sqrt())? + (sample * (1.0 - a_t).sqrt())?)?,
            Prediction::Sample => ((sample - (&x0 * a_t.sqrt())?)? / (1.0 - a_t).sqrt())?,
        };
        if self.cfg.clip_sample {
            let r = self.cfg.clip_sample_range;
            x0 = x0.clamp(-r, r)?;
        }
        Ok(((x0 * a_prev.sqrt())? + (eps * (1.0 - a_prev).sqrt())?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_util::sd15_config, SchedulerKind};
    use super::*;
    use candle_core::Device;

    #[test]
    fn leading_timesteps_from_sd15_config() {
        let s = SchedulerKind::Ddim.build(&sd15_config(), 4).unwrap();
        assert_eq!(s.timesteps(), &[751.0, 501.0, 251.0, 1.0]);
        assert_eq!(s.init_noise_sigma(), 1.0);
    }

    #[test]
    fn perfect_noise_prediction_recovers_the_clean_sample() {
        // x_t = sqrt(a) x0 + sqrt(1-a) eps; with the true eps, the last step must return x0.
        let mut s = SchedulerKind::Ddim.build(&sd15_config(), 1).unwrap();
        let t = s.timesteps()[0] as usize;
        let cfg: DdimConfig = common::parse(&sd15_config(), "ddim").unwrap();
        let a = cfg.betas.alphas_cumprod().unwrap()[t];
        let x0 = Tensor::new(&[0.5f32, -0.25], &Device::Cpu).unwrap();
        let eps = Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let xt = ((&x0 * a.sqrt()).unwrap() + (&eps * (1.0 - a).sqrt()).unwrap()).unwrap();
        let out = s
            .step(StepInput {
                step: 0,
                model_output: &eps,
                sample: &xt,
                noise: None,
            })
            .unwrap();
        // set_alpha_to_one = false: the final alpha is alphas_cumprod[0], not 1.
        let a0 = cfg.betas.alphas_cumprod().unwrap()[0];
        let want = ((&x0 * a0.sqrt()).unwrap() + (&eps * (1.0 - a0).sqrt()).unwrap()).unwrap();
        let d = (out - want)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "{d}");
    }
}
