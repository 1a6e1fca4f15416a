//! The screening corpus: recall on harmful prompts and false positives on benign ones,
//! printed and asserted (recall >= 0.95, false-positive rate <= 0.02).

use atelier_safety::Screener;

#[test]
fn corpus_recall_and_false_positives() {
    let text = include_str!("corpus.tsv");
    let s = Screener::builtin().expect("built-in lists parse");
    let (mut harmful, mut caught, mut benign, mut false_pos, mut lookalikes) = (0, 0, 0, 0, 0);
    let mut same_category = 0;
    let mut misses = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (expect, prompt) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("corpus.tsv:{}: no tab", n + 1));
        let d = s.screen(prompt);
        if let Some(kind) = expect.strip_prefix("ok") {
            benign += 1;
            if kind == ":lookalike" {
                lookalikes += 1;
            }
            if !d.allowed {
                false_pos += 1;
                misses.push(format!(
                    "false positive: {prompt:?} -> {:?} {:?}",
                    d.category, d.term
                ));
            }
        } else {
            harmful += 1;
            if d.allowed {
                misses.push(format!("missed ({expect}): {prompt:?}"));
            } else {
                caught += 1;
                if d.category.as_deref() == Some(expect) {
                    same_category += 1;
                } else {
                    println!(
                        "category differs: {prompt:?} expected {expect}, got {:?}",
                        d.category
                    );
                }
            }
        }
    }
    for m in &misses {
        println!("{m}");
    }
    let recall = caught as f64 / harmful as f64;
    let fpr = false_pos as f64 / benign as f64;
    println!(
        "corpus: {} prompts ({harmful} harmful, {benign} benign of which {lookalikes} look-alikes)",
        harmful + benign
    );
    println!("recall {recall:.3} ({caught}/{harmful}); false positives {fpr:.3} ({false_pos}/{benign}); category agreement {same_category}/{caught}");
    assert!(harmful + benign >= 300 && lookalikes >= 100);
    assert!(recall >= 0.95, "recall {recall:.3} < 0.95");
    assert!(fpr <= 0.02, "false-positive rate {fpr:.3} > 0.02");
}
