//! Logging: human-readable text locally, one JSON object per line in a
//! cluster (`PHOTO_LOG_FORMAT=json`). `RUST_LOG` overrides the level.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .fmt_fields(SpanFieldsJson)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already initialised (tests): keep the first subscriber.
    let _ = result;
}

/// Writes a span's fields as the JSON object that the JSON log lines carry
/// for it, straight into the span's field string.
///
/// tracing-subscriber's own `JsonFields` collects the fields into a map of
/// `serde_json::Value`s and serializes the map, for every span as it is
/// created. Every request runs in a span (`http::observe`), so that was done
/// on every request even though hits log nothing: 2,600 of the 30,400
/// user-space instructions of a cached hit (callgrind).
struct SpanFieldsJson;

impl<'writer> FormatFields<'writer> for SpanFieldsJson {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        writer.write_char('{')?;
        finish_object(&mut writer, fields, true)
    }

    /// Fields recorded later (`Span::record`) go into the same object.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if current.fields.pop() != Some('}') {
            current.fields.clear();
            return self.format_fields(current.as_writer(), fields);
        }
        let empty = current.fields.ends_with('{');
        finish_object(&mut current.as_writer(), fields, empty)
    }
}

/// Writes `fields` as pairs after the open object in `writer` (`empty` if it
/// has none yet), then closes it.
fn finish_object<R: RecordFields>(writer: &mut Writer<'_>, fields: R, empty: bool) -> fmt::Result {
    let mut object = JsonObject {
        writer,
        empty,
        result: Ok(()),
    };
    fields.record(&mut object);
    let result = object.result;
    result?;
    writer.write_char('}')
}

/// Writes `"name":value` pairs, comma-separated, for each field recorded.
struct JsonObject<'a, 'writer> {
    writer: &'a mut Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl JsonObject<'_, '_> {
    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.empty {
                self.writer.write_char(',')?;
            }
            self.empty = false;
            json_string(self.writer, field.name())?;
            self.writer.write_char(':')?;
            value(self.writer)
        })();
    }
}

impl Visit for JsonObject<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |w| json_string(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.pair(field, |w| write!(w, "{value}"));
        } else {
            // JSON has no infinities or NaN.
            self.pair(field, |w| json_string(w, &value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |w| json_string(w, &format!("{value:?}")));
    }
}

/// `value` as a JSON string. One with nothing to escape (a request id) is
/// written as it is; any other is escaped by serde_json.
fn json_string(writer: &mut Writer<'_>, value: &str) -> fmt::Result {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        writer.write_char('"')?;
        writer.write_str(value)?;
        return writer.write_char('"');
    }
    let quoted = serde_json::to_string(value).map_err(|_| fmt::Error)?;
    writer.write_str(&quoted)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// The JSON lines logged by `log` with the server's JSON settings.
    fn json_lines(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .fmt_fields(SpanFieldsJson)
            .with_writer(lines.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn a_log_line_inside_a_request_carries_its_span_fields_as_json() {
        let lines = json_lines(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "id \"quoted\" \\ \u{1}é",
                attempt = 3_u64,
                offset = -2_i64,
                retried = true,
                ratio = 0.5_f64,
                ready = ?Some(1),
            );
            span.in_scope(|| tracing::warn!(status = 500, "request failed"));
        });
        assert_eq!(lines.len(), 1);
        let span = &lines[0]["span"];
        assert_eq!(span["name"], "request");
        assert_eq!(span["request_id"], "id \"quoted\" \\ \u{1}é");
        assert_eq!(span["attempt"], 3);
        assert_eq!(span["offset"], -2);
        assert_eq!(span["retried"], true);
        assert_eq!(span["ratio"], 0.5);
        assert_eq!(span["ready"], "Some(1)");
        assert_eq!(lines[0]["message"], "request failed");
        assert_eq!(lines[0]["status"], 500);
        assert!(lines[0].get("field_error").is_none(), "{}", lines[0]);
    }

    #[test]
    fn fields_recorded_later_join_the_same_object() {
        let lines = json_lines(|| {
            let span =
                tracing::info_span!("request", request_id = "a", route = tracing::field::Empty);
            span.record("route", "/img/{size}/{file}");
            span.in_scope(|| tracing::info!("inside"));
            let bare = tracing::info_span!("bare", later = tracing::field::Empty);
            bare.record("later", f64::NAN);
            bare.in_scope(|| tracing::info!("inside bare"));
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["span"]["request_id"], "a");
        assert_eq!(lines[0]["span"]["route"], "/img/{size}/{file}");
        assert_eq!(lines[1]["span"]["later"], "NaN");
        assert!(lines.iter().all(|l| l.get("field_error").is_none()));
    }
}
