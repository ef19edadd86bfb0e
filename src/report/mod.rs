//! `heapvis report OUT`: the run as one self-contained HTML page, made from
//! the output folder's tables: the summary, charts over the run (heap use,
//! fragmentation, allocations by kind, retained bytes by owner, free runs by
//! size), leak suspects, fragmentation culprits and a heap-layout view to
//! scrub through, with hover. Nothing is loaded from the network: the charts
//! are SVG drawn here, the data is JSON in the page, the script is heapvis'
//! own (`report.js`).
//!
//! Its size is bounded whatever the run: the charts sample at most
//! [`ReportOptions::max_points`] snapshots, the scrubber at most
//! [`ReportOptions::max_frames`] frames and [`data::MAX_FRAME_ENTRIES`]
//! allocations in all.

crate::internal! {
    chart;
    data;
}

use std::fmt::Write;
use std::path::Path;

use chart::{Frame, Series, Unit};
use data::Timeline;

use crate::answers::culprits::Culprits;
use crate::answers::instances::instances;
use crate::answers::summary::{snapshot_figures, summary, Summary};
use crate::error::{Error, Result};

/// How much of a long run the page holds.
#[derive(Clone, Copy, Debug)]
pub struct ReportOptions {
    /// Snapshots plotted per chart, at most (evenly spread).
    pub max_points: usize,
    /// Heap-layout frames, at most (plus the worst moments).
    pub max_frames: usize,
    /// The run is still going (`analyze --follow --report`): the page says so
    /// and reloads itself every this many seconds.
    pub live_reload: Option<u32>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { max_points: 2000, max_frames: 120, live_reload: None }
    }
}

/// The report of output folder `out`, as HTML text. With the folder's capture
/// (see [`crate::answers::capture::reopen`]), each leak suspect gets an
/// example path.
pub fn report(out: &Path, options: &ReportOptions, capture: Option<&crate::pipeline::Session>) -> Result<String> {
    let mut s = summary(out)?;
    if let (Some(session), Some(suspects)) = (capture, s.leak_suspects.as_mut()) {
        crate::answers::leaks::add_examples(out, suspects, session)?;
    }
    let (rows, _) = snapshot_figures(out)?;
    let t = data::timeline(&rows, options.max_points);
    let moments: Vec<(u64, String, Vec<u64>)> =
        s.culprits.iter().map(|c| (c.snapshot, c.moments.join(", ").replace('_', " "), culprit_addresses(c))).collect();
    let all = match instances(out) {
        Ok(all) => all,
        Err(Error::MissingInput { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let layout = data::layout(&all, &rows, &moments, options.max_frames);
    let json = serde_json::to_string(&layout).map_err(|e| Error::WrongInput {
        path: out.to_path_buf(),
        expected: "tables whose answers serialise",
        found: e.to_string(),
    })?;
    let mut page = String::with_capacity(json.len() + (1 << 20));
    head(&mut page, out, &s, options.live_reload);
    summary_section(&mut page, &s);
    charts(&mut page, out, &t)?;
    layout_section(&mut page, &layout);
    leaks_section(&mut page, &s);
    culprits_section(&mut page, &s);
    // `</` would end the script element early: JSON allows `<\/`.
    let _ =
        writeln!(page, r#"<script type="application/json" id="layout-data">{}</script>"#, json.replace("</", "<\\/"));
    let _ = writeln!(page, "<script>\n{}</script>\n</body>\n</html>", include_str!("report.js"));
    Ok(page)
}

fn culprit_addresses(c: &Culprits) -> Vec<u64> {
    let mut a: Vec<u64> = c.removals.iter().flat_map(|r| r.allocations.iter().map(|x| x.address)).collect();
    a.sort_unstable();
    a.dedup();
    a
}

/// Text for HTML (element content and attribute values).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn head(page: &mut String, out: &Path, s: &Summary, live_reload: Option<u32>) {
    let reload = live_reload.map_or(String::new(), |n| format!("<meta http-equiv=\"refresh\" content=\"{n}\">\n"));
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{reload}<title>heapvis report: {}</title>\n<style>\n{}</style>\n</head>\n<body>\n",
        escape(&out.display().to_string()),
        include_str!("report.css")
    );
    let _ = writeln!(page, "<h1>heapvis report</h1>");
    if let Some(n) = live_reload {
        let _ = writeln!(
            page,
            "<p class=\"live\" id=\"live\">Live: the run is following its dump; this page reloads every {n} s.</p>"
        );
    }
    let _ = writeln!(
        page,
        "<p class=\"sub\">{}: snapshots {}–{} ({} decoded{}), heapvis {}</p>",
        escape(&out.display().to_string()),
        s.first_snapshot,
        s.last_snapshot,
        s.snapshots,
        if s.bad_snapshots > 0 {
            format!(", <span class=\"bad\">{} not decoded or suspect</span>", s.bad_snapshots)
        } else {
            String::new()
        },
        env!("CARGO_PKG_VERSION")
    );
}

fn summary_section(page: &mut String, s: &Summary) {
    let _ = writeln!(page, "<h2 id=\"summary\">Summary</h2>\n<table class=\"figures\">");
    let row = |page: &mut String, name: &str, value: String, at: Option<u64>| {
        let at = at.map(|a| format!("at snapshot {a}")).unwrap_or_default();
        let _ = writeln!(page, "<tr><th>{name}</th><td class=\"num\">{value}</td><td>{at}</td></tr>");
    };
    row(page, "heap", format!("{} bytes", s.heap_bytes), None);
    row(page, "peak used", format!("{} bytes", s.peak_used_bytes.value), Some(s.peak_used_bytes.snapshot));
    row(page, "least free", format!("{} bytes", s.min_free_bytes.value), Some(s.min_free_bytes.snapshot));
    let l = &s.min_largest_free_bytes;
    row(page, "smallest largest free run", format!("{} bytes", l.value), Some(l.snapshot));
    row(page, "smallest request that failed there", format!("{} bytes", s.smallest_failing_request_bytes), None);
    if let Some(f) = &s.max_fragmentation {
        row(page, "worst fragmentation", format!("{:.2}", f.value), Some(f.snapshot));
    }
    row(page, "collections", format!("{} (from {})", s.collections, s.collections_from), None);
    let errors = s.memory_errors.as_ref().map_or("unknown".to_string(), |m| m.len().to_string());
    row(page, "MemoryErrors", errors, None);
    if let Some(t) = s.time_span_seconds {
        row(page, "time span", format!("{t:.1} s"), None);
    }
    let _ = writeln!(page, "</table>");
    if let Some(errors) = s.memory_errors.as_ref().filter(|m| !m.is_empty()) {
        let _ = writeln!(page, "<table class=\"memory-errors\"><tr><th>MemoryError at</th><th>asked</th><th>free</th><th>longest free run</th><th>cause</th></tr>");
        for m in errors {
            let asked = m.requested_bytes.map_or("?".to_string(), |r| r.to_string());
            let _ = writeln!(
                page,
                "<tr><td>snapshot {}</td><td class=\"num\">{asked}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                m.snapshot, m.free_bytes, m.largest_free_bytes, m.cause
            );
        }
        let _ = writeln!(page, "</table>");
    }
}

fn charts(page: &mut String, out: &Path, t: &Timeline) -> Result<()> {
    let frame = |id: &'static str, unit: Unit, label: &'static str| Frame {
        id,
        x: &t.x,
        x_axis: t.x_axis,
        y_unit: unit,
        y_label: label,
    };
    let col = |f: fn(&crate::answers::summary::SnapshotFigures) -> f64| t.rows.iter().map(f).collect::<Vec<f64>>();
    let series = |name: &str, color: &str, values: Vec<f64>| Series { name: name.into(), color: color.into(), values };
    let _ = writeln!(page, "<h2 id=\"charts\">Over the run</h2>");
    let _ = writeln!(page, "<p>Heap use ({} points{}).</p>", t.rows.len(), sampled_note(t));
    page.push_str(&chart::lines(
        &frame("chart-heap", Unit::Bytes, "bytes"),
        &[
            series("used", "#d62728", col(|r| r.used as f64)),
            series("free", "#1f77b4", col(|r| r.free as f64)),
            series("largest free run", "#ff7f0e", col(|r| r.largest_free as f64)),
        ],
    ));
    let _ = writeln!(page, "<p>Fragmentation: 1 − largest free run / free.</p>");
    page.push_str(&chart::lines(
        &frame("chart-fragmentation", Unit::Ratio, "fragmentation"),
        &[series("fragmentation", "#9467bd", col(|r| r.fragmentation.unwrap_or(0.0)))],
    ));
    match known(data::by_kind(out, t, 8))? {
        Some(kinds) => {
            let _ = writeln!(page, "<p>Allocated bytes by kind, stacked.</p>");
            page.push_str(&chart::stacked(&frame("chart-kinds", Unit::Bytes, "bytes"), &escaped(kinds)));
        }
        None => {
            let _ =
                writeln!(page, "<p>Allocated bytes by kind: not in this folder (no <code>type_histogram</code>).</p>");
        }
    }
    match data::by_owner(out, t, 6)? {
        Some(owners) => {
            let _ = writeln!(page, "<p>Retained bytes of the top owners (what each would free if it went).</p>");
            page.push_str(&chart::lines(&frame("chart-owners", Unit::Bytes, "retained bytes"), &escaped(owners)));
        }
        None => {
            let _ = writeln!(
                page,
                "<p>Retained bytes by owner: not in this folder (the run had <code>--no-retention</code> or <code>--metrics-only</code>).</p>"
            );
        }
    }
    match known(data::free_runs(out, t))? {
        Some(rows) => {
            let _ = writeln!(page, "<p>Free bytes by the size of the run they are in, over the run.</p>");
            page.push_str(&chart::heatmap(&frame("chart-free-runs", Unit::Bytes, "free run size"), &rows));
        }
        None => {
            let _ =
                writeln!(page, "<p>Free runs by size: not in this folder (no <code>free_run_histogram</code>).</p>");
        }
    }
    Ok(())
}

/// A chart's data, or `None` when the folder lacks its table.
fn known<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::MissingInput { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn escaped(mut series: Vec<Series>) -> Vec<Series> {
    series.iter_mut().for_each(|s| s.name = escape(&s.name));
    series
}

fn sampled_note(t: &Timeline) -> &'static str {
    match t.x_axis {
        chart::XAxis::Seconds => ", over host time from the sidecar",
        chart::XAxis::Snapshot => "",
    }
}

fn leaks_section(page: &mut String, s: &Summary) {
    let _ = writeln!(page, "<h2 id=\"leaks\">Leak suspects</h2>");
    let Some(suspects) = &s.leak_suspects else {
        let _ = writeln!(
            page,
            "<p>Unknown: no <code>retainers</code> table (the run had <code>--no-retention</code> or <code>--metrics-only</code>).</p>"
        );
        return;
    };
    let warm = s.warm_up_until.map(|w| format!(" after the warm-up (until snapshot {w})")).unwrap_or_default();
    if suspects.is_empty() {
        let _ = writeln!(page, "<p>No owner's retained bytes grow steadily{warm}.</p>");
        return;
    }
    let _ = writeln!(
        page,
        "<p>Owners whose retained bytes grow steadily{warm}, most first. The owner is the path that holds them.</p>"
    );
    let _ = writeln!(page, "<table class=\"leaks\"><tr><th>owner (path)</th><th>bytes per 1,000 snapshots</th><th>per hour</th><th>R²</th><th>retained</th><th>growing</th><th>example</th></tr>");
    for x in suspects {
        let hour = x.bytes_per_hour.map_or("?".to_string(), |h| format!("{h:.0}"));
        let kinds: Vec<String> =
            x.growing_kinds.iter().take(4).map(|(k, g)| format!("{} +{g:.0}", escape(k))).collect();
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code></td><td class=\"num\">+{:.0}</td><td class=\"num\">{hour}</td><td class=\"num\">{:.2}</td><td class=\"num\">{} → {}</td><td>{}</td><td>{}</td></tr>",
            escape(&x.owner),
            x.bytes_per_1000,
            x.r2,
            x.bytes_from,
            x.bytes_to,
            kinds.join(", "),
            x.example.as_ref().map_or(String::new(), |e| format!(
                "<code>{}</code> ({} at 0x{:08x}, snapshot {})",
                escape(&e.path),
                escape(&e.kind),
                e.address,
                e.snapshot
            ))
        );
    }
    let _ = writeln!(page, "</table>");
}

fn culprits_section(page: &mut String, s: &Summary) {
    let _ = writeln!(page, "<h2 id=\"culprits\">Fragmentation culprits</h2>");
    if let Some(why) = &s.culprits_unknown {
        let _ = writeln!(page, "<p>Unknown: {}.</p>", escape(why));
        return;
    }
    let all = &s.culprits;
    let _ = writeln!(page, "<p>At the worst moments: the neighbouring allocations whose going would make the longest free run. <em>Show</em> opens the moment in the heap layout below, culprits outlined in red.</p>");
    for c in all {
        let _ = writeln!(
            page,
            "<h3>Snapshot {} ({}) <button data-snapshot=\"{}\">show</button></h3>\n<p>{} bytes free, longest free run {} bytes.{}</p>",
            c.snapshot,
            escape(&c.moments.join(", ").replace('_', " ")),
            c.snapshot,
            c.free_bytes,
            c.largest_free_bytes,
            c.note.as_ref().map(|n| format!(" <span class=\"bad\">Note: {}</span>", escape(n))).unwrap_or_default()
        );
        let _ =
            writeln!(page, "<table class=\"culprits\"><tr><th>if these were gone</th><th>longest free run</th></tr>");
        for r in &c.removals {
            let who: Vec<String> = r
                .allocations
                .iter()
                .map(|a| {
                    let what =
                        a.name.as_ref().or(a.type_name.as_ref()).map(|n| format!(" {}", escape(n))).unwrap_or_default();
                    let held = a.holder.as_ref().map(|h| format!(", held by {}", escape(h))).unwrap_or_default();
                    format!(
                        "<code>0x{:08x}</code> {}{what} ({} bytes, {}{} snapshots old{held})",
                        a.address,
                        escape(&a.kind),
                        a.bytes,
                        if a.age_at_least { "at least " } else { "" },
                        a.age_snapshots
                    )
                })
                .collect();
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td class=\"num\">{} bytes</td></tr>",
                who.join("<br>"),
                r.largest_free_bytes_if_gone
            );
        }
        let _ = writeln!(page, "</table>");
    }
}

fn layout_section(page: &mut String, layout: &data::Layout) {
    let _ = writeln!(page, "<h2 id=\"layout-view\">Heap layout</h2>");
    let _ = writeln!(
        page,
        "<p>{} frames: the heap's {} blocks of {} bytes, 128 to a row, each allocation in its category's colour, the longest free run tinted blue. Drag the slider; hover a block for what it is.{}</p>",
        layout.frames.len(),
        layout.pool_blocks,
        layout.block_bytes,
        layout.note.as_ref().map(|n| format!(" ({})", escape(n))).unwrap_or_default()
    );
    let _ = write!(page, "<p>");
    for (name, color) in layout.categories.iter().zip(&layout.colors) {
        let _ = write!(page, "<span class=\"swatch\" style=\"background:{color}\"></span>{name}");
    }
    let _ = writeln!(page, "<span class=\"swatch\" style=\"background:#fcfcfc\"></span>free<span class=\"swatch\" style=\"background:#cfe2f7\"></span>longest free run<span class=\"swatch\" style=\"border-color:#d62728\"></span>culprit</p>");
    let _ = writeln!(page, "<input type=\"range\" id=\"frame\" min=\"0\" max=\"0\" value=\"0\" aria-label=\"frame\">");
    let _ = writeln!(page, "<p id=\"frame-caption\"></p>");
    let _ = writeln!(page, "<canvas id=\"layout\" width=\"898\" height=\"100\"></canvas>");
    let _ = writeln!(page, "<div id=\"tip\" hidden></div>");
}
