//! `spec.monitoring.slo`, checked: each objective a percentage below 100 with an error budget,
//! each latency bound one of the bucket bounds photo-server's histograms measure (a bound
//! between two buckets cannot be counted from a histogram, so it is refused, not rounded).

use super::error::{ValidateError, invalid};
use crate::crd::{LatencyObjective, SloSpec};

/// Upper bounds (seconds) of photo-server's `photo_http_request_duration_seconds` buckets.
pub const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of photo-server's `photo_render_duration_seconds` buckets.
pub const RENDER_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4];

/// An objective, checked: `percent` as written (a decimal under 100) and its error budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// The objective as the user wrote it, e.g. `99.9`.
    pub percent: String,
    /// The share of events allowed to be bad, e.g. `0.001`.
    pub budget: f64,
}

/// A latency objective, checked: its percentage and the bucket bound it counts under.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySlo {
    pub objective: Objective,
    /// The bound in seconds (one of the histogram's buckets).
    pub within_seconds: f64,
    /// The bound as the user wrote it, e.g. `250ms`.
    pub within: String,
}

/// `spec.monitoring.slo`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedSlo {
    pub availability: Objective,
    pub image_latency: LatencySlo,
    pub render_latency: LatencySlo,
}

pub(super) fn validate_slo(slo: &SloSpec) -> Result<ValidatedSlo, ValidateError> {
    Ok(ValidatedSlo {
        availability: objective("monitoring.slo.availability", &slo.availability)?,
        image_latency: latency(
            "monitoring.slo.imageLatency",
            &slo.image_latency,
            &REQUEST_BUCKETS,
        )?,
        render_latency: latency(
            "monitoring.slo.renderLatency",
            &slo.render_latency,
            &RENDER_BUCKETS,
        )?,
    })
}

fn objective(field: &str, percent: &str) -> Result<Objective, ValidateError> {
    let value: f64 = percent
        .parse()
        .ok()
        .filter(|p: &f64| p.is_finite())
        .ok_or_else(|| invalid(format!("{field} {percent:?} is not a percentage (99.9)")))?;
    if !(50.0..100.0).contains(&value) {
        return Err(invalid(format!(
            "{field} {percent:?} must be at least 50 and below 100: 100% leaves no error budget to alert on"
        )));
    }
    Ok(Objective {
        percent: percent.to_string(),
        budget: 1.0 - value / 100.0,
    })
}

fn latency(
    field: &str,
    spec: &LatencyObjective,
    buckets: &[f64],
) -> Result<LatencySlo, ValidateError> {
    let objective = objective(&format!("{field}.percent"), &spec.percent)?;
    let within = spec.within.as_str();
    let seconds = within
        .strip_suffix("ms")
        .and_then(|ms| ms.parse::<f64>().ok())
        .map(|ms| ms / 1000.0)
        .or_else(|| within.strip_suffix('s')?.parse::<f64>().ok())
        .filter(|s| s.is_finite());
    let bound = seconds.and_then(|s| {
        buckets
            .iter()
            .copied()
            .find(|b| (b - s).abs() < 1e-9 * b.max(1.0))
    });
    let Some(within_seconds) = bound else {
        let allowed: Vec<String> = buckets.iter().map(|b| show_seconds(*b)).collect();
        return Err(invalid(format!(
            "{field}.within {within:?} must be one of the histogram's bucket bounds: {}",
            allowed.join(", ")
        )));
    };
    Ok(LatencySlo {
        objective,
        within_seconds,
        within: within.to_string(),
    })
}

/// `0.25` as `250ms`, `3.2` as `3.2s`.
fn show_seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{}ms", s * 1000.0)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(availability: &str, image_within: &str, render_percent: &str) -> SloSpec {
        let mut s = SloSpec {
            availability: availability.into(),
            ..SloSpec::default()
        };
        s.image_latency.within = image_within.into();
        s.render_latency.percent = render_percent.into();
        s
    }

    #[test]
    fn the_defaults_are_valid_and_parsed() {
        let v = validate_slo(&SloSpec::default()).unwrap();
        assert_eq!(v.availability.percent, "99.9");
        assert!((v.availability.budget - 0.001).abs() < 1e-12);
        assert_eq!(v.image_latency.within_seconds, 1.0);
        assert_eq!(v.render_latency.within_seconds, 3.2);
        assert!((v.render_latency.objective.budget - 0.01).abs() < 1e-12);
    }

    #[test]
    fn bounds_are_read_in_milliseconds_or_seconds() {
        assert_eq!(
            validate_slo(&slo("99", "250ms", "95"))
                .unwrap()
                .image_latency
                .within_seconds,
            0.25
        );
        assert_eq!(
            validate_slo(&slo("99", "0.25s", "95"))
                .unwrap()
                .image_latency
                .within_seconds,
            0.25
        );
        assert_eq!(
            validate_slo(&slo("99", "2.5s", "95"))
                .unwrap()
                .image_latency
                .within_seconds,
            2.5
        );
    }

    #[test]
    fn a_bound_between_buckets_is_refused_with_the_allowed_ones() {
        let e = validate_slo(&slo("99.9", "300ms", "99")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("monitoring.slo.imageLatency.within \"300ms\""),
            "{msg}"
        );
        assert!(msg.contains("250ms, 500ms, 1s, 2.5s"), "{msg}");
        assert!(validate_slo(&slo("99.9", "1 s", "99")).is_err());
        assert!(validate_slo(&slo("99.9", "ms", "99")).is_err());
    }

    #[test]
    fn objectives_without_a_budget_or_too_loose_are_refused() {
        for bad in ["100", "100.0", "49.9", "abc", "", "NaN"] {
            let e = validate_slo(&slo(bad, "1s", "99")).unwrap_err().to_string();
            assert!(e.contains("monitoring.slo.availability"), "{bad}: {e}");
        }
        let e = validate_slo(&slo("99.9", "1s", "100"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("monitoring.slo.renderLatency.percent"), "{e}");
    }

    /// The operator counts under the `le` bounds photo-server exports: the two lists must be
    /// the same, or an objective would point at a bucket that does not exist.
    #[test]
    fn the_buckets_are_photo_servers() {
        let source = include_str!("../../../photo-server/src/metrics.rs");
        let list = |func: &str| -> Vec<f64> {
            let start = source.find(func).expect("histogram function in metrics.rs");
            let body = &source[start..];
            let open = body.find('[').expect("bucket list") + 1;
            let close = body.find(']').expect("bucket list end");
            body[open..close]
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().expect("a bucket bound"))
                .collect()
        };
        assert_eq!(list("fn latency_histogram"), REQUEST_BUCKETS.to_vec());
        assert_eq!(list("fn render_histogram"), RENDER_BUCKETS.to_vec());
    }
}
