//! `deja stats | invalidate | export | import | entries`: each works either against a running server
//! (`--server URL`, through its admin API with the admin token) or on a stopped data
//! directory (`--data-dir DIR`, opening the store directly).
//!
//! `deja stats` includes the cost ledger ([`deja_server::observe::ledger`]): requests, hit rate,
//! tokens and dollars saved per UTC day and per model, from the server's `/admin/stats`
//! or the data directory's `ledger.json`.
//!
//! Working on a data directory never loads the embedding model: invalidation and export
//! only read and remove stored entries, and import stores entries with the vectors they
//! carry (the server indexes them when it starts).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use deja_core::{Cache, Clock, EmbedError, Embedder, EntryId, EntryStore, Invalidate, SystemClock};
use deja_server::admin::{entries, transfer};
use deja_server::config::Config;
use deja_server::observe::ledger::{Ledger, LedgerReport, ReportRow, LEDGER_FILE};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

/// Where a command acts.
#[derive(clap::Args, Debug)]
pub struct TargetArgs {
    /// A running server's base URL (e.g. http://127.0.0.1:8080): act through its admin API.
    #[arg(long)]
    pub server: Option<String>,
    /// The server's admin token (also `DEJA_ADMIN_TOKEN`); used with --server.
    #[arg(long, env = "DEJA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A stopped server's data directory [default: the user's data dir, `deja/`]; ignored
    /// with --server.
    #[arg(long, env = "DEJA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("what")
        .required(true)
        .args(["tag", "model", "namespace", "tenant", "id", "older_than", "all"])
))]
pub struct InvalidateArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Every entry carrying this tag (from `x-deja-tags`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Every entry answered by this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Every entry of this namespace (as given in `x-deja-namespace`), under every key.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Every entry under this tenant label, as `deja entries` shows it: key:HASH (a
    /// per-key tenant, with its namespaces), anonymous or shared, each optionally followed
    /// by /ns:NAME; or ns:NAME (a shared namespace).
    #[arg(long)]
    pub tenant: Option<String>,
    /// One entry, by its 16-hex-digit id.
    #[arg(long)]
    pub id: Option<String>,
    /// Every entry created at least this long ago: 30d, 12h, 90m, 45s.
    #[arg(long, value_parser = parse_duration_secs)]
    pub older_than: Option<u64>,
    /// Every entry.
    #[arg(long)]
    pub all: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A JSON Lines file written by `deja export`.
    pub file: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct EntriesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Entries whose prompt contains this text (case-insensitive).
    #[arg(long, short = 'q')]
    pub query: Option<String>,
    /// Entries carrying this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Entries answered by this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Entries of this namespace (as given in `x-deja-namespace`), under every key.
    #[arg(long, conflicts_with = "tenant")]
    pub namespace: Option<String>,
    /// Entries under this tenant label (key:HASH, anonymous or shared, each optionally
    /// followed by /ns:NAME; or ns:NAME).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Entries per page (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
    /// Start after this cursor (the `next` a previous page printed).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the cursor to the end instead of printing one page.
    #[arg(long)]
    pub all: bool,
    /// Print each page as JSON (`{"entries": [...], "next_cursor": ...}`).
    #[arg(long)]
    pub json: bool,
}

/// `30d`, `12h`, `90m`, `45s` (or plain seconds) → seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30d, 12h, 90m or 45s"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be d, h, m or s")),
    };
    n.checked_mul(unit_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Configuration for working on a data directory: defaults, the environment, `--data-dir`.
fn local_config(data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.apply_env(|k| std::env::var(k).ok())?;
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    Ok(config)
}

fn open_local(config: &Config) -> anyhow::Result<Arc<dyn EntryStore>> {
    let store = deja_server::open_store(config).context(
        "is a deja server running on this data directory? stop it first, or use --server",
    )?;
    Ok(Arc::new(store))
}

/// A client of a running server's admin API.
struct Remote {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Remote {
    fn new(server: &str, token: Option<String>) -> anyhow::Result<Remote> {
        let token = token
            .context("--server needs the admin token: pass --token or set DEJA_ADMIN_TOKEN")?;
        Ok(Remote {
            base: server.trim_end_matches('/').to_string(),
            token,
            client: reqwest::Client::new(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/admin/{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// The response if it succeeded; otherwise an error carrying the server's message.
    async fn send(
        &self,
        rb: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let resp = rb
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("(no error message)")
            .to_string();
        bail!("{what}: the server answered {status}: {message}")
    }
}

/// `deja stats`: the cache's counters, and the cost ledger of the last `days` UTC days.
pub async fn stats(target: TargetArgs, json_out: bool, days: u64) -> anyhow::Result<()> {
    let (store, source, staleness_today, ledger, budget) = match &target.server {
        Some(server) => {
            let remote = Remote::new(server, target.token)?;
            let v: Value = remote
                .send(
                    remote
                        .request(reqwest::Method::GET, "stats")
                        .query(&[("days", days)]),
                    "reading stats",
                )
                .await?
                .json()
                .await
                .context("reading stats: the answer is not JSON")?;
            // While its store is away the server answers without entries and counters,
            // saying why in `store_error`.
            let store = match v.get("store_error").and_then(Value::as_str) {
                Some(e) => Err(e.to_string()),
                None => Ok((
                    v["entries"].as_u64().unwrap_or(0),
                    serde_json::from_value::<deja_core::Counters>(v["counters"].clone())
                        .context("reading stats: unexpected counters")?,
                )),
            };
            let today = match v.get("staleness") {
                Some(s) if s["enabled"] == true => format!(
                    "{}/{} calls, {}/{} tokens",
                    s["calls_today"],
                    s["max_calls_per_day"],
                    s["tokens_today"],
                    s["max_tokens_per_day"]
                ),
                Some(_) => "off".to_string(),
                None => "unknown (older server)".to_string(),
            };
            // A server from before the ledger sends none.
            let ledger = match v.get("ledger") {
                Some(l) if !l.is_null() => Some(
                    serde_json::from_value::<LedgerReport>(l.clone())
                        .context("reading stats: unexpected ledger")?,
                ),
                _ => None,
            };
            let budget = v.get("error_budget").cloned().unwrap_or(Value::Null);
            (store, ("server", server.clone()), today, ledger, budget)
        }
        None => {
            let config = local_config(target.data_dir)?;
            let store = open_local(&config)?;
            // The data dir does not say whether the job is on or what its limits are (that
            // is the server's config); its state file says what it spent today.
            let s = deja_server::admin::staleness_status(&config, deja_core::SystemClock.now_ms());
            let today = format!("{} calls, {} tokens", s["calls_today"], s["tokens_today"]);
            let ledger = Ledger::read(&config.data_dir.join(LEDGER_FILE))?
                .report(SystemClock.now_ms(), days);
            (
                Ok((store.len().await?, store.counters().await?)),
                ("data dir", config.data_dir.display().to_string()),
                today,
                Some(ledger),
                // The labels and audits are the running server's (its budgets are its
                // config's): not read from a stopped data dir.
                Value::Null,
            )
        }
    };
    crate::print_stats(
        (source.0, &source.1),
        match &store {
            Ok((entries, counters)) => Ok((*entries, counters)),
            Err(e) => Err(e.as_str()),
        },
        ledger.as_ref(),
        json_out,
    )?;
    if !json_out {
        println!("staleness today     {}", staleness_today);
        for line in budget_lines(&budget) {
            println!("{line}");
        }
        match &ledger {
            Some(l) => print!("\n{}", ledger_table(l)),
            None => println!("cost ledger         not reported (the server predates it)"),
        }
    }
    Ok(())
}

/// The error budget of `/admin/stats` as `deja stats` prints it: each category's live
/// audit (with its 95% interval, and a warning when its lower bound passes the budget),
/// then each cell's labels and certified similarity. Nothing without a budget.
pub fn budget_lines(budget: &Value) -> Vec<String> {
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0))
    };
    let mut out = Vec::new();
    let (Some(audits), Some(cells)) = (budget["audits"].as_array(), budget["cells"].as_array())
    else {
        return out;
    };
    let mut head = "error budget".to_string();
    for a in audits {
        let over = if a["over_budget"] == true {
            "  OVER BUDGET: the lower bound passes it"
        } else {
            ""
        };
        out.push(format!(
            "{head:<20}{}: audited {}, wrong {} ({}, 95% {}–{}), budget {}{over}",
            a["category"].as_str().unwrap_or("?"),
            a["checked"],
            a["wrong"],
            pct(&a["false_hit_rate"]),
            pct(&a["low"]),
            pct(&a["high"]),
            pct(&a["max_false_hit_rate"]),
        ));
        head.clear();
    }
    for c in cells {
        let certified = match &c["certified_similarity"] {
            Value::Null => "too few labels".to_string(),
            Value::String(s) if s == "nothing" => "nothing certified".to_string(),
            t => format!("served from {:.3}", t.as_f64().unwrap_or(f64::NAN)),
        };
        out.push(format!(
            "{head:<20}{} support ≥ {}{}: {} labels, {} wrong, {certified}",
            c["category"].as_str().unwrap_or("?"),
            c["support"],
            if c["vouched"] == true {
                ", verifier accepted"
            } else {
                ""
            },
            c["labels"],
            c["wrong"],
        ));
        head.clear();
    }
    for j in budget["judge"].as_array().into_iter().flatten() {
        out.push(format!(
            "{head:<20}{}: answer comparison checked on {} exact hits, called {} different ({}, 95% {}–{}){}",
            j["category"].as_str().unwrap_or("?"),
            j["checked"],
            j["judged_different"],
            pct(&j["false_disagree_rate"]),
            pct(&j["low"]),
            pct(&j["high"]),
            if j["still_checking"] == true {
                ", still checking"
            } else {
                ""
            },
        ));
        head.clear();
    }
    if out.is_empty() {
        out.push("error budget        no labels yet".to_string());
    }
    out
}

/// The ledger as `deja stats` prints it: per day (newest first), then per model, each
/// with a total.
pub fn ledger_table(r: &LedgerReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cost, {} to {} (UTC): what the hits would have cost upstream",
        r.from, r.to
    );
    if r.days.is_empty() {
        out.push_str("no requests recorded in this period\n");
        return out;
    }
    let row = |out: &mut String, label: &str, row: &ReportRow| {
        let mark = if row.unpriced_hits > 0 { "*" } else { "" };
        let _ = writeln!(
            out,
            "{label:<28} {:>9} {:>13} {:>8.1}% {:>22} {:>11}{mark}",
            row.requests,
            format!("{}+{}", row.exact_hits, row.semantic_hits),
            row.hit_rate * 100.0,
            format!(
                "{}+{}",
                row.prompt_tokens_saved, row.completion_tokens_saved
            ),
            dollars(row.saved_usd),
        );
    };
    let head = |out: &mut String, first: &str| {
        let _ = writeln!(
            out,
            "{first:<28} {:>9} {:>13} {:>9} {:>22} {:>11}",
            "requests", "hits (e+s)", "hit rate", "tokens saved (p+c)", "saved"
        );
    };
    head(&mut out, "day");
    for d in &r.days {
        row(&mut out, &d.date, &d.totals);
    }
    row(&mut out, "total", &r.totals);
    out.push('\n');
    head(&mut out, "model");
    for m in &r.models {
        row(&mut out, &m.model, &m.row);
    }
    if r.totals.unpriced_hits > 0 {
        let _ = writeln!(
            out,
            "* includes {} hit(s) of models without a price: tokens counted, no money (set [prices] in the config)",
            r.totals.unpriced_hits
        );
    }
    out
}

/// US dollars to four decimals; a non-zero amount below that is not shown as zero.
fn dollars(usd: f64) -> String {
    if usd > 0.0 && usd < 0.000_05 {
        "<$0.0001".to_string()
    } else {
        format!("${usd:.4}")
    }
}

pub async fn invalidate(args: InvalidateArgs) -> anyhow::Result<()> {
    let InvalidateArgs {
        target,
        tag,
        model,
        namespace,
        tenant,
        id,
        older_than,
        all,
    } = args;
    let removed = match &target.server {
        Some(server) => {
            let body = if let Some(t) = tag {
                json!({ "tag": t })
            } else if let Some(m) = model {
                json!({ "model": m })
            } else if let Some(ns) = namespace {
                json!({ "namespace": ns })
            } else if let Some(t) = tenant {
                json!({ "tenant": t })
            } else if let Some(id) = id {
                json!({ "id": id })
            } else if let Some(secs) = older_than {
                json!({ "older_than_secs": secs })
            } else if all {
                json!({ "all": true })
            } else {
                bail!("say what to invalidate");
            };
            let remote = Remote::new(server, target.token)?;
            let v: Value = remote
                .send(
                    remote
                        .request(reqwest::Method::POST, "invalidate")
                        .json(&body),
                    "invalidating",
                )
                .await?
                .json()
                .await
                .context("invalidating: the answer is not JSON")?;
            v["removed"].as_u64().unwrap_or(0)
        }
        None => {
            let what = if let Some(t) = tag {
                Invalidate::Tag(t)
            } else if let Some(m) = model {
                Invalidate::Model(m)
            } else if let Some(ns) = namespace {
                Invalidate::Namespace(format!("ns:{ns}"))
            } else if let Some(t) = tenant {
                Invalidate::Namespace(
                    deja_server::admin::parse_tenant(&t)
                        .map_err(|_| anyhow::anyhow!("--tenant {t:?} is not a tenant label; use key:HASH, anonymous or shared, each optionally followed by /ns:NAME, or ns:NAME"))?,
                )
            } else if let Some(id) = id {
                let parsed = (id.len() == 16).then(|| EntryId::parse_hex(&id)).flatten();
                Invalidate::Id(parsed.with_context(|| format!("--id {id:?} is not 16 hex digits"))?)
            } else if let Some(secs) = older_than {
                Invalidate::OlderThan { secs }
            } else if all {
                Invalidate::All
            } else {
                bail!("say what to invalidate");
            };
            let config = local_config(target.data_dir)?;
            let cache = offline_cache(&config)?;
            let removed = cache.invalidate(&what).await?;
            cache.flush_counters().await?;
            cache.store().flush().await?;
            removed
        }
    };
    println!("removed {removed}");
    Ok(())
}

pub async fn entries(args: EntriesArgs) -> anyhow::Result<()> {
    let EntriesArgs {
        target,
        query,
        tag,
        model,
        namespace,
        tenant,
        limit,
        cursor,
        all,
        json: json_out,
    } = args;
    let tenant = match (namespace, tenant) {
        (Some(ns), _) => Some(format!("ns:{ns}")),
        (None, Some(t)) => Some(deja_server::admin::parse_tenant(&t).map_err(|_| {
            anyhow::anyhow!(
                "--tenant {t:?} is not a tenant label; use key:HASH, anonymous or shared, each optionally followed by /ns:NAME, or ns:NAME"
            )
        })?),
        (None, None) => None,
    };
    let filter = entries::EntryFilter {
        text: query,
        tag,
        model,
        tenant,
    };
    let mut cursor = match cursor {
        Some(c) => Some(
            (c.len() == 16)
                .then(|| EntryId::parse_hex(&c))
                .flatten()
                .with_context(|| format!("--cursor {c:?} is not 16 hex digits"))?,
        ),
        None => None,
    };
    let source = match &target.server {
        Some(server) => ListSource::Remote(Remote::new(server, target.token.clone())?),
        None => ListSource::Local(open_local(&local_config(target.data_dir.clone())?)?),
    };
    let mut shown = 0u64;
    loop {
        let page = source.page(&filter, cursor, limit as usize).await?;
        if json_out {
            println!("{}", serde_json::to_string(&page)?);
        } else {
            for e in &page.entries {
                print_entry_line(e);
            }
        }
        shown += page.entries.len() as u64;
        cursor = match &page.next_cursor {
            Some(c) if all => Some(
                EntryId::parse_hex(c).with_context(|| format!("the server sent cursor {c:?}"))?,
            ),
            Some(c) => {
                if !json_out {
                    eprintln!("{shown} shown; more with --cursor {c} (or --all)");
                }
                break;
            }
            None => {
                if !json_out {
                    eprintln!("{shown} shown; no more");
                }
                break;
            }
        };
    }
    Ok(())
}

/// One entry per line: id, hits, size, model, tenant, category, tags, prompt.
fn print_entry_line(e: &entries::EntrySummary) {
    let prompt: String = e
        .prompt
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    let tags = if e.tags.is_empty() {
        "-".to_string()
    } else {
        e.tags.join(",")
    };
    let tenant = short_tenant(&e.namespace);
    println!(
        "{}  {:>6} hits  {:>8} B  {:<16} {:<20} {:<12} {:<20} {}",
        e.id, e.hit_count, e.size_bytes, e.model, tenant, e.category, tags, prompt
    );
}

/// A tenant label for the screen: a per-key tenant's hash cut to its first 16 digits (enough
/// to tell them apart), its namespace kept whole.
fn short_tenant(label: &str) -> String {
    match label.strip_prefix("key:") {
        Some(rest) => {
            let (hash, ns) = rest.split_once('/').map_or((rest, ""), |(h, n)| (h, n));
            let hash: String = hash.chars().take(16).collect();
            if ns.is_empty() {
                format!("key:{hash}")
            } else {
                format!("key:{hash}/{ns}")
            }
        }
        None => label.to_string(),
    }
}

/// Where `deja entries` reads pages from.
enum ListSource {
    Remote(Remote),
    Local(Arc<dyn EntryStore>),
}

impl ListSource {
    async fn page(
        &self,
        filter: &entries::EntryFilter,
        cursor: Option<EntryId>,
        limit: usize,
    ) -> anyhow::Result<entries::Page> {
        match self {
            ListSource::Local(store) => {
                Ok(entries::list(store.as_ref(), filter, cursor, limit).await?)
            }
            ListSource::Remote(remote) => {
                let mut params: Vec<(&str, String)> = vec![("limit", limit.to_string())];
                for (name, value) in [
                    ("q", &filter.text),
                    ("tag", &filter.tag),
                    ("model", &filter.model),
                    ("tenant", &filter.tenant),
                ] {
                    if let Some(v) = value {
                        params.push((name, v.clone()));
                    }
                }
                if let Some(c) = cursor {
                    params.push(("cursor", c.to_string()));
                }
                remote
                    .send(
                        remote
                            .request(reqwest::Method::GET, "entries")
                            .query(&params),
                        "listing entries",
                    )
                    .await?
                    .json()
                    .await
                    .context("listing entries: unexpected answer")
            }
        }
    }
}

/// A cache over a stopped data directory, without the embedding model: what invalidation
/// needs (it only reads and removes). Its index starts empty, so nothing is searched.
fn offline_cache(config: &Config) -> anyhow::Result<Cache> {
    let embedder = Arc::new(NoEmbedder);
    let index = Arc::new(deja_store_local::HnswIndex::new(
        embedder.id(),
        embedder.dim(),
        deja_store_local::HnswParams::default(),
    ));
    Ok(Cache::new(
        open_local(config)?,
        index,
        embedder,
        Arc::new(SystemClock),
        deja_server::cache_options(config),
    )?)
}

/// Stands in for the model where no text is ever embedded.
struct NoEmbedder;

#[async_trait::async_trait]
impl Embedder for NoEmbedder {
    fn id(&self) -> &str {
        "deja-cli:none"
    }
    fn dim(&self) -> usize {
        1
    }
    fn vocabulary(&self) -> Option<&deja_core::verify::Vocabulary> {
        None
    }

    fn unseen(&self, _text: &str) -> Vec<String> {
        Vec::new()
    }
    async fn embed(&self, _texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Err(EmbedError::WorkerGone)
    }
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs { target, out } = args;
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = |e: std::io::Error| anyhow::Error::new(e).context("writing the export");
    match &target.server {
        Some(server) => {
            let remote = Remote::new(server, target.token)?;
            let resp = remote
                .send(remote.request(reqwest::Method::GET, "export"), "exporting")
                .await?;
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.context("exporting: the server broke off")?;
                sink.write_all(&chunk).map_err(written)?;
            }
        }
        None => {
            let config = local_config(target.data_dir)?;
            let mut rx = transfer::export_lines(open_local(&config)?);
            while let Some(line) = rx.recv().await {
                sink.write_all(line?.as_bytes()).map_err(written)?;
            }
        }
    }
    sink.flush().map_err(written)?;
    Ok(())
}

/// How much of the file is read per step.
const IMPORT_CHUNK_BYTES: usize = 256 * 1024;

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let ImportArgs {
        target,
        file,
        quiet,
    } = args;
    let mut input =
        std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let len = input.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(quiet, len);
    let imported = match &target.server {
        Some(server) => {
            let remote = Remote::new(server, target.token)?;
            let body = file_stream(input, bar.clone());
            let v: Value = remote
                .send(
                    remote
                        .request(reqwest::Method::POST, "import")
                        .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                        .body(reqwest::Body::wrap_stream(body)),
                    "importing",
                )
                .await?
                .json()
                .await
                .context("importing: the answer is not JSON")?;
            v["imported"].as_u64().unwrap_or(0)
        }
        None => {
            let config = local_config(target.data_dir)?;
            let store = open_local(&config)?;
            let dims = transfer::stored_dims(store.as_ref()).await?;
            let mut importer =
                transfer::Importer::new(transfer::ImportTarget::Store(store.clone()), dims);
            let mut buf = vec![0u8; IMPORT_CHUNK_BYTES];
            let result = async {
                loop {
                    let n = input
                        .read(&mut buf)
                        .with_context(|| format!("reading {}", file.display()))?;
                    if n == 0 {
                        break;
                    }
                    importer.push(&buf[..n]).await?;
                    bar.inc(n as u64);
                }
                Ok::<_, anyhow::Error>(importer.finish().await?)
            }
            .await;
            store.flush().await?;
            result.with_context(|| {
                format!(
                    "importing {} ({} entries before the error were imported)",
                    file.display(),
                    importer.imported()
                )
            })?
        }
    };
    bar.finish_and_clear();
    eprintln!("imported {imported} entries");
    Ok(())
}

fn progress_bar(quiet: bool, len: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "importing [{bar:30}] {bytes}/{total_bytes} {elapsed_precise} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The file as a stream of chunks for a request body, advancing `bar` as they are sent.
fn file_stream(
    file: std::fs::File,
    bar: ProgressBar,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures::stream::unfold(Some(file), move |file| {
        let bar = bar.clone();
        async move {
            let mut file = file?;
            let mut buf = vec![0u8; IMPORT_CHUNK_BYTES];
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    bar.inc(n as u64);
                    Some((Ok(buf), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_budget_prints_its_audits_then_its_cells() {
        assert!(budget_lines(&Value::Null).is_empty());
        let budget = serde_json::json!({
            "audits": [{"category": "default", "max_false_hit_rate": 0.01, "checked": 40,
                        "wrong": 3, "false_hit_rate": 0.075, "low": 0.026, "high": 0.199,
                        "over_budget": true}],
            "cells": [{"category": "default", "support": 0, "max_false_hit_rate": 0.01,
                       "labels": 700, "wrong": 2, "certified_similarity": 0.9123},
                      {"category": "default", "support": 1, "max_false_hit_rate": 0.01,
                       "labels": 12, "wrong": 0, "certified_similarity": null},
                      {"category": "default", "support": 0, "vouched": true,
                       "max_false_hit_rate": 0.01, "labels": 300, "wrong": 1,
                       "certified_similarity": "nothing"}],
            "judge": [{"category": "default", "checked": 500, "judged_different": 4,
                       "false_disagree_rate": 0.008, "low": 0.003, "high": 0.02,
                       "still_checking": true}],
        });
        assert_eq!(
            budget_lines(&budget),
            [
                "error budget        default: audited 40, wrong 3 (7.5%, 95% 2.6%–19.9%), budget 1.0%  OVER BUDGET: the lower bound passes it",
                "                    default support ≥ 0: 700 labels, 2 wrong, served from 0.912",
                "                    default support ≥ 1: 12 labels, 0 wrong, too few labels",
                "                    default support ≥ 0, verifier accepted: 300 labels, 1 wrong, nothing certified",
                "                    default: answer comparison checked on 500 exact hits, called 4 different (0.8%, 95% 0.3%–2.0%), still checking",
            ]
        );
    }

    #[test]
    fn tenants_are_shortened_for_the_screen_but_keep_their_namespace() {
        let hash = "ab".repeat(32);
        assert_eq!(short_tenant(&format!("key:{hash}")), "key:abababababababab");
        assert_eq!(
            short_tenant(&format!("key:{hash}/ns:acme")),
            "key:abababababababab/ns:acme"
        );
        assert_eq!(short_tenant("anonymous/ns:acme"), "anonymous/ns:acme");
        assert_eq!(short_tenant("ns:support"), "ns:support");
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("30d", Some(30 * 86_400)),
            ("12h", Some(12 * 3_600)),
            ("90m", Some(5_400)),
            ("45s", Some(45)),
            ("45", Some(45)),
            ("0s", Some(0)),
            ("", None),
            ("d", None),
            ("3w", None),
            ("-1s", None),
            ("1.5h", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration_secs(s).ok(), *want, "{s}");
        }
    }

    fn ledger() -> Ledger {
        use deja_server::observe::summary::{Endpoint, Outcome};
        let l = Ledger::in_memory();
        let day = 24 * 3600 * 1000;
        let record = |ms: u64, model: &str, outcome: Outcome, saved: (u64, u64), usd| {
            let mut s = deja_server::observe::summary::RequestSummary::new(Endpoint::Chat);
            s.model = Some(model.into());
            s.outcome = Some(outcome);
            s.saved = deja_core::Usage {
                prompt_tokens: saved.0,
                completion_tokens: saved.1,
            };
            s.saved_usd = usd;
            l.record(ms, &s);
        };
        // 2025-06-01 and 2025-06-02.
        record(20_240 * day, "gpt-4o", Outcome::Miss, (0, 0), Some(0.0));
        record(
            20_240 * day,
            "gpt-4o",
            Outcome::HitExact,
            (1_000, 500),
            Some(0.0075),
        );
        record(
            20_241 * day,
            "gpt-4o",
            Outcome::HitSemantic,
            (1_000, 500),
            Some(0.0075),
        );
        record(
            20_241 * day,
            "text-embedding-3-small",
            Outcome::HitExact,
            (2, 0),
            Some(4e-8),
        );
        record(20_241 * day, "my-llm", Outcome::HitExact, (10, 20), None);
        record(20_241 * day, "my-llm", Outcome::Bypass, (0, 0), None);
        l
    }

    /// What `deja stats` prints for a known ledger, to the character.
    #[test]
    fn the_ledger_table() {
        let l = ledger();
        let today = 20_241 * 24 * 3600 * 1000;
        assert_eq!(ledger_table(&l.report(today, 7)), LEDGER_TABLE);
        assert_eq!(
            ledger_table(&l.report(today + 30 * 24 * 3600 * 1000, 7)),
            "cost, 2025-06-26 to 2025-07-02 (UTC): what the hits would have cost upstream\n\
             no requests recorded in this period\n"
        );
    }

    const LEDGER_TABLE: &str = "\
cost, 2025-05-27 to 2025-06-02 (UTC): what the hits would have cost upstream
day                           requests    hits (e+s)  hit rate     tokens saved (p+c)       saved
2025-06-02                           4           2+1    100.0%               1012+520     $0.0075*
2025-06-01                           2           1+0     50.0%               1000+500     $0.0075
total                                6           3+1     80.0%              2012+1020     $0.0150*

model                         requests    hits (e+s)  hit rate     tokens saved (p+c)       saved
gpt-4o                               3           1+1     66.7%              2000+1000     $0.0150
text-embedding-3-small               1           1+0    100.0%                    2+0    <$0.0001
my-llm                               2           1+0    100.0%                  10+20     $0.0000*
* includes 1 hit(s) of models without a price: tokens counted, no money (set [prices] in the config)
";

    #[test]
    fn dollars_are_never_rounded_to_nothing() {
        for (usd, shown) in [
            (0.0, "$0.0000"),
            (0.0075, "$0.0075"),
            (0.000_04, "<$0.0001"),
            (0.000_05, "$0.0001"),
            (1234.5, "$1234.5000"),
        ] {
            assert_eq!(dollars(usd), shown, "{usd}");
        }
    }
}
