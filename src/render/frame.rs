//! One heap-layout frame per snapshot: the pool in memory order, column-major,
//! first block top-left, each allocation one outlined shape in its kind's
//! colour with its block edges shaded, free blocks as empty grid cells and the
//! longest free run outlined; column address labels above; a header with the
//! gc_info figures and a legend; below, a strip chart of free and largest-free
//! space over the whole dump, with y values, x ticks, the run's range shaded
//! and a cursor at this frame.
//!
//! Columns hold 64 blocks in the reference's arrangement (`heap_layout`); the
//! default arrangement picks the column height that makes the map about 16:9,
//! so a large heap fills the frame instead of making a strip.
//!
//! Everything that does not change between frames (legend, labels, chart,
//! empty grid) is drawn once into a background that each frame starts from.

use std::ops::Range;

use super::canvas::{Canvas, GLYPH};
use super::palette;
use crate::decode::{Category, HeapGeometry, SnapshotReport};

/// Blocks per column, as the reference lays them out.
pub const BLOCKS_PER_COLUMN: u64 = 64;
const MARGIN: u32 = 8;
const LINE: u32 = 12;
const CHART_HEIGHT: u32 = 64;
/// Room left of the chart for its y values.
const CHART_LEFT: u32 = 8 * GLYPH;
const MIN_WIDTH: u32 = 640;

/// Free and largest free space of one snapshot, in bytes, for the strip chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChartPoint {
    /// The snapshot.
    pub snapshot: u64,
    /// Its free bytes.
    pub free: u64,
    /// Its largest free run, in bytes.
    pub largest_free: u64,
}

/// How the pool's blocks are arranged in columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arrangement {
    /// Columns as tall as make the map about 16:9.
    #[default]
    Fill,
    /// 64 blocks per column, as the reference drew them.
    Reference,
}

/// What a run's frames look like.
#[derive(Clone, Debug)]
pub struct FrameStyle {
    /// Height of a block in pixels (its width is twice that).
    pub scale: u32,
    /// How the pool's blocks are arranged in columns.
    pub arrangement: Arrangement,
    /// Snapshots in the whole dump: the chart's x axis.
    pub dump_snapshots: u64,
    /// The snapshots this run renders, shaded on the chart.
    pub range: Range<u64>,
}

impl FrameStyle {
    /// A style for frames of `range` of a dump of `dump_snapshots`.
    pub fn new(scale: u32, range: Range<u64>, dump_snapshots: u64) -> Self {
        FrameStyle { scale, arrangement: Arrangement::Fill, dump_snapshots, range }
    }
}

/// Where everything sits in a frame; built once per run.
#[derive(Clone, Debug)]
pub struct FrameLayout {
    /// The frame's width in pixels.
    pub width: u32,
    /// The frame's height in pixels.
    pub height: u32,
    /// Pixel width and height of one block cell (grid line included).
    pub cell_w: u32,
    /// A block's height in pixels.
    pub cell_h: u32,
    /// Blocks in a column.
    pub per_column: u64,
    /// Top-left corner of block 0.
    pub map_x: u32,
    /// Where the block map starts (pixels from the top).
    pub map_y: u32,
    /// Where the header's text starts.
    pub header_y: u32,
    /// The strip chart's left edge.
    pub chart_x: u32,
    /// The strip chart's top edge.
    pub chart_y: u32,
    /// The strip chart's width.
    pub chart_w: u32,
    /// The strip chart's height.
    pub chart_h: u32,
    /// Blocks in the pool.
    pub blocks: u64,
    /// The chart's x axis: snapshots 0 to this, exclusive.
    dump_snapshots: u64,
    background: Canvas,
}

/// The header's two lines for one snapshot (also what tests read back).
pub fn header_lines(r: &SnapshotReport, run: &str) -> [String; 2] {
    let g = &r.gc_info;
    let bpb = r.geometry.bytes_per_block;
    let largest = g.max_free * bpb;
    let frag =
        if g.free > 0 { format!("{:.1}%", 100.0 * (1.0 - largest as f64 / g.free as f64)) } else { "-".to_string() };
    [
        format!("snapshot {}  {run}", r.index),
        format!("used {} B  free {} B  gc max free {} B  fragmentation {frag}", g.used, g.free, largest),
    ]
}

/// Blocks per column for `blocks` blocks arranged `a` (cells twice as wide as tall).
pub fn per_column(blocks: u64, a: Arrangement) -> u64 {
    match a {
        Arrangement::Reference => BLOCKS_PER_COLUMN,
        // columns·2 : per_column = 16 : 9, columns = blocks / per_column.
        Arrangement::Fill => (((blocks as f64 * 18.0 / 16.0).sqrt().ceil() as u64).next_multiple_of(8)).clamp(16, 4096),
    }
}

impl FrameLayout {
    /// The layout of frames of `geometry` in `style`, with the run's `chart`.
    pub fn new(geometry: &HeapGeometry, style: &FrameStyle, chart: &[ChartPoint]) -> Self {
        let scale = style.scale.clamp(2, 64);
        let (cell_w, cell_h) = (2 * scale, scale);
        let blocks = geometry.pool_blocks();
        let per_column = per_column(blocks, style.arrangement);
        let columns = blocks.div_ceil(per_column).max(1) as u32;
        let map_w = columns * cell_w + 1;
        let map_h = per_column as u32 * cell_h + 1;
        let width = (map_w + 2 * MARGIN).max(MIN_WIDTH).next_multiple_of(2);
        let header_y = MARGIN;
        let legend_y = header_y + 2 * LINE + 4;
        let per_row = ((width - 2 * MARGIN) / (18 * GLYPH)).max(1);
        let legend_rows = (Category::ALL.len() as u32 + 2).div_ceil(per_row);
        let labels_y = legend_y + legend_rows * LINE + 4;
        let map_y = labels_y + LINE;
        let chart_y = map_y + map_h + LINE + 8;
        let height = (chart_y + CHART_HEIGHT + LINE + MARGIN).next_multiple_of(2);
        let mut layout = FrameLayout {
            width,
            height,
            cell_w,
            cell_h,
            per_column,
            map_x: MARGIN,
            map_y,
            header_y,
            chart_x: MARGIN + CHART_LEFT,
            chart_y,
            chart_w: width - 2 * MARGIN - CHART_LEFT,
            chart_h: CHART_HEIGHT,
            blocks,
            dump_snapshots: style.dump_snapshots.max(1),
            background: Canvas::new(width, height, palette::BACKGROUND),
        };
        layout.draw_legend(legend_y, per_row);
        layout.draw_grid(geometry, labels_y);
        layout.draw_chart(chart, &style.range, geometry.pool_bytes());
        layout
    }

    /// Top-left pixel of block `b`'s cell (its grid line); the cell's interior
    /// starts one pixel right and down.
    pub fn block_origin(&self, b: u64) -> (u32, u32) {
        let col = (b / self.per_column) as u32;
        let row = (b % self.per_column) as u32;
        (self.map_x + col * self.cell_w, self.map_y + row * self.cell_h)
    }

    /// The chart's x for a snapshot of the dump.
    pub fn chart_x_of(&self, snapshot: u64) -> u32 {
        let span = self.dump_snapshots.saturating_sub(1).max(1);
        let i = snapshot.min(span);
        self.chart_x + (i * (self.chart_w as u64 - 1) / span) as u32
    }

    fn draw_legend(&mut self, legend_y: u32, per_row: u32) {
        let c = &mut self.background;
        let entries =
            Category::ALL.iter().map(|k| (k.name(), Some(*k))).chain([("free", None), ("longest free run", None)]);
        for (i, (name, kind)) in entries.enumerate() {
            let (row, col) = (i as u32 / per_row, i as u32 % per_row);
            let (x, y) = (MARGIN + col * 18 * GLYPH, legend_y + row * LINE);
            match (kind, name) {
                (Some(k), _) => {
                    c.fill_rect(x, y, 12, 8, palette::fill(k));
                    c.frame_rect(x, y, 12, 8, palette::OUTLINE);
                }
                (None, "free") => {
                    c.fill_rect(x, y, 12, 8, palette::FREE);
                    c.frame_rect(x, y, 12, 8, palette::GRID);
                }
                (None, _) => {
                    c.fill_rect(x, y, 12, 8, palette::FREE);
                    c.frame_rect(x, y, 12, 8, palette::CHART_LARGEST);
                }
            }
            c.text(x + 16, y, name, palette::TEXT);
        }
    }

    /// The empty heap, every block a free cell inside grid lines, and the
    /// address of the first block of every few columns above it.
    fn draw_grid(&mut self, geometry: &HeapGeometry, labels_y: u32) {
        for b in 0..self.blocks {
            let (x, y) = self.block_origin(b);
            let c = &mut self.background;
            c.frame_rect(x, y, self.cell_w + 1, self.cell_h + 1, palette::GRID);
            c.fill_rect(x + 1, y + 1, self.cell_w - 1, self.cell_h - 1, palette::FREE);
        }
        // A label is 10 glyphs; one every `every` columns with room between.
        let every = (11 * GLYPH).div_ceil(self.cell_w).max(1) as u64;
        let columns = self.blocks.div_ceil(self.per_column);
        for col in (0..columns).step_by(every as usize) {
            let (x, _) = self.block_origin(col * self.per_column);
            if x + 10 * GLYPH > self.width {
                break;
            }
            let address = geometry.block_address(col * self.per_column);
            self.background.vline(x, labels_y + LINE - 3, 3, palette::CHART_AXIS);
            self.background.text(x, labels_y, &format!("0x{address:08x}"), palette::TEXT);
        }
    }

    /// Free and largest free space over the whole dump: y values, x ticks, the
    /// run's range shaded.
    fn draw_chart(&mut self, chart: &[ChartPoint], range: &Range<u64>, pool_bytes: u64) {
        let (cx, cy, cw, ch) = (self.chart_x, self.chart_y, self.chart_w, self.chart_h);
        let (rx0, rx1) = (self.chart_x_of(range.start), self.chart_x_of(range.end.saturating_sub(1)));
        let c = &mut self.background;
        let label_y = cy - LINE;
        let x = c.text(cx, label_y, "free", palette::CHART_FREE);
        let x = c.text(x, label_y, " and ", palette::TEXT);
        let x = c.text(x, label_y, "gc max free", palette::CHART_LARGEST);
        let x = c.text(x, label_y, &format!(" over the dump (snapshots 0..{}); ", self.dump_snapshots), palette::TEXT);
        c.fill_rect(x, label_y, 12, 8, palette::CHART_RANGE);
        c.frame_rect(x, label_y, 12, 8, palette::CHART_AXIS);
        c.text(x + 16, label_y, "this run", palette::TEXT);
        c.fill_rect(cx, cy, cw, ch, palette::CHART_BG);
        c.fill_rect(rx0, cy, (rx1 - rx0 + 1).max(1), ch, palette::CHART_RANGE);
        c.hline(cx, cy + ch - 1, cw, palette::CHART_AXIS);
        c.vline(cx, cy, ch, palette::CHART_AXIS);
        let max = pool_bytes.max(1);
        for (v, y) in [(max, cy), (max / 2, cy + ch / 2 - 4), (0, cy + ch - 8)] {
            let text = bytes_label(v);
            let w = text.len() as u32 * GLYPH;
            c.text(cx.saturating_sub(w + 4), y, &text, palette::TEXT);
            c.hline(cx.saturating_sub(3), y.max(cy) + if v == 0 { 7 } else { 0 }, 3, palette::CHART_AXIS);
        }
        self.draw_x_ticks();
        let y_of = |v: u64| cy + ch - 1 - ((v.min(max) * (ch as u64 - 2)) / max) as u32;
        let xs: Vec<u32> = chart.iter().map(|p| self.chart_x_of(p.snapshot)).collect();
        let c = &mut self.background;
        for (series, colour) in [(0usize, palette::CHART_FREE), (1, palette::CHART_LARGEST)] {
            let mut prev: Option<(u32, u32)> = None;
            for (p, x) in chart.iter().zip(&xs) {
                let v = if series == 0 { p.free } else { p.largest_free };
                let (x, y) = (*x, y_of(v));
                match prev {
                    Some((px, py)) => {
                        let (lo, hi) = (py.min(y), py.max(y));
                        c.vline(x, lo, hi - lo + 1, colour);
                        if x > px + 1 {
                            c.hline(px, py, x - px, colour);
                        }
                    }
                    None => c.vline(x, y, 1, colour),
                }
                prev = Some((x, y));
            }
        }
    }

    /// Snapshot numbers under the chart, at round steps.
    fn draw_x_ticks(&mut self) {
        let last = self.dump_snapshots.saturating_sub(1);
        let raw = (last as f64 / 6.0).max(1.0);
        let p = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p) as u64;
        let y = self.chart_y + self.chart_h;
        let mut t = 0;
        while t <= last {
            let x = self.chart_x_of(t);
            let text = t.to_string();
            self.background.vline(x, y, 3, palette::CHART_AXIS);
            let w = text.len() as u32 * GLYPH;
            if x + w / 2 < self.width {
                self.background.text(x.saturating_sub(w / 2).max(self.chart_x), y + 4, &text, palette::TEXT);
            }
            t += step.max(1);
        }
    }

    /// Draws one snapshot.
    pub fn render(&self, r: &SnapshotReport, run: &str) -> Canvas {
        let mut c = self.background.clone();
        for b in &r.blocks {
            self.draw_allocation(&mut c, b.start_block, b.blocks, b.category);
        }
        // The longest free run (the first of equals): what the next large
        // request would get.
        let longest = r.free_runs.iter().reduce(|a, b| if b.blocks > a.blocks { b } else { a });
        if let Some(f) = longest {
            self.outline(&mut c, f.start_block, f.blocks, palette::CHART_LARGEST);
        }
        let [l1, l2] = header_lines(r, run);
        c.text(MARGIN, self.header_y, &l1, palette::TEXT);
        c.text(MARGIN, self.header_y + LINE, &l2, palette::TEXT);
        let x = self.chart_x_of(r.index);
        c.vline(x, self.chart_y, self.chart_h, palette::CURSOR);
        c
    }

    /// A frame for a snapshot that could not be decoded: the empty layout and the error.
    pub fn render_error(&self, index: u64, message: &str) -> Canvas {
        let mut c = self.background.clone();
        c.text(MARGIN, self.header_y, &format!("snapshot {index}"), palette::TEXT);
        c.text(MARGIN, self.header_y + LINE, &format!("error: {message}"), palette::TEXT);
        let x = self.chart_x_of(index);
        c.vline(x, self.chart_y, self.chart_h, palette::CURSOR);
        c
    }

    /// One allocation: an outlined shape per column it occupies, filled with its
    /// kind's colour, a shaded line at each block edge inside it.
    fn draw_allocation(&self, c: &mut Canvas, start: u64, blocks: u64, kind: Category) {
        for (b, n) in self.segments(start, blocks) {
            let (x, y) = self.block_origin(b);
            let h = n as u32 * self.cell_h;
            c.fill_rect(x + 1, y + 1, self.cell_w - 1, h - 1, palette::fill(kind));
            for edge in 1..n as u32 {
                c.hline(x + 1, y + edge * self.cell_h, self.cell_w - 1, palette::shade(kind));
            }
            c.frame_rect(x, y, self.cell_w + 1, h + 1, palette::OUTLINE);
        }
    }

    /// A run of blocks outlined in `colour`, a shape per column.
    fn outline(&self, c: &mut Canvas, start: u64, blocks: u64, colour: u8) {
        for (b, n) in self.segments(start, blocks) {
            let (x, y) = self.block_origin(b);
            c.frame_rect(x, y, self.cell_w + 1, n as u32 * self.cell_h + 1, colour);
        }
    }

    /// Blocks `start..start + blocks` cut at column ends: (first block, length).
    fn segments(&self, start: u64, blocks: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let end = start.saturating_add(blocks).min(self.blocks);
        let mut b = start;
        std::iter::from_fn(move || {
            if b >= end {
                return None;
            }
            let seg_end = end.min((b / self.per_column + 1) * self.per_column);
            let seg = (b, seg_end - b);
            b = seg_end;
            Some(seg)
        })
    }
}

/// `128K`, `19.5K`, `512`: a chart's y value, short (K = 1,024 bytes).
pub fn bytes_label(v: u64) -> String {
    if v < 1024 {
        v.to_string()
    } else if v.is_multiple_of(1024) {
        format!("{}K", v / 1024)
    } else {
        format!("{:.1}K", v as f64 / 1024.0)
    }
}
