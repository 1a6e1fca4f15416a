//! Euler discrete sampler (Karras et al. 2022, algorithm 2 without churn), the SDXL and
//! SD-Turbo default; `timestep_spacing = "trailing"` gives SD-Turbo's single-step schedule.

use candle_core::Tensor;
use serde::Deserialize;

use super::common::{self, BetaSchedule, Prediction, Spacing};
use super::{Scheduler, StepInput};
use crate::error::{EngineError, Result};

fn d_linspace() -> Spacing {
    Spacing::Linspace
}
fn d_linear() -> String {
    "linear".into()
}
fn d_zero() -> String {
    "zero".into()
}

/// EulerDiscreteScheduler / EulerAncestralDiscreteScheduler config fields (diffusers defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct EulerConfig {
    #[serde(flatten)]
    pub betas: BetaSchedule,
    #[serde(default)]
    pub steps_offset: usize,
    #[serde(default = "common::d_epsilon")]
    pub prediction_type: Prediction,
    #[serde(default = "d_linspace")]
    pub timestep_spacing: Spacing,
    #[serde(default = "d_linear")]
    pub interpolation_type: String,
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default = "d_zero")]
    pub final_sigmas_type: String,
    #[serde(default = "d_discrete")]
    pub timestep_type: String,
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    #[serde(default)]
    pub use_beta_sigmas: bool,
    /// Karras range overrides; default to the training schedule's extremes.
    #[serde(default)]
    pub sigma_min: Option<f64>,
    #[serde(default)]
    pub sigma_max: Option<f64>,
}

fn d_discrete() -> String {
    "discrete".into()
}

/// The sigma schedule shared by the Euler family: timesteps, sigmas (with the final 0) and
/// the initial noise scale.
#[derive(Debug, Clone)]
pub struct SigmaSchedule {
    pub timesteps: Vec<f64>,
    pub sigmas: Vec<f64>,
    pub init_noise_sigma: f64,
}

impl SigmaSchedule {
    /// Builds the sampler for `steps` inference steps from its config.
    pub fn new(cfg: &EulerConfig, steps: usize) -> Result<Self> {
        if cfg.interpolation_type != "linear" {
            return Err(EngineError::invalid(
                "scheduler.interpolation_type",
                format!(
                    "{:?} is not supported (only linear)",
                    cfg.interpolation_type
                ),
            ));
        }
        let ac = cfg.betas.alphas_cumprod()?;
        let n = cfg.betas.num_train_timesteps;
        let train = common::train_sigmas(&ac);
        let mut timesteps =
            common::spaced_timesteps(cfg.timestep_spacing, n, steps, cfg.steps_offset);
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| common::interp_sigma(&train, t))
            .collect();
        if cfg.use_karras_sigmas {
            let log: Vec<f64> = train.iter().map(|s| s.ln()).collect();
            let lo = cfg.sigma_min.unwrap_or(sigmas[sigmas.len() - 1]);
            let hi = cfg.sigma_max.unwrap_or(sigmas[0]);
            sigmas = common::karras_sigmas(lo, hi, steps);
            timesteps = sigmas
                .iter()
                .map(|&s| common::sigma_to_t(s, &log))
                .collect();
        }
        // diffusers stores sigmas as float32; reproduce that rounding.
        let mut sigmas: Vec<f64> = sigmas.into_iter().map(|s| s as f32 as f64).collect();
        let last = match cfg.final_sigmas_type.as_str() {
            "zero" => 0.0,
            "sigma_min" => train[0] as f32 as f64,
            other => {
                return Err(EngineError::invalid(
                    "scheduler.final_sigmas_type",
                    format!("{other:?} is not supported"),
                ))
            }
        };
        sigmas.push(last);
        let max = sigmas.iter().cloned().fold(0.0, f64::max);
        let init_noise_sigma = match cfg.timestep_spacing {
            Spacing::Linspace | Spacing::Trailing => max,
            Spacing::Leading => (max * max + 1.0).sqrt(),
        };
        Ok(Self {
            timesteps: timesteps.into_iter().map(|t| t as f32 as f64).collect(),
            sigmas,
            init_noise_sigma,
        })
    }

    /// Input scaling of the Euler family: sample / sqrt(sigma^2 + 1).
    pub fn scale(&self, sample: &Tensor, step: usize) -> Result<Tensor> {
        let s = self.sigmas[step];
        Ok((sample / (s * s + 1.0).sqrt())?)
    }
}

/// Euler sampler state.
#[derive(Debug, Clone)]
pub struct Euler {
    schedule: SigmaSchedule,
    prediction: Prediction,
}

impl Euler {
    /// Builds the sampler for `steps` inference steps from its config.
    pub fn new(cfg: EulerConfig, steps: usize) -> Result<Self> {
        Ok(Self {
            schedule: SigmaSchedule::new(&cfg, steps)?,
            prediction: cfg.prediction_type,
        })
    }

    /// The sigmas, for tests and progress reporting.
    pub fn sigmas(&self) -> &[f64] {
        &self.schedule.sigmas
    }
}

impl Scheduler for Euler {
    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    fn sigmas(&self) -> Option<&[f64]> {
        Some(&self.schedule.sigmas)
    }

    fn init_noise_sigma(&self) -> f64 {
        self.schedule.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &Tensor, step: usize) -> Result<Tensor> {
        self.schedule.scale(sample, step)
    }

    fn step(&mut self, input: StepInput<'_>) -> Result<Tensor> {
        let sigma = self.schedule.sigmas[input.step];
        let next = self.schedule.sigmas[input.step + 1];
        let x0 =
            common::predict_x0_sigma(self.prediction, input.sample, input.model_output, sigma)?;
        let derivative = ((input.sample - x0)? / sigma)?;
        Ok((input.sample + (derivative * (next - sigma))?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_util::sd15_config, SchedulerKind};
    use super::*;
    use candle_core::Device;

    #[test]
    fn linspace_is_the_default_and_starts_at_sigma_max() {
        let s = SchedulerKind::Euler.build(&sd15_config(), 4).unwrap();
        assert_eq!(s.timesteps(), &[999.0, 666.0, 333.0, 0.0]);
        let sig = s.sigmas().unwrap();
        assert_eq!(sig.len(), 5);
        assert_eq!(sig[4], 0.0);
        assert!((s.init_noise_sigma() - 14.614646).abs() < 1e-4);
    }

    #[test]
    fn leading_spacing_scales_initial_noise_by_sqrt_sigma2_plus_1() {
        let mut cfg = sd15_config();
        cfg.insert("timestep_spacing".into(), "leading".into());
        let s = SchedulerKind::Euler.build(&cfg, 4).unwrap();
        assert_eq!(s.timesteps(), &[751.0, 501.0, 251.0, 1.0]);
        let max = s.sigmas().unwrap()[0];
        assert!((s.init_noise_sigma() - (max * max + 1.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn turbo_one_step_lands_on_the_prediction() {
        let mut cfg = sd15_config();
        cfg.insert("timestep_spacing".into(), "trailing".into());
        let mut s = SchedulerKind::Euler.build(&cfg, 1).unwrap();
        assert_eq!(s.timesteps(), &[999.0]);
        let x = Tensor::new(&[3.0f32], &Device::Cpu).unwrap();
        let eps = Tensor::new(&[0.1f32], &Device::Cpu).unwrap();
        let out = s
            .step(StepInput {
                step: 0,
                model_output: &eps,
                sample: &x,
                noise: None,
            })
            .unwrap();
        let sigma = s.sigmas().unwrap()[0];
        let want = 3.0 - sigma * 0.1;
        assert!((out.to_vec1::<f32>().unwrap()[0] as f64 - want).abs() < 1e-5);
    }
}
