use super::*;

/// An outcome whose nearest entry is its own `a` at `similarity`, served unless
/// `rejected`.
pub(crate) fn isolated(label: bool, similarity: f32, rejected: bool) -> PairOutcome {
    let c = Candidate {
        similarity,
        own: true,
    };
    PairOutcome {
        label,
        group: None,
        nearest: Some(c),
        served: (!rejected).then_some(c),
        rejected: rejected.then(|| "number".to_string()),
        confidence: None,
        pair_logit: None,
        same_request: false,
        deja: None,
    }
}

#[test]
fn counts_per_threshold() {
    let outcomes = [
        isolated(true, 0.99, false),
        isolated(true, 0.95, false),
        isolated(true, 0.90, true),
        isolated(false, 0.97, false),
        isolated(false, 0.93, true),
        isolated(false, 0.50, false),
    ];
    // (threshold, serving, hits, false hits)
    let cases = [
        (0.0, Serving::SimilarityOnly, 3, 3),
        (0.0, Serving::Verified, 2, 2),
        (0.92, Serving::SimilarityOnly, 2, 2),
        (0.92, Serving::Verified, 2, 1),
        // A similarity equal to the threshold is served.
        (0.95, Serving::Verified, 2, 1),
        (0.96, Serving::Verified, 1, 1),
        (0.98, Serving::Verified, 1, 0),
        (0.995, Serving::SimilarityOnly, 0, 0),
    ];
    for (t, serving, hits, false_hits) in cases {
        let c = Counts::at(&outcomes, t, serving);
        assert_eq!(
            (c.pairs, c.positives, c.negatives),
            (6, 3, 3),
            "{t} {serving:?}"
        );
        assert_eq!(
            (c.hits, c.false_hits),
            (hits, false_hits),
            "{t} {serving:?}"
        );
        assert_eq!(c.wrong_entry_hits, 0);
    }
    let c = Counts::at(&outcomes, 0.92, Serving::Verified);
    assert_eq!(c.hit_rate(), Some(2.0 / 3.0));
    assert_eq!(c.false_hit_rate(), Some(1.0 / 3.0));
    assert_eq!(c.precision(), Some(2.0 / 3.0));
    let none = Counts::at(&outcomes, 0.995, Serving::Verified);
    assert_eq!(
        none.precision(),
        None,
        "nothing served: precision undefined"
    );
    assert_eq!(none.precision_lower_bound(), None);
}

#[test]
fn shared_mode_wrong_entry_is_a_false_hit() {
    let other = Candidate {
        similarity: 0.97,
        own: false,
    };
    let own = Candidate {
        similarity: 0.96,
        own: true,
    };
    let outcomes = [
        // Label 1, nearest is another pair's entry; verification served the own one.
        PairOutcome {
            label: true,
            group: None,
            nearest: Some(other),
            served: Some(own),
            rejected: Some("number".into()),
            confidence: None,
            pair_logit: None,
            same_request: false,
            deja: None,
        },
        // Label 0 served its own `a`: a false hit.
        PairOutcome {
            label: false,
            group: None,
            nearest: Some(own),
            served: Some(own),
            rejected: None,
            confidence: None,
            pair_logit: None,
            same_request: false,
            deja: None,
        },
        // Label 0 served another entry: a false hit too.
        PairOutcome {
            label: false,
            group: None,
            nearest: Some(other),
            served: Some(other),
            rejected: None,
            confidence: None,
            pair_logit: None,
            same_request: false,
            deja: None,
        },
    ];
    let s = Counts::at(&outcomes, 0.9, Serving::SimilarityOnly);
    assert_eq!((s.hits, s.false_hits, s.wrong_entry_hits), (0, 2, 1));
    assert_eq!(s.precision(), Some(0.0));
    assert_eq!(s.wrong_entry_rate(), Some(1.0));
    let v = Counts::at(&outcomes, 0.9, Serving::Verified);
    assert_eq!((v.hits, v.false_hits, v.wrong_entry_hits), (1, 2, 0));
    assert_eq!(v.precision(), Some(1.0 / 3.0));
    let v = Counts::at(&outcomes, 0.965, Serving::Verified);
    assert_eq!((v.hits, v.false_hits, v.wrong_entry_hits), (0, 1, 0));
}

#[test]
fn defaults_count_hits_false_hits_and_bypasses_by_reason() {
    let with = |label: bool, deja: Option<Decision>| PairOutcome {
        deja,
        ..isolated(label, 0.9, false)
    };
    let outcomes = [
        with(true, Some(Decision::Hit)),
        with(true, Some(Decision::Miss)),
        with(true, Some(Decision::Bypass("time-sensitive".into()))),
        with(false, Some(Decision::Hit)),
        with(false, Some(Decision::OtherEntry)),
        with(false, Some(Decision::Miss)),
        with(false, Some(Decision::Bypass("time-sensitive".into()))),
        with(false, Some(Decision::Bypass("category".into()))),
    ];
    let d = Defaults::of(&outcomes).unwrap();
    assert_eq!((d.counts.positives, d.counts.negatives), (3, 5));
    assert_eq!((d.counts.hits, d.counts.false_hits), (1, 2));
    assert_eq!(
        d.bypasses,
        BTreeMap::from([
            ("category".to_string(), 1),
            ("time-sensitive".to_string(), 2)
        ])
    );
    // A bypassed pair is not served: it counts against the hit rate.
    assert_eq!(d.hit_rate, Some(1.0 / 3.0));
    // Dumps made before decisions were recorded have none to report.
    assert!(Defaults::of(&[with(true, None)]).is_none());
}

#[test]
fn serving_by_confidence_needs_the_gate_and_no_veto() {
    let at = |similarity: f32, confidence: Option<f32>| PairOutcome {
        confidence,
        ..isolated(false, similarity, false)
    };
    let outcomes = [at(0.95, Some(0.9)), at(0.7, Some(0.99)), at(0.99, None)];
    let c = Counts::at(&outcomes, 0.8, Serving::Confidence { gate: 0.8 });
    assert_eq!(c.false_hits, 1);
    let c = Counts::at(&outcomes, 0.95, Serving::Confidence { gate: 0.8 });
    assert_eq!(c.false_hits, 0);
    // A question-frame rewording is served whatever the confidence, above the gate.
    let reworded = |similarity: f32| PairOutcome {
        same_request: true,
        ..at(similarity, Some(0.1))
    };
    let c = Counts::at(
        &[reworded(0.85), reworded(0.7)],
        0.95,
        Serving::Confidence { gate: 0.8 },
    );
    assert_eq!(c.false_hits, 1);
}

#[test]
fn no_positives_and_no_negatives() {
    let negatives = [isolated(false, 0.99, false), isolated(false, 0.5, false)];
    let c = Counts::at(&negatives, 0.9, Serving::Verified);
    assert_eq!(c.hit_rate(), None);
    assert_eq!(c.false_hit_rate(), Some(0.5));
    assert_eq!(c.precision(), Some(0.0));
    let c = Counts::at(&[], 0.9, Serving::Verified);
    assert_eq!(c, Counts::default());
    assert_eq!((c.hit_rate(), c.false_hit_rate()), (None, None));
}

#[test]
fn wilson_lower_bound_values() {
    // Reference values of the 95% Wilson interval's lower end.
    let cases = [
        (0, 0, None),
        (10, 10, Some(0.7225)),
        (99, 100, Some(0.9455)),
        (0, 5, Some(0.0)),
        (500, 1000, Some(0.4691)),
    ];
    for (k, n, want) in cases {
        let got = wilson_lower_bound(k, n);
        match (got, want) {
            (None, None) => {}
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-3, "{k}/{n}: {g} vs {w}"),
            _ => panic!("{k}/{n}: {got:?} vs {want:?}"),
        }
    }
}

#[test]
fn thresholds_print_with_the_digits_they_have() {
    assert_eq!(threshold_str(0.8), "0.80");
    assert_eq!(threshold_str(0.95), "0.95");
    assert_eq!(threshold_str(0.955), "0.955");
}

#[test]
fn csv_quoted_fields_with_commas_newlines_and_quotes() {
    let text = "a,b,label,pair_type\n\
        \"Hello, world\",\"line one\nline two\",1,pos\n\
        \"He said \"\"hi\"\"\",plain,0,neg\n\
        x,y, 1 ,pos\n";
    let rdr = csv::Reader::from_reader(text.as_bytes());
    let pairs = read_pairs_from(rdr, 0).unwrap();
    assert_eq!(pairs.len(), 3);
    assert_eq!(pairs[0].a, "Hello, world");
    assert_eq!(pairs[0].b, "line one\nline two");
    assert!(pairs[0].label);
    assert_eq!(
        pairs[0].columns.get("pair_type").map(String::as_str),
        Some("pos")
    );
    assert_eq!(pairs[1].a, "He said \"hi\"");
    assert!(!pairs[1].label);
    assert!(pairs[2].label, "label is read trimmed");
    assert_eq!(pairs[0].columns.len(), 1, "a, b and label are not columns");
}

#[test]
fn csv_without_label_column_names_it() {
    let rdr = csv::Reader::from_reader("a,b\nx,y\n".as_bytes());
    let err = read_pairs_from(rdr, 0).unwrap_err();
    assert!(err.to_string().contains("\"label\""), "{err}");
}

#[test]
fn pairs_without_a_lang_column_get_the_detected_language() {
    assert_eq!(
        detected_lang("Où est ma commande ?", "ou est ma comande"),
        "fr"
    );
    assert_eq!(
        detected_lang("Where is my order?", "我的订单在哪里？"),
        "en-zh"
    );
    assert_eq!(detected_lang("pizza recipe", "recipe for pizza"), "und");
    assert_eq!(
        detected_lang("Wie kann ich mein Passwort ändern?", "passwort"),
        "de"
    );
}

#[test]
fn csv_sample_is_evenly_spread() {
    let mut text = String::from("a,b,label\n");
    for i in 0..10 {
        text.push_str(&format!("a{i},b{i},1\n"));
    }
    let rdr = csv::Reader::from_reader(text.as_bytes());
    let got: Vec<String> = read_pairs_from(rdr, 4)
        .unwrap()
        .into_iter()
        .map(|p| p.a)
        .collect();
    assert_eq!(got, ["a0", "a2", "a5", "a7"]);
}

#[test]
fn dump_round_trip_and_old_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.jsonl");
    let pairs = vec![
        Pair {
            a: "a1".into(),
            b: "b1".into(),
            label: true,
            columns: BTreeMap::from([("split".into(), "dev".into())]),
        },
        Pair {
            a: "a2".into(),
            b: "b2".into(),
            label: false,
            columns: BTreeMap::from([("split".into(), "test".into())]),
        },
    ];
    let outcomes = vec![
        PairOutcome {
            group: Some("dev".into()),
            ..isolated(true, 0.9, true)
        },
        PairOutcome {
            label: false,
            group: Some("test".into()),
            nearest: Some(Candidate {
                similarity: 0.8,
                own: false,
            }),
            served: Some(Candidate {
                similarity: 0.7,
                own: true,
            }),
            rejected: Some("negation".into()),
            confidence: None,
            pair_logit: None,
            same_request: false,
            deja: None,
        },
    ];
    write_dump(&path, "f.csv", Mode::Shared, &pairs, &outcomes).unwrap();
    // An older line: no mode, served or columns.
    let old = r#"{"file":"g.csv","a":"x","b":"y","label":1,"similarity":0.5,"rejected":null}"#;
    std::fs::write(
        &path,
        format!("{}{old}\n", std::fs::read_to_string(&path).unwrap()),
    )
    .unwrap();
    let files = load_dump(&path, &[], Some("split")).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].file, "f.csv");
    assert_eq!(files[0].outcomes, outcomes);
    assert_eq!(files[1].outcomes, vec![isolated(true, 0.5, false)]);
    assert_eq!(dump_mode(&path).unwrap(), Some(Mode::Shared));
    // Only the files asked for.
    let only = load_dump(&path, &[PathBuf::from("dir/g.csv")], None).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].file, "g.csv");
}

#[test]
fn dump_columns_come_from_the_csv_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("g.csv");
    std::fs::write(&csv_path, "a,b,label,split\nx,y,1,dev\nx,z,0,test\n").unwrap();
    let dump = dir.path().join("dump.jsonl");
    std::fs::write(
        &dump,
        "{\"file\":\"g.csv\",\"a\":\"x\",\"b\":\"y\",\"label\":1,\"similarity\":0.5,\"rejected\":null}\n\
         {\"file\":\"g.csv\",\"a\":\"x\",\"b\":\"z\",\"label\":0,\"similarity\":0.4,\"rejected\":null}\n",
    )
    .unwrap();
    let files = load_dump(&dump, &[csv_path], Some("split")).unwrap();
    let groups: Vec<_> = files[0].outcomes.iter().map(|o| o.group.clone()).collect();
    assert_eq!(groups, [Some("dev".into()), Some("test".into())]);
}

#[test]
fn report_tables_have_one_row_per_threshold() {
    let mut outcomes = vec![isolated(true, 0.99, false), isolated(false, 0.5, false)];
    outcomes[0].group = Some("pos".into());
    outcomes[1].group = Some("neg".into());
    let f = FileOutcomes {
        file: "f.csv".into(),
        outcomes,
    };
    let report = EvalReport {
        mode: Mode::Isolated,
        by: Some("pair_type".into()),
        thresholds: vec![0.9, 0.95],
        files: vec![file_report(&f, &[0.9, 0.95])],
    };
    let mut out = Vec::new();
    print_report(&mut out, &report).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("f.csv (2 pairs, 1 positive, 1 negative)"),
        "{text}"
    );
    assert!(text.contains("f.csv pair_type=neg (1 pairs, 0 positive, 1 negative)"));
    assert!(text.contains("| 0.95 | 100.0% | 0.0% | 100.0% | 100.0% | 0.0% | 100.0% |"));
    assert!(
        text.contains("| 0.90 | - | 0.0% | - | - | 0.0% | - |"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    let row = &json["files"][0]["rows"][1];
    assert_eq!(row["verified"]["hits"], 1);
    assert_eq!(row["verified"]["precision"], 1.0);
    assert_eq!(json["files"][0]["groups"][0]["value"], "neg");
    assert_eq!(
        json["files"][0]["groups"][0]["rows"][0]["verified"]["precision"],
        serde_json::Value::Null
    );
}
