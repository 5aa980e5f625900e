//! The markdown report: one summary table, then each drill with its
//! timeline picture, events, rules (with evidence when one fails), notes
//! and what the servers and the balancer logged.

use std::fmt::Write as _;
use std::path::Path;

use crate::drills::Outcome;
use crate::record::{Class, Route, class_counts, p50_p99};
use crate::{Error, Result};

/// What the report says about the run itself.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub form: String,
    pub command: String,
    pub setup: Vec<String>,
    pub seconds: f64,
}

fn p50_p99_text<'a>(records: impl Iterator<Item = &'a crate::record::Record>) -> String {
    match p50_p99(records) {
        Some((p50, p99)) => format!("{} / {}", ms(p50), ms(p99)),
        None => "-".into(),
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary table (also printed, and pasted into the README).
pub fn summary_table(outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    t.push_str("| # | drill | requests | failed: 5xx · 503+RA · 507 · 4xx · conn · timeout | uploads ok / failed | p50 / p99 ms: before · during · after | recovery | result |\n");
    t.push_str("|---|---|--:|---|--:|---|--:|---|\n");
    for o in outcomes {
        if let Some(why) = &o.skipped {
            let _ = writeln!(
                t,
                "| {} | {} | | | | | | skipped: {why} |",
                o.drill.number(),
                o.drill.id()
            );
            continue;
        }
        let counts = class_counts(o.records.iter());
        let count = |c: Class| {
            counts
                .iter()
                .find(|(k, _)| *k == c)
                .map(|(_, n)| *n)
                .unwrap_or(0)
        };
        let uploads = o.records.iter().filter(|r| r.route == Route::Upload);
        let (mut up_ok, mut up_failed) = (0, 0);
        for r in uploads {
            if r.class.is_failure() {
                up_failed += 1;
            } else {
                up_ok += 1;
            }
        }
        let latency = if o.fault >= o.end {
            p50_p99_text(o.records.iter())
        } else {
            format!(
                "{} · {} · {}",
                p50_p99_text(o.phase(0)),
                p50_p99_text(o.phase(1)),
                p50_p99_text(o.phase(2))
            )
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} · {} · {} · {} · {} · {} | {up_ok} / {up_failed} | {latency} | {} | {} |",
            o.drill.number(),
            o.drill.id(),
            thousands(o.records.len()),
            count(Class::Server5xx),
            count(Class::Shed503),
            count(Class::Storage507),
            count(Class::Client4xx),
            count(Class::Conn),
            count(Class::Timeout),
            o.recovery
                .map(|r| format!("{r:.1} s"))
                .unwrap_or_else(|| "-".into()),
            if o.passed() { "PASS" } else { "**FAIL**" }
        );
    }
    t
}

/// Writes `report.md` in `dir` (the pictures are written by the caller,
/// named `<drill>.png`).
pub fn write(dir: &Path, info: &RunInfo, outcomes: &[Outcome]) -> Result<()> {
    let mut md = String::new();
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    let _ = writeln!(md, "# PhotoStack drills: {} form\n", info.form);
    let _ = writeln!(md, "Command: `{}`\n", info.command);
    for line in &info.setup {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(
        md,
        "\n{} drills in {:.0} s: {}.\n",
        outcomes.len(),
        info.seconds,
        if failed == 0 {
            "every pass rule holds".to_string()
        } else {
            format!("{failed} with a failed rule")
        }
    );
    md.push_str(&summary_table(outcomes));
    md.push_str(
        "\nFailures by class: 5xx is any 5xx but a 503 with Retry-After and a 507 (so a \
         load balancer's own 503 counts here); recovery is from the fault to the later of the \
         last failed request and the stack being whole again. Phases: before the fault, during \
         it (until the stack is whole again), after.\n",
    );
    for o in outcomes {
        let _ = writeln!(
            md,
            "\n## {}. {}: {}\n",
            o.drill.number(),
            o.drill.id(),
            o.drill.title()
        );
        if let Some(why) = &o.skipped {
            let _ = writeln!(md, "Skipped: {why}");
            continue;
        }
        let _ = writeln!(
            md,
            "**{}**\n\n![{} timeline]({}.png)\n",
            if o.passed() { "PASS" } else { "FAIL" },
            o.drill.id(),
            o.drill.id()
        );
        if !o.events.is_empty() {
            md.push_str("Events:\n");
            for (n, e) in o.events.iter().enumerate() {
                let _ = writeln!(md, "{}. t={:.2} s: {}", n + 1, e.t, e.label);
            }
            md.push('\n');
        }
        md.push_str("Rules:\n");
        for c in &o.checks {
            let _ = writeln!(
                md,
                "- {} {}: {}",
                if c.passed { "PASS" } else { "**FAIL**" },
                c.rule,
                c.detail
            );
            for line in &c.evidence {
                let _ = writeln!(md, "  - `{}`", line.replace('`', "'"));
            }
        }
        if !o.notes.is_empty() {
            md.push_str("\nNotes:\n");
            for n in &o.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        if !o.log_lines.is_empty() {
            md.push_str("\nLogged during the drill (servers' warnings and errors; HAProxy's abnormal requests and state changes):\n\n```\n");
            for l in &o.log_lines {
                md.push_str(l);
                md.push('\n');
            }
            md.push_str("```\n");
        }
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md).map_err(Error::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
