//! The latency chart: update latency against round trip, one line per transport (p50) with its
//! p50-p99 band, drawn as SVG with plotters (its SVG backend only; text is left to the viewer's
//! fonts).

use plotters::prelude::*;

use super::report::Comparison;

/// Pixels.
const SIZE: (u32, u32) = (900, 540);
/// One colour per transport, in the order measured (player, SSE, long-poll, polls): distinct
/// from each other and readable on white.
const COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// No relayed network was measured: there is no round trip to put on the x axis.
    #[error("the chart needs at least one round trip (--rtt)")]
    NoNetwork,
    /// plotters failed.
    #[error("drawing the chart: {0}")]
    Draw(String),
}

/// The chart of `figures` as an SVG document; `subtitle` says what was run.
pub fn svg(figures: &Comparison, subtitle: &str) -> Result<String, ChartError> {
    let lines = lines(figures);
    let points = lines.iter().flat_map(|(_, points)| points);
    let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max);
    let lowest = points
        .clone()
        .map(|p| p.1)
        .filter(|&v| v > 0.0)
        .fold(f64::MAX, f64::min);
    let highest = points.map(|p| p.2).fold(0.0, f64::max);
    if lines.is_empty() || lowest == f64::MAX {
        return Err(ChartError::NoNetwork);
    }
    // From a whole decade (the log axis reads 0.1, 1, 10, ...) to just above the highest p99.
    let y_range = 10f64.powf(lowest.log10().floor())..round_up(highest * 1.1);
    let draw = |e: &dyn std::fmt::Display| ChartError::Draw(e.to_string());

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let (title, body) = root.split_vertically(56);
        title
            .draw_text(
                "Update latency against network round trip (line: p50, band: p50 to p99)",
                &("sans-serif", 20).into_font().color(&BLACK),
                (16, 8),
            )
            .map_err(|e| draw(&e))?;
        title
            .draw_text(
                subtitle,
                &("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)),
                (16, 34),
            )
            .map_err(|e| draw(&e))?;
        let mut chart = ChartBuilder::on(&body)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max.max(1.0) * 1.05, y_range.log_scale())
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc("round trip added by the network (ms)")
            .y_desc("update latency (ms, log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| draw(&e))?;
        for (i, (name, points)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let band: Vec<(f64, f64)> = points
                .iter()
                .map(|&(x, _, p99)| (x, p99))
                .chain(points.iter().rev().map(|&(x, p50, _)| (x, p50)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.12).filled())))
                .map_err(|e| draw(&e))?;
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, p50, _)| (x, p50)),
                    colour.stroke_width(2),
                ))
                .map_err(|e| draw(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, p50, _)| Circle::new((x, p50), 3, colour.filled())),
                )
                .map_err(|e| draw(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(out)
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `value`.
fn round_up(value: f64) -> f64 {
    let decade = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|&v| v >= value)
        .unwrap_or(10.0 * decade)
}

/// One transport's points: (round trip ms, p50 ms, p99 ms) on each relayed network.
type Line = (String, Vec<(f64, f64, f64)>);

/// A line per transport, in the order measured.
fn lines(figures: &Comparison) -> Vec<Line> {
    let relayed: Vec<_> = figures.passes.iter().filter(|p| p.network.is_some()).collect();
    let Some(first) = relayed.first() else {
        return Vec::new();
    };
    first
        .rows
        .iter()
        .map(|row| {
            let points = relayed
                .iter()
                .filter_map(|pass| {
                    let network = pass.network?;
                    let r = pass.rows.iter().find(|r| r.transport == row.transport)?;
                    let ms = |us: u64| us as f64 / 1000.0;
                    Some((network.rtt_ms(), ms(r.latency_us.p50), ms(r.latency_us.p99)))
                })
                .collect();
            (row.transport.clone(), points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transports::{Network, Pass, Row};
    use client_demo::stats::RttSummary;

    fn row(transport: &str, p50_ms: u64) -> Row {
        Row {
            transport: transport.into(),
            clients: 1,
            errors: 0,
            updates_per_sec: 10.0,
            published_per_client: 10,
            seen_pct: 100.0,
            latency_us: RttSummary {
                samples: 10,
                p50: p50_ms * 1000,
                p99: p50_ms * 1500,
                p999: p50_ms * 1500,
                max: p50_ms * 2000,
            },
            bytes_down_per_update: 1.0,
            bytes_up_per_update: 1.0,
            request_bytes: None,
            response_head_bytes: None,
            requests_per_min: 0.0,
            server_cpu_us_per_sec: 0.0,
        }
    }

    #[test]
    fn the_chart_has_a_line_and_a_band_per_transport() {
        let pass = |rtt_ms: u64| Pass {
            network: Some(Network::new(Duration::from_millis(rtt_ms), 25, None)),
            rows: vec![row("SSE", rtt_ms / 2 + 1), row("long-poll", rtt_ms + 2)],
        };
        let figures = Comparison {
            passes: vec![pass(0), pass(80), pass(150)],
            ..Comparison::default()
        };
        let drawn = svg(&figures, "test").unwrap();
        assert!(
            drawn.starts_with("<svg") && drawn.trim_end().ends_with("</svg>"),
            "{drawn}"
        );
        assert!(drawn.contains("\nSSE\n") && drawn.contains("\nlong-poll\n"), "{drawn}");
        assert_eq!(drawn.matches("<polygon").count(), 2, "one band per transport");
        assert!(matches!(svg(&Comparison::default(), "x"), Err(ChartError::NoNetwork)));
    }

    #[test]
    fn the_axis_ends_on_a_round_number() {
        assert_eq!(round_up(1086.0), 2000.0);
        assert_eq!(round_up(300.0), 500.0);
        assert_eq!(round_up(0.7), 1.0);
    }
}
