//! The learned pair verifier: a logistic regression over the pair features of
//! [`super::features`], giving the probability that the answer cached for one prompt
//! answers the other. Trained by `deja train-verifier` on the labelled development pairs
//! (with a held-out split) and shipped as data (`verifier.json`, parsed once), not as
//! hand-typed constants.
//!
//! The model only judges candidates the vector search already found (cosine at least the
//! category's `min_similarity`); the engine serves a candidate when its probability is at
//! least the category's `min_confidence`.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::features::{self, COUNT, NAMES};

/// The model file format this build reads. A file with another version is refused rather
/// than misread.
pub const FORMAT: u32 = 2;

/// The shipped model file.
const SHIPPED: &str = include_str!("verifier.json");

/// The shipped verifier stacked with the shipped pair model (`models/` in the repository).
const SHIPPED_PAIR: &str = include_str!("verifier-pair.json");

/// The shipped verifier stacked with the shipped multilingual pair model (on
/// multilingual-e5-small, `models/deja-pair-model-e5.safetensors`).
const SHIPPED_E5_PAIR: &str = include_str!("verifier-e5-pair.json");

/// The shipped verifier fitted on multilingual-e5-small's similarities, which sit higher
/// and closer together than all-MiniLM-L6-v2's (its `embedder` names it).
const SHIPPED_E5: &str = include_str!("verifier-e5.json");

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("verifier model is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("verifier model has format {got}, this build reads format {want}")]
    Format { got: u32, want: u32 },
    #[error("verifier model has features {got:?}, this build computes {want:?}")]
    Features { got: Vec<String>, want: Vec<String> },
    #[error("verifier model field {field} has {got} values, want {want}")]
    Length {
        field: &'static str,
        got: usize,
        want: usize,
    },
    #[error("verifier model field {field} is not a finite number in range")]
    Value { field: &'static str },
}

/// A model file, as written by the trainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub format: u32,
    /// The feature names the weights refer to, in order ([`features::NAMES`]).
    pub features: Vec<String>,
    /// Each feature is standardised as `(x - mean) / scale` before weighting.
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// The candidate gate the model was trained for: it has not seen pairs below it.
    pub min_similarity: f32,
    /// The confidence the trainer recommends (the default `min_confidence`).
    pub min_confidence: f32,
    /// How the model was made (data, split, seed, regularisation), for people.
    #[serde(default)]
    pub trained: String,
    /// The pair model (cross-encoder) this verifier was stacked with, by its id
    /// ([`crate::PairScorer::id`]): its logit is one more input, standardised by
    /// `(logit - pair_mean) / pair_scale` and weighted by `pair_weight`. A stacked file is
    /// used only with that pair model; `None` for a verifier of the features alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<PairInput>,
    /// The embedder whose similarities the model was fitted on ([`crate::Embedder::id`]),
    /// when it is not the default all-MiniLM-L6-v2: the `cosine` features mean something
    /// else for another model. Chosen for an embedder of the same family (the id without
    /// its last `-` part, the model file's fingerprint); see [`Model::shipped_for_embedder`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
}

/// An embedder id without its fingerprint (`local:e5-small-1a2b3c` → `local:e5-small`).
pub fn embedder_family(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(family, _)| family)
}

/// How a stacked verifier takes the pair model's logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairInput {
    pub model: String,
    pub mean: f32,
    pub scale: f32,
    pub weight: f32,
}

/// A parsed, checked model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Weights with the standardisation folded in: `w / scale`.
    weights: [f32; COUNT],
    bias: f32,
    file: ModelFile,
}

impl Model {
    /// Parses and checks a model file.
    pub fn parse(json: &str) -> Result<Model, ModelError> {
        let file: ModelFile = serde_json::from_str(json).map_err(ModelError::Json)?;
        Model::from_file(file)
    }

    pub fn from_file(file: ModelFile) -> Result<Model, ModelError> {
        if file.format != FORMAT {
            return Err(ModelError::Format {
                got: file.format,
                want: FORMAT,
            });
        }
        if file
            .features
            .iter()
            .map(String::as_str)
            .ne(NAMES.iter().copied())
        {
            return Err(ModelError::Features {
                got: file.features.clone(),
                want: NAMES.iter().map(|s| s.to_string()).collect(),
            });
        }
        for (field, v) in [
            ("mean", &file.mean),
            ("scale", &file.scale),
            ("weights", &file.weights),
        ] {
            if v.len() != COUNT {
                return Err(ModelError::Length {
                    field,
                    got: v.len(),
                    want: COUNT,
                });
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(ModelError::Value { field });
            }
        }
        if file.scale.iter().any(|s| *s <= 0.0) {
            return Err(ModelError::Value { field: "scale" });
        }
        if !file.bias.is_finite() {
            return Err(ModelError::Value { field: "bias" });
        }
        if let Some(p) = &file.pair {
            if !(p.mean.is_finite() && p.weight.is_finite() && p.scale.is_finite() && p.scale > 0.0)
            {
                return Err(ModelError::Value { field: "pair" });
            }
        }
        for (field, v) in [
            ("min_similarity", file.min_similarity),
            ("min_confidence", file.min_confidence),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ModelError::Value { field });
            }
        }
        let mut weights = [0.0; COUNT];
        let mut bias = file.bias;
        for (i, w) in weights.iter_mut().enumerate() {
            *w = file.weights[i] / file.scale[i];
            bias -= *w * file.mean[i];
        }
        Ok(Model {
            weights,
            bias,
            file,
        })
    }

    /// The model built into this crate. Its file is checked by a unit test, so an error
    /// here means a broken build, reported rather than panicking.
    pub fn shipped() -> Result<&'static Model, &'static ModelError> {
        static MODEL: OnceLock<Result<Model, ModelError>> = OnceLock::new();
        MODEL.get_or_init(|| Model::parse(SHIPPED)).as_ref()
    }

    /// The shipped verifier for a cache embedding with `embedder_id`: the one fitted on
    /// that embedder's family ([`embedder_family`]) when this build ships one, else
    /// [`Model::shipped`] (fitted on all-MiniLM-L6-v2).
    pub fn shipped_for_embedder(embedder_id: &str) -> Result<&'static Model, &'static ModelError> {
        static E5: OnceLock<Result<Model, ModelError>> = OnceLock::new();
        let e5 = E5.get_or_init(|| Model::parse(SHIPPED_E5)).as_ref()?;
        let fitted_on = e5.file.embedder.as_deref().map(embedder_family);
        if fitted_on == Some(embedder_family(embedder_id)) {
            return Ok(e5);
        }
        Model::shipped()
    }

    /// The shipped verifier for a cache whose pair model has this id: the one stacked
    /// with it when this build ships one (for the MiniLM pair model or the multilingual
    /// one), else [`Model::shipped`] (features alone).
    pub fn shipped_for(pair_model: Option<&str>) -> Result<&'static Model, &'static ModelError> {
        static STACKED: OnceLock<Result<Vec<Model>, ModelError>> = OnceLock::new();
        let stacked = STACKED
            .get_or_init(|| {
                [SHIPPED_PAIR, SHIPPED_E5_PAIR]
                    .map(Model::parse)
                    .into_iter()
                    .collect()
            })
            .as_ref()?;
        match pair_model.and_then(|id| stacked.iter().find(|m| m.pair_model() == Some(id))) {
            Some(m) => Ok(m),
            None => Model::shipped(),
        }
    }

    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// The probability that the answer cached for `cached` answers `query`, given their
    /// cosine similarity.
    pub fn probability(&self, cached: &str, query: &str, cosine: f32) -> f32 {
        self.probability_of(&features::extract(cached, query, cosine))
    }

    /// [`Model::probability`] from already extracted features.
    pub fn probability_of(&self, x: &[f32; COUNT]) -> f32 {
        self.probability_with(x, None)
    }

    /// The pair model this verifier was stacked with, if any.
    pub fn pair_model(&self) -> Option<&str> {
        self.file.pair.as_ref().map(|p| p.model.as_str())
    }

    /// The probability from features and, for a stacked verifier, the pair model's logit
    /// (a stacked verifier asked without one treats the logit as its mean: no evidence
    /// either way).
    pub fn probability_with(&self, x: &[f32; COUNT], pair_logit: Option<f32>) -> f32 {
        let mut z: f32 = self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f32>();
        if let (Some(p), Some(logit)) = (&self.file.pair, pair_logit) {
            z += p.weight * (logit - p.mean) / p.scale;
        }
        1.0 / (1.0 + (-z).exp())
    }
}

/// A model file whose every weight is 0 (probability 0.5 whatever the pair), for tests
/// to change what they need.
#[cfg(test)]
pub(crate) fn neutral_file() -> ModelFile {
    ModelFile {
        format: FORMAT,
        features: NAMES.iter().map(|s| s.to_string()).collect(),
        mean: vec![0.0; COUNT],
        scale: vec![1.0; COUNT],
        weights: vec![0.0; COUNT],
        bias: 0.0,
        min_similarity: 0.8,
        min_confidence: 0.5,
        trained: String::new(),
        pair: None,
        embedder: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ModelFile {
        neutral_file()
    }

    #[test]
    fn shipped_model_parses() {
        let m = Model::shipped().map_err(|e| e.to_string()).unwrap();
        // The engine's default gate is the one the shipped model was trained for.
        assert_eq!(m.file().min_similarity, crate::engine::DEFAULT_GATE);
        assert!(m.pair_model().is_none());
        // The stacked one is chosen only for its own pair model.
        let stacked = SHIPPED_PAIR_ID.with(|id| id.clone());
        let got = Model::shipped_for(Some(&stacked))
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(got.pair_model(), Some(stacked.as_str()));
        // The pair model's path reaches below the default gate.
        assert!(got.file().min_similarity <= crate::engine::DEFAULT_GATE);
        let other = Model::shipped_for(Some("pair:other"))
            .map_err(|e| e.to_string())
            .unwrap();
        assert!(other.pair_model().is_none());
        assert!(Model::shipped_for(None).unwrap().pair_model().is_none());
        // And the multilingual pair model's for its own.
        let e5 = Model::parse(SHIPPED_E5_PAIR)
            .map_err(|e| e.to_string())
            .unwrap();
        let id = e5.pair_model().unwrap();
        assert_ne!(id, stacked);
        assert_eq!(Model::shipped_for(Some(id)).unwrap().file(), e5.file());
    }

    /// Each embedder family gets the verifier fitted on its similarities: e5's for any
    /// multilingual-e5-small file, the default one for everything else.
    #[test]
    fn the_verifier_follows_the_embedder_family() {
        let e5 = Model::parse(SHIPPED_E5).map_err(|e| e.to_string()).unwrap();
        let fitted = e5.file().embedder.clone().unwrap();
        assert!(fitted.starts_with("local:e5-small-"), "{fitted}");
        assert_eq!(embedder_family(&fitted), "local:e5-small");
        for id in [fitted.as_str(), "local:e5-small-000000000000"] {
            let got = Model::shipped_for_embedder(id).unwrap();
            assert_eq!(got.file(), e5.file(), "{id}");
        }
        let default = Model::shipped().unwrap();
        for id in [
            "local:bert384-0123456789ab",
            "openai:text-embedding-3-small",
            "x",
        ] {
            let got = Model::shipped_for_embedder(id).unwrap();
            assert_eq!(got.file(), default.file(), "{id}");
        }
        assert!(default.file().embedder.is_none());
    }

    thread_local! {
        static SHIPPED_PAIR_ID: String = Model::parse(SHIPPED_PAIR)
            .unwrap()
            .pair_model()
            .unwrap()
            .to_string();
    }

    #[test]
    fn a_stacked_verifier_weighs_the_pair_logit() {
        let mut f = file();
        f.pair = Some(PairInput {
            model: "pair:x".into(),
            mean: 1.0,
            scale: 2.0,
            weight: 4.0,
        });
        let m = Model::from_file(f.clone()).unwrap();
        let x = [0.0; COUNT];
        // z = 4 * (3 - 1) / 2 = 4
        let want = 1.0 / (1.0 + (-4.0f32).exp());
        assert!((m.probability_with(&x, Some(3.0)) - want).abs() < 1e-6);
        assert_eq!(m.probability_with(&x, None), 0.5);
        f.pair.as_mut().unwrap().scale = 0.0;
        assert!(Model::from_file(f).is_err());
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let cases: Vec<(ModelFile, &str)> = vec![
            (
                ModelFile {
                    format: FORMAT + 1,
                    ..file()
                },
                "format 3",
            ),
            (
                ModelFile {
                    features: vec!["cosine".into()],
                    ..file()
                },
                "features",
            ),
            (
                ModelFile {
                    weights: vec![0.0; 3],
                    ..file()
                },
                "weights has 3 values",
            ),
            (
                ModelFile {
                    scale: vec![0.0; COUNT],
                    ..file()
                },
                "scale",
            ),
            (
                ModelFile {
                    min_confidence: 1.5,
                    ..file()
                },
                "min_confidence",
            ),
        ];
        for (f, want) in cases {
            let err = Model::from_file(f).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
        assert!(matches!(Model::parse("{"), Err(ModelError::Json(_))));
        let extra = serde_json::to_string(&file())
            .unwrap()
            .replace("\"format\"", "\"surprise\":1,\"format\"");
        assert!(Model::parse(&extra).is_err());
    }

    #[test]
    fn standardisation_is_folded_into_the_weights() {
        let mut f = file();
        f.weights[0] = 2.0;
        f.mean[0] = 0.5;
        f.scale[0] = 0.25;
        f.bias = 0.1;
        let m = Model::from_file(f).unwrap();
        let mut x = [0.0; COUNT];
        x[0] = 0.75;
        // z = 0.1 + 2 * (0.75 - 0.5) / 0.25 = 2.1
        let want = 1.0 / (1.0 + (-2.1f32).exp());
        assert!((m.probability_of(&x) - want).abs() < 1e-6);
    }

    /// The shipped model, with the veto rules in front as the engine runs it, on clear
    /// cases in the four languages, each at the cosine the default embedder
    /// (all-MiniLM-L6-v2) gives the pair: paraphrases pass; swapped roles, negations and
    /// changed numbers do not.
    #[test]
    fn shipped_verifier_separates_clear_cases_in_four_languages() {
        let m = Model::shipped().map_err(|e| e.to_string()).unwrap();
        let confidence = m.file().min_confidence;
        let cases: &[(&str, &str, f32, bool)] = &[
            (
                "How do I reset my password?",
                "How can I reset my password?",
                0.9917,
                true,
            ),
            (
                "What is the best way to learn Python?",
                "What's the best way to learn Python?",
                0.9976,
                true,
            ),
            (
                "Comment réinitialiser mon mot de passe ?",
                "Comment réinitialiser mon mot de passe",
                0.9877,
                true,
            ),
            (
                "Hoe reset ik mijn wachtwoord?",
                "hoe reset ik mijn wachtwoord",
                0.9818,
                true,
            ),
            ("如何重置我的密码", "怎么重置我的密码", 1.0, true),
            (
                "Germany beat Brazil in the final",
                "Brazil beat Germany in the final",
                0.9853,
                false,
            ),
            (
                "He was born in Paris and raised in London",
                "He was born in London and raised in Paris",
                0.9992,
                false,
            ),
            (
                "Pierre a battu Paul en finale",
                "Paul a battu Pierre en finale",
                0.9908,
                false,
            ),
            (
                "Jan versloeg Piet in de finale",
                "Piet versloeg Jan in de finale",
                0.9439,
                false,
            ),
            ("从北京到上海怎么走", "从上海到北京怎么走", 0.9947, false),
            (
                "Is there any proof that God doesn't exist?",
                "Is there any proof that God exists?",
                0.9271,
                false,
            ),
            (
                "Où est la commande 4821 ?",
                "Où est la commande 4812 ?",
                0.9221,
                false,
            ),
            (
                "Waarom werkt mijn kaart niet?",
                "Waarom werkt mijn kaart?",
                0.9669,
                false,
            ),
        ];
        let mut failures = Vec::new();
        for &(a, b, cos, same) in cases {
            for (x, y) in [(a, b), (b, a)] {
                let got = crate::verify::verify_model(m, x, y, cos, None, confidence, None);
                if got.is_ok() != same {
                    failures.push(format!("{x} / {y}: got {got:?}, want same = {same}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
