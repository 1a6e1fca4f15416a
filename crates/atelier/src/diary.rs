//! `atelier diary`: seeding a synthetic site for load tests, and the recommendation
//! evaluation on the labelled set.

use std::path::PathBuf;

use anyhow::Context;
use atelier_workflows::diary::recommend::{precision_at_k, Recommender};
use atelier_workflows::diary::seed::{seed, SeedSpec, EVAL_SET};
use atelier_workflows::diary::SqlDiary;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum DiaryCommand {
    /// Write a synthetic site (users, posts, comments) into a data directory.
    Seed(SeedArgs),
    /// Precision@k of the no-model recommender on the labelled Korean diary set, by topic.
    Eval {
        /// Neighbours judged per post.
        #[arg(long, default_value_t = 3)]
        k: usize,
    },
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Data directory (created if missing); seed an empty one.
    #[arg(long, default_value = "atelier-data")]
    data: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 100_000)]
    posts: usize,
    #[arg(long, default_value_t = 1_000_000)]
    comments: usize,
    /// Random seed (the same numbers give the same site).
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn run(c: DiaryCommand, rt: tokio::runtime::Runtime) -> anyhow::Result<i32> {
    match c {
        DiaryCommand::Seed(a) => rt.block_on(async {
            let b = atelier_server::open_backends(&a.data, None, None).await?;
            let pool = b
                .sqlite
                .ok_or_else(|| anyhow::anyhow!("seeding writes to SQLite"))?;
            let diary = SqlDiary::new(b.apps).await?;
            let has = diary.post_count().await?;
            if has > 0 {
                anyhow::bail!(
                    "{} already has {has} diary posts; seed an empty data directory",
                    a.data.display()
                );
            }
            let spec = SeedSpec {
                users: a.users,
                posts: a.posts,
                comments: a.comments,
                seed: a.seed,
                ..SeedSpec::default()
            };
            let r = seed(&pool, &spec).await.context("seeding")?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(0)
        }),
        DiaryCommand::Eval { k } => {
            let posts: Vec<(String, String, String)> = EVAL_SET
                .lines()
                .skip(1)
                .enumerate()
                .filter_map(|(i, l)| {
                    l.split_once('\t')
                        .map(|(t, x)| (format!("p{i:03}"), t.to_owned(), x.to_owned()))
                })
                .collect();
            let r = Recommender::new(None);
            let docs: Vec<(String, String)> =
                posts.iter().map(|p| (p.0.clone(), p.2.clone())).collect();
            r.upsert_many(&docs);
            let (per, overall) = precision_at_k(&r, &posts, k);
            println!("topic       precision@{k}  posts");
            for (t, p, n) in per {
                println!("{t:<11} {p:>11.3}  {n:>5}");
            }
            println!("{:<11} {overall:>11.3}  {:>5}", "overall", posts.len());
            Ok(0)
        }
    }
}
