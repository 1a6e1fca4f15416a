//! Per-operation timing for `atelier bench --profile`.
//!
//! Off by default: each instrumented call then costs one relaxed atomic load. When on, every
//! convolution, attention, normalisation, linear and element-wise step records its wall time,
//! FLOPs and bytes moved under a (kind, shape) key, so a bench run can say where a UNet step
//! or a VAE decode spends its time and how close each op runs to the machine's ceiling.
//! Timings are only meaningful on the CPU, where candle's ops are synchronous.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATS: Mutex<BTreeMap<(&'static str, String), OpStat>> = Mutex::new(BTreeMap::new());

/// Accumulated figures of one (kind, shape) operation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OpStat {
    /// Operation family: `conv3x3`, `conv1x1`, `attention`, `group_norm`, `linear`, ….
    pub kind: &'static str,
    /// Shape key, e.g. `320->320 64x64 b1`.
    pub shape: String,
    /// Calls recorded.
    pub calls: u64,
    /// Total wall seconds.
    pub seconds: f64,
    /// Total floating-point operations (multiply-add = 2).
    pub flops: f64,
    /// Total bytes read and written (a lower bound: inputs, weights, outputs once).
    pub bytes: f64,
}

/// Turns recording on or off (and clears what was recorded when turning it on).
pub fn enable(on: bool) {
    if on {
        if let Ok(mut s) = STATS.lock() {
            s.clear();
        }
    }
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether recording is on.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Returns what was recorded since the last call (or since [`enable`]) and clears it.
pub fn take() -> Vec<OpStat> {
    match STATS.lock() {
        Ok(mut s) => std::mem::take(&mut *s).into_values().collect(),
        Err(_) => Vec::new(),
    }
}

/// Runs `f`, recording its time under `kind`/`shape()` with the given work when profiling.
#[inline]
pub fn record<T, E>(
    kind: &'static str,
    shape: impl FnOnce() -> String,
    flops: f64,
    bytes: f64,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if !enabled() {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    let key = (kind, shape());
    if let Ok(mut s) = STATS.lock() {
        let e = s.entry(key.clone()).or_insert_with(|| OpStat {
            kind,
            shape: key.1,
            ..Default::default()
        });
        e.calls += 1;
        e.seconds += secs;
        e.flops += flops;
        e.bytes += bytes;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_when_enabled() {
        // Recording is process-wide and other tests in this binary run layers concurrently, so
        // this test uses a kind of its own and looks only at that.
        const KIND: &str = "profile-test-op";
        let mine = |stats: Vec<OpStat>| -> Vec<OpStat> {
            stats.into_iter().filter(|s| s.kind == KIND).collect()
        };
        let _ = record::<_, ()>(KIND, || "a".into(), 10.0, 4.0, || Ok(1));
        enable(true);
        for _ in 0..3 {
            let _ = record::<_, ()>(KIND, || "2x2".into(), 8.0, 48.0, || Ok(()));
        }
        let stats = mine(take());
        enable(false);
        assert_eq!(stats.len(), 1, "{stats:?}");
        assert_eq!(
            (stats[0].calls, stats[0].flops, stats[0].bytes),
            (3, 24.0, 144.0)
        );
        assert!(mine(take()).is_empty());
    }
}
