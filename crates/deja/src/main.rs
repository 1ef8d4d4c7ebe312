//! The `deja` command: parses arguments, sets up logging, and hands over to the server
//! crate. Errors are printed with their causes and exit non-zero.

mod bench;
mod eval;
mod manage;
mod model_args;
mod plot;
mod simulate;
mod split;
mod train;
mod tune;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use deja_server::config::{Config, Durability};

#[derive(Parser)]
#[command(
    name = "deja",
    version,
    about = "A semantic cache for LLM APIs: an OpenAI-compatible caching proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the caching proxy.
    Serve(ServeArgs),
    /// Show what the cache holds and what it saved (a running server with --server, or a
    /// stopped data directory).
    Stats(StatsArgs),
    /// Remove entries by tag, model, namespace, id, age, or all of them.
    Invalidate(manage::InvalidateArgs),
    /// Write every entry as JSON Lines (standard output, or --out FILE).
    Export(manage::ExportArgs),
    /// Store the entries of a `deja export` file.
    Import(manage::ImportArgs),
    /// List or search entries (by prompt text, tag, model, namespace), a page at a time.
    Entries(manage::EntriesArgs),
    /// Measure hit quality on labelled pairs (a,b,label CSV) through the real serving path.
    Eval(eval::EvalArgs),
    /// Pick min_similarity from labelled pairs: precision/recall per threshold, the
    /// recommended threshold per group, a config snippet and a chart.
    Tune(tune::TuneArgs),
    /// Fit the learned pair verifier on `deja eval --dump` files and write its model file.
    TrainVerifier(train::TrainArgs),
    /// Measure the error budget on a simulated request stream drawn from an intent set
    /// (text,intent CSV): hits and false hits with a budget, with today's defaults, and at
    /// the best single static threshold.
    Simulate(simulate::SimulateArgs),
    /// Benchmark the engine on the embedded backend with synthetic entries.
    Bench {
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
        #[arg(long, default_value_t = 5_000)]
        queries: usize,
        #[arg(long, default_value_t = 384)]
        dim: usize,
        #[arg(long, default_value_t = 1024)]
        answer_bytes: usize,
        #[arg(long)]
        json: bool,
        /// Replay a peer-benchmark workload (`bench_peer.py --dump-workload DIR`) instead of
        /// synthetic entries.
        #[arg(long)]
        workload: Option<PathBuf>,
        /// Measure export and import throughput (stopped store, running cache) instead.
        #[arg(long, conflicts_with = "workload")]
        transfer: bool,
        /// Measure invalidation and eviction while exact hits are served instead.
        #[arg(long, conflicts_with_all = ["workload", "transfer"])]
        lifecycle: bool,
    },
    /// Print the hash a shared namespace lists for a key (`[namespaces.NAME] keys`),
    /// reading the key from standard input so it stays out of shell history.
    KeyHash,
    /// Run a deterministic mock OpenAI-compatible upstream (for demos and tests).
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Mock Anthropic's Messages API (`POST /v1/messages`) instead.
        #[arg(long)]
        anthropic: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (also `DEJA_CONFIG`).
    #[arg(long, env = "DEJA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory [default: the user's data dir, `deja/`].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Upstream OpenAI-compatible base URL ending in /v1 [default: $OPENAI_BASE_URL or https://api.openai.com/v1].
    #[arg(long)]
    upstream: Option<String>,
    /// Directory of the local embedding model [default: $DEJA_MODEL_DIR or the user's data dir].
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// The local embedding model: `auto` (the default: English prompts by
    /// all-MiniLM-L6-v2, the others by multilingual-e5-small when installed),
    /// `all-minilm-l6-v2` or `multilingual-e5-small` (also `DEJA_EMBEDDER_MODEL`).
    #[arg(long)]
    embedder_model: Option<String>,
    /// Least cosine similarity for a semantic hit.
    #[arg(long)]
    min_similarity: Option<f32>,
    /// strict: every stored entry is fsynced; fast: durable within about a second.
    #[arg(long, value_parser = ["strict", "fast"])]
    durability: Option<String>,
    /// Where entries are kept: `local` (the data dir) or a Redis shared by every
    /// replica, `redis://HOST:PORT` or `redis+cluster://HOST:PORT,HOST:PORT` (also
    /// `DEJA_STORE`).
    #[arg(long, value_name = "local|URL")]
    store: Option<String>,
    /// Where semantic search happens: `local` (an index in this process) or
    /// `redis-search` (Redis Stack's query engine, shared by every replica).
    #[arg(long, value_parser = ["local", "redis-search"])]
    index: Option<String>,
    /// Most client connections open at once; at the limit a new one closes the one idle
    /// longest [default: derived from the open-file limit] (also `DEJA_MAX_CONNECTIONS`).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Log format: `text` or `json` (one object per line).
    #[arg(long, default_value = "text")]
    log_format: deja_server::logging::LogFormat,
}

#[derive(clap::Args)]
struct StatsArgs {
    #[command(flatten)]
    target: manage::TargetArgs,
    /// UTC days of the cost ledger to show, today included.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=400))]
    days: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            deja_server::logging::init(args.log_format);
            let config = serve_config(&args)?;
            rt.block_on(async {
                let state = deja_server::build_state(config).await?;
                deja_server::serve(state).await
            })
        }
        Command::Stats(args) => rt.block_on(manage::stats(args.target, args.json, args.days)),
        Command::Invalidate(args) => rt.block_on(manage::invalidate(args)),
        Command::Export(args) => rt.block_on(manage::export(args)),
        Command::Import(args) => rt.block_on(manage::import(args)),
        Command::Entries(args) => rt.block_on(manage::entries(args)),
        Command::Eval(args) => {
            let config = args.model.config()?;
            rt.block_on(eval::run(config, args))
        }
        Command::TrainVerifier(args) => train::run(args),
        Command::Simulate(args) => {
            let config = args.model.config()?;
            rt.block_on(simulate::run(config, args))
        }
        Command::Tune(args) => {
            let config = args.model.config()?;
            rt.block_on(tune::run(config, args))
        }
        Command::Bench {
            entries,
            queries,
            dim,
            answer_bytes,
            json,
            workload,
            transfer,
            lifecycle,
        } => {
            if let Some(dir) = workload {
                return rt.block_on(bench::run_workload(Config::default(), &dir));
            }
            let args = bench::BenchArgs {
                entries,
                queries,
                dim,
                answer_bytes,
                json,
            };
            if transfer {
                return rt.block_on(bench::run_transfer(Config::default(), args));
            }
            if lifecycle {
                return rt.block_on(bench::run_lifecycle(Config::default(), args));
            }
            rt.block_on(bench::run(Config::default(), args))
        }
        Command::KeyHash => {
            let mut key = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut key)
                .context("reading the key from standard input")?;
            let key = key.trim();
            // A bearer token is listed without its scheme, as the server compares it.
            let key = key
                .strip_prefix("Bearer ")
                .or_else(|| key.strip_prefix("bearer "))
                .unwrap_or(key)
                .trim();
            anyhow::ensure!(!key.is_empty(), "no key on standard input");
            println!("{}", deja_server::tenant::key_hash(key.as_bytes()).to_hex());
            Ok(())
        }
        Command::MockUpstream { listen, anthropic } => {
            deja_server::logging::init(deja_server::logging::LogFormat::Text);
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                if anthropic {
                    println!("mock Anthropic upstream listening on http://{listen}");
                    return deja_testkit::mock_anthropic::serve(
                        listener,
                        deja_testkit::mock_anthropic::MockAnthropicState::default(),
                    )
                    .await
                    .context("serving the mock Anthropic upstream");
                }
                println!("mock upstream listening on http://{listen}/v1");
                deja_testkit::mock_upstream::serve(
                    listener,
                    deja_testkit::mock_upstream::MockState::default(),
                )
                .await
                .context("serving the mock upstream")
            })
        }
    }
}

fn serve_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = &args.upstream {
        config.upstream.base_url = v.clone();
    }
    if let Some(v) = &args.embedder_model {
        config.set_embedder_model("--embedder-model", v)?;
    }
    if let Some(v) = &args.model_dir {
        if let deja_server::config::EmbedderConfig::Local { model_dir, .. } = &mut config.embedder {
            *model_dir = Some(v.clone());
        }
    }
    if let Some(v) = args.min_similarity {
        config.cache.min_similarity = v;
    }
    if let Some(v) = &args.durability {
        config.store.durability = if v == "fast" {
            Durability::Fast
        } else {
            Durability::Strict
        };
    }
    if let Some(v) = &args.store {
        config.store.select("--store", v)?;
    }
    if let Some(v) = &args.index {
        config.store.index = if v == "redis-search" {
            deja_server::config::IndexKind::RedisSearch
        } else {
            deja_server::config::IndexKind::Local
        };
    }
    if let Some(v) = args.max_connections {
        config.limits.max_connections = Some(v);
    }
    config.validate()?;
    Ok(config)
}

/// Prints what `deja stats` shows; `source` is `("data dir", path)` or `("server", url)`.
/// Prints the store's entry count and counters (or why the server could not read them:
/// `Err`), and the ledger.
fn print_stats(
    source: (&str, &str),
    store: Result<(u64, &deja_core::Counters), &str>,
    ledger: Option<&deja_server::observe::ledger::LedgerReport>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut v = match store {
            Ok((entries, c)) => {
                let mut v = serde_json::to_value(c)?;
                v["entries"] = entries.into();
                v["hit_rate"] = c.hit_rate().into();
                v
            }
            Err(e) => serde_json::json!({ "store_error": e }),
        };
        v["ledger"] = serde_json::to_value(ledger)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{:<20}{}", source.0, source.1);
    let (entries, c) = match store {
        Ok(read) => read,
        Err(e) => {
            println!("store               unavailable: {e}");
            return Ok(());
        }
    };
    println!("entries             {entries}");
    println!("exact hits          {}", c.exact_hits);
    println!("semantic hits       {}", c.semantic_hits);
    println!("misses              {}", c.misses);
    println!("bypasses            {}", c.bypasses);
    println!("hit rate            {:.1}%", c.hit_rate() * 100.0);
    println!("upstream calls      {}", c.upstream_calls);
    println!(
        "calls saved         {}",
        c.exact_hits + c.semantic_hits + c.embedding_hits
    );
    println!(
        "tokens saved        {} prompt + {} completion",
        c.prompt_tokens_saved, c.completion_tokens_saved
    );
    println!(
        "embedding cache     {} hits, {} misses",
        c.embedding_hits, c.embedding_misses
    );
    println!(
        "removed             {} expired, {} evicted, {} invalidated, {} stale",
        c.removed_expired, c.removed_evicted, c.removed_invalidated, c.removed_stale
    );
    println!(
        "staleness checks    {} ({} tokens), {} changed ({} removed, {} replaced), {} failed",
        c.stale_checks,
        c.stale_check_tokens,
        c.removed_stale + c.stale_replaced,
        c.removed_stale,
        c.stale_replaced,
        c.stale_check_failures
    );
    Ok(())
}
