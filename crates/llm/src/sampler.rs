//! Token sampling: repetition penalty, an allowed-token mask (grammar), temperature, top-k,
//! top-p, with a seeded generator so a seed reproduces a text.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::{LlmError, SamplingParams};

/// Picks next tokens for one generation.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha20Rng,
    /// Scratch (id, logit) pairs, reused across steps.
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler for `params`; without a seed it draws one from the OS.
    pub fn new(params: &SamplingParams) -> Self {
        let rng = match params.seed {
            Some(s) => ChaCha20Rng::seed_from_u64(s),
            None => ChaCha20Rng::from_os_rng(),
        };
        Self {
            params: params.clone(),
            rng,
            cand: Vec::new(),
        }
    }

    /// The next token. `allowed(id)` says whether a token may be picked (grammar and
    /// vocabulary); `recent` are the latest tokens, for the repetition penalty.
    pub fn sample(
        &mut self,
        logits: &[f32],
        allowed: impl Fn(u32) -> bool,
        recent: &[u32],
    ) -> Result<u32, LlmError> {
        let p = &self.params;
        self.cand.clear();
        for (i, &l) in logits.iter().enumerate() {
            let id = i as u32;
            if l.is_finite() && allowed(id) {
                self.cand.push((id, l));
            }
        }
        if self.cand.is_empty() {
            return Err(LlmError::Internal(
                "no token is allowed at this point (grammar and vocabulary disagree)".into(),
            ));
        }
        if p.repetition_penalty != 1.0 && !recent.is_empty() {
            // Look each recent id up in the candidates (built in id order): the window is
            // short, the vocabulary is not.
            let mut window = recent[recent.len().saturating_sub(p.repeat_last_n)..].to_vec();
            window.sort_unstable();
            window.dedup();
            for id in window {
                if let Ok(i) = self.cand.binary_search_by_key(&id, |c| c.0) {
                    let c = &mut self.cand[i];
                    c.1 = if c.1 > 0.0 {
                        c.1 / p.repetition_penalty
                    } else {
                        c.1 * p.repetition_penalty
                    };
                }
            }
        }
        if p.temperature <= 0.0 {
            let best =
                self.cand.iter().fold(
                    (0u32, f32::NEG_INFINITY),
                    |b, c| if c.1 > b.1 { *c } else { b },
                );
            return Ok(best.0);
        }
        // Most likely first (ties by id, so a seed reproduces exactly). With top-k only the k
        // best are sorted, not the whole vocabulary.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && self.cand.len() > p.top_k {
            self.cand.select_nth_unstable_by(p.top_k - 1, order);
            self.cand.truncate(p.top_k);
        }
        self.cand.sort_unstable_by(order);
        let max = self.cand[0].1;
        let mut total = 0.0f32;
        for c in self.cand.iter_mut() {
            c.1 = ((c.1 - max) / p.temperature).exp();
            total += c.1;
        }
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                acc += c.1 / total;
                if acc >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep);
            total = self.cand.iter().map(|c| c.1).sum();
        }
        let mut r = self.rng.random::<f32>() * total;
        for c in &self.cand {
            r -= c.1;
            if r <= 0.0 {
                return Ok(c.0);
            }
        }
        Ok(self.cand[self.cand.len() - 1].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32) -> SamplingParams {
        SamplingParams {
            temperature: t,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            seed: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn greedy_respects_the_mask() {
        let mut s = Sampler::new(&params(0.0));
        let logits = [0.1, 5.0, 2.0, 4.0];
        assert_eq!(s.sample(&logits, |_| true, &[]).unwrap(), 1);
        assert_eq!(s.sample(&logits, |i| i != 1, &[]).unwrap(), 3);
        assert!(s.sample(&logits, |_| false, &[]).is_err());
    }

    #[test]
    fn repetition_penalty_demotes_recent_tokens() {
        let mut p = params(0.0);
        p.repetition_penalty = 2.0;
        let mut s = Sampler::new(&p);
        // 5.0 / 2 = 2.5 < 4.0.
        assert_eq!(s.sample(&[0.1, 5.0, 2.0, 4.0], |_| true, &[1]).unwrap(), 3);
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let logits = [10.0, 9.0, 0.0, 0.0, 0.0];
        let mut p = params(1.0);
        p.top_k = 2;
        let mut s = Sampler::new(&p);
        for _ in 0..200 {
            assert!(s.sample(&logits, |_| true, &[]).unwrap() < 2);
        }
        let mut p = params(1.0);
        p.top_p = 0.5;
        let mut s = Sampler::new(&p);
        for _ in 0..200 {
            assert_eq!(s.sample(&logits, |_| true, &[]).unwrap(), 0);
        }
    }

    #[test]
    fn a_seed_reproduces_and_samples_spread() {
        let logits = [1.0, 1.0, 1.0, 1.0];
        let draw = || {
            let mut s = Sampler::new(&params(1.0));
            (0..64)
                .map(|_| s.sample(&logits, |_| true, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        let a = draw();
        assert_eq!(a, draw());
        for id in 0..4 {
            assert!(
                a.contains(&id),
                "token {id} never drawn from a uniform distribution"
            );
        }
    }
}
