use super::*;

#[test]
fn empty_file_is_all_defaults() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.cache.min_similarity, DEFAULT_MIN_SIMILARITY);
    c.validate().unwrap();
}

#[test]
fn store_is_local_unless_redis_is_selected() {
    // (config text, env DEJA_STORE, expected kind and url, or the key an error names)
    type Want = Result<(StoreKind, Option<&'static str>), &'static str>;
    let cases: &[(&str, Option<&str>, Want)] = &[
        ("", None, Ok((StoreKind::Local, None))),
        (
            "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n",
            None,
            Ok((StoreKind::Redis, Some("redis://127.0.0.1:6379"))),
        ),
        (
            "",
            Some("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            Ok((
                StoreKind::Redis,
                Some("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            )),
        ),
        (
            "[store]\nkind = \"redis\"\nurl = \"redis://h:1\"\n",
            Some("local"),
            Ok((StoreKind::Local, None)),
        ),
        ("[store]\nkind = \"redis\"\n", None, Err("store.url")),
        (
            "[store]\nkind = \"redis\"\nurl = \"http://h:1\"\n",
            None,
            Err("store.url"),
        ),
        ("[store]\nurl = \"redis://h:1\"\n", None, Err("store.url")),
        ("", Some("memcached://h:1"), Err("DEJA_STORE")),
    ];
    for (toml, env, want) in cases {
        let mut c = Config::from_toml(toml).unwrap();
        let got = c
            .apply_env(|k| {
                (k == "DEJA_STORE")
                    .then(|| env.map(str::to_string))
                    .flatten()
            })
            .and_then(|()| c.validate());
        match (got, want) {
            (Ok(()), Ok((kind, url))) => {
                assert_eq!(c.store.kind, *kind, "{toml:?} {env:?}");
                assert_eq!(c.store.url.as_deref(), *url, "{toml:?} {env:?}");
            }
            (Err(e), Err(key)) => {
                assert!(e.to_string().starts_with(key), "{toml:?} {env:?}: {e}")
            }
            (got, want) => panic!("{toml:?} {env:?}: got {got:?}, want {want:?}"),
        }
    }
    for (toml, ok) in [
        (
            "[store]\nkind = \"redis\"\nurl = \"redis://h:1\"\nindex = \"redis-search\"\n",
            true,
        ),
        ("[store]\nindex = \"redis-search\"\n", false),
        (
            "[store]\nkind = \"redis\"\nurl = \"redis+cluster://h:1\"\nindex = \"redis-search\"\n",
            false,
        ),
    ] {
        let got = Config::from_toml(toml).unwrap().validate();
        assert_eq!(got.is_ok(), ok, "{toml:?}: {got:?}");
        if let Err(e) = got {
            assert!(e.to_string().starts_with("store.index"), "{e}");
        }
    }
    let err = Config::from_toml("[store]\nkind = \"memcached\"\n").unwrap_err();
    assert!(err.contains("memcached"), "{err}");
}

#[test]
fn redis_passwords_are_redacted() {
    for (url, want) in [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://:pw@h:1/0", "redis://***@h:1/0"),
        (
            "redis+cluster://u:pw@a:1,b:2",
            "redis+cluster://***@a:1,b:2",
        ),
    ] {
        assert_eq!(redact_url(url), want);
    }
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_toml("[cache]\nmin_similarty = 0.9\n").unwrap_err();
    assert!(err.contains("min_similarty"), "{err}");
}

#[test]
fn embedder_is_a_tagged_enum() {
    let c = Config::from_toml(
        "[embedder]\nkind = \"openai\"\nmodel = \"text-embedding-3-small\"\ndim = 1536\n",
    )
    .unwrap();
    assert!(matches!(
        c.embedder,
        EmbedderConfig::Openai { dim: 1536, .. }
    ));
    let err = Config::from_toml("[embedder]\nkind = \"onnx\"\n").unwrap_err();
    assert!(err.contains("onnx"), "{err}");
}

#[test]
fn pair_model_is_auto_off_or_a_path() {
    let pair = |c: &Config| match &c.embedder {
        EmbedderConfig::Local { pair_model, .. } => pair_model.clone(),
        other => panic!("{other:?}"),
    };
    // On where installed: trained on the semantic neighbours a stream brings, it adds
    // hits there without adding wrong ones (see docs/hit-quality.md, "The pair model").
    assert_eq!(pair(&Config::default()), PairModelSetting::Auto);
    let off = Config::from_toml("[embedder]\nkind = \"local\"\npair_model = \"off\"\n").unwrap();
    assert_eq!(pair(&off), PairModelSetting::Off);
    let path =
        Config::from_toml("[embedder]\nkind = \"local\"\npair_model = \"/opt/p.safetensors\"\n")
            .unwrap();
    assert_eq!(
        pair(&path),
        PairModelSetting::Path(PathBuf::from("/opt/p.safetensors"))
    );
    let mut c = Config::default();
    c.apply_env(|k| (k == "DEJA_PAIR_MODEL").then(|| "off".into()))
        .unwrap();
    assert_eq!(pair(&c), PairModelSetting::Off);
    // What is written reads back the same.
    let text = toml::to_string(&path).unwrap();
    assert_eq!(pair(&Config::from_toml(&text).unwrap()), pair(&path));
}

#[test]
fn the_local_model_is_chosen_by_file_env_or_flag() {
    let model = |c: &Config| match &c.embedder {
        EmbedderConfig::Local {
            model, model_dir, ..
        } => (*model, model_dir.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(model(&Config::default()).0, LocalModel::Auto);
    let file =
        Config::from_toml("[embedder]\nkind = \"local\"\nmodel = \"multilingual-e5-small\"\n")
            .unwrap();
    assert_eq!(model(&file).0, LocalModel::E5Small);
    // What is written reads back the same.
    let text = toml::to_string(&file).unwrap();
    assert_eq!(
        model(&Config::from_toml(&text).unwrap()).0,
        LocalModel::E5Small
    );
    let err = Config::from_toml("[embedder]\nkind = \"local\"\nmodel = \"bge-m3\"\n");
    assert!(err.is_err());
    // The environment: DEJA_MODEL_DIR is the English model's directory, not e5's.
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        let mut c = Config::default();
        c.apply_env(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .map(|()| c)
    };
    let c = env(&[
        ("DEJA_EMBEDDER_MODEL", "Multilingual-E5-Small"),
        ("DEJA_MODEL_DIR", "/m"),
    ])
    .unwrap();
    assert_eq!(model(&c), (LocalModel::E5Small, None));
    let c = env(&[("DEJA_MODEL_DIR", "/m")]).unwrap();
    assert_eq!(model(&c), (LocalModel::Auto, Some(PathBuf::from("/m"))));
    let c = env(&[
        ("DEJA_EMBEDDER_MODEL", "all-minilm-l6-v2"),
        ("DEJA_MODEL_DIR", "/m"),
    ])
    .unwrap();
    assert_eq!(model(&c), (LocalModel::MiniLm, Some(PathBuf::from("/m"))));
    let err = env(&[("DEJA_EMBEDDER_MODEL", "e5")]).unwrap_err();
    assert!(err.to_string().contains("DEJA_EMBEDDER_MODEL"), "{err}");
    // A flag that changes the model forgets the other model's directory.
    let mut c = env(&[("DEJA_MODEL_DIR", "/m")]).unwrap();
    c.set_embedder_model("--embedder-model", "multilingual-e5-small")
        .unwrap();
    assert_eq!(model(&c), (LocalModel::E5Small, None));
    // `auto` and all-MiniLM-L6-v2 share the English model's directory.
    let mut c = env(&[("DEJA_MODEL_DIR", "/m")]).unwrap();
    c.set_embedder_model("--embedder-model", "all-minilm-l6-v2")
        .unwrap();
    assert_eq!(model(&c), (LocalModel::MiniLm, Some(PathBuf::from("/m"))));
    let mut remote = Config::from_toml(
        "[embedder]\nkind = \"openai\"\nmodel = \"text-embedding-3-small\"\ndim = 1536\n",
    )
    .unwrap();
    assert!(remote
        .set_embedder_model("--embedder-model", "multilingual-e5-small")
        .is_err());
}

#[test]
fn env_overrides_and_bad_values_name_the_key() {
    let mut c = Config::default();
    c.apply_env(|k| match k {
        "DEJA_MIN_SIMILARITY" => Some("0.97".into()),
        "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.cache.min_similarity, 0.97);
    assert_eq!(c.upstream.base_url, "http://127.0.0.1:9/v1");
    let err = c
        .apply_env(|k| (k == "DEJA_MIN_SIMILARITY").then(|| "high".into()))
        .unwrap_err();
    assert!(err.to_string().starts_with("DEJA_MIN_SIMILARITY"), "{err}");
}

#[test]
fn shared_embeddings_url_and_expiry_are_checked() {
    let mut c = Config::from_toml(
        "[store]\nshared_embeddings = \"memcached://127.0.0.1:11211\"\nshared_ttl_secs = 3600\n",
    )
    .unwrap();
    c.validate().unwrap();
    c.apply_env(|k| (k == "DEJA_SHARED_EMBEDDINGS").then(|| "memcached://cache:11211".into()))
        .unwrap();
    assert_eq!(
        c.store.shared_embeddings.as_deref(),
        Some("memcached://cache:11211")
    );
    c.store.shared_embeddings = Some("redis://127.0.0.1:6379".into());
    let err = c.validate().unwrap_err().to_string();
    assert!(err.starts_with("store.shared_embeddings"), "{err}");
    c.store.shared_embeddings = None;
    c.store.shared_ttl_secs = 31 * 24 * 3600;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.starts_with("store.shared_ttl_secs"), "{err}");
}

#[test]
fn anthropic_section_and_env() {
    let d = Config::default();
    assert_eq!(d.anthropic.base_url, "https://api.anthropic.com");
    assert!(d.anthropic.api_key.is_none(), "the client's key by default");
    let mut c = Config::from_toml(
        "[anthropic]\nbase_url = \"http://127.0.0.1:9\"\napi_key = \"sk-ant-file\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.anthropic.api_key.as_deref(), Some("sk-ant-file"));
    c.apply_env(|k| match k {
        "ANTHROPIC_API_KEY" => Some("sk-ant-env".into()),
        "DEJA_ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:10".into()),
        "ANTHROPIC_BASE_URL" => Some("http://ignored".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.anthropic.api_key.as_deref(), Some("sk-ant-env"));
    assert_eq!(c.anthropic.base_url, "http://127.0.0.1:10");
    c.anthropic.base_url = "api.anthropic.com".into();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.starts_with("anthropic.base_url"), "{err}");
    let err = Config::from_toml("[anthropic]\nkey = \"x\"\n").unwrap_err();
    assert!(err.contains("key"), "{err}");
}

#[test]
fn azure_section_and_env() {
    let d = Config::default();
    assert!(d.azure.base_url.is_none(), "off until configured");
    assert!(d.azure.api_key.is_none(), "the client's key by default");
    d.validate().unwrap();
    let mut c = Config::from_toml(
        "[azure]\nbase_url = \"https://res.openai.azure.com\"\napi_key = \"az-file\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.azure.api_key.as_deref(), Some("az-file"));
    c.apply_env(|k| match k {
        "DEJA_AZURE_API_KEY" => Some("az-env".into()),
        "DEJA_AZURE_BASE_URL" => Some("http://127.0.0.1:10/openai/".into()),
        "AZURE_OPENAI_ENDPOINT" | "AZURE_OPENAI_API_KEY" => Some("http://ignored".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.azure.api_key.as_deref(), Some("az-env"));
    assert_eq!(
        c.azure.base_url.as_deref(),
        Some("http://127.0.0.1:10/openai/")
    );
    c.validate().unwrap();
    // Empty variables leave the file's values alone.
    c.apply_env(|k| k.starts_with("DEJA_AZURE_").then(String::new))
        .unwrap();
    assert_eq!(c.azure.api_key.as_deref(), Some("az-env"));
    // (base URL, valid)
    for (url, valid) in [
        ("https://res.openai.azure.com", true),
        ("https://res.openai.azure.com/", true),
        ("https://res.openai.azure.com/openai", true),
        ("https://gateway.example.com/team-a", true),
        ("https://gateway.example.com/team-a/openai/", true),
        ("res.openai.azure.com", false),
        ("https://res.openai.azure.com/openai/v1", false),
        (
            "https://res.openai.azure.com/openai/deployments/gpt-4o",
            false,
        ),
        ("https://res.openai.azure.com?api-version=2024-10-21", false),
    ] {
        c.azure.base_url = Some(url.into());
        match c.validate() {
            Ok(()) => assert!(valid, "{url} was accepted"),
            Err(e) => {
                assert!(!valid, "{url}: {e}");
                assert!(e.to_string().starts_with("azure.base_url"), "{e}");
            }
        }
    }
    let err = Config::from_toml("[azure]\nendpoint = \"x\"\n").unwrap_err();
    assert!(err.contains("endpoint"), "{err}");
}

#[test]
fn admin_token_from_file_or_env() {
    let c = Config::from_toml("[admin]\ntoken = \"s3cret-s3cret-s3cret\"\n").unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("s3cret-s3cret-s3cret"));
    c.validate().unwrap();
    let mut c = Config::default();
    assert!(c.admin.token.is_none(), "off by default");
    c.apply_env(|k| (k == "DEJA_ADMIN_TOKEN").then(|| "from-env-0123456789".into()))
        .unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("from-env-0123456789"));
    c.validate().unwrap();
    // Empty, blank, or shorter than 16 characters: refused, naming the key.
    for token in [
        "",
        " ",
        "x",
        "s3cret",
        "fifteen-chars-x",
        " fifteen-chars-x ",
    ] {
        c.admin.token = Some(token.into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("admin.token"), "{token:?}: {err}");
    }
    c.admin.token = Some("sixteen-chars-xx".into());
    c.validate().unwrap();
}

#[test]
fn capacity_keys_parse_and_zero_is_rejected() {
    let c = Config::from_toml(
        "[cache]\nmax_entries = 1000\nmax_bytes = 5000000\neviction = \"lfu\"\n\
         cold_after_secs = 86400\nsweep_interval_secs = 30\n",
    )
    .unwrap();
    assert_eq!(c.cache.max_entries, Some(1000));
    assert_eq!(c.cache.max_bytes, Some(5_000_000));
    assert_eq!(c.cache.eviction, EvictionSetting::Lfu);
    assert_eq!(c.cache.cold_after_secs, Some(86_400));
    assert_eq!(c.cache.sweep_interval_secs, 30);
    c.validate().unwrap();
    let d = Config::default();
    assert_eq!(
        (
            d.cache.max_entries,
            d.cache.eviction,
            d.cache.sweep_interval_secs
        ),
        (Some(DEFAULT_MAX_ENTRIES), EvictionSetting::Lru, 60)
    );
    assert_eq!(
        crate::capacity_limits(&d).max_entries,
        Some(DEFAULT_MAX_ENTRIES)
    );
    let err = Config::from_toml("[cache]\neviction = \"fifo\"\n").unwrap_err();
    assert!(err.contains("fifo"), "{err}");
    // `max_entries = 0` lifts the limit.
    let unlimited = Config::from_toml("[cache]\nmax_entries = 0\n").unwrap();
    unlimited.validate().unwrap();
    assert_eq!(crate::capacity_limits(&unlimited).max_entries, None);
    let mut c = Config::default();
    c.cache.max_bytes = Some(0);
    let err = c.validate().unwrap_err().to_string();
    assert!(err.starts_with("cache.max_bytes"), "{err}");
}

#[test]
fn configured_categories_replace_the_built_in_set() {
    assert!(Config::default().categories.contains_key("transactional"));
    let c = Config::from_toml(
        "[cache]\nmin_confidence = 0.9\n[categories.pricing]\nmin_similarity = 0.97\nmin_confidence = 0.95\nttl_secs = 14400\nkeywords = [\"price\"]\n",
    )
    .unwrap();
    assert_eq!(c.categories.len(), 1);
    assert_eq!(c.cache.min_confidence, Some(0.9));
    let pricing = &c.categories["pricing"];
    assert_eq!(
        (
            pricing.min_similarity,
            pricing.min_confidence,
            pricing.ttl_secs
        ),
        (0.97, Some(0.95), Some(14400))
    );
    assert!(pricing.cacheable, "cacheable by default");
    let err = Config::from_toml("[categories.x]\nmin_similarity = 0.9\nttl = 5\n").unwrap_err();
    assert!(err.contains("ttl"), "{err}");
}

#[test]
fn staleness_section_parses_and_is_checked() {
    let d = Config::default();
    assert!(!d.staleness.enabled, "off by default");
    d.validate().unwrap();
    let c = Config::from_toml(
        "[upstream]\napi_key = \"sk-x\"\n[staleness]\nenabled = true\ninterval_secs = 60\n\
         entries_per_pass = 3\nmax_calls_per_day = 10\nmax_tokens_per_day = 5000\n\
         min_age_secs = 0\nmin_similarity = 0.8\naction = \"replace\"\n",
    )
    .unwrap();
    let s = &c.staleness;
    assert_eq!(
        (
            s.interval_secs,
            s.entries_per_pass,
            s.max_calls_per_day,
            s.max_tokens_per_day
        ),
        (60, 3, 10, 5000)
    );
    assert_eq!(
        (s.min_age_secs, s.min_similarity, s.action),
        (0, 0.8, StaleAction::Replace)
    );
    c.validate().unwrap();
    let err = Config::from_toml("[staleness]\naction = \"delete\"\n").unwrap_err();
    assert!(err.contains("delete"), "{err}");
    let cases: &[(&str, &str)] = &[
        ("[staleness]\nenabled = true\n", "staleness.enabled"),
        (
            "[staleness]\ninterval_secs = 0\n",
            "staleness.interval_secs",
        ),
        (
            "[staleness]\nentries_per_pass = 0\n",
            "staleness.entries_per_pass",
        ),
        (
            "[staleness]\nmin_similarity = 1.5\n",
            "staleness.min_similarity",
        ),
    ];
    for (toml, key) in cases {
        let err = Config::from_toml(toml)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(key), "{toml}: {err}");
    }
}

/// `[prices]` parses into the table's overrides; a price that is negative, not finite
/// or missing is an error naming the model and the field.
#[test]
fn prices_parse_and_bad_ones_name_the_key() {
    let c = Config::from_toml(
        "[prices.\"my-model\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n\
         [prices.\"gpt-4o\"]\ninput_per_mtok = 0\noutput_per_mtok = 0.5\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.prices["my-model"].output_per_mtok, 2.0);
    let table = crate::pricing::PriceTable::with_overrides(&c.prices).unwrap();
    assert_eq!(
        table.lookup("gpt-4o-2024-08-06").unwrap().1.input_per_mtok,
        0.0
    );
    for (toml, key) in [
        (
            "[prices.m]\ninput_per_mtok = -1.0\noutput_per_mtok = 2.0\n",
            "prices.\"m\": input_per_mtok",
        ),
        (
            "[prices.m]\ninput_per_mtok = 1.0\noutput_per_mtok = nan\n",
            "prices.\"m\": output_per_mtok",
        ),
        (
            "[prices.m]\ninput_per_mtok = inf\noutput_per_mtok = 2.0\n",
            "prices.\"m\": input_per_mtok",
        ),
        (
            "[prices.\" \"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
            "prices: a model name is empty",
        ),
    ] {
        let e = Config::from_toml(toml).unwrap().validate().unwrap_err();
        assert!(e.to_string().starts_with(key), "{toml}: {e}");
    }
    // Both prices are required, and nothing else is allowed.
    for toml in [
        "[prices.m]\ninput_per_mtok = 1.0\n",
        "[prices.m]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\ncached = 1\n",
    ] {
        let e = Config::from_toml(toml).unwrap_err();
        assert!(e.contains("output_per_mtok") || e.contains("cached"), "{e}");
    }
}

#[test]
fn connection_limits_parse_env_and_zero_is_rejected() {
    let d = Config::default().limits;
    assert_eq!(
        (
            d.header_read_timeout_secs,
            d.body_read_timeout_secs,
            d.idle_timeout_secs,
            d.max_connections
        ),
        (10, 30, 60, None)
    );
    let mut c = Config::from_toml(
        "[limits]\nheader_read_timeout_secs = 5\nbody_read_timeout_secs = 7\n\
         idle_timeout_secs = 9\nmax_connections = 100\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.limits.max_connections, Some(100));
    c.apply_env(|k| match k {
        "DEJA_MAX_CONNECTIONS" => Some("8".into()),
        "DEJA_IDLE_TIMEOUT_SECS" => Some("3".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (c.limits.max_connections, c.limits.idle_timeout_secs),
        (Some(8), 3)
    );
    let err = c
        .apply_env(|k| (k == "DEJA_HEADER_READ_TIMEOUT_SECS").then(|| "soon".into()))
        .unwrap_err();
    assert!(err.to_string().starts_with("DEJA_HEADER_READ_TIMEOUT_SECS"));
    for (toml, key) in [
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
        (
            "[limits]\nheader_read_timeout_secs = 0\n",
            "limits.header_read_timeout_secs",
        ),
        (
            "[limits]\nbody_read_timeout_secs = 0\n",
            "limits.body_read_timeout_secs",
        ),
        (
            "[limits]\nidle_timeout_secs = 0\n",
            "limits.idle_timeout_secs",
        ),
    ] {
        let err = Config::from_toml(toml).unwrap().validate().unwrap_err();
        assert!(err.to_string().starts_with(key), "{toml}: {err}");
    }
}

#[test]
fn out_of_range_similarity_is_rejected() {
    let mut c = Config::default();
    c.cache.min_similarity = 1.5;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("cache.min_similarity"), "{err}");
}
