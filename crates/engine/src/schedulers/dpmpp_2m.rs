//! DPM-Solver++ 2M (Lu et al. 2022), multistep second order in the data-prediction form, with
//! optional Karras sigmas: the usual "DPM++ 2M Karras". First order on the first step and, for
//! short schedules, the last (diffusers' `lower_order_final`).

use candle_core::Tensor;
use serde::Deserialize;

use super::common::{self, BetaSchedule, Prediction, Spacing};
use super::{Scheduler, StepInput};
use crate::error::{EngineError, Result};

fn d_linspace() -> Spacing {
    Spacing::Linspace
}
fn d_two() -> usize {
    2
}
fn d_true() -> bool {
    true
}
fn d_algo() -> String {
    "dpmsolver++".into()
}
fn d_midpoint() -> String {
    "midpoint".into()
}
fn d_zero() -> String {
    "zero".into()
}

/// DPMSolverMultistepScheduler config fields (diffusers defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct DpmConfig {
    #[serde(flatten)]
    pub betas: BetaSchedule,
    #[serde(default = "d_two")]
    pub solver_order: usize,
    #[serde(default = "common::d_epsilon")]
    pub prediction_type: Prediction,
    #[serde(default = "d_algo")]
    pub algorithm_type: String,
    #[serde(default = "d_midpoint")]
    pub solver_type: String,
    #[serde(default = "d_true")]
    pub lower_order_final: bool,
    #[serde(default)]
    pub euler_at_final: bool,
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default = "d_zero")]
    pub final_sigmas_type: String,
    #[serde(default = "d_linspace")]
    pub timestep_spacing: Spacing,
    #[serde(default)]
    pub steps_offset: usize,
    #[serde(default)]
    pub thresholding: bool,
    #[serde(default)]
    pub use_lu_lambdas: bool,
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    #[serde(default)]
    pub use_beta_sigmas: bool,
    #[serde(default)]
    pub variance_type: Option<String>,
}

/// DPM++ 2M sampler state: the previous step's data prediction.
#[derive(Debug, Clone)]
pub struct DpmPp2m {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    prediction: Prediction,
    lower_order_final: bool,
    previous: Option<Tensor>,
}

impl DpmPp2m {
    /// Builds the sampler for `steps` inference steps from its config.
    pub fn new(cfg: DpmConfig, steps: usize) -> Result<Self> {
        let bad = |field: &'static str, v: &str| {
            EngineError::invalid(field, format!("{v:?} is not supported by dpmpp-2m"))
        };
        if cfg.algorithm_type != "dpmsolver++" {
            return Err(bad("scheduler.algorithm_type", &cfg.algorithm_type));
        }
        if cfg.solver_type != "midpoint" {
            return Err(bad("scheduler.solver_type", &cfg.solver_type));
        }
        if cfg.thresholding {
            return Err(bad("scheduler.thresholding", "true"));
        }
        if cfg.use_lu_lambdas || cfg.use_exponential_sigmas || cfg.use_beta_sigmas {
            return Err(bad(
                "scheduler.use_karras_sigmas",
                "lu/exponential/beta sigma schedules",
            ));
        }
        if let Some(v) = &cfg.variance_type {
            return Err(bad("scheduler.variance_type", v));
        }
        if cfg.solver_order != 2 {
            return Err(bad("scheduler.solver_order", &cfg.solver_order.to_string()));
        }
        let ac = cfg.betas.alphas_cumprod()?;
        let n = cfg.betas.num_train_timesteps;
        let last = n - 1;
        let mut timesteps: Vec<f64> = match cfg.timestep_spacing {
            Spacing::Linspace => {
                let mut t: Vec<f64> = common::np_linspace(0.0, last as f64, steps + 1)
                    .into_iter()
                    .map(common::round_even)
                    .collect();
                t.reverse();
                t.truncate(steps);
                t
            }
            Spacing::Leading => {
                let ratio = n / (steps + 1);
                (1..=steps)
                    .rev()
                    .map(|i| (i * ratio + cfg.steps_offset) as f64)
                    .collect()
            }
            Spacing::Trailing => common::spaced_timesteps(Spacing::Trailing, n, steps, 0),
        };
        let train = common::train_sigmas(&ac);
        let mut sigmas: Vec<f64> = if cfg.use_karras_sigmas {
            let log: Vec<f64> = train.iter().map(|s| s.ln()).collect();
            let s = common::karras_sigmas(train[0], train[last], steps);
            timesteps = s
                .iter()
                .map(|&x| common::round_even(common::sigma_to_t(x, &log)))
                .collect();
            s
        } else {
            timesteps
                .iter()
                .map(|&t| common::interp_sigma(&train, t))
                .collect()
        };
        sigmas.push(match cfg.final_sigmas_type.as_str() {
            "zero" => 0.0,
            "sigma_min" => train[0],
            other => return Err(bad("scheduler.final_sigmas_type", other)),
        });
        let sigmas = sigmas.into_iter().map(|s| s as f32 as f64).collect();
        let short = steps < 15;
        Ok(Self {
            timesteps,
            sigmas,
            prediction: cfg.prediction_type,
            lower_order_final: cfg.euler_at_final
                || (cfg.lower_order_final && short)
                || cfg.final_sigmas_type == "zero",
            previous: None,
        })
    }
}

/// alpha_t and sigma_t of the VP process at noise level `sigma`.
fn alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

impl Scheduler for DpmPp2m {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> Option<&[f64]> {
        Some(&self.sigmas)
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, _step: usize) -> Result<Tensor> {
        Ok(sample.clone())
    }

    fn step(&mut self, input: StepInput<'_>) -> Result<Tensor> {
        let i = input.step;
        let sample = input.sample;
        let s0 = self.sigmas[i];
        let (a0, sg0) = alpha_sigma(s0);
        // Data prediction x0 = (x - sigma_t * eps) / alpha_t in the VP parameterisation.
        let x0 = match self.prediction {
            Prediction::Epsilon => ((sample - (input.model_output * sg0)?)? / a0)?,
            Prediction::VPrediction => ((sample * a0)? - (input.model_output * sg0)?)?,
            Prediction::Sample => input.model_output.clone(),
        };
        let t_sigma = self.sigmas[i + 1];
        let last = i + 1 == self.timesteps.len();
        let first_order = self.previous.is_none() || (last && self.lower_order_final);
        let out = if t_sigma == 0.0 {
            // lambda_t = +inf: the update collapses to the data prediction.
            x0.clone()
        } else {
            let (at, st) = alpha_sigma(t_sigma);
            let lambda = |a: f64, s: f64| a.ln() - s.ln();
            let h = lambda(at, st) - lambda(a0, sg0);
            let c = at * ((-h).exp() - 1.0);
            let base = (sample * (st / sg0))?;
            match (&self.previous, first_order) {
                (Some(prev), false) => {
                    let s1 = self.sigmas[i - 1];
                    let (a1, sg1) = alpha_sigma(s1);
                    let r0 = (lambda(a0, sg0) - lambda(a1, sg1)) / h;
                    let d1 = ((&x0 - prev)? * (1.0 / r0))?;
                    ((base - (&x0 * c)?)? - (d1 * (0.5 * c))?)?
                }
                _ => (base - (&x0 * c)?)?,
            }
        };
        self.previous = Some(x0);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_util::sd15_config, SchedulerKind};
    use super::*;
    use candle_core::Device;

    #[test]
    fn karras_schedule_matches_diffusers() {
        let s = SchedulerKind::DpmPp2mKarras
            .build(&sd15_config(), 4)
            .unwrap();
        assert_eq!(s.timesteps(), &[999.0, 687.0, 146.0, 0.0]);
        let sig = s.sigmas().unwrap();
        assert!(
            (sig[0] - 14.614647).abs() < 1e-4 && (sig[3] - 0.029167535).abs() < 1e-6,
            "{sig:?}"
        );
        assert_eq!(s.init_noise_sigma(), 1.0);
    }

    #[test]
    fn plain_schedule_is_linspace() {
        let s = SchedulerKind::DpmPp2m.build(&sd15_config(), 4).unwrap();
        assert_eq!(s.timesteps(), &[999.0, 749.0, 500.0, 250.0]);
    }

    #[test]
    fn constant_clean_prediction_is_a_fixed_point() {
        // If the model always implies the same x0, every update keeps moving toward it and the
        // final step (sigma 0) returns exactly x0.
        let mut s = SchedulerKind::DpmPp2mKarras
            .build(&sd15_config(), 4)
            .unwrap();
        let sig = s.sigmas().unwrap().to_vec();
        let x0 = 0.3f64;
        let mut x = Tensor::new(&[x0 as f32 + 1.0], &Device::Cpu).unwrap();
        for (i, &sigma) in sig.iter().take(4).enumerate() {
            let (a, sg) = super::alpha_sigma(sigma);
            // eps such that (x - sg*eps)/a = x0.
            let xv = x.to_vec1::<f32>().unwrap()[0] as f64;
            let eps = Tensor::new(&[((xv - a * x0) / sg) as f32], &Device::Cpu).unwrap();
            x = s
                .step(StepInput {
                    step: i,
                    model_output: &eps,
                    sample: &x,
                    noise: None,
                })
                .unwrap();
        }
        assert!((x.to_vec1::<f32>().unwrap()[0] as f64 - x0).abs() < 1e-5);
    }
}
