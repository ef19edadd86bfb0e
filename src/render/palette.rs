//! The fixed palette every frame is drawn in: the reference's Graphviz colour for
//! each kind (X11 values), a darker shade of each for block edges, and the UI colours.
//! Frames are indexed images, so GIF and indexed PNG need no quantisation.

use crate::decode::Category;

pub const BACKGROUND: u8 = 0;
pub const FREE: u8 = 1;
pub const GRID: u8 = 2;
pub const OUTLINE: u8 = 3;
pub const TEXT: u8 = 4;
pub const CHART_BG: u8 = 5;
pub const CHART_FREE: u8 = 6;
pub const CHART_LARGEST: u8 = 7;
pub const CURSOR: u8 = 8;
pub const CHART_AXIS: u8 = 9;
pub const CHART_RANGE: u8 = 10;
const KIND_BASE: u8 = 16;

const UI: [[u8; 3]; 11] = [
    [255, 255, 255], // background
    [252, 252, 252], // free block
    [214, 214, 214], // grid between free blocks
    [64, 64, 64],    // allocation outline
    [0, 0, 0],       // text
    [244, 244, 244], // chart background
    [30, 110, 200],  // chart: free
    [220, 80, 30],   // chart: largest free run
    [0, 0, 0],       // chart cursor
    [150, 150, 150], // chart axis
    [255, 243, 196], // chart: the run's selected range
];

/// X11 colour of the reference's Graphviz name for each kind.
pub fn kind_rgb(kind: Category) -> [u8; 3] {
    match kind {
        Category::Dict => [255, 0, 0],
        Category::Property => [255, 255, 0],
        Category::Map => [0, 0, 255],
        Category::Type => [255, 165, 0],
        Category::Tuple => [135, 206, 235],
        Category::Str => [255, 192, 203],
        Category::Bytearray => [160, 32, 240],
        Category::Function => [0, 255, 0],
        Category::QstrPool => [255, 99, 71],
        Category::Instance => [221, 160, 221],
        Category::MapTable => [255, 215, 0],
        Category::StringData => [255, 105, 180],
        Category::Bytecode => [32, 178, 170],
        Category::QstrChunk => [255, 160, 122],
        Category::Unknown => [190, 190, 190],
    }
}

fn kind_index(kind: Category) -> usize {
    Category::ALL.iter().position(|k| *k == kind).unwrap_or(Category::ALL.len() - 1)
}

/// Palette index of a kind's fill.
pub fn fill(kind: Category) -> u8 {
    KIND_BASE + 2 * kind_index(kind) as u8
}

/// Palette index of a kind's block-edge shade.
pub fn shade(kind: Category) -> u8 {
    fill(kind) + 1
}

/// The whole palette as RGB triples, index order.
pub fn rgb() -> Vec<[u8; 3]> {
    let mut p = vec![[255u8, 255, 255]; KIND_BASE as usize + 2 * Category::ALL.len()];
    p[..UI.len()].copy_from_slice(&UI);
    for k in Category::ALL {
        let c = kind_rgb(k);
        p[fill(k) as usize] = c;
        p[shade(k) as usize] = c.map(|v| (v as u32 * 7 / 10) as u8);
    }
    p
}
