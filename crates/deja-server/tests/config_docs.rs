#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every configuration key is documented: each key `Config` accepts must be listed in the
//! first column of the key table in `docs/configuration.md`, and every key that table
//! lists must be one `Config` accepts, unless its row says the key is `being added`
//! (documented ahead of the code; the marker must go once the key exists).
//!
//! The keys come from the types, not from a list kept by hand: the test deserializes
//! `Config` with a tracing `Deserializer` (what the `serde-reflection` crate does, written
//! out here instead of adding a dependency). serde's derive hands every struct's field
//! names to `deserialize_struct`, so the tracer records each field's path and feeds each
//! field a value of the kind it asks for, recursing into sections: a map
//! (`[categories.NAME]`, `[prices."MODEL"]`) gets one entry named `<name>`, a list one
//! element (`rules.patterns[]`), an `Option` its `Some` side, an enum each of its
//! variants in turn. Two other ways were rejected: serialising `Config::default()` loses
//! what the defaults leave out (`skip_serializing_if` fields, empty maps and lists, the
//! keys of `embedder.kind = "openai"`), and reading `config.rs` as text misses the fields
//! of types defined elsewhere (`CategorySpec`, `RulesConfig`) and serde's renames.
//!
//! An internally tagged enum (`[embedder] kind = "…"`) is asked for with `deserialize_any`,
//! which names nothing, so the tracer learns it over several passes from the errors serde
//! raises through the tracer's own error type: the tag's name (`missing_field`), the
//! variants (`unknown_variant`), then each variant's fields (`unknown_field`, raised by
//! `deny_unknown_fields` for a probe key). Each pass restarts the whole deserialization;
//! tracing ends with the first pass that succeeds. Such a variant's fields are listed one
//! level deep (today they are all plain values). Anything the tracer cannot name (a
//! tuple, `deserialize_any` that is not a tagged enum) fails the test rather than being
//! skipped.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use deja_server::config::Config;
use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};
use serde::Deserialize;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");

/// The marker of a row documenting a key before its code is merged.
const BEING_ADDED: &str = "being added";

#[test]
fn every_config_key_is_in_docs_configuration_md() {
    let traced = config_paths();
    let keys = leaves(&traced);
    assert!(
        keys.len() > 50 && keys.contains("cache.min_similarity") && keys.contains("embedder.dim"),
        "the tracer found too few keys to be working: {keys:?}"
    );
    let doc = std::fs::read_to_string(DOC).expect("reading docs/configuration.md");
    let rows = documented_keys(&doc);
    let documented: BTreeSet<String> = rows.iter().map(|(k, _)| normalise(k)).collect();

    let mut problems = Vec::new();
    for key in &keys {
        if !documented.contains(&normalise(key)) {
            problems.push(format!(
                "`{key}` is a config key but has no row in the table of docs/configuration.md"
            ));
        }
    }
    let known: BTreeSet<String> = traced.iter().map(|k| normalise(k)).collect();
    for (key, being_added) in &rows {
        match (known.contains(&normalise(key)), being_added) {
            (false, false) => problems.push(format!(
                "`{key}` is listed in docs/configuration.md but is no config key (removed or misspelt?)"
            )),
            (true, true) => problems.push(format!(
                "`{key}` exists now: take the \"{BEING_ADDED}\" marker off its row in docs/configuration.md"
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The keys in the first cell of each table row that look like config keys (lowercase
/// dotted paths; env vars and flags are skipped), with whether the row is marked as being
/// added.
fn documented_keys(doc: &str) -> Vec<(String, bool)> {
    let mut keys = Vec::new();
    for line in doc.lines().map(str::trim) {
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let first_cell = row.split('|').next().unwrap_or_default();
        for span in first_cell.split('`').skip(1).step_by(2) {
            let looks_like_key = span.starts_with(|c: char| c.is_ascii_lowercase())
                && span.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || "_.<>[]-\"".contains(c)
                });
            if looks_like_key {
                keys.push((span.to_string(), line.contains(BEING_ADDED)));
            }
        }
    }
    keys
}

/// A key with every `<placeholder>` written `<>`, so the doc may name a map's entries
/// as it reads best (`categories.<name>`, `prices.<model>`).
fn normalise(key: &str) -> String {
    let mut out = String::new();
    let mut in_placeholder = false;
    for c in key.chars() {
        match c {
            '<' => {
                in_placeholder = true;
                out.push_str("<>");
            }
            '>' => in_placeholder = false,
            _ if in_placeholder => {}
            _ => out.push(c),
        }
    }
    out
}

/// The paths no other path extends: the keys that take a value.
fn leaves(paths: &BTreeSet<String>) -> BTreeSet<String> {
    paths
        .iter()
        .filter(|p| {
            !paths.iter().any(|q| {
                q.len() > p.len()
                    && q.starts_with(p.as_str())
                    && matches!(q.as_bytes()[p.len()], b'.' | b'[')
            })
        })
        .cloned()
        .collect()
}

/// Every path `Config` accepts, sections and keys, found by tracing its deserialization.
fn config_paths() -> BTreeSet<String> {
    trace_paths::<Config>()
}

/// Every path `T` accepts: passes of the tracer until one succeeds with every enum
/// variant visited.
fn trace_paths<T: for<'de> Deserialize<'de>>() -> BTreeSet<String> {
    let trace = RefCell::new(Trace::default());
    for _ in 0..100 {
        let tracer = Tracer {
            trace: &trace,
            path: String::new(),
        };
        match feed(std::marker::PhantomData::<T>, tracer) {
            Ok(_) => {
                // Another pass while an enum has variants not yet visited.
                let mut more = false;
                for (next, count) in trace.borrow_mut().enums.values_mut() {
                    if *next + 1 < *count {
                        *next += 1;
                        more = true;
                    }
                }
                if !more {
                    return trace.into_inner().paths;
                }
            }
            Err(Probe::Learned) => {}
            Err(e) => panic!("tracing the config's keys failed: {e}"),
        }
    }
    panic!("tracing the config's keys did not settle in 100 passes");
}

#[derive(Default)]
struct Trace {
    paths: BTreeSet<String>,
    /// Internally tagged enums, by path.
    tagged: BTreeMap<String, Tagged>,
    /// Externally tagged enums, by path: the variant to take this pass, and how many there are.
    enums: BTreeMap<String, (usize, usize)>,
}

/// What the passes have learned of an internally tagged enum.
#[derive(Default)]
struct Tagged {
    tag: Option<&'static str>,
    variants: Option<&'static [&'static str]>,
    /// Variants whose fields are known (the first `explored`).
    explored: usize,
    /// Once all are explored: the variant to deserialize (the next one if it fails).
    choice: usize,
    /// This pass gave a variant an unknown key, so serde's `unknown_field` error, which
    /// surfaces only once the enum's value is built (after `deserialize_any` returned),
    /// lists its fields.
    probing: bool,
}

impl Tagged {
    fn settled(&self) -> bool {
        self.variants.is_some_and(|all| self.explored >= all.len())
    }
}

/// The tracer's error: what serde reports, kept as data rather than text.
#[derive(Debug)]
enum Probe {
    /// This pass learned something; run another.
    Learned,
    MissingField(&'static str),
    UnknownVariant(&'static [&'static str]),
    UnknownField(&'static [&'static str]),
    Other(String),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Learned => write!(f, "learned something (internal)"),
            Probe::MissingField(name) => write!(f, "missing field {name}"),
            Probe::UnknownVariant(v) => write!(f, "unknown variant, expected one of {v:?}"),
            Probe::UnknownField(v) => write!(f, "unknown field, expected one of {v:?}"),
            Probe::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Probe {}

impl de::Error for Probe {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Probe::Other(message.to_string())
    }
    fn missing_field(field: &'static str) -> Self {
        Probe::MissingField(field)
    }
    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Probe::UnknownVariant(expected)
    }
    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        Probe::UnknownField(expected)
    }
}

struct Tracer<'t> {
    trace: &'t RefCell<Trace>,
    path: String,
}

impl<'t> Tracer<'t> {
    fn at(&self, segment: &str) -> Tracer<'t> {
        let path = match (self.path.is_empty(), segment.starts_with('[')) {
            (true, _) => segment.to_string(),
            (false, true) => format!("{}{segment}", self.path),
            (false, false) => format!("{}.{segment}", self.path),
        };
        Tracer {
            trace: self.trace,
            path,
        }
    }

    fn unsupported(&self, what: &str) -> Probe {
        Probe::Other(format!(
            "{}: a {what}, which this check cannot name keys in; extend the tracer",
            self.path
        ))
    }

    /// `deserialize_any`: an internally tagged enum, learned over several passes.
    fn tagged<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        let (tag, variants, explored, choice) = {
            let trace = self.trace.borrow();
            match trace.tagged.get(&self.path) {
                Some(t) => (t.tag, t.variants, t.explored, t.choice),
                None => (None, None, 0, 0),
            }
        };
        let mut entries = Vec::new();
        let exploring = match (tag, variants) {
            // Nothing given: serde names the tag it misses.
            (None, _) => false,
            // An unknown tag value: serde lists the variants.
            (Some(tag), None) => {
                entries.push((tag.to_string(), Value::Str("\u{0}".into())));
                false
            }
            // A variant and a key it cannot know: serde lists the variant's fields.
            (Some(tag), Some(all)) if explored < all.len() => {
                entries.push((tag.to_string(), Value::Str(all[explored].into())));
                entries.push(("\u{0}probe".to_string(), Value::Bool));
                true
            }
            (Some(tag), Some(all)) => {
                let variant = all.get(choice).ok_or_else(|| {
                    Probe::Other(format!("{}: no variant deserializes", self.path))
                })?;
                entries.push((tag.to_string(), Value::Str(variant.to_string())));
                false
            }
        };
        let result = visitor.visit_map(Entries::new(entries));
        let mut trace = self.trace.borrow_mut();
        let Trace { paths, tagged, .. } = &mut *trace;
        let state = tagged.entry(self.path.clone()).or_default();
        state.probing = exploring && result.is_ok();
        match (result, state.tag, state.variants) {
            (Err(Probe::MissingField(name)), None, _) => {
                state.tag = Some(name);
                paths.insert(format!("{}.{name}", self.path));
                Err(Probe::Learned)
            }
            (Ok(_), None, _) => Err(self.unsupported("value read with deserialize_any")),
            (Err(Probe::UnknownVariant(all)), Some(_), None) => {
                state.variants = Some(all);
                Err(Probe::Learned)
            }
            (result, _, _) => result,
        }
    }
}

/// Deserializes `seed` from `tracer`, and learns what an internally tagged enum at the
/// tracer's path reported once its value was built: a probed variant's fields, or that
/// the chosen variant needs values the tracer does not give (then the next is tried).
fn feed<'de, S: DeserializeSeed<'de>>(seed: S, tracer: Tracer<'_>) -> Result<S::Value, Probe> {
    let trace = tracer.trace;
    let path = tracer.path.clone();
    let result = seed.deserialize(tracer);
    let mut trace = trace.borrow_mut();
    let Trace { paths, tagged, .. } = &mut *trace;
    let Some(state) = tagged.get_mut(&path) else {
        return result;
    };
    if std::mem::take(&mut state.probing) {
        return match result {
            Err(Probe::UnknownField(fields)) => {
                for field in fields {
                    paths.insert(format!("{path}.{field}"));
                }
                state.explored += 1;
                Err(Probe::Learned)
            }
            Err(e) => Err(e),
            Ok(_) => Err(Probe::Other(format!(
                "{path}: a variant accepted an unknown key; give the enum #[serde(deny_unknown_fields)] so this check can list its keys"
            ))),
        };
    }
    match (result, state.variants) {
        (Err(e), Some(all)) if state.settled() && !matches!(e, Probe::Learned) => {
            state.choice += 1;
            if state.choice < all.len() {
                Err(Probe::Learned)
            } else {
                Err(e)
            }
        }
        (result, _) => result,
    }
}

/// A value an [`Entries`] hands out.
enum Value<'t> {
    Trace(Tracer<'t>),
    Str(String),
    Bool,
}

/// A map of given keys and values: a struct's fields, a map's one entry, a tag probe.
struct Entries<'t> {
    entries: std::vec::IntoIter<(String, Value<'t>)>,
    value: Option<Value<'t>>,
}

impl<'t> Entries<'t> {
    fn new(entries: Vec<(String, Value<'t>)>) -> Self {
        Entries {
            entries: entries.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Probe;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Probe> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(IntoDeserializer::<Probe>::into_deserializer(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Probe> {
        match self.value.take() {
            Some(Value::Trace(tracer)) => feed(seed, tracer),
            Some(Value::Str(s)) => {
                seed.deserialize(IntoDeserializer::<Probe>::into_deserializer(s))
            }
            Some(Value::Bool) => {
                seed.deserialize(IntoDeserializer::<Probe>::into_deserializer(true))
            }
            None => Err(Probe::Other("a value asked for before its key".into())),
        }
    }
}

/// A list of one element.
struct One<'t>(Option<Tracer<'t>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Probe;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Probe> {
        self.0.take().map(|t| feed(seed, t)).transpose()
    }
}

/// An externally tagged enum's variant.
struct Variant<'t> {
    tracer: Tracer<'t>,
    name: &'static str,
}

impl<'de, 't> EnumAccess<'de> for Variant<'t> {
    type Error = Probe;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Probe> {
        let v = seed.deserialize(IntoDeserializer::<Probe>::into_deserializer(self.name))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Probe;

    fn unit_variant(self) -> Result<(), Probe> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Probe> {
        feed(seed, self.tracer.at(self.name))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Probe> {
        Err(self.tracer.unsupported("tuple variant"))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Probe> {
        de::Deserializer::deserialize_struct(self.tracer.at(self.name), "", fields, visitor)
    }
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        self.tagged(visitor)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_bool(true)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(1)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_f64(0.5)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_f64(0.5)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_char('x')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        // Any string will do for a String or a path; this one also parses as the
        // SocketAddr `listen` is.
        visitor.visit_str("127.0.0.1:8080")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_bytes(b"")
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_bytes(b"")
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_some(self)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Probe> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Probe> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        let element = self.at("[]");
        visitor.visit_seq(One(Some(element)))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Probe> {
        Err(self.unsupported("tuple"))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, Probe> {
        Err(self.unsupported("tuple struct"))
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        let entry = self.at("<name>");
        visitor.visit_map(Entries::new(vec![("<name>".into(), Value::Trace(entry))]))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Probe> {
        let mut entries = Vec::new();
        for field in fields {
            let tracer = self.at(field);
            self.trace.borrow_mut().paths.insert(tracer.path.clone());
            entries.push((field.to_string(), Value::Trace(tracer)));
        }
        visitor.visit_map(Entries::new(entries))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Probe> {
        let index = self
            .trace
            .borrow_mut()
            .enums
            .entry(self.path.clone())
            .or_insert((0, variants.len()))
            .0;
        let name = variants
            .get(index)
            .ok_or_else(|| self.unsupported("enum without variants"))?;
        visitor.visit_enum(Variant { tracer: self, name })
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probe> {
        Err(self.unsupported("bare identifier"))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_unit()
    }
}

/// The tracer itself, on types shaped like the config's, so a failure of the doc check is
/// never the tracer's.
#[test]
fn the_tracer_finds_nested_optional_mapped_listed_and_tagged_keys() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Top {
        plain: u64,
        section: Section,
        named: BTreeMap<String, Section>,
        #[serde(default)]
        listed: Vec<Section>,
        embedder: Embedder,
        mode: Mode,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, default)]
    #[allow(dead_code)]
    #[derive(Default)]
    struct Section {
        maybe: Option<f32>,
        words: Vec<String>,
    }
    #[derive(Deserialize)]
    #[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Embedder {
        Local {
            #[serde(default)]
            threads: usize,
        },
        Remote {
            url: String,
            dim: usize,
        },
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[allow(dead_code)]
    enum Mode {
        Unit,
        Data { inner: u8 },
    }

    let keys: Vec<String> = leaves(&trace_paths::<Top>()).into_iter().collect();
    assert_eq!(
        keys,
        [
            "embedder.dim",
            "embedder.kind",
            "embedder.threads",
            "embedder.url",
            "listed[].maybe",
            "listed[].words",
            "mode.data.inner",
            "named.<name>.maybe",
            "named.<name>.words",
            "plain",
            "section.maybe",
            "section.words",
        ]
    );
}
