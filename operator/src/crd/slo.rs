//! `spec.monitoring.slo`: the service level objectives the burn-rate alerts defend.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Service level objectives over a rolling 30 days. With `monitoring.alerts`, each objective
/// gets two multi-window burn-rate alerts (the Google SRE workbook's method): a critical one
/// when the error budget burns 14.4 times too fast over 1 hour and 5 minutes (2% of the
/// month's budget in an hour) or 6 times over 6 hours and 30 minutes (5% in 6 hours), and a
/// warning when it burns 3 times too fast over 1 day and 2 hours or at the sustainable rate
/// over 3 days and 6 hours. Percentages are decimal strings (`"99.9"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloSpec {
    /// Percent of requests answered without a server error (any 5xx, `503` included: a
    /// photo a browser did not get is a failure whatever the reason; a `429` to a throttled
    /// login is not).
    #[serde(default = "default_availability")]
    #[schemars(regex(pattern = r"^[0-9]{1,2}(\.[0-9]{1,4})?$"))]
    pub availability: String,
    /// Percent of `GET /img/...` requests (cached hits and renders alike) answered within
    /// `within`.
    #[serde(default = "default_image_latency")]
    pub image_latency: LatencyObjective,
    /// Percent of renders (a size made from its original) finished within `within`.
    #[serde(default = "default_render_latency")]
    pub render_latency: LatencyObjective,
}

/// A latency objective: `percent` of events take at most `within`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyObjective {
    /// A duration in milliseconds or seconds (`250ms`, `1s`, `3.2s`) that is a bucket bound
    /// of the histogram measured: for images 5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1s,
    /// 2.5s, 5s or 10s; for renders 5ms, 10ms, 25ms, 50ms, 100ms, 200ms, 400ms, 800ms, 1.6s,
    /// 3.2s or 6.4s.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(ms|s)$"))]
    pub within: String,
    /// Percent of events within `within`.
    #[schemars(regex(pattern = r"^[0-9]{1,2}(\.[0-9]{1,4})?$"))]
    pub percent: String,
}

impl Default for SloSpec {
    fn default() -> Self {
        Self {
            availability: default_availability(),
            image_latency: default_image_latency(),
            render_latency: default_render_latency(),
        }
    }
}

fn default_availability() -> String {
    "99.9".into()
}
fn default_image_latency() -> LatencyObjective {
    LatencyObjective {
        within: "1s".into(),
        percent: "99".into(),
    }
}
fn default_render_latency() -> LatencyObjective {
    LatencyObjective {
        within: "3.2s".into(),
        percent: "99".into(),
    }
}
