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
pub const FORMAT: u32 = 1;

/// The shipped model file.
const SHIPPED: &str = include_str!("verifier.json");

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
        let z: f32 = self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ModelFile {
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
        }
    }

    #[test]
    fn shipped_model_parses() {
        let m = Model::shipped().map_err(|e| e.to_string()).unwrap();
        // The engine's default gate is the one the shipped model was trained for.
        assert_eq!(m.file().min_similarity, crate::engine::DEFAULT_GATE);
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let cases: Vec<(ModelFile, &str)> = vec![
            (
                ModelFile {
                    format: 2,
                    ..file()
                },
                "format 2",
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
                let got = crate::verify::verify_model(m, x, y, cos, confidence, None);
                if got.is_ok() != same {
                    failures.push(format!("{x} / {y}: got {got:?}, want same = {same}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
