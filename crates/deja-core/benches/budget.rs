#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failing loudly is right
//! What the error budget adds to a semantic lookup, per candidate: its support (how many
//! of the other candidates share its answer group) and the threshold certified for it, on a
//! calibration that remembers 200,000 entries' groups and has labels in every cell of four
//! categories. Also what one label costs to record (off the request path).
//!
//! Run: `cargo bench -p deja-core --bench budget`.

use std::collections::HashMap;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_core::budget::{Budgets, Calibration};
use deja_core::EntryId;

const CATEGORIES: [&str; 4] = ["default", "faq", "support", "search"];

fn trained() -> Calibration {
    let cal = Calibration::new(Budgets {
        default: Some(0.01),
        categories: HashMap::new(),
    });
    // Groups of eight entries each.
    for id in 0..200_000u64 {
        cal.join(EntryId(id), EntryId(id - id % 8), !id.is_multiple_of(8));
    }
    for i in 0..20_000u32 {
        let category = CATEGORIES[(i % 4) as usize];
        let similarity = 0.6 + (i % 400) as f32 / 1000.0;
        cal.observe(
            category,
            (i % 4) as u8,
            similarity,
            !i.is_multiple_of(97),
            i % 2 == 0,
        );
    }
    cal
}

fn budget(c: &mut Criterion) {
    let cal = trained();
    // The four candidates of one lookup: three of one group, one of another.
    let found = [EntryId(80), EntryId(81), EntryId(83), EntryId(96)];
    // What a lookup asks per candidate (`Calibration::decide`).
    c.bench_function("budget/per_candidate", |b| {
        b.iter(|| black_box(cal.decide(black_box("support"), black_box(found[0]), &found)))
    });
    c.bench_function("budget/per_lookup_of_4", |b| {
        b.iter(|| {
            for &id in &found {
                black_box(cal.decide(black_box("support"), black_box(id), &found));
            }
        })
    });
    let mut i = 0u32;
    c.bench_function("budget/observe", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            cal.observe("faq", (i % 4) as u8, 0.8, !i.is_multiple_of(50), false);
        })
    });
}

criterion_group!(benches, budget);
criterion_main!(benches);
