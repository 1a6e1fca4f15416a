//! Which algorithm runs each stride-1 3x3 convolution on the CPU: the direct blocked GEMM or
//! Winograd F(4x4, 3x3) ([`atelier_kernels::winograd`]).
//!
//! Why measured: Winograd does a quarter of the multiplications but adds transforms and needs
//! 4x the weights, so it wins on large maps (a VAE's 512² layers, a UNet's 64² and 32² ones)
//! and loses on small maps with many channels (8², 16² at 1280 channels), where the weights
//! dominate. The crossover depends on the CPU's caches and bandwidth, so in `auto` mode the
//! first call with each new shape runs both (twice each), keeps the faster one's result and
//! remembers the choice, in memory and in a small tuning file (`ATELIER_TUNING_FILE`) so later
//! processes on the same machine skip the measurement. Small convolutions (few FLOPs or under
//! 128x128 channels, such as the test fixtures') never measure: they take the direct path, so
//! small models give the same numbers run after run.
//!
//! Transformed weights are kept per layer while a process-wide budget allows
//! (`ATELIER_WINOGRAD_CACHE_MB`, default 256), else transformed on each call; the measurement
//! counts that cost where it applies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atelier_kernels::blocked::{self, PackedA};
use atelier_kernels::conv::ConvShape;
use atelier_kernels::winograd::{self, WinogradWeights};

/// How eligible convolutions choose their algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Measure both on the first call of each shape and keep the faster (the default).
    Auto,
    /// Always the direct path (the parity-tested numerics of earlier releases).
    Direct,
    /// Winograd wherever the geometry allows, however small.
    Winograd,
}

impl ConvAlgo {
    /// Parses `auto`, `off`/`direct` or `on`/`winograd`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "off" | "direct" => Some(Self::Direct),
            "on" | "winograd" => Some(Self::Winograd),
            _ => None,
        }
    }
}

static ALGO: AtomicU8 = AtomicU8::new(0);

/// The current mode: [`set_conv_algo`], else `ATELIER_WINOGRAD` (`auto`, `on`, `off`), else
/// auto.
pub fn conv_algo() -> ConvAlgo {
    match ALGO.load(Ordering::Relaxed) {
        1 => ConvAlgo::Auto,
        2 => ConvAlgo::Direct,
        3 => ConvAlgo::Winograd,
        _ => {
            let a = std::env::var("ATELIER_WINOGRAD")
                .ok()
                .and_then(|v| ConvAlgo::parse(&v))
                .unwrap_or(ConvAlgo::Auto);
            set_conv_algo(a);
            a
        }
    }
}

/// Sets the mode for calls from now on.
pub fn set_conv_algo(a: ConvAlgo) {
    let v = match a {
        ConvAlgo::Auto => 1,
        ConvAlgo::Direct => 2,
        ConvAlgo::Winograd => 3,
    };
    ALGO.store(v, Ordering::Relaxed);
}

/// Below this many FLOPs a convolution takes the direct path without measuring: timing
/// would be noise.
const MEASURE_FLOPS: f64 = 2e8;

/// Below this many channel pairs (`cin·cout`, 128x128 here) too: with few channels the
/// transforms cost about as much as the products they save, and small models (the test
/// fixtures have at most 128x64) stay on one path, run after run.
const MEASURE_CHANNEL_PAIRS: usize = 128 * 128;

/// A shape's key in the choice table: (batch, cin, cout, h, w).
type Key = (usize, usize, usize, usize, usize);

/// Choices made so far: `true` for Winograd. Loaded from the tuning file on first use.
static CHOICES: Mutex<Option<HashMap<Key, bool>>> = Mutex::new(None);

/// Where choices persist across processes, so a one-shot `atelier generate` does not pay for
/// measuring on every run: `ATELIER_TUNING_FILE` (empty turns persistence off), else
/// `$XDG_CACHE_HOME/atelier/conv-algo.json` or `~/.cache/atelier/conv-algo.json`.
fn tuning_file() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("ATELIER_TUNING_FILE") {
        return (!p.is_empty()).then(|| p.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    Some(base.join("atelier").join("conv-algo.json"))
}

/// What the choices were measured on: they only carry over to the same CPU and thread count.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cpu}; {} threads", atelier_kernels::threads())
}

fn load_choices() -> HashMap<Key, bool> {
    let Some(path) = tuning_file() else {
        return HashMap::new();
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return HashMap::new();
    };
    let parsed: Option<HashMap<Key, bool>> = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .filter(|v| v["machine"] == machine().as_str())
        .and_then(|v| serde_json::from_value::<Vec<(Key, bool)>>(v["choices"].clone()).ok())
        .map(|c| c.into_iter().collect());
    if parsed.is_none() {
        tracing::debug!(path = %path.display(), "tuning file is for another machine or unreadable; measuring afresh");
    }
    parsed.unwrap_or_default()
}

fn save_choices(choices: &HashMap<Key, bool>) {
    let Some(path) = tuning_file() else {
        return;
    };
    let mut list: Vec<(Key, bool)> = choices.iter().map(|(k, v)| (*k, *v)).collect();
    list.sort();
    let body = serde_json::json!({ "machine": machine(), "choices": list });
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::write(&tmp, body.to_string()))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        // Persistence is an optimisation: a read-only home only costs a re-measurement.
        tracing::debug!(path = %path.display(), error = %e, "could not save convolution choices");
        let _ = std::fs::remove_file(&tmp);
    }
}

fn with_choices<R>(f: impl FnOnce(&mut HashMap<Key, bool>) -> R) -> R {
    let mut guard = CHOICES.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(load_choices))
}

/// Bytes of transformed weights kept across all layers.
static KEPT: AtomicUsize = AtomicUsize::new(0);

fn budget() -> usize {
    static B: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *B.get_or_init(|| {
        std::env::var("ATELIER_WINOGRAD_CACHE_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(256)
            << 20
    })
}

fn key(s: ConvShape) -> Key {
    (s.batch, s.cin, s.cout, s.h, s.w)
}

/// What a call should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    Direct,
    Winograd,
    /// Run both, keep the faster, remember it.
    Measure,
}

impl Plan {
    /// The profile's name for a 3x3 stride-1 convolution run this way.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Plan::Direct => "conv3x3",
            Plan::Winograd => "conv3x3 winograd",
            Plan::Measure => "conv3x3 (choosing)",
        }
    }
}

/// The plan for a convolution of shape `s` with f32 packed weights.
pub(crate) fn plan(s: ConvShape) -> Plan {
    if !winograd::eligible(s) || !blocked::available(blocked::Precision::F32) {
        return Plan::Direct;
    }
    match conv_algo() {
        ConvAlgo::Direct => Plan::Direct,
        ConvAlgo::Winograd => Plan::Winograd,
        ConvAlgo::Auto if s.flops() < MEASURE_FLOPS || s.cin * s.cout < MEASURE_CHANNEL_PAIRS => {
            Plan::Direct
        }
        ConvAlgo::Auto => match with_choices(|c| c.get(&key(s)).copied()) {
            Some(true) => Plan::Winograd,
            Some(false) => Plan::Direct,
            None => Plan::Measure,
        },
    }
}

fn remember(s: ConvShape, winograd: bool) {
    with_choices(|c| {
        c.insert(key(s), winograd);
        save_choices(c);
    });
}

/// One layer's transformed weights, made on first use and kept while the budget allows.
#[derive(Debug, Default)]
pub(crate) struct WinogradSlot {
    kept: Mutex<Option<Arc<WinogradWeights>>>,
}

impl WinogradSlot {
    /// The transformed weights and whether they are kept (so later calls skip the transform).
    fn get(&self, direct: &PackedA, cin: usize) -> (Arc<WinogradWeights>, bool) {
        if let Some(w) = self.lock().clone() {
            return (w, true);
        }
        let w = Arc::new(WinogradWeights::from_packed(direct, cin));
        let bytes = w.bytes();
        let reserved = KEPT
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| {
                (k + bytes <= budget()).then_some(k + bytes)
            })
            .is_ok();
        if reserved {
            let mut kept = self.lock();
            if kept.is_none() {
                *kept = Some(w.clone());
            } else {
                // Another call kept one meanwhile: give the reservation back.
                KEPT.fetch_sub(bytes, Ordering::Relaxed);
            }
        }
        (w, reserved)
    }

    /// Drops the kept copy (this layer's shape went to the direct path).
    fn release(&self) {
        if let Some(w) = self.lock().take() {
            KEPT.fetch_sub(w.bytes(), Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<WinogradWeights>>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for WinogradSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Runs a stride-1 3x3 convolution with packed f32 weights as `plan` says.
pub(crate) fn run(
    plan: Plan,
    slot: &WinogradSlot,
    x: &[f32],
    direct: &PackedA,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    s: ConvShape,
) -> Vec<f32> {
    match plan {
        Plan::Direct => blocked::conv2d(x, direct, bias, residual, s),
        Plan::Winograd => {
            let (w, _) = slot.get(direct, s.cin);
            winograd::conv2d(x, &w, bias, residual, s)
        }
        Plan::Measure => {
            let (w, kept, transform_s) = {
                let t = Instant::now();
                let (w, kept) = slot.get(direct, s.cin);
                (w, kept, t.elapsed().as_secs_f64())
            };
            // Two samples of each, interleaved, and the faster of each pair: the first call of a
            // new size also pays for fresh pages, and shared machines are noisy.
            let timed = |f: &dyn Fn() -> Vec<f32>| {
                let t = Instant::now();
                let y = f();
                (y, t.elapsed().as_secs_f64())
            };
            let run_direct = || blocked::conv2d(x, direct, bias, residual, s);
            let run_wino = || winograd::conv2d(x, &w, bias, residual, s);
            let (_, d1) = timed(&run_direct);
            let (_, w1) = timed(&run_wino);
            let (d, d2) = timed(&run_direct);
            let (y, w2) = timed(&run_wino);
            let direct_s = d1.min(d2);
            // A kept transform is paid once; otherwise every call pays it.
            let wino_s = w1.min(w2) + if kept { 0.0 } else { transform_s };
            // A 5% margin keeps near-ties on the well-trodden direct path.
            let pick = wino_s < 0.95 * direct_s;
            tracing::debug!(
                shape = ?s,
                direct_ms = direct_s * 1e3,
                winograd_ms = wino_s * 1e3,
                kept,
                winograd = pick,
                "conv algorithm chosen"
            );
            remember(s, pick);
            if pick {
                y
            } else {
                slot.release();
                d
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(ConvAlgo::parse("AUTO"), Some(ConvAlgo::Auto));
        assert_eq!(ConvAlgo::parse("off"), Some(ConvAlgo::Direct));
        assert_eq!(ConvAlgo::parse("winograd"), Some(ConvAlgo::Winograd));
        assert_eq!(ConvAlgo::parse("sometimes"), None);
    }

    #[test]
    fn only_eligible_shapes_get_a_plan_other_than_direct() {
        let s = ConvShape {
            batch: 1,
            cin: 64,
            h: 64,
            w: 64,
            cout: 64,
            k: 3,
            stride: 2,
            pad: 1,
        };
        assert_eq!(plan(s), Plan::Direct, "stride 2 has no Winograd path");
        let tiny = ConvShape {
            stride: 1,
            h: 8,
            w: 8,
            cin: 4,
            cout: 4,
            ..s
        };
        if conv_algo() == ConvAlgo::Auto {
            assert_eq!(plan(tiny), Plan::Direct, "tiny shapes never measure");
        }
    }
}
