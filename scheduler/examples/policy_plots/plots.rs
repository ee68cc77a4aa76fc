//! The plots of `docs/scheduling.md`, drawn with plotters on a bitmap.

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;
use warren_scheduler::policy::Preset;
use warren_scheduler::simulate::Outcome;

use crate::{COLOURS, label, waits_by_priority};

/// Cumulative distribution of response times, one line per policy, log time axis.
pub(crate) fn cdf(path: &Path, name: &str, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut all: Vec<Vec<f64>> = outcomes
        .iter()
        .map(|o| {
            o.jobs
                .iter()
                .map(|j| (j.response_ms().max(1)) as f64 / 1000.0)
                .collect()
        })
        .collect();
    let max = all.iter().flatten().copied().fold(1.0f64, f64::max);
    let min = all.iter().flatten().copied().fold(max, f64::min).max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Response time, {name} trace"), ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((min..max * 1.2).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("response time (s, log scale)")
        .y_desc("fraction of jobs")
        .label_style(("sans-serif", 15))
        .draw()?;
    let one_tenant = outcomes.first().is_some_and(|o| o.tenants.len() == 1);
    for ((values, outcome), colour) in all.iter_mut().zip(outcomes).zip(COLOURS) {
        // With one tenant `fair` orders as `priority` and `round-robin` as `fifo`: their
        // lines would hide the others.
        if one_tenant && matches!(outcome.policy.preset, Preset::Fair | Preset::RoundRobin) {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len() as f64;
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (*v, (i + 1) as f64 / n))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(outcome.policy.preset.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| anyhow!("drawing the legend: {e}"))?;
    Ok(())
}

/// Mean wait per priority level under each policy.
pub(crate) fn priority(path: &Path, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let waits: Vec<Vec<(f64, f64)>> = outcomes
        .iter()
        .map(|o| {
            waits_by_priority(o)
                .into_iter()
                .enumerate()
                .map(|(p, w)| (p as f64, w / 1000.0))
                .collect()
        })
        .collect();
    let top = waits
        .iter()
        .flatten()
        .map(|(_, w)| *w)
        .fold(0.1f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Mean wait by priority, uniform trace", ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..9f64, 0f64..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("job priority (0–9)")
        .y_desc("mean wait (s)")
        .label_style(("sans-serif", 15))
        .draw()?;
    for ((points, outcome), colour) in waits.into_iter().zip(outcomes).zip(COLOURS) {
        if matches!(outcome.policy.preset, Preset::Fair | Preset::RoundRobin) {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(outcome.policy.preset.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// Width of the bins of the shares plot (s).
const BIN_S: u64 = 5;

/// Cores in use per tenant over time, one panel per outcome.
pub(crate) fn shares(path: &Path, outcomes: &[&Outcome]) -> anyhow::Result<()> {
    let panels = u32::try_from(outcomes.len())?;
    let root = BitMapBackend::new(path, (600 * panels, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, outcome) in root
        .split_evenly((1, outcomes.len()))
        .into_iter()
        .zip(outcomes)
    {
        let end_s = outcome.summary.makespan_ms / 1000 + 1;
        // The pool has 8 cores: the most any tenant can hold.
        let top = 8.0;
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("Cores per tenant: {}", label(outcome).replace('`', "")),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..end_s as f64, 0f64..top + 0.5)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("cores")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (tenant, colour) in outcome.tenants.iter().zip(COLOURS) {
            // Mean cores in use over 5 s bins: the per-instant count flickers too fast to read.
            let points: Vec<(f64, f64)> = (0..end_s.div_ceil(BIN_S))
                .map(|bin| {
                    let (from, to) = (bin * BIN_S * 1000, (bin + 1) * BIN_S * 1000);
                    let unit_ms: f64 = outcome
                        .jobs
                        .iter()
                        .filter(|j| j.tenant == tenant.tenant)
                        .map(|j| {
                            let overlap =
                                j.completion_ms.min(to).saturating_sub(j.start_ms.max(from));
                            overlap as f64 * j.units
                        })
                        .sum();
                    ((from + to) as f64 / 2000.0, unit_ms / (to - from) as f64)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(tenant.tenant.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
