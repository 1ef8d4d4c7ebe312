#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard end to end: the real server with the embedded store, the real model and
//! the mock upstream; traffic of every kind (misses, exact and semantic hits, bypasses, a
//! candidate refused by verification) spread over the last hour by an injected clock; then
//! headless Chromium, driven through chromedriver's W3C WebDriver HTTP API, opens
//! `/dashboard#token=...`. The page must show the numbers the JSON has (and the test
//! counted), log no console error, and its screenshot is kept in
//! `target/test-artifacts/dashboard.png`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/install-chromium.sh`)
//! the browser test prints "skipped: ..." unless `DEJA_REQUIRE_CHROMIUM=1`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Served;
use deja_core::{Embedder, ManualClock};
use deja_server::config::Config;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "dashboard-test-token";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether Chromium and chromedriver are installed; prints why not (or fails, with
/// `DEJA_REQUIRE_CHROMIUM=1`).
fn chromium_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} not installed (scripts/install-chromium.sh)",
        missing.join(" and ")
    );
    if std::env::var("DEJA_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
        panic!("DEJA_REQUIRE_CHROMIUM=1 but {why}");
    }
    eprintln!("skipped: {why}");
    false
}

struct Proxy {
    base: String,
    clock: Arc<ManualClock>,
    client: reqwest::Client,
    served: Served,
    _mock: MockUpstream,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy whose clock starts at `start_ms`, with strict durability so a miss is
    /// stored before its response is sent.
    async fn start(
        embedder: Arc<dyn Embedder>,
        start_ms: u64,
        tweak: impl FnOnce(&mut Config),
    ) -> Proxy {
        let mock = MockUpstream::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), mock.base_url());
        config.store.durability = deja_server::config::Durability::Strict;
        config.admin.token = Some(ADMIN_TOKEN.into());
        tweak(&mut config);
        let clock = Arc::new(ManualClock::new(start_ms));
        let served = Served::start_with(config, embedder, clock.clone(), |s| s).await;
        Proxy {
            base: served.base.clone(),
            clock,
            client: reqwest::Client::new(),
            served,
            _mock: mock,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.served.stop().await;
    }

    /// A chat request; its `x-deja-cache` outcome and `x-deja-rejected` reason.
    async fn chat(&self, text: &str, headers: &[(&str, &str)]) -> (String, Option<String>) {
        let mut rb = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(
                &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}),
            );
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200, "{text}");
        let h = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        (h("x-deja-cache").unwrap(), h("x-deja-rejected"))
    }

    async fn embeddings(&self, input: &[&str]) -> String {
        let r = self
            .client
            .post(format!("{}/v1/embeddings", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(&json!({"model": "text-embedding-3-small", "input": input}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["x-deja-cache"].to_str().unwrap().to_string()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut rb = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send().await.unwrap()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Where test artifacts go: `<target dir>/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    };
    target.join("test-artifacts")
}

/// chromedriver on a free port of 127.0.0.1, in its own process group, which is killed
/// (with the browsers it started) when this is dropped.
struct ChromeDriver {
    child: Child,
    base: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting chromedriver");
        ChromeDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("chromedriver exited at start: {status}");
            }
            if let Ok(r) = client.get(format!("{}/status", self.base)).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == json!(true) {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser left behind by a failed test.
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Browser {
    client: reqwest::Client,
    session: String,
}

impl Browser {
    async fn open(driver: &ChromeDriver, client: &reqwest::Client, profile: &Path) -> Browser {
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--no-default-browser-check",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-extensions",
                            "--hide-scrollbars",
                            "--window-size=1440,1000",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
            }
        });
        let r = client
            .post(format!("{}/session", driver.base))
            .json(&caps)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {v}"))
            .to_string();
        Browser {
            client: client.clone(),
            session: format!("{}/session/{session}", driver.base),
        }
    }

    /// Sends a WebDriver command; its `value`. A WebDriver error fails the test.
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Polls `script` until it returns something other than `null` or `false`.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.js(script).await;
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The console entries logged since the last call.
    async fn console(&self) -> Vec<Value> {
        self.cmd(
            reqwest::Method::POST,
            "/se/log",
            Some(json!({"type": "browser"})),
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    async fn close(self) {
        let _ = self.client.delete(&self.session).send().await;
    }
}

/// The text of the `.value` of a KPI tile.
fn kpi(id: &str) -> String {
    format!("return document.querySelector('#{id} .value').textContent;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_traffic_in_a_real_browser() {
    let Some(embedder) = common::model() else {
        return;
    };
    if !chromium_available() {
        return;
    }
    // The traffic is spread over the 48 minutes before now, so the charts have a history.
    let rounds = 12u64;
    let step_ms = 4 * 60_000;
    let p = Proxy::start(embedder, now_ms() - rounds * step_ms, |_| {}).await;

    let faq = [
        "How do I reset my password?",
        "What are your opening hours?",
        "How can I cancel my subscription?",
        "Where is my order?",
        "Do you ship to Canada?",
    ];
    let paraphrases = [
        "how can I reset my password",
        "When are you open?",
        "how do I cancel my subscription",
        "where is my order right now",
        "Do you deliver to Canada?",
    ];
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let mut count = |o: &str| *outcomes.entry(o.to_string()).or_default() += 1;
    for r in 0..rounds as usize {
        let (o, _) = p.chat(faq[r % 5], &[]).await;
        count(&o);
        let (o, _) = p.chat(faq[(r + 1) % 5], &[]).await;
        count(&o);
        let (o, _) = p.chat(faq[r % 5], &[]).await;
        if r == 0 {
            assert_eq!(o, "hit-exact", "{}", faq[0]);
        }
        count(&o);
        let (o, _) = p.chat(paraphrases[r % 5], &[]).await;
        if r == 0 {
            assert_eq!(o, "hit-semantic", "{}", paraphrases[0]);
        }
        count(&o);
        let (o, _) = p
            .chat(
                &format!("What is the boiling point of water at {} metres?", r * 500),
                &[],
            )
            .await;
        count(&o);
        if r % 3 == 0 {
            let (o, _) = p
                .chat(
                    "List three primary colours",
                    &[("cache-control", "no-cache")],
                )
                .await;
            assert_eq!(o, "bypass");
            count(&o);
        }
        if r % 4 == 1 {
            let (o, _) = p.chat("What is the weather today?", &[]).await;
            assert_eq!(o, "bypass");
            count(&o);
        }
        p.clock.advance_ms(step_ms);
    }
    // A near-duplicate that verification refuses.
    let (o, _) = p.chat("How do I enable dark mode?", &[]).await;
    count(&o);
    let (o, rejected) = p.chat("How do I disable dark mode?", &[]).await;
    assert_eq!(o, "miss");
    let rejected = rejected.expect("x-deja-rejected on the refused candidate");
    count(&o);
    assert_eq!(p.embeddings(&["alpha beta", "gamma delta"]).await, "miss");
    count("miss");
    assert_eq!(
        p.embeddings(&["alpha beta", "gamma delta"]).await,
        "hit-exact"
    );
    count("hit-exact");
    let n = |o: &str| outcomes.get(o).copied().unwrap_or(0);
    let total: u64 = outcomes.values().sum();
    let hits = n("hit-exact") + n("hit-semantic");
    assert!(n("hit-semantic") >= 1 && n("miss") >= 5 && n("bypass") >= 4);

    // The JSON the page draws agrees with what the test counted.
    let r = p.get("/admin/dashboard.json", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let data: Value = r.json().await.unwrap();
    let totals = &data["insights"]["totals"];
    for (field, outcome) in [
        ("hit_exact", "hit-exact"),
        ("hit_semantic", "hit-semantic"),
        ("miss", "miss"),
        ("bypass", "bypass"),
    ] {
        assert_eq!(totals[field], json!(n(outcome)), "{field}: {data}");
    }
    assert!(totals["completion_tokens_saved"].as_u64().unwrap() > 0);
    let minutes = data["insights"]["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), rounds as usize + 1, "one minute per round");
    let refused = data["near_misses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["prompt"] == "How do I disable dark mode?")
        .unwrap_or_else(|| panic!("the refused candidate is not a near-miss: {data}"));
    assert_eq!(refused["cached_prompt"], "How do I enable dark mode?");
    assert_eq!(refused["rejected"], json!(rejected));
    assert!(data["insights"]["reject_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["reason"] == json!(rejected)));
    let top = data["top_entries"].as_array().unwrap();
    assert!(!top.is_empty() && top[0]["hit_count"].as_u64().unwrap() >= 2);

    // The browser.
    let client = reqwest::Client::new();
    let mut driver = ChromeDriver::start();
    driver.wait_ready(&client).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(&driver, &client, profile.path()).await;
    // Without a token: the sign-in form, and no request for data.
    browser.goto(&format!("{}/dashboard", p.base)).await;
    browser
        .wait_for(
            "the sign-in form",
            "return !document.getElementById('login').hidden && document.getElementById('main').hidden;",
        )
        .await;
    // With one in the fragment: the dashboard, which drops it from the address bar.
    browser
        .goto(&format!("{}/dashboard#token={ADMIN_TOKEN}", p.base))
        .await;
    browser
        .wait_for(
            "non-zero KPI tiles",
            "const v = document.querySelector('#kpi-requests .value');
             return !document.getElementById('main').hidden && v && /[1-9]/.test(v.textContent);",
        )
        .await;
    let requests = browser.js(&kpi("kpi-requests")).await;
    assert_eq!(requests, json!(total.to_string()), "requests tile");
    let hit_rate = browser.js(&kpi("kpi-hit-rate")).await;
    let shown: f64 = hit_rate
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    let want = 100.0 * hits as f64 / (hits + n("miss")) as f64;
    assert!(
        (shown - want).abs() <= 0.05,
        "hit rate {hit_rate} vs {want}"
    );
    for id in ["kpi-tokens", "kpi-p50", "kpi-p99"] {
        let v = browser.js(&kpi(id)).await;
        assert!(
            v.as_str()
                .is_some_and(|s| s.chars().any(|c| ('1'..='9').contains(&c))),
            "{id}: {v}"
        );
    }
    assert_eq!(browser.js("return location.hash;").await, json!(""));
    let rows = browser
        .js("return Array.from(document.querySelectorAll('#near-misses tbody tr')).map(r => r.innerText);")
        .await;
    let rows = rows.as_array().unwrap();
    assert!(
        rows.iter().any(|r| {
            let r = r.as_str().unwrap();
            r.contains("How do I disable dark mode?")
                && r.contains("How do I enable dark mode?")
                && r.contains(&rejected)
        }),
        "near-miss rows: {rows:?}"
    );
    // No error budget here: no budget card.
    assert_eq!(
        browser
            .js("return document.getElementById('budget-card').hidden;")
            .await,
        json!(true)
    );
    let top_rows = browser
        .js("return document.querySelectorAll('#top-entries tbody tr td.prompt').length;")
        .await;
    assert_eq!(top_rows, json!(top.len()));
    // Every chart drew something (an SVG, not the empty placeholder).
    for id in [
        "traffic-chart",
        "savings-chart",
        "latency-chart",
        "similarity-chart",
    ] {
        let drawn = browser
            .js(&format!(
                "return document.querySelectorAll('#{id} svg rect, #{id} svg polyline').length;"
            ))
            .await;
        assert!(drawn.as_u64().unwrap() > 0, "{id} is empty");
    }

    // A person says the newest semantic hit was wrong: its entry is removed.
    let newest = &data["hits"][0];
    assert_eq!(newest["labelable"], false, "no error budget here: {newest}");
    let entry = newest["entry"].as_str().unwrap().to_string();
    assert_eq!(
        p.get(&format!("/admin/entries/{entry}"), Some(ADMIN_TOKEN))
            .await
            .status(),
        200
    );
    browser
        .js("document.querySelector('#semantic-hits tbody tr button[data-verdict=wrong]').click(); return true;")
        .await;
    browser
        .wait_for(
            "the hit marked wrong",
            "const g = document.querySelector('#semantic-hits tbody tr [data-verdict-given]');
             return !!g && g.dataset.verdictGiven === 'wrong';",
        )
        .await;
    assert_eq!(
        p.get(&format!("/admin/entries/{entry}"), Some(ADMIN_TOKEN))
            .await
            .status(),
        404,
        "the entry called wrong is gone"
    );
    // A full-height screenshot.
    let height = browser
        .js("return Math.ceil(document.documentElement.scrollHeight);")
        .await
        .as_u64()
        .unwrap();
    browser
        .cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": 1440, "height": height.clamp(800, 4000) + 40})),
        )
        .await;
    // The page redraws its charts for the new size after a short debounce.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let png = browser.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    println!("dashboard screenshot: {}", path.display());

    let severe: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    browser.close().await;
    drop(driver);
    p.stop().await;
}

/// The labels every cell of the error budget holds, summed, and how many were wrong.
async fn budget_labels(p: &Proxy) -> (u64, u64) {
    let stats: Value = p
        .get("/admin/stats", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let cells = stats["error_budget"]["cells"].as_array().unwrap();
    // The plain cells: a label of a candidate the verifier accepted counts again in a
    // vouched one.
    let plain = || cells.iter().filter(|c| c["vouched"] == false);
    let sum = |field: &str| plain().map(|c| c[field].as_u64().unwrap()).sum();
    (sum("labels"), sum("wrong"))
}

/// A person's verdicts on near-misses, given with the dashboard's buttons in a real
/// browser under an error budget: `should serve` and `rightly refused` each label the
/// candidate's cell (the entry stays), and each row takes one verdict. The admin route's
/// errors are checked beside it. (A verdict on a served hit is clicked in
/// `dashboard_shows_the_traffic_in_a_real_browser`.)
#[tokio::test]
async fn near_miss_verdicts_from_the_dashboard_label_the_error_budget() {
    let Some(embedder) = common::model() else {
        return;
    };
    if !chromium_available() {
        return;
    }
    let p = Proxy::start(embedder, now_ms(), |c| {
        c.cache.max_false_hit_rate = Some(0.01);
    })
    .await;
    // Until labels certify a threshold, no paraphrase is served: both are near-misses.
    assert_eq!(p.chat("How do I reset my password?", &[]).await.0, "miss");
    assert_eq!(p.chat("how can I reset my password", &[]).await.0, "miss");
    assert_eq!(p.chat("How do I enable dark mode?", &[]).await.0, "miss");
    assert_eq!(p.chat("How do I disable dark mode?", &[]).await.0, "miss");
    // Misses are labelled in the background by comparing answers; let that settle.
    let mut before = budget_labels(&p).await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = budget_labels(&p).await;
        if now == before && now.0 > 0 {
            break;
        }
        before = now;
    }

    let data: Value = p
        .get("/admin/dashboard.json", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let row = |prompt: &str| {
        data["near_misses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["prompt"] == prompt)
            .unwrap_or_else(|| panic!("no near-miss row for {prompt}: {data}"))
            .clone()
    };
    let (paraphrase, antonym) = (
        row("how can I reset my password"),
        row("How do I disable dark mode?"),
    );
    for n in [&paraphrase, &antonym] {
        assert_eq!(n["labelable"], true, "{n}");
        assert!(n["verdict"].is_null() && n.get("ticket").is_none(), "{n}");
    }
    assert_ne!(paraphrase["id"], antonym["id"]);

    // The route's errors, in OpenAI's shape: no token, a bad body, an unknown row.
    let post = |body: Value, token: Option<&'static str>| {
        let mut rb = p
            .client
            .post(format!("{}/admin/feedback", p.base))
            .json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    let r = post(
        json!({"near_miss": antonym["id"], "verdict": "wrong"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    for bad in [
        json!({"verdict": "wrong"}),
        json!({"hit": 1, "near_miss": 2, "verdict": "wrong"}),
        json!({"near_miss": 1, "verdict": "maybe"}),
    ] {
        let r = post(bad.clone(), Some(ADMIN_TOKEN)).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    let r = post(
        json!({"near_miss": 999_999, "verdict": "wrong"}),
        Some(ADMIN_TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        budget_labels(&p).await,
        before,
        "refused verdicts label nothing"
    );

    assert!(
        data["error_budget"]["cells"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{data}"
    );

    // The browser: click "should serve" on the paraphrase, "rightly refused" on the antonym.
    let client = reqwest::Client::new();
    let mut driver = ChromeDriver::start();
    driver.wait_ready(&client).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(&driver, &client, profile.path()).await;
    browser
        .goto(&format!("{}/dashboard#token={ADMIN_TOKEN}", p.base))
        .await;
    // The budget card: its labels per cell, and no audit yet (no hit served under it).
    let cells = browser
        .wait_for(
            "the error budget's cells",
            "const card = document.getElementById('budget-card');
             const rows = Array.from(document.querySelectorAll('#budget-cells tbody tr td:first-child'));
             return !card.hidden && rows.length > 0 && rows.map(r => r.innerText);",
        )
        .await;
    assert!(
        cells.as_array().unwrap().iter().any(|c| c == "default"),
        "{cells}"
    );
    let audits = browser
        .js("return document.querySelector('#budget-audits tbody').innerText;")
        .await;
    assert!(
        audits
            .as_str()
            .unwrap()
            .contains("No semantic hit audited yet"),
        "{audits}"
    );
    let find_row = |prompt: &str| {
        format!(
            "const rows = Array.from(document.querySelectorAll('#near-misses tbody tr'));
             const row = rows.find(r => r.querySelector('td.prompt') && r.querySelector('td.prompt').innerText === {prompt:?});"
        )
    };
    for (prompt, verdict) in [
        ("how can I reset my password", "right"),
        ("How do I disable dark mode?", "wrong"),
    ] {
        let row = find_row(prompt);
        browser
            .wait_for(
                &format!("the {verdict} button for {prompt}"),
                &format!(
                    "{row}
                     const b = row && row.querySelector('button[data-verdict={verdict}]');
                     if (!b) return false;
                     b.click();
                     return true;"
                ),
            )
            .await;
        browser
            .wait_for(
                &format!("{prompt} marked {verdict}"),
                &format!(
                    "{row}
                     const g = row && row.querySelector('[data-verdict-given]');
                     return !!g && g.dataset.verdictGiven === '{verdict}';"
                ),
            )
            .await;
    }
    assert_eq!(
        budget_labels(&p).await,
        (before.0 + 2, before.1 + 1),
        "one right and one wrong label"
    );
    // The entries stay; each row took its one verdict.
    assert_eq!(
        p.chat("How do I enable dark mode?", &[]).await.0,
        "hit-exact"
    );
    let r = post(
        json!({"near_miss": antonym["id"], "verdict": "right"}),
        Some(ADMIN_TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    let metrics = p.served.scrape().await;
    for line in [
        "deja_feedback_total{verdict=\"right\"} 1",
        "deja_feedback_total{verdict=\"wrong\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }

    let severe: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    browser.close().await;
    drop(driver);
    p.stop().await;
}

/// The page and its data follow the admin API: 404 while it is off, the data only with
/// the token, and the page itself loads nothing from elsewhere. Needs no browser or model.
#[tokio::test]
async fn the_dashboard_is_behind_the_admin_token() {
    let embedder: Arc<dyn Embedder> = Arc::new(deja_testkit::conformance::HashEmbedder);
    let off = Proxy::start(embedder.clone(), now_ms(), |c| c.admin.token = None).await;
    for path in ["/dashboard", "/dashboard/app.js", "/admin/dashboard.json"] {
        assert_eq!(off.get(path, None).await.status(), 404, "{path}");
    }
    off.stop().await;

    let p = Proxy::start(embedder, now_ms(), |_| {}).await;
    let page = p.get("/dashboard", None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(page.text().await.unwrap().contains("/dashboard/app.js"));
    for (path, ty) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let r = p.get(path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"].to_str().unwrap(), ty, "{path}");
    }
    assert_eq!(p.get("/admin/dashboard.json", None).await.status(), 401);
    assert_eq!(
        p.get("/admin/dashboard.json", Some("wrong")).await.status(),
        401
    );
    // Empty, but complete.
    let r = p.get("/admin/dashboard.json", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200);
    let data: Value = r.json().await.unwrap();
    assert_eq!(data["store"]["entries"], 0);
    assert_eq!(data["insights"]["minutes"], json!([]));
    assert_eq!(data["near_misses"], json!([]));
    assert_eq!(data["top_entries"], json!([]));
    assert_eq!(data["insights"]["latency"]["hit"]["p50"], Value::Null);
    // A miss and its repeat show up, and the repeat's entry is the top one.
    for _ in 0..2 {
        let r = p
            .client
            .post(format!("{}/v1/chat/completions", p.base))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let data: Value = p
        .get("/admin/dashboard.json", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(data["insights"]["totals"]["miss"], 1);
    assert_eq!(data["insights"]["totals"]["hit_exact"], 1);
    assert_eq!(data["insights"]["minutes"].as_array().unwrap().len(), 1);
    assert_eq!(data["top_entries"][0]["prompt"], "hello");
    assert_eq!(data["top_entries"][0]["hit_count"], 1);
    p.stop().await;
}
