//! Euler ancestral sampler: an Euler step to a lower sigma plus fresh noise back up to the next
//! sigma. Stochastic; the noise comes from the caller so runs are reproducible and replayable.

use candle_core::Tensor;

use super::common::{self, Prediction};
use super::euler::{EulerConfig, SigmaSchedule};
use super::{Scheduler, StepInput};
use crate::error::{EngineError, Result};

/// Euler ancestral sampler state.
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    schedule: SigmaSchedule,
    prediction: Prediction,
}

impl EulerAncestral {
    /// Builds the sampler for `steps` inference steps from its config.
    pub fn new(mut cfg: EulerConfig, steps: usize) -> Result<Self> {
        // EulerAncestralDiscreteScheduler always ends at sigma 0.
        cfg.final_sigmas_type = "zero".into();
        Ok(Self {
            schedule: SigmaSchedule::new(&cfg, steps)?,
            prediction: cfg.prediction_type,
        })
    }
}

impl Scheduler for EulerAncestral {
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

    fn needs_noise(&self, _step: usize) -> bool {
        true
    }

    fn step(&mut self, input: StepInput<'_>) -> Result<Tensor> {
        let from = self.schedule.sigmas[input.step];
        let to = self.schedule.sigmas[input.step + 1];
        let up = (to * to * (from * from - to * to) / (from * from)).sqrt();
        let down = (to * to - up * up).sqrt();
        let x0 = common::predict_x0_sigma(self.prediction, input.sample, input.model_output, from)?;
        let derivative = ((input.sample - x0)? / from)?;
        let prev = (input.sample + (derivative * (down - from))?)?;
        let noise = input.noise.ok_or_else(|| {
            EngineError::invalid("noise", "euler ancestral needs noise every step")
        })?;
        Ok((prev + (noise * up)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_util::sd15_config, SchedulerKind};
    use super::*;
    use candle_core::Device;

    #[test]
    fn needs_noise_every_step_and_refuses_to_run_without() {
        let mut s = SchedulerKind::EulerAncestral
            .build(&sd15_config(), 3)
            .unwrap();
        assert!((0..3).all(|i| s.needs_noise(i)));
        let x = Tensor::new(&[1.0f32], &Device::Cpu).unwrap();
        let r = s.step(StepInput {
            step: 0,
            model_output: &x,
            sample: &x,
            noise: None,
        });
        assert!(matches!(
            r,
            Err(EngineError::InvalidRequest { field: "noise", .. })
        ));
    }

    #[test]
    fn last_step_adds_no_noise() {
        let mut s = SchedulerKind::EulerAncestral
            .build(&sd15_config(), 1)
            .unwrap();
        let x = Tensor::new(&[1.0f32], &Device::Cpu).unwrap();
        let eps = Tensor::new(&[0.0f32], &Device::Cpu).unwrap();
        let big = Tensor::new(&[1000.0f32], &Device::Cpu).unwrap();
        // sigma_to = 0 makes sigma_up = 0, so the noise is ignored.
        let out = s
            .step(StepInput {
                step: 0,
                model_output: &eps,
                sample: &x,
                noise: Some(&big),
            })
            .unwrap();
        assert_eq!(out.to_vec1::<f32>().unwrap(), vec![1.0]);
    }
}
