//! The burn-rate alerts of `spec.monitoring.slo`: multi-window, multi-burn-rate alerts as the
//! Google SRE workbook ("Alerting on SLOs") sets them out for a 30-day objective.
//!
//! An objective of 99.9% leaves an error budget of 0.1% of events. A burn rate of 1 spends
//! it in exactly 30 days. Each objective gets two alerts of one name:
//!
//! | severity | burn rate | long window | short window | budget spent when it fires |
//! |---|---|---|---|---|
//! | critical | 14.4 | 1h | 5m | 2% in an hour |
//! | critical | 6 | 6h | 30m | 5% in 6 hours |
//! | warning | 3 | 1d | 2h | 10% in a day |
//! | warning | 1 | 3d | 6h | 10% in 3 days |
//!
//! The long window keeps a short blip from paging; the short one (a twelfth of it) lets the
//! alert resolve minutes after the fault ends instead of hours.

use super::alert_rule::{alert, severity};
use super::crd_types::AlertRule;
use crate::site::{Objective, ValidatedSite};

/// Two windows and the burn rate both must exceed.
struct Burn {
    long: &'static str,
    short: &'static str,
    rate: &'static str,
}

const PAGE: [Burn; 2] = [
    Burn {
        long: "1h",
        short: "5m",
        rate: "14.4",
    },
    Burn {
        long: "6h",
        short: "30m",
        rate: "6",
    },
];
const TICKET: [Burn; 2] = [
    Burn {
        long: "1d",
        short: "2h",
        rate: "3",
    },
    Burn {
        long: "3d",
        short: "6h",
        rate: "1",
    },
];

/// The route label of `GET /img/<size>/<file>` in photo-server's request metrics.
const IMAGE_ROUTE: &str = "/img/{size}/{file}";

/// A `le` label matcher for a bucket bound, as photo-server exports it (`1.0`, `0.25`) and as
/// Prometheus 3 normalises it (`1`).
fn le(seconds: f64) -> String {
    let s = format!("{seconds}");
    if s.contains('.') {
        format!("le=~\"{}\"", s.replace('.', "\\\\."))
    } else {
        format!("le=~\"{s}(\\\\.0)?\"")
    }
}

/// One SLO: the PromQL share of bad events over a window (`{w}` stands for it).
struct Slo<'a> {
    alert: &'static str,
    what: String,
    objective: &'a Objective,
    bad_ratio: String,
}

impl Slo<'_> {
    fn expr(&self, burns: &[Burn; 2]) -> String {
        let budget = format!("(1 - {} / 100)", self.objective.percent);
        let over = |w: &str, rate: &str| {
            format!("{} > {rate} * {budget}", self.bad_ratio.replace("{w}", w))
        };
        burns
            .iter()
            .map(|b| format!("({} and {})", over(b.long, b.rate), over(b.short, b.rate)))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// The critical and warning burn-rate alerts of every objective in `spec.monitoring.slo`.
/// `sel` selects the site's photo-server targets.
pub fn slo_rules(site: &ValidatedSite, sel: &str) -> Vec<AlertRule> {
    let slo = &site.slo;
    let requests = "photo_http_requests_total";
    let image = &slo.image_latency;
    let render = &slo.render_latency;
    let slos = [
        Slo {
            alert: "PhotoSiteAvailabilityBudgetBurn",
            what: "requests answered without a server error".into(),
            objective: &slo.availability,
            bad_ratio: format!(
                "sum(rate({requests}{{{sel},status=~\"5..\"}}[{{w}}])) / sum(rate({requests}{{{sel}}}[{{w}}]))"
            ),
        },
        Slo {
            alert: "PhotoSiteImageLatencyBudgetBurn",
            what: format!("images served within {}", image.within),
            objective: &image.objective,
            bad_ratio: format!(
                "(1 - sum(rate(photo_http_request_duration_seconds_bucket{{{sel},route=\"{IMAGE_ROUTE}\",{}}}[{{w}}])) / sum(rate(photo_http_request_duration_seconds_count{{{sel},route=\"{IMAGE_ROUTE}\"}}[{{w}}])))",
                le(image.within_seconds)
            ),
        },
        Slo {
            alert: "PhotoSiteRenderLatencyBudgetBurn",
            what: format!("renders finished within {}", render.within),
            objective: &render.objective,
            bad_ratio: format!(
                "(1 - sum(rate(photo_render_duration_seconds_bucket{{{sel},{}}}[{{w}}])) / sum(rate(photo_render_duration_seconds_count{{{sel}}}[{{w}}])))",
                le(render.within_seconds)
            ),
        },
    ];
    let site_name = format!("{}/{}", site.namespace, site.name);
    let mut rules = Vec::new();
    for s in &slos {
        let objective = &s.objective.percent;
        let what = &s.what;
        let page = format!(
            "At the rate of the last hour (or 6 hours) the error budget of the {objective}% objective ({what}) is spent in 2 days (or 5): 14.4 (or 6) times too fast, confirmed over the last 5 (or 30) minutes. See the site's dashboard and kubectl -n {} describe photosite {}.",
            site.namespace, site.name
        );
        let ticket = format!(
            "Over the last day (or 3 days) the error budget of the {objective}% objective ({what}) has burned 3 (or 1) times as fast as 30 days allow, still so over the last 2 (or 6) hours."
        );
        for (burns, for_, level, pace, description) in [
            (&PAGE, "2m", "critical", " fast", page),
            (&TICKET, "15m", "warning", "", ticket),
        ] {
            rules.push(alert(
                s.alert,
                s.expr(burns),
                for_,
                &severity(site, level),
                format!("PhotoSite {site_name}: the {objective}% objective for {what} is burning its 30-day error budget{pace}"),
                description,
            ));
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn bucket_bounds_match_both_spellings_of_le() {
        assert_eq!(le(1.0), r#"le=~"1(\\.0)?""#);
        assert_eq!(le(0.25), r#"le=~"0\\.25""#);
        assert_eq!(le(3.2), r#"le=~"3\\.2""#);
    }

    #[test]
    fn each_objective_pages_and_tickets_with_the_sites_own_values() {
        let s = with(fakeflickr(), |s| {
            s.spec.monitoring.slo.availability = "99.5".into();
            s.spec.monitoring.slo.image_latency.within = "250ms".into();
        });
        let rules = slo_rules(&valid(&s), "namespace=\"n\",service=\"m\"");
        let names: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r.alert.as_str(), r.labels["severity"].as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("PhotoSiteAvailabilityBudgetBurn", "critical"),
                ("PhotoSiteAvailabilityBudgetBurn", "warning"),
                ("PhotoSiteImageLatencyBudgetBurn", "critical"),
                ("PhotoSiteImageLatencyBudgetBurn", "warning"),
                ("PhotoSiteRenderLatencyBudgetBurn", "critical"),
                ("PhotoSiteRenderLatencyBudgetBurn", "warning"),
            ]
        );
        let page = &rules[0].expr;
        for window in ["[1h]", "[5m]", "[6h]", "[30m]"] {
            assert!(page.contains(window), "{window} in {page}");
        }
        assert!(page.contains("> 14.4 * (1 - 99.5 / 100)"), "{page}");
        assert!(rules[1].expr.contains("[3d]") && rules[1].expr.contains("> 1 * (1 - 99.5 / 100)"));
        assert!(
            rules[2].expr.contains(r#"le=~"0\\.25""#),
            "{}",
            rules[2].expr
        );
        assert!(rules[2].expr.contains("route=\"/img/{size}/{file}\""));
        assert!(
            rules[4].expr.contains(r#"le=~"3\\.2""#),
            "{}",
            rules[4].expr
        );
        assert_eq!(rules[1].labels["photosite"], "fakeflickr");
    }
}
