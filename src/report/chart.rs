//! Charts as SVG text, drawn by heapvis itself (no plotting library, no
//! script): lines, stacked areas and a heat map, each with axes, ticks and
//! units. Every series is one `<polyline class="series">` with a point per
//! value, so a reader (and the browser test) can count what was drawn.

use std::fmt::Write;

/// Plot area and margins, in SVG units.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

/// What the y values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// 0 to 1.
    Ratio,
    Count,
}

/// What the x values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Snapshot,
    /// Host seconds since the first snapshot.
    Seconds,
}

/// One line or area.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub color: String,
    pub values: Vec<f64>,
}

/// A chart's frame: where it is, what its axes say.
pub struct Frame<'a> {
    pub id: &'a str,
    pub x: &'a [f64],
    pub x_axis: XAxis,
    pub y_unit: Unit,
    pub y_label: &'a str,
}

/// Lines over x.
pub fn lines(f: &Frame, series: &[Series]) -> String {
    let top = series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    let mut svg = open(f, top);
    for (k, s) in series.iter().enumerate() {
        polyline(&mut svg, f, top, s, &s.values);
        legend(&mut svg, k, &s.name, &s.color);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Areas stacked in order, the first at the bottom.
pub fn stacked(f: &Frame, series: &[Series]) -> String {
    let n = f.x.len();
    let mut sums = vec![0.0; n];
    let mut tops = Vec::with_capacity(series.len());
    for s in series {
        let below = sums.clone();
        for (sum, v) in sums.iter_mut().zip(&s.values) {
            *sum += v;
        }
        tops.push((below, sums.clone()));
    }
    let top = sums.iter().copied().fold(0.0, f64::max);
    let mut svg = open(f, top);
    for (k, (s, (below, above))) in series.iter().zip(&tops).enumerate() {
        let mut points: Vec<String> = (0..n).map(|i| point(f, top, f.x[i], above[i])).collect();
        points.extend((0..n).rev().map(|i| point(f, top, f.x[i], below[i])));
        let _ = writeln!(
            svg,
            r#"<polygon class="area" fill="{}" fill-opacity="0.55" stroke="none" points="{}"/>"#,
            s.color,
            points.join(" ")
        );
        polyline(&mut svg, f, top, s, above);
        legend(&mut svg, k, &s.name, &s.color);
    }
    svg.push_str("</svg>\n");
    svg
}

/// A heat map: one column per x, one row per bucket (`rows`: label and a
/// value per x), darker for more.
pub fn heatmap(f: &Frame, rows: &[(String, Vec<f64>)]) -> String {
    let most = rows.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg class="chart heatmap" id="{}" viewBox="0 0 {WIDTH} {HEIGHT}" data-columns="{}" role="img">"#,
        f.id,
        f.x.len()
    );
    x_axis(&mut svg, f);
    let row_h = h / rows.len().max(1) as f64;
    let (lo, hi) = x_range(f.x);
    let col_w = w / f.x.len().max(1) as f64;
    for (r, (label, values)) in rows.iter().enumerate() {
        // The smallest runs at the bottom.
        let y = TOP + h - (r + 1) as f64 * row_h;
        let _ = writeln!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            LEFT - 6.0,
            y + row_h / 2.0 + 4.0
        );
        for (i, v) in values.iter().enumerate().filter(|(_, v)| **v > 0.0) {
            let x = LEFT + (f.x[i] - lo) / (hi - lo) * (w - col_w);
            let shade = 0.15 + 0.85 * (v / most).sqrt();
            let _ = writeln!(
                svg,
                r#"<rect data-x="{i}" x="{x:.1}" y="{y:.1}" width="{:.2}" height="{:.1}" fill="rgb(30,110,200)" fill-opacity="{shade:.3}"><title>{}</title></rect>"#,
                col_w.max(0.5),
                row_h - 1.0,
                format_value(Unit::Bytes, *v)
            );
        }
    }
    y_label(&mut svg, f.y_label);
    let _ = writeln!(
        svg,
        r#"<text class="legend" x="{:.1}" y="{:.1}">darker: more bytes free</text>"#,
        WIDTH - RIGHT + 12.0,
        TOP + 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text class="legend" x="{:.1}" y="{:.1}">in runs of that size</text>"#,
        WIDTH - RIGHT + 12.0,
        TOP + 28.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The SVG's opening, its axes and grid.
fn open(f: &Frame, top: f64) -> String {
    let mut svg = String::new();
    let _ = writeln!(svg, r#"<svg class="chart" id="{}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">"#, f.id);
    x_axis(&mut svg, f);
    let h = HEIGHT - TOP - BOTTOM;
    for t in ticks_in(0.0, nice_top(top, f.y_unit), 5, f.y_unit) {
        let y = TOP + h - t / nice_top(top, f.y_unit) * h;
        let _ =
            writeln!(svg, r##"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/>"##, WIDTH - RIGHT);
        let _ = writeln!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            format_value(f.y_unit, t)
        );
    }
    y_label(&mut svg, f.y_label);
    svg
}

/// The y axis' label, turned along it.
fn y_label(svg: &mut String, label: &str) {
    let mid = TOP + (HEIGHT - TOP - BOTTOM) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text class="axis-label" x="14" y="{mid:.1}" transform="rotate(-90 14 {mid:.1})" text-anchor="middle">{label}</text>"#
    );
}

fn x_axis(svg: &mut String, f: &Frame) {
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let (lo, hi) = x_range(f.x);
    let _ = writeln!(
        svg,
        r#"<line class="axis" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/>"#,
        LEFT + w,
        TOP + h,
        TOP + h
    );
    let _ = writeln!(svg, r#"<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}"/>"#, TOP + h);
    for t in ticks(lo, hi, 8) {
        let x = LEFT + (t - lo) / (hi - lo) * w;
        let _ = writeln!(
            svg,
            r#"<line class="axis" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}"/>"#,
            TOP + h,
            TOP + h + 5.0
        );
        let _ = writeln!(
            svg,
            r#"<text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + h + 18.0,
            format_x(f.x_axis, t)
        );
    }
    let label = match f.x_axis {
        XAxis::Snapshot => "snapshot",
        XAxis::Seconds => "time since the first snapshot",
    };
    let _ = writeln!(
        svg,
        r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
        LEFT + w / 2.0,
        HEIGHT - 6.0
    );
}

fn polyline(svg: &mut String, f: &Frame, top: f64, s: &Series, values: &[f64]) {
    let points: Vec<String> = f.x.iter().zip(values).map(|(x, y)| point(f, top, *x, *y)).collect();
    let _ = writeln!(
        svg,
        r#"<polyline class="series" data-series="{}" fill="none" stroke="{}" stroke-width="1.6" points="{}"/>"#,
        s.name,
        s.color,
        points.join(" ")
    );
}

/// Legend text longer than this is cut, whole in its tooltip.
const LEGEND_CHARS: usize = 22;

fn legend(svg: &mut String, k: usize, name: &str, color: &str) {
    let y = TOP + 8.0 + k as f64 * 18.0;
    let x = WIDTH - RIGHT + 12.0;
    let shown: String = if name.chars().count() > LEGEND_CHARS {
        name.chars().take(LEGEND_CHARS - 1).chain(['…']).collect()
    } else {
        name.to_string()
    };
    let _ = writeln!(svg, r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{color}"/>"#, y - 10.0);
    let _ = writeln!(svg, r#"<text class="legend" x="{:.1}" y="{y:.1}"><title>{name}</title>{shown}</text>"#, x + 18.0);
}

fn point(f: &Frame, top: f64, x: f64, y: f64) -> String {
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let (lo, hi) = x_range(f.x);
    let top = nice_top(top, f.y_unit);
    let px = LEFT + (x - lo) / (hi - lo) * w;
    let py = TOP + h - (y / top).clamp(0.0, 1.0) * h;
    format!("{px:.1},{py:.1}")
}

/// The x values' span (never empty, so one snapshot still has an axis).
fn x_range(x: &[f64]) -> (f64, f64) {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    }
}

/// The y axis' top: the largest value rounded up to a tick (1 for ratios).
fn nice_top(top: f64, unit: Unit) -> f64 {
    if unit == Unit::Ratio {
        return 1.0;
    }
    if top <= 0.0 {
        return 1.0;
    }
    let step = step_for(top / 5.0, unit);
    (top / step).ceil() * step
}

/// A round step of at least `raw`: in bytes, round in KiB or MiB (4 KiB, not
/// 5,000 bytes).
fn step_for(raw: f64, unit: Unit) -> f64 {
    let scale = match unit {
        Unit::Bytes if raw >= 512.0 * 1024.0 => 1024.0 * 1024.0,
        Unit::Bytes if raw >= 512.0 => 1024.0,
        _ => 1.0,
    };
    nice_step(raw / scale) * scale
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1e-12).log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

/// Round ticks from `lo` to `hi`, about `n` of them.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    ticks_in(lo, hi, n, Unit::Count)
}

/// The same, round in `unit`.
fn ticks_in(lo: f64, hi: f64, n: usize, unit: Unit) -> Vec<f64> {
    // (Also when either is NaN.)
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let step = step_for((hi - lo) / n.max(1) as f64, unit);
    let first = (lo / step).ceil() * step;
    (0..=n * 3).map(|k| first + k as f64 * step).take_while(|t| *t <= hi + step * 1e-9).collect()
}

/// A y value as its unit says: `12 KiB`, `0.35`, `1,200`.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ratio => format!("{v:.2}"),
        Unit::Count => format!("{v:.0}"),
        Unit::Bytes if v >= 1024.0 * 1024.0 => trim(format!("{:.1}", v / 1024.0 / 1024.0)) + " MiB",
        Unit::Bytes if v >= 1024.0 => trim(format!("{:.1}", v / 1024.0)) + " KiB",
        Unit::Bytes => format!("{v:.0} B"),
    }
}

/// `20.0` as `20`.
fn trim(s: String) -> String {
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

fn format_x(axis: XAxis, t: f64) -> String {
    match axis {
        XAxis::Snapshot => format!("{t:.0}"),
        XAxis::Seconds if t >= 3600.0 => format!("{:.1} h", t / 3600.0),
        XAxis::Seconds if t >= 60.0 => format!("{:.1} min", t / 60.0),
        XAxis::Seconds => format!("{t:.1} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 100.0, 5), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(3.0, 17.0, 3), [5.0, 10.0, 15.0]);
        // Bytes step in whole KiB: 19,968 bytes tops at 20 KiB, ticked every 5 KiB.
        assert_eq!(nice_top(19_968.0, Unit::Bytes), 20_480.0);
        assert_eq!(ticks_in(0.0, 20_480.0, 5, Unit::Bytes)[1], 5120.0);
        assert_eq!(format_value(Unit::Bytes, 20_480.0), "20 KiB");
        assert_eq!(format_value(Unit::Bytes, 1536.0), "1.5 KiB");
    }

    #[test]
    fn a_series_has_a_point_per_value() {
        let x = [0.0, 1.0, 2.0, 5.0];
        let f = Frame { id: "c", x: &x, x_axis: XAxis::Snapshot, y_unit: Unit::Bytes, y_label: "bytes" };
        let s = Series { name: "used".into(), color: "#000".into(), values: vec![1.0, 2.0, 3.0, 4.0] };
        let svg = lines(&f, std::slice::from_ref(&s));
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 4);
        // A single snapshot still draws (an axis around it, one point).
        let one = Frame { x: &x[..1], ..f };
        assert!(lines(&one, &[Series { values: vec![7.0], ..s }]).contains("points=\""));
    }
}
