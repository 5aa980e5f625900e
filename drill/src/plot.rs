//! A drill's timeline as a PNG: requests a second (succeeded and failed),
//! the failed share, and p99 latency (all requests and cached hits) over
//! time, with the fault's span shaded and every event marked and listed.
//! Text is drawn with an embedded DejaVu Sans (no fontconfig needed).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::drills::Outcome;
use crate::record::{Class, Route, quantile};
use crate::{Error, Result};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1050;
const FONT: &str = "sans-serif";

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Setup("the embedded font does not load".into()))
    }
}

/// Figures per time bin.
struct Bin {
    t: f64,
    ok_rps: f64,
    failed_rps: f64,
    failed_pct: f64,
    p99: Option<f64>,
    p99_hits: Option<f64>,
}

fn bins(outcome: &Outcome) -> (Vec<Bin>, f64) {
    let end = outcome.end.max(1.0);
    let width = if end <= 60.0 { 0.5 } else { 1.0 };
    let n = (end / width).ceil() as usize;
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut hits: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut ok = vec![0usize; n];
    let mut failed = vec![0usize; n];
    for r in &outcome.records {
        let i = ((r.start / width) as usize).min(n - 1);
        latencies[i].push(r.latency_ms);
        if r.class == Class::Ok {
            ok[i] += 1;
            if r.route == Route::Hot && r.cache_hit {
                hits[i].push(r.latency_ms);
            }
        } else {
            failed[i] += 1;
        }
    }
    let bins = (0..n)
        .map(|i| {
            let total = ok[i] + failed[i];
            Bin {
                t: (i as f64 + 0.5) * width,
                ok_rps: ok[i] as f64 / width,
                failed_rps: failed[i] as f64 / width,
                failed_pct: if total == 0 {
                    0.0
                } else {
                    failed[i] as f64 * 100.0 / total as f64
                },
                p99: quantile(&mut latencies[i], 0.99),
                p99_hits: quantile(&mut hits[i], 0.99),
            }
        })
        .collect();
    (bins, end)
}

/// Draws `outcome`'s timeline into `path`.
pub fn timeline(outcome: &Outcome, title: &str, path: &Path) -> Result<()> {
    register_font()?;
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(outcome, title, &mut buffer).map_err(|detail| Error::Plot {
        path: path.to_path_buf(),
        detail,
    })?;
    image::save_buffer(path, &buffer, WIDTH, HEIGHT, image::ExtendedColorType::Rgb8).map_err(|e| {
        Error::Plot {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    })
}

fn draw(outcome: &Outcome, title: &str, buffer: &mut [u8]) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::with_buffer(buffer, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let legend_rows = outcome.events.len().div_ceil(2) as u32;
    let legend_height = 30 + 22 * legend_rows;
    let (top, legend) = root.split_vertically(HEIGHT - legend_height);
    let top = top
        .titled(title, (FONT, 26).into_font().style(FontStyle::Bold))
        .map_err(|x| e(&x))?;
    let panels = top.split_evenly((3, 1));
    let (bins, end) = bins(outcome);
    let red_shade = RGBColor(230, 60, 60).mix(0.12);
    let fault_color = RGBColor(200, 30, 30);
    let event_color = RGBColor(120, 120, 120);
    let ok_color = RGBColor(40, 90, 200);
    let fail_color = RGBColor(210, 40, 40);
    let hit_color = RGBColor(20, 150, 60);
    let label_font = (FONT, 18);

    // Marks the fault's span and the events on a panel, whatever its y scale.
    macro_rules! marks {
        ($chart:expr, $y0:expr, $y1:expr) => {{
            if outcome.restored > outcome.fault {
                $chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(outcome.fault, $y0), (outcome.restored, $y1)],
                        red_shade.filled(),
                    )))
                    .map_err(|x| e(&x))?;
            }
            for (n, event) in outcome.events.iter().enumerate() {
                let color = if (event.t - outcome.fault).abs() < 1e-9 {
                    fault_color.stroke_width(3)
                } else {
                    event_color.stroke_width(1)
                };
                $chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(event.t, $y0), (event.t, $y1)],
                        color,
                    )))
                    .map_err(|x| e(&x))?;
                $chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{}", n + 1),
                        (event.t, $y1),
                        (FONT, 16).into_font().color(&fault_color),
                    )))
                    .map_err(|x| e(&x))?;
            }
        }};
    }

    // 1. Requests a second.
    let max_rps = bins
        .iter()
        .map(|b| b.ok_rps + b.failed_rps)
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&panels[0])
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..end, 0f64..max_rps)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .y_desc("requests / s")
        .label_style(label_font)
        .axis_desc_style(label_font)
        .light_line_style(WHITE)
        .draw()
        .map_err(|x| e(&x))?;
    marks!(chart, 0.0, max_rps);
    chart
        .draw_series(LineSeries::new(
            bins.iter().map(|b| (b.t, b.ok_rps)),
            ok_color.stroke_width(2),
        ))
        .map_err(|x| e(&x))?
        .label("succeeded")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], ok_color.stroke_width(3))
        });
    chart
        .draw_series(LineSeries::new(
            bins.iter().map(|b| (b.t, b.failed_rps)),
            fail_color.stroke_width(2),
        ))
        .map_err(|x| e(&x))?
        .label("failed")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], fail_color.stroke_width(3))
        });
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(label_font)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;

    // 2. Failed share.
    let max_pct = bins
        .iter()
        .map(|b| b.failed_pct)
        .fold(1.0, f64::max)
        .min(100.0)
        * 1.15;
    let mut chart = ChartBuilder::on(&panels[1])
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..end, 0f64..max_pct)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .y_desc("failed %")
        .label_style(label_font)
        .axis_desc_style(label_font)
        .light_line_style(WHITE)
        .draw()
        .map_err(|x| e(&x))?;
    marks!(chart, 0.0, max_pct);
    chart
        .draw_series(AreaSeries::new(
            bins.iter().map(|b| (b.t, b.failed_pct)),
            0.0,
            fail_color.mix(0.3),
        ))
        .map_err(|x| e(&x))?;
    chart
        .draw_series(LineSeries::new(
            bins.iter().map(|b| (b.t, b.failed_pct)),
            fail_color.stroke_width(2),
        ))
        .map_err(|x| e(&x))?;

    // 3. p99 latency, log scale.
    let max_ms = bins.iter().filter_map(|b| b.p99).fold(10.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(&panels[2])
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..end, (0.1f64..max_ms).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("p99 latency, ms")
        .label_style(label_font)
        .axis_desc_style(label_font)
        .light_line_style(WHITE)
        .draw()
        .map_err(|x| e(&x))?;
    marks!(chart, 0.1, max_ms);
    let clamp = |v: f64| v.max(0.1);
    chart
        .draw_series(LineSeries::new(
            bins.iter().filter_map(|b| b.p99.map(|p| (b.t, clamp(p)))),
            BLACK.stroke_width(2),
        ))
        .map_err(|x| e(&x))?
        .label("all requests")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(3)));
    chart
        .draw_series(LineSeries::new(
            bins.iter()
                .filter_map(|b| b.p99_hits.map(|p| (b.t, clamp(p)))),
            hit_color.stroke_width(2),
        ))
        .map_err(|x| e(&x))?
        .label("cached hits")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], hit_color.stroke_width(3))
        });
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 50.0), (end, 50.0)],
            hit_color.mix(0.5).stroke_width(1),
        )))
        .map_err(|x| e(&x))?
        .label("50 ms")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], hit_color.mix(0.5)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(label_font)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;

    // The events, numbered as on the charts.
    legend
        .draw(&Text::new(
            "Events (shaded: from the fault until the stack is whole again)",
            (20, 8),
            (FONT, 18).into_font().style(FontStyle::Bold),
        ))
        .map_err(|x| e(&x))?;
    for (n, event) in outcome.events.iter().enumerate() {
        let column = (n % 2) as i32;
        let row = (n / 2) as i32;
        let label: String = format!("{}  t={:.1} s  {}", n + 1, event.t, event.label)
            .chars()
            .take(70)
            .collect();
        legend
            .draw(&Text::new(
                label,
                (20 + column * (WIDTH as i32 / 2), 34 + row * 22),
                (FONT, 17),
            ))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
