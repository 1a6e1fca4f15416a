//! Samplers. Each one is a small module with its own tests; they share the schedule math in
//! [`common`]. A scheduler is built like diffusers' `Cls.from_config(folder_config, **overrides)`:
//! the folder's `scheduler_config.json` supplies what it states, the class's own defaults fill
//! the rest (which is why SD 1.5's file yields "leading" DDIM but "linspace" Euler).

pub mod common;
pub mod ddim;
pub mod dpmpp_2m;
pub mod euler;
pub mod euler_ancestral;
pub mod lcm;

use std::fmt;
use std::str::FromStr;

use candle_core::Tensor;
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};

/// What one scheduler step consumes.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// Index into [`Scheduler::timesteps`].
    pub step: usize,
    /// The guided model output at this step.
    pub model_output: &'a Tensor,
    /// The current latents.
    pub sample: &'a Tensor,
    /// Standard-normal noise for stochastic samplers (see [`Scheduler::needs_noise`]).
    pub noise: Option<&'a Tensor>,
}

/// A sampler over a fixed number of steps.
pub trait Scheduler: Send + fmt::Debug {
    /// Timesteps given to the UNet, one per step, possibly fractional.
    fn timesteps(&self) -> &[f64];
    /// Multiplier applied to unit-variance starting noise.
    fn init_noise_sigma(&self) -> f64;
    /// Rescales latents before they enter the UNet at `step`.
    fn scale_model_input(&self, sample: &Tensor, step: usize) -> Result<Tensor>;
    /// Whether `step` consumes fresh noise; the caller then passes it in [`StepInput::noise`].
    fn needs_noise(&self, _step: usize) -> bool {
        false
    }
    /// The noise levels, for sigma-parameterised samplers (with the final one appended).
    fn sigmas(&self) -> Option<&[f64]> {
        None
    }
    /// Advances the latents by one step.
    fn step(&mut self, input: StepInput<'_>) -> Result<Tensor>;
}

/// The samplers atelier offers, by their API names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SchedulerKind {
    #[serde(rename = "ddim")]
    Ddim,
    #[serde(rename = "euler")]
    Euler,
    #[serde(rename = "euler_a")]
    EulerAncestral,
    #[serde(rename = "dpmpp_2m_karras")]
    DpmPp2mKarras,
    #[serde(rename = "dpmpp_2m")]
    DpmPp2m,
    #[serde(rename = "lcm")]
    Lcm,
}

impl SchedulerKind {
    /// Every kind, for listings and error messages.
    pub const ALL: [SchedulerKind; 6] = [
        Self::Ddim,
        Self::Euler,
        Self::EulerAncestral,
        Self::DpmPp2mKarras,
        Self::DpmPp2m,
        Self::Lcm,
    ];

    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::EulerAncestral => "euler_a",
            Self::DpmPp2mKarras => "dpmpp_2m_karras",
            Self::DpmPp2m => "dpmpp_2m",
            Self::Lcm => "lcm",
        }
    }

    /// The kind that reproduces a diffusers scheduler class, with the overrides it implies.
    pub fn from_diffusers_class(class: &str, config: &Map<String, Value>) -> Option<Self> {
        let karras = config
            .get("use_karras_sigmas")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Some(match class {
            "DDIMScheduler" => Self::Ddim,
            "EulerDiscreteScheduler" => Self::Euler,
            "EulerAncestralDiscreteScheduler" => Self::EulerAncestral,
            "DPMSolverMultistepScheduler" if karras => Self::DpmPp2mKarras,
            "DPMSolverMultistepScheduler" => Self::DpmPp2m,
            "LCMScheduler" => Self::Lcm,
            _ => return None,
        })
    }

    /// Builds the sampler for `steps` steps from a diffusers-style config map.
    pub fn build(self, config: &Map<String, Value>, steps: usize) -> Result<Box<dyn Scheduler>> {
        if steps == 0 {
            return Err(EngineError::invalid("steps", "must be at least 1"));
        }
        let n_train = config
            .get("num_train_timesteps")
            .and_then(Value::as_u64)
            .unwrap_or(1000) as usize;
        if steps > n_train {
            return Err(EngineError::invalid(
                "steps",
                format!("at most {n_train} (the model's training timesteps)"),
            ));
        }
        let mut cfg = config.clone();
        Ok(match self {
            Self::Ddim => Box::new(ddim::Ddim::new(common::parse(&cfg, "ddim")?, steps)?),
            Self::Euler => Box::new(euler::Euler::new(common::parse(&cfg, "euler")?, steps)?),
            Self::EulerAncestral => Box::new(euler_ancestral::EulerAncestral::new(
                common::parse(&cfg, "euler_a")?,
                steps,
            )?),
            Self::DpmPp2mKarras | Self::DpmPp2m => {
                cfg.insert(
                    "use_karras_sigmas".into(),
                    Value::Bool(self == Self::DpmPp2mKarras),
                );
                cfg.insert("algorithm_type".into(), Value::from("dpmsolver++"));
                cfg.insert("solver_order".into(), Value::from(2));
                Box::new(dpmpp_2m::DpmPp2m::new(
                    common::parse(&cfg, "dpmpp_2m")?,
                    steps,
                )?)
            }
            Self::Lcm => Box::new(lcm::Lcm::new(common::parse(&cfg, "lcm")?, steps)?),
        })
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        let norm = s
            .to_ascii_lowercase()
            .replace("++", "pp")
            .replace(['-', ' ', '+'], "_");
        let kind = match norm.as_str() {
            "ddim" => Self::Ddim,
            "euler" => Self::Euler,
            "euler_a" | "euler_ancestral" => Self::EulerAncestral,
            "dpmpp_2m_karras" | "dpmpp2m_karras" => Self::DpmPp2mKarras,
            "dpmpp_2m" | "dpmpp2m" => Self::DpmPp2m,
            "lcm" => Self::Lcm,
            _ => {
                return Err(EngineError::UnknownScheduler {
                    name: s.into(),
                    known: Self::ALL.map(Self::name).join(", "),
                })
            }
        };
        Ok(kind)
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use serde_json::{json, Map, Value};

    /// SD 1.5's scheduler_config.json (a PNDM file: no timestep_spacing, so each sampler
    /// falls back to its own default).
    pub fn sd15_config() -> Map<String, Value> {
        json!({
            "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000,
            "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
            "trained_betas": null
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SchedulerKind::ALL {
            assert_eq!(k.name().parse::<SchedulerKind>().unwrap(), k);
        }
        assert_eq!(
            "DPM++ 2M Karras".parse::<SchedulerKind>().unwrap(),
            SchedulerKind::DpmPp2mKarras
        );
        assert!(matches!(
            "heun".parse::<SchedulerKind>(),
            Err(EngineError::UnknownScheduler { .. })
        ));
    }

    #[test]
    fn zero_and_too_many_steps_are_rejected() {
        let cfg = test_util::sd15_config();
        assert!(matches!(
            SchedulerKind::Euler.build(&cfg, 0),
            Err(EngineError::InvalidRequest { field: "steps", .. })
        ));
        assert!(matches!(
            SchedulerKind::Ddim.build(&cfg, 1001),
            Err(EngineError::InvalidRequest { field: "steps", .. })
        ));
    }

    #[test]
    fn every_kind_builds_from_an_sd_config() {
        let cfg = test_util::sd15_config();
        for k in SchedulerKind::ALL {
            let s = k.build(&cfg, 4).unwrap();
            assert_eq!(s.timesteps().len(), 4, "{k}");
        }
    }
}
