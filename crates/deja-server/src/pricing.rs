//! What tokens cost: a price table per model, in US dollars per 1M input and output
//! tokens, and what an answer served from the cache saved at those prices.
//!
//! The table is the shipped defaults (`pricing/defaults.toml`: public list prices as of
//! the date it names) with the server config's `[prices]` laid over them; a configured
//! model replaces the default of the same name. A model is priced by its own name, or
//! else by the longest name in the table that it extends with a date or version suffix
//! (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-sonnet-20241022` →
//! `claude-3-5-sonnet`, `claude-3-5-sonnet-latest` → `claude-3-5-sonnet`). Only such
//! suffixes count: `gpt-4o-audio-preview` is not priced as `gpt-4o`, because a model
//! without a price must contribute tokens but no money, never a guessed number.
//!
//! Savings are priced at the full input price: the tokens the upstream reported when the
//! answer was recorded say nothing of which of them a provider's own prompt cache served.
//!
//! This module is not where savings are counted ([`crate::observe::ledger`], [`crate::observe::metrics`]).

use std::collections::{BTreeMap, HashMap};

use deja_core::Usage;
use serde::{Deserialize, Serialize};

/// The shipped defaults; see the file's header.
const DEFAULTS: &str = include_str!("pricing/defaults.toml");

/// One model's prices, as the config and the defaults file write them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// US dollars per 1M prompt (input) tokens.
    pub input_per_mtok: f64,
    /// US dollars per 1M completion (output) tokens; 0 for embedding models.
    pub output_per_mtok: f64,
}

impl ModelPrice {
    /// What `usage` costs at these prices, in US dollars.
    pub fn cost_usd(&self, usage: Usage) -> f64 {
        (usage.prompt_tokens as f64 * self.input_per_mtok
            + usage.completion_tokens as f64 * self.output_per_mtok)
            / 1e6
    }

    /// Why these prices cannot be used, naming the bad field; `None` if they can.
    pub fn problem(&self) -> Option<String> {
        for (field, v) in [
            ("input_per_mtok", self.input_per_mtok),
            ("output_per_mtok", self.output_per_mtok),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Some(format!(
                    "{field} = {v} is not a price; use US dollars per 1M tokens, 0 or more"
                ));
            }
        }
        None
    }
}

/// Why the price table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("the built-in price list does not parse")]
    Defaults(#[source] toml::de::Error),
    #[error("prices.{model:?}: {message}")]
    Invalid { model: String, message: String },
}

/// Prices per model; built once at start, read on every request.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    by_model: HashMap<String, ModelPrice>,
    /// Bit `n` is set when some model name is `n` bytes long (names of 128 bytes or more
    /// set the last bit), so a lookup hashes only the cuts that could match.
    name_lengths: u128,
}

impl PriceTable {
    /// The shipped defaults only.
    pub fn defaults() -> Result<PriceTable, PricingError> {
        let by_model: BTreeMap<String, ModelPrice> =
            toml::from_str(DEFAULTS).map_err(PricingError::Defaults)?;
        let mut table = PriceTable::default();
        for (model, price) in by_model {
            table.set(&model, price)?;
        }
        Ok(table)
    }

    /// The defaults with `overrides` (the config's `[prices]`) laid over them.
    pub fn with_overrides(
        overrides: &BTreeMap<String, ModelPrice>,
    ) -> Result<PriceTable, PricingError> {
        let mut table = PriceTable::defaults()?;
        for (model, price) in overrides {
            table.set(model, *price)?;
        }
        Ok(table)
    }

    /// Sets (or replaces) one model's prices.
    pub fn set(&mut self, model: &str, price: ModelPrice) -> Result<(), PricingError> {
        if model.trim().is_empty() {
            return Err(PricingError::Invalid {
                model: model.into(),
                message: "the model name is empty".into(),
            });
        }
        if let Some(message) = price.problem() {
            return Err(PricingError::Invalid {
                model: model.into(),
                message,
            });
        }
        self.by_model.insert(model.to_string(), price);
        self.name_lengths |= length_bit(model.len());
        Ok(())
    }

    /// Whether some model name has `len` bytes (or, past 127, possibly does).
    fn may_have_length(&self, len: usize) -> bool {
        self.name_lengths & length_bit(len) != 0
    }

    /// The table entry that prices `model` (its name and prices): the model itself, or
    /// the longest entry it extends with a date or version suffix. No allocation.
    pub fn lookup<'a>(&'a self, model: &str) -> Option<(&'a str, &'a ModelPrice)> {
        if self.may_have_length(model.len()) {
            if let Some((name, price)) = self.by_model.get_key_value(model) {
                return Some((name, price));
            }
        }
        // Cut at each separator from the right: the longest base first. The suffix only
        // grows leftwards, so once it is not a version no shorter base can be one either.
        for (i, c) in model.char_indices().rev() {
            if !matches!(c, '-' | '@' | ':') {
                continue;
            }
            if !is_version_suffix(&model[i + 1..]) {
                return None;
            }
            if !self.may_have_length(i) {
                continue;
            }
            if let Some((name, price)) = self.by_model.get_key_value(&model[..i]) {
                return Some((name, price));
            }
        }
        None
    }

    /// What `usage` of `model` costs, in US dollars; `None` when the model has no price.
    pub fn cost_usd(&self, model: &str, usage: Usage) -> Option<f64> {
        self.lookup(model).map(|(_, p)| p.cost_usd(usage))
    }

    /// Every priced model, by name.
    pub fn models(&self) -> BTreeMap<&str, &ModelPrice> {
        self.by_model.iter().map(|(k, v)| (k.as_str(), v)).collect()
    }
}

fn length_bit(len: usize) -> u128 {
    1u128 << len.min(127)
}

/// A date or version tag a provider appends to a model name: `latest`, or groups of at
/// least two digits separated by dashes (`2024-08-06`, `20241022`, `0125`). A single digit
/// is a model generation (`claude-opus-4-1`), not a version of the model before it.
fn is_version_suffix(s: &str) -> bool {
    s == "latest"
        || (!s.is_empty()
            && s.split('-')
                .all(|g| g.len() >= 2 && g.bytes().all(|b| b.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    /// Every model the issue names has a default price, and every default is a valid
    /// price (the file is parsed here, so a typo fails this test rather than a start).
    #[test]
    fn the_defaults_parse_and_cover_the_common_models() {
        let t = PriceTable::defaults().unwrap();
        for model in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "o1",
            "o3",
            "o3-mini",
            "o4-mini",
            "gpt-3.5-turbo",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "claude-3-5-haiku",
            "claude-3-5-sonnet",
            "claude-3-7-sonnet",
            "claude-sonnet-4",
            "claude-opus-4",
            "claude-3-haiku",
        ] {
            let (name, price) = t.lookup(model).unwrap_or_else(|| panic!("{model}"));
            assert_eq!(name, model);
            assert_eq!(price.problem(), None, "{model}");
            assert!(price.input_per_mtok > 0.0, "{model}");
        }
        for (model, price) in t.models() {
            assert_eq!(price.problem(), None, "{model}");
        }
    }

    /// Which entry prices a name: itself, else the longest entry it extends with a date
    /// or version suffix, else none.
    #[test]
    fn dated_names_match_their_base_by_longest_prefix() {
        let t = PriceTable::defaults().unwrap();
        for (model, expected) in [
            ("gpt-4o", Some("gpt-4o")),
            ("gpt-4o-2024-08-06", Some("gpt-4o")),
            ("gpt-4o-2024-05-13", Some("gpt-4o-2024-05-13")),
            ("gpt-4o-mini-2024-07-18", Some("gpt-4o-mini")),
            ("gpt-4.1-nano-2025-04-14", Some("gpt-4.1-nano")),
            ("o3-mini-2025-01-31", Some("o3-mini")),
            ("o1-2024-12-17", Some("o1")),
            ("gpt-3.5-turbo-0125", Some("gpt-3.5-turbo")),
            ("claude-3-5-sonnet-20241022", Some("claude-3-5-sonnet")),
            ("claude-3-5-sonnet-latest", Some("claude-3-5-sonnet")),
            ("claude-sonnet-4-20250514", Some("claude-sonnet-4")),
            ("claude-opus-4-1-20250805", Some("claude-opus-4-1")),
            ("claude-3-5-sonnet@20240620", Some("claude-3-5-sonnet")),
            // Not versions of a priced model: no price rather than a guess.
            ("gpt-4o-audio-preview", None),
            ("gpt-4o-audio-preview-2024-12-17", None),
            ("gpt-4", None),
            ("gpt-4o1", None),
            ("o3-pro", None),
            ("claude-sonnet-4-5", None),
            ("llama3:8b", None),
            ("", None),
            ("-2024", None),
        ] {
            assert_eq!(t.lookup(model).map(|(n, _)| n), expected, "{model}");
        }
    }

    #[test]
    fn version_suffixes() {
        for (s, ok) in [
            ("latest", true),
            ("2024-08-06", true),
            ("20241022", true),
            ("0125", true),
            ("1-20250805", false),
            ("preview", false),
            ("2024-preview", false),
            ("", false),
            ("2024-", false),
        ] {
            assert_eq!(is_version_suffix(s), ok, "{s:?}");
        }
    }

    /// 1,000 prompt + 500 completion tokens at $2.50 / $10.00 per 1M cost $0.0075.
    #[test]
    fn cost_arithmetic_for_a_known_price() {
        let p = ModelPrice {
            input_per_mtok: 2.50,
            output_per_mtok: 10.00,
        };
        assert_eq!(p.cost_usd(usage(1_000, 500)), 0.0075);
        assert_eq!(p.cost_usd(usage(0, 0)), 0.0);
        assert_eq!(p.cost_usd(usage(1_000_000, 0)), 2.5);
        assert_eq!(p.cost_usd(usage(0, 1_000_000)), 10.0);
        let t = PriceTable::defaults().unwrap();
        // The default gpt-4o price is $2.50 / $10.00.
        assert_eq!(
            t.cost_usd("gpt-4o-2024-08-06", usage(1_000, 500)),
            Some(0.0075)
        );
        assert_eq!(t.cost_usd("my-own-model", usage(1_000, 500)), None);
    }

    /// Configured prices replace a default of the same name, add new models (which dated
    /// names then match too), and refuse what is not a price.
    #[test]
    fn overrides_replace_and_add() {
        let price = |input_per_mtok, output_per_mtok| ModelPrice {
            input_per_mtok,
            output_per_mtok,
        };
        let overrides = BTreeMap::from([
            ("gpt-4o".to_string(), price(1.0, 2.0)),
            ("my-model".to_string(), price(0.5, 0.25)),
        ]);
        let t = PriceTable::with_overrides(&overrides).unwrap();
        assert_eq!(t.lookup("gpt-4o").unwrap().1, &price(1.0, 2.0));
        assert_eq!(t.lookup("gpt-4o-2024-08-06").unwrap().1, &price(1.0, 2.0));
        // The longer default is untouched.
        assert_eq!(t.lookup("gpt-4o-mini").unwrap().1, &price(0.15, 0.60));
        assert_eq!(
            t.cost_usd("my-model-20250101", usage(2_000_000, 4_000_000)),
            Some(2.0)
        );
        for (model, bad, field) in [
            ("a", price(-1.0, 1.0), "input_per_mtok"),
            ("b", price(1.0, f64::NAN), "output_per_mtok"),
            ("c", price(f64::INFINITY, 1.0), "input_per_mtok"),
        ] {
            let overrides = BTreeMap::from([(model.to_string(), bad)]);
            let e = PriceTable::with_overrides(&overrides)
                .unwrap_err()
                .to_string();
            assert!(e.contains(field) && e.contains(model), "{e}");
        }
        // Names of any length, including past the length bitmap's last bit.
        let long = "m".repeat(130);
        let t =
            PriceTable::with_overrides(&BTreeMap::from([(long.clone(), price(1.0, 0.0))])).unwrap();
        assert_eq!(t.lookup(&long).map(|(n, _)| n), Some(long.as_str()));
        let dated = format!("{long}-2025-01-01");
        assert_eq!(t.lookup(&dated).map(|(n, _)| n), Some(long.as_str()));
        assert_eq!(t.lookup(&"m".repeat(131)), None);
        let blank = BTreeMap::from([(" ".to_string(), price(1.0, 1.0))]);
        assert!(PriceTable::with_overrides(&blank).is_err());
    }
}
