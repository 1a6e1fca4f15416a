//! The safety checker's real code path on a tiny random-weight checker written by the test:
//! a concept planted at an image's own embedding must flag that image and only that image.

use atelier_engine::image::RgbImage;
use atelier_safety::checker::RandomChecker;
use atelier_safety::SafetyChecker;
use candle_core::Device;
use rand::{Rng, SeedableRng};

fn random_image(seed: u64, w: usize, h: usize) -> RgbImage {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    RgbImage {
        width: w,
        height: h,
        data: (0..w * h * 3).map(|_| rng.random()).collect(),
    }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn planted_concept_flags_its_image_and_passes_a_random_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("pipeline");
    let spec = RandomChecker::default();
    spec.write(&root.join("safety_checker"), &[])
        .expect("writes");
    // Found through a pipeline folder, as diffusers lays it out.
    assert!(SafetyChecker::find(&root).is_some());
    let c = SafetyChecker::load(&root, &Device::Cpu).expect("loads");
    // Different sizes and aspects go through the resize + centre crop.
    let a = random_image(1, 96, 64);
    let b = random_image(2, 64, 64);
    let e = c.embed(&[a.clone(), b.clone()]).expect("embeds");
    let rows: Vec<Vec<f32>> = e.to_vec2().expect("rows");
    let sim = cos(&rows[0], &rows[1]);
    assert!(sim < 0.999, "images should embed differently (cos {sim})");
    // Unplanted: random concepts with threshold 0.99 flag nothing.
    let v = c.check(&[a.clone(), b.clone()]).expect("checks");
    assert!(v.iter().all(|v| !v.nsfw), "{v:?}");
    // Plant concept 0 at image A's embedding, threshold halfway between cos(A,A)=1 and cos(A,B).
    let threshold = (1.0 + sim) / 2.0;
    spec.write(
        &root.join("safety_checker"),
        &[(rows[0].clone(), threshold)],
    )
    .expect("rewrites");
    let c = SafetyChecker::load(&root, &Device::Cpu).expect("reloads");
    let v = c.check(&[a, b]).expect("checks");
    println!("cos(A,B) = {sim:.4}, threshold {threshold:.4}: {v:?}");
    assert!(
        v[0].nsfw && v[0].concepts == vec![0],
        "planted image not flagged: {:?}",
        v[0]
    );
    assert!(!v[1].nsfw, "random image flagged: {:?}", v[1]);
}

#[test]
fn missing_or_broken_checker_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(SafetyChecker::find(dir.path()).is_none());
    let e = SafetyChecker::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("no safety checker"), "{e}");
    let sc = dir.path().join("safety_checker");
    RandomChecker::default().write(&sc, &[]).expect("writes");
    std::fs::write(sc.join("model.safetensors"), b"garbage").expect("corrupts");
    let e = SafetyChecker::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("safety"), "{e}");
}
