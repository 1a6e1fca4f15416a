//! What every discrete-time scheduler shares: the beta schedule, timestep spacing, sigma
//! conversions and the prediction-type algebra. All schedule math is f64; tensors stay in the
//! model dtype.

use serde::Deserialize;

use crate::error::{EngineError, Result};

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    Epsilon,
    VPrediction,
    Sample,
}

/// How inference timesteps are placed on the training schedule (Lin et al. 2023, table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spacing {
    Linspace,
    Leading,
    Trailing,
}

/// The training noise schedule as diffusers' `scaled_linear`/`linear`/`squaredcos_cap_v2` betas.
#[derive(Debug, Clone, Deserialize)]
pub struct BetaSchedule {
    #[serde(default = "d_train")]
    pub num_train_timesteps: usize,
    #[serde(default = "d_beta_start")]
    pub beta_start: f64,
    #[serde(default = "d_beta_end")]
    pub beta_end: f64,
    #[serde(default = "d_linear")]
    pub beta_schedule: String,
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
}

fn d_train() -> usize {
    1000
}
fn d_beta_start() -> f64 {
    0.0001
}
fn d_beta_end() -> f64 {
    0.02
}
fn d_linear() -> String {
    "linear".into()
}

/// Default prediction type of every diffusers scheduler.
pub fn d_epsilon() -> Prediction {
    Prediction::Epsilon
}

/// Converts a model output to the predicted clean sample for variance-preserving samplers
/// (DDIM, LCM): `alpha_bar` at the current timestep.
pub fn predict_x0_vp(
    pred: Prediction,
    sample: &candle_core::Tensor,
    out: &candle_core::Tensor,
    alpha_bar: f64,
) -> candle_core::Result<candle_core::Tensor> {
    let (sa, sb) = (alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt());
    match pred {
        Prediction::Epsilon => (sample - (out * sb)?)? / sa,
        Prediction::VPrediction => (sample * sa)? - (out * sb)?,
        Prediction::Sample => Ok(out.clone()),
    }
}

/// Predicted clean sample for sigma-parameterised samplers (Euler family, DPM++).
pub fn predict_x0_sigma(
    pred: Prediction,
    sample: &candle_core::Tensor,
    out: &candle_core::Tensor,
    sigma: f64,
) -> candle_core::Result<candle_core::Tensor> {
    match pred {
        Prediction::Epsilon => sample - (out * sigma)?,
        Prediction::VPrediction => {
            let s2 = sigma * sigma + 1.0;
            (out * (-sigma / s2.sqrt()))? + (sample / s2)?
        }
        Prediction::Sample => Ok(out.clone()),
    }
}

impl BetaSchedule {
    /// Cumulative products of alphas, one per training timestep.
    ///
    /// Betas are formed in f32 as torch does (the reference's `alphas_cumprod` is f32), then the
    /// cumulative product is taken in f32 too, so schedules match diffusers to the last bit.
    pub fn alphas_cumprod(&self) -> Result<Vec<f64>> {
        let n = self.num_train_timesteps;
        // Real schedulers train on 1000 steps; a config asking for trillions would allocate
        // the whole table before anything could fail (found by fuzzing model configs).
        if !(2..=MAX_TRAIN_TIMESTEPS).contains(&n) {
            return Err(EngineError::invalid(
                "scheduler.num_train_timesteps",
                format!("must be between 2 and {MAX_TRAIN_TIMESTEPS} (got {n})"),
            ));
        }
        let linspace = |a: f32, b: f32| -> Vec<f32> {
            // torch.linspace: start + i*step for the first half, end - (n-1-i)*step for the second.
            let step = (b - a) / (n - 1) as f32;
            (0..n)
                .map(|i| {
                    if i < n / 2 {
                        a + step * i as f32
                    } else {
                        b - step * (n - 1 - i) as f32
                    }
                })
                .collect()
        };
        let mut betas: Vec<f32> = if let Some(t) = &self.trained_betas {
            t.iter().map(|&b| b as f32).collect()
        } else {
            match self.beta_schedule.as_str() {
                "linear" => linspace(self.beta_start as f32, self.beta_end as f32),
                "scaled_linear" => linspace(
                    (self.beta_start as f32).sqrt(),
                    (self.beta_end as f32).sqrt(),
                )
                .into_iter()
                .map(|b| b * b)
                .collect(),
                "squaredcos_cap_v2" => {
                    let f = |t: f64| {
                        ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                            .cos()
                            .powi(2)
                    };
                    (0..n)
                        .map(|i| {
                            let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                            (1.0 - f(t2) / f(t1)).min(0.999) as f32
                        })
                        .collect()
                }
                other => {
                    return Err(EngineError::invalid(
                        "scheduler.beta_schedule",
                        format!("unknown beta schedule {other:?}"),
                    ))
                }
            }
        };
        if betas.len() != n {
            return Err(EngineError::invalid(
                "scheduler.trained_betas",
                "length differs from num_train_timesteps",
            ));
        }
        if self.rescale_betas_zero_snr {
            betas = rescale_zero_terminal_snr(&betas);
        }
        let mut acc = 1.0f32;
        let mut out: Vec<f64> = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc as f64
            })
            .collect();
        if self.rescale_betas_zero_snr {
            if let Some(last) = out.last_mut() {
                *last = 2f64.powi(-24);
            }
        }
        Ok(out)
    }
}

/// Lin et al. 2023, algorithm 1: shift and scale sqrt(alpha_bar) so the last step has zero SNR.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    let sqrt_ab: Vec<f64> = betas
        .iter()
        .map(|b| {
            acc *= 1.0 - *b as f64;
            acc.sqrt()
        })
        .collect();
    let (first, last) = (sqrt_ab[0], sqrt_ab[sqrt_ab.len() - 1]);
    let scaled: Vec<f64> = sqrt_ab
        .iter()
        .map(|s| (s - last) * first / (first - last))
        .collect();
    let ab: Vec<f64> = scaled.iter().map(|s| s * s).collect();
    (0..ab.len())
        .map(|i| {
            let alpha = if i == 0 { ab[0] } else { ab[i] / ab[i - 1] };
            (1.0 - alpha) as f32
        })
        .collect()
}

/// numpy's `linspace` (endpoint inclusive).
pub fn np_linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f64;
    (0..n)
        .map(|i| if i == n - 1 { b } else { a + step * i as f64 })
        .collect()
}

/// numpy's round-half-to-even, which diffusers' `.round()` uses.
pub fn round_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// Timesteps for the sigma-based schedulers (Euler, Euler ancestral) and DDIM/LCM-style spacing,
/// as float values (descending).
pub fn spaced_timesteps(spacing: Spacing, n_train: usize, steps: usize, offset: usize) -> Vec<f64> {
    match spacing {
        Spacing::Linspace => {
            let mut t = np_linspace(0.0, (n_train - 1) as f64, steps);
            t.reverse();
            t
        }
        Spacing::Leading => {
            let ratio = n_train / steps;
            (0..steps)
                .rev()
                .map(|i| round_even((i * ratio) as f64) + offset as f64)
                .collect()
        }
        Spacing::Trailing => {
            let ratio = n_train as f64 / steps as f64;
            let mut out = Vec::new();
            let mut v = n_train as f64;
            while v > 0.0 && out.len() < steps {
                out.push(round_even(v) - 1.0);
                v -= ratio;
            }
            out
        }
    }
}

/// sigma = sqrt((1 - alpha_bar) / alpha_bar) for every training timestep.
pub fn train_sigmas(alphas_cumprod: &[f64]) -> Vec<f64> {
    alphas_cumprod
        .iter()
        .map(|a| ((1.0 - a) / a).sqrt())
        .collect()
}

/// numpy's `interp` of `sigmas` (indexed 0..N) at fractional timestep `t`.
pub fn interp_sigma(sigmas: &[f64], t: f64) -> f64 {
    if t <= 0.0 {
        return sigmas[0];
    }
    let last = sigmas.len() - 1;
    if t >= last as f64 {
        return sigmas[last];
    }
    let lo = t.floor() as usize;
    let w = t - lo as f64;
    sigmas[lo] + (sigmas[lo + 1] - sigmas[lo]) * w
}

/// Karras et al. (2022) sigmas between the schedule's extremes, rho = 7.
pub fn karras_sigmas(sigma_min: f64, sigma_max: f64, steps: usize) -> Vec<f64> {
    let rho = 7.0;
    let (lo, hi) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    np_linspace(0.0, 1.0, steps)
        .into_iter()
        .map(|r| (hi + r * (lo - hi)).powf(rho))
        .collect()
}

/// Inverse of the sigma schedule by log-linear interpolation (diffusers `_sigma_to_t`).
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let ls = sigma.max(1e-10).ln();
    let n = log_sigmas.len();
    // Index of the last log-sigma <= ls (schedule is increasing), clipped to n - 2.
    let mut low = 0usize;
    for (i, l) in log_sigmas.iter().enumerate() {
        if ls - l >= 0.0 {
            low = i;
        }
    }
    let low = low.min(n - 2);
    let (l, h) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((l - ls) / (l - h)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

/// Most training timesteps a scheduler config may declare.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

/// Maps a raw JSON config (the folder's file plus overrides) into a typed one, naming the
/// scheduler in the error.
pub fn parse<T: serde::de::DeserializeOwned>(
    raw: &serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(raw.clone()))
        .map_err(|e| EngineError::invalid("scheduler", format!("{what} config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd_betas() -> BetaSchedule {
        BetaSchedule {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: "scaled_linear".into(),
            trained_betas: None,
            rescale_betas_zero_snr: false,
        }
    }

    #[test]
    fn scaled_linear_endpoints() {
        let ac = sd_betas().alphas_cumprod().unwrap();
        assert_eq!(ac.len(), 1000);
        assert!((ac[0] - (1.0 - 0.00085)).abs() < 1e-7, "{}", ac[0]);
        // SD's sigma_max (fixtures README: 14.6146).
        let sigma_max = ((1.0 - ac[999]) / ac[999]).sqrt();
        assert!((sigma_max - 14.6146).abs() < 1e-3, "{sigma_max}");
        assert!(ac.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn zero_terminal_snr_ends_at_tiny_alpha() {
        let mut b = sd_betas();
        b.rescale_betas_zero_snr = true;
        let ac = b.alphas_cumprod().unwrap();
        assert_eq!(ac[999], 2f64.powi(-24));
        assert!((ac[0] - sd_betas().alphas_cumprod().unwrap()[0]).abs() < 1e-6);
    }

    #[test]
    fn spacings_match_diffusers_tables() {
        assert_eq!(
            spaced_timesteps(Spacing::Leading, 1000, 4, 1),
            vec![751.0, 501.0, 251.0, 1.0]
        );
        assert_eq!(
            spaced_timesteps(Spacing::Linspace, 1000, 4, 1),
            vec![999.0, 666.0, 333.0, 0.0]
        );
        assert_eq!(
            spaced_timesteps(Spacing::Trailing, 1000, 4, 1),
            vec![999.0, 749.0, 499.0, 249.0]
        );
        assert_eq!(spaced_timesteps(Spacing::Trailing, 1000, 1, 1), vec![999.0]);
    }

    #[test]
    fn sigma_to_t_inverts_the_schedule() {
        let s = train_sigmas(&sd_betas().alphas_cumprod().unwrap());
        let log: Vec<f64> = s.iter().map(|x| x.ln()).collect();
        for t in [0usize, 10, 500, 999] {
            assert!((sigma_to_t(s[t], &log) - t as f64).abs() < 1e-6);
        }
    }

    #[test]
    fn unknown_beta_schedule_is_a_field_error() {
        let mut b = sd_betas();
        b.beta_schedule = "cubic".into();
        assert!(matches!(
            b.alphas_cumprod(),
            Err(EngineError::InvalidRequest {
                field: "scheduler.beta_schedule",
                ..
            })
        ));
    }
}
