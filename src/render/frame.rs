//! One heap-layout frame per snapshot: the pool in memory order, column-major, 64
//! blocks per column, first block top-left (the reference's heap_layout), each
//! allocation one outlined shape in its kind's colour with its block edges shaded,
//! free blocks as empty grid cells; above it a header with the gc_info figures and a
//! legend, below it a strip chart of free and largest-free space over the whole run
//! with a cursor at this frame.
//!
//! Everything that does not change between frames (legend, chart, empty grid) is
//! drawn once into a background that each frame starts from.

use super::canvas::{Canvas, GLYPH};
use super::palette;
use crate::decode::{Category, HeapGeometry, SnapshotReport};

/// Blocks per column, as the reference lays them out.
pub const BLOCKS_PER_COLUMN: u64 = 64;
const MARGIN: u32 = 8;
const LINE: u32 = 12;
const CHART_HEIGHT: u32 = 64;
const MIN_WIDTH: u32 = 640;

/// Free and largest free space of one snapshot, in bytes, for the strip chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChartPoint {
    pub snapshot: u64,
    pub free: u64,
    pub largest_free: u64,
}

/// Where everything sits in a frame; built once per run.
#[derive(Clone, Debug)]
pub struct FrameLayout {
    pub width: u32,
    pub height: u32,
    /// Pixel width and height of one block cell (grid line included).
    pub cell_w: u32,
    pub cell_h: u32,
    /// Top-left corner of block 0.
    pub map_x: u32,
    pub map_y: u32,
    pub header_y: u32,
    pub chart_x: u32,
    pub chart_y: u32,
    pub chart_w: u32,
    pub chart_h: u32,
    pub blocks: u64,
    first_snapshot: u64,
    points: u64,
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

impl FrameLayout {
    /// `scale` is the height of a block in pixels (its width is twice that).
    pub fn new(geometry: &HeapGeometry, scale: u32, chart: &[ChartPoint]) -> Self {
        let scale = scale.clamp(2, 64);
        let (cell_w, cell_h) = (2 * scale, scale);
        let blocks = geometry.pool_blocks();
        let columns = blocks.div_ceil(BLOCKS_PER_COLUMN).max(1) as u32;
        let map_w = columns * cell_w + 1;
        let map_h = BLOCKS_PER_COLUMN as u32 * cell_h + 1;
        let width = (map_w + 2 * MARGIN).max(MIN_WIDTH).next_multiple_of(2);
        let header_y = MARGIN;
        let legend_y = header_y + 2 * LINE + 4;
        let per_row = ((width - 2 * MARGIN) / (16 * GLYPH)).max(1);
        let legend_rows = (Category::ALL.len() as u32).div_ceil(per_row);
        let map_y = legend_y + legend_rows * LINE + 8;
        let chart_y = map_y + map_h + LINE + 8;
        let height = (chart_y + CHART_HEIGHT + MARGIN).next_multiple_of(2);
        let mut layout = FrameLayout {
            width,
            height,
            cell_w,
            cell_h,
            map_x: MARGIN,
            map_y,
            header_y,
            chart_x: MARGIN,
            chart_y,
            chart_w: width - 2 * MARGIN,
            chart_h: CHART_HEIGHT,
            blocks,
            first_snapshot: chart.first().map_or(0, |p| p.snapshot),
            points: chart.len() as u64,
            background: Canvas::new(width, height, palette::BACKGROUND),
        };
        layout.draw_background(legend_y, per_row, chart, geometry.pool_bytes());
        layout
    }

    /// Top-left pixel of block `b`'s cell (its grid line); the cell's interior
    /// starts one pixel right and down.
    pub fn block_origin(&self, b: u64) -> (u32, u32) {
        let col = (b / BLOCKS_PER_COLUMN) as u32;
        let row = (b % BLOCKS_PER_COLUMN) as u32;
        (self.map_x + col * self.cell_w, self.map_y + row * self.cell_h)
    }

    /// The chart's x for a snapshot of the run.
    pub fn chart_x_of(&self, snapshot: u64) -> u32 {
        let i = snapshot.saturating_sub(self.first_snapshot).min(self.points.saturating_sub(1));
        let span = self.points.saturating_sub(1).max(1);
        self.chart_x + (i * (self.chart_w as u64 - 1) / span) as u32
    }

    fn draw_background(&mut self, legend_y: u32, per_row: u32, chart: &[ChartPoint], pool_bytes: u64) {
        let c = &mut self.background;
        // Legend.
        for (i, k) in Category::ALL.iter().enumerate() {
            let (row, col) = (i as u32 / per_row, i as u32 % per_row);
            let x = MARGIN + col * 16 * GLYPH;
            let y = legend_y + row * LINE;
            c.fill_rect(x, y, 12, 8, palette::fill(*k));
            c.frame_rect(x, y, 12, 8, palette::OUTLINE);
            c.text(x + 16, y, k.name(), palette::TEXT);
        }
        // Empty heap: every block a free cell inside grid lines.
        for b in 0..self.blocks {
            let col = (b / BLOCKS_PER_COLUMN) as u32;
            let row = (b % BLOCKS_PER_COLUMN) as u32;
            let (x, y) = (self.map_x + col * self.cell_w, self.map_y + row * self.cell_h);
            c.frame_rect(x, y, self.cell_w + 1, self.cell_h + 1, palette::GRID);
            c.fill_rect(x + 1, y + 1, self.cell_w - 1, self.cell_h - 1, palette::FREE);
        }
        // Strip chart.
        let label_y = self.chart_y - LINE;
        let x = c.text(self.chart_x, label_y, "free", palette::CHART_FREE);
        let x = c.text(x, label_y, " and ", palette::TEXT);
        let x = c.text(x, label_y, "gc max free", palette::CHART_LARGEST);
        if let (Some(a), Some(b)) = (chart.first(), chart.last()) {
            c.text(x, label_y, &format!(" over snapshots {}..={}", a.snapshot, b.snapshot), palette::TEXT);
        }
        c.fill_rect(self.chart_x, self.chart_y, self.chart_w, self.chart_h, palette::CHART_BG);
        c.hline(self.chart_x, self.chart_y + self.chart_h - 1, self.chart_w, palette::CHART_AXIS);
        let max = pool_bytes.max(1);
        let (chart_y, chart_h) = (self.chart_y, self.chart_h);
        let y_of = |v: u64| chart_y + chart_h - 1 - ((v.min(max) * (chart_h as u64 - 2)) / max) as u32;
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

    /// Draws one snapshot.
    pub fn render(&self, r: &SnapshotReport, run: &str) -> Canvas {
        let mut c = self.background.clone();
        for b in &r.blocks {
            self.draw_allocation(&mut c, b.start_block, b.blocks, b.category);
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
        let end = (start + blocks).min(self.blocks);
        let mut b = start;
        while b < end {
            let col_end = ((b / BLOCKS_PER_COLUMN) + 1) * BLOCKS_PER_COLUMN;
            let seg_end = end.min(col_end);
            let (x, y) = self.block_origin(b);
            let h = (seg_end - b) as u32 * self.cell_h;
            c.fill_rect(x + 1, y + 1, self.cell_w - 1, h - 1, palette::fill(kind));
            for edge in 1..(seg_end - b) as u32 {
                c.hline(x + 1, y + edge * self.cell_h, self.cell_w - 1, palette::shade(kind));
            }
            c.frame_rect(x, y, self.cell_w + 1, h + 1, palette::OUTLINE);
            b = seg_end;
        }
    }
}
