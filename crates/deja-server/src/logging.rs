//! The binary's logs: text or JSON lines on stderr, filtered by `DEJA_LOG` (`info` when it
//! is unset or does not parse). A line written while a request is handled carries the
//! request's id ([`crate::request_id`]) as a `request_id` field: the last field of a text
//! line, the first key of a JSON one.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::request_id;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

/// Installs the global logger: `format` lines on stderr (coloured text only on a
/// terminal), at the level `DEJA_LOG` sets.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("DEJA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let result = match format {
        LogFormat::Text => {
            tracing::subscriber::set_global_default(text_subscriber(filter, std::io::stderr, ansi))
        }
        LogFormat::Json => {
            tracing::subscriber::set_global_default(json_subscriber(filter, std::io::stderr))
        }
    };
    if let Err(e) = result {
        eprintln!("deja: logging was already set up: {e}");
    }
}

/// Text lines, the request id appended to each event's fields.
fn text_subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .fmt_fields(TextFields::default())
        .finish()
}

/// JSON lines, the request id as the first key.
fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .fmt_fields(JsonFields::new())
        .event_format(JsonLine(tracing_subscriber::fmt::format().json()))
        .finish()
}

/// The default text fields, then ` request_id=…` while a request is handled. (Spans'
/// fields are formatted the same way; deja makes none, and dependencies' spans only
/// show at debug level.)
#[derive(Debug, Default)]
struct TextFields(DefaultFields);

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        self.0.format_fields(writer.by_ref(), fields)?;
        match request_id::current() {
            // Ids are visible ASCII (see `request_id`): nothing to escape.
            Some(id) => write!(writer, " request_id={}", id.to_str().unwrap_or_default()),
            None => Ok(()),
        }
    }
}

/// tracing-subscriber's JSON line with `"request_id":"…"` first while a request is
/// handled. The line is formatted into a buffer and the key spliced after its `{`: the
/// JSON formatter takes no extra fields, and only lines that are written pay for this.
struct JsonLine(Format<Json>);

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = request_id::current() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            // Ids are visible ASCII without quotes or backslashes: a JSON string as is.
            Some(rest) => write!(
                writer,
                "{{\"request_id\":\"{}\",{rest}",
                id.to_str().unwrap_or_default()
            ),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps what is written, for the tests to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    fn log_two_lines() {
        tracing::warn!(reason = "x", "outside");
        request_id::with_id("req-42", || tracing::warn!(reason = "y", "inside"));
        tracing::info!("below the level");
    }

    #[test]
    fn json_lines_carry_the_id_as_their_first_key_only_inside_a_request() {
        let out = Captured::default();
        let sub = json_subscriber(EnvFilter::new("warn"), out.clone());
        tracing::subscriber::with_default(sub, log_two_lines);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].get("request_id").is_none());
        assert_eq!(lines[0]["fields"]["message"], "outside");
        assert_eq!(lines[1]["request_id"], "req-42");
        assert_eq!(lines[1]["fields"]["message"], "inside");
        assert_eq!(lines[1]["fields"]["reason"], "y");
        assert_eq!(lines[1]["level"], "WARN");
        assert!(out.lines()[1].starts_with("{\"request_id\":\"req-42\","));
    }

    #[test]
    fn text_lines_end_with_the_id_only_inside_a_request() {
        let out = Captured::default();
        let sub = text_subscriber(EnvFilter::new("warn"), out.clone(), false);
        tracing::subscriber::with_default(sub, log_two_lines);
        let lines = out.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("outside reason=\"x\""), "{}", lines[0]);
        assert!(
            lines[1].ends_with("inside reason=\"y\" request_id=req-42"),
            "{}",
            lines[1]
        );
        assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "{lines:?}");
    }

    #[test]
    fn formats_are_named_text_and_json() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("yaml"
            .parse::<LogFormat>()
            .unwrap_err()
            .contains("text or json"));
    }
}
