//! Synthetic diary sites for load tests: many users, posts and comments written straight into
//! the store in large transactions (`atelier diary seed`). Post texts are recombined sentences
//! of the labelled evaluation set, so recommendations have real Korean to work on; comments
//! are spread over a year with a skew (a few posts draw many comments), so Hot TOONs has a
//! meaningful last week.

use rand::{Rng, SeedableRng};
use sqlx::SqlitePool;

use super::accounts;
use atelier_platform::PlatformError;

/// The labelled evaluation set: `topic<TAB>text` lines after a header.
pub const EVAL_SET: &str = include_str!("../../eval/diary_posts.tsv");

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    pub users: usize,
    pub posts: usize,
    pub comments: usize,
    /// Share of posts that are public.
    pub public_share: f64,
    /// Days back the posts and comments spread over.
    pub days: i64,
    pub seed: u64,
}

impl Default for SeedSpec {
    fn default() -> Self {
        Self {
            users: 10_000,
            posts: 100_000,
            comments: 1_000_000,
            public_share: 0.9,
            days: 365,
            seed: 7,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedReport {
    pub users: usize,
    pub posts: usize,
    pub public_posts: usize,
    pub comments: usize,
    pub comments_last_7_days: usize,
    pub ms: u64,
}

/// The id of the `i`th seeded post (load scripts pick posts by these).
pub fn post_id(i: usize) -> String {
    format!("seedpost{i:07}")
}

fn sentences() -> Vec<String> {
    EVAL_SET
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('\t').map(|(_, t)| t))
        .flat_map(|t| t.split_inclusive(['.', '!', '?']))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Writes the synthetic site (users `seeduser<N>@example.kr`, password `password-<N>`).
pub async fn seed(pool: &SqlitePool, spec: &SeedSpec) -> Result<SeedReport, PlatformError> {
    let started = std::time::Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed);
    let now = atelier_platform::now_ms();
    let span = spec.days.max(1) * 24 * 3600 * 1000;
    let sents = sentences();
    // One hash for everyone: Argon2 per user would take minutes and test nothing.
    let hash = accounts::hash_password("seeded-account")?;
    let users = spec.users.max(1);

    let mut tx = pool.begin().await?;
    for chunk in (0..users).collect::<Vec<_>>().chunks(500) {
        let mut q = String::from(
            "INSERT INTO diary_users (id, email, password_hash, display_name, created_at) VALUES ",
        );
        q.push_str(&vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(","));
        let mut s = sqlx::query(&q);
        for i in chunk {
            s = s
                .bind(format!("seeduser{i:06}"))
                .bind(format!("seeduser{i}@example.kr"))
                .bind(&hash)
                .bind(format!("작가{i}"))
                .bind(now - span);
        }
        s.execute(&mut *tx).await?;
    }

    // Posts: creation times spread uniformly; comments pick posts with a skew.
    let n = spec.posts;
    let mut created: Vec<i64> = (0..n).map(|_| now - rng.random_range(0..span)).collect();
    created.sort_unstable();
    let mut counts = vec![0i64; n];
    let mut comment_rows: Vec<(usize, usize, i64)> = Vec::with_capacity(spec.comments);
    let mut recent = 0;
    for _ in 0..spec.comments {
        if n == 0 {
            break;
        }
        // Skew: squaring a uniform draw favours low indices; shuffle them over time by a
        // multiplicative hash so the popular posts are not all the oldest.
        let u: f64 = rng.random();
        let k = ((u * u) * n as f64) as usize % n;
        let p = (k.wrapping_mul(2_654_435_761)) % n;
        let t = created[p] + rng.random_range(0..=(now - created[p]).max(1));
        if t >= now - super::store::HOT_WINDOW_MS {
            recent += 1;
        }
        counts[p] += 1;
        comment_rows.push((p, rng.random_range(0..users), t));
    }
    let mut public = 0;
    let mut i = 0;
    while i < n {
        let end = (i + 400).min(n);
        let mut q = String::from(
            "INSERT INTO diary_posts (id, user_id, text, visibility, status, title, created_at,
                                      updated_at, comment_count) VALUES ",
        );
        q.push_str(&vec!["(?, ?, ?, ?, 'ready', ?, ?, ?, ?)"; end - i].join(","));
        let mut s = sqlx::query(&q);
        for (j, t) in created.iter().enumerate().take(end).skip(i) {
            let k = rng.random_range(2..=4);
            let text: Vec<&str> = (0..k)
                .map(|_| sents[rng.random_range(0..sents.len())].as_str())
                .collect();
            let vis = if rng.random_bool(spec.public_share) {
                public += 1;
                "public"
            } else {
                "private"
            };
            s = s
                .bind(post_id(j))
                .bind(format!("seeduser{:06}", rng.random_range(0..users)))
                .bind(text.join(" "))
                .bind(vis)
                .bind(format!("일기 {j}"))
                .bind(*t)
                .bind(*t)
                .bind(counts[j]);
        }
        s.execute(&mut *tx).await?;
        i = end;
    }
    for (c, chunk) in comment_rows.chunks(1000).enumerate() {
        let mut q = String::from(
            "INSERT INTO diary_comments (id, post_id, user_id, text, created_at, updated_at) VALUES ",
        );
        q.push_str(&vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(","));
        let mut s = sqlx::query(&q);
        for (j, (p, u, t)) in chunk.iter().enumerate() {
            s = s
                .bind(format!("seedcmt{:08}", c * 1000 + j))
                .bind(post_id(*p))
                .bind(format!("seeduser{u:06}"))
                .bind("잘 읽었어요")
                .bind(*t)
                .bind(*t);
        }
        s.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(SeedReport {
        users,
        posts: n,
        public_posts: public,
        comments: comment_rows.len(),
        comments_last_7_days: recent,
        ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_eval_set_splits_into_sentences() {
        let s = super::sentences();
        assert!(s.len() > 300, "{}", s.len());
    }
}
