//! Heap-layout frames and the fragmentation movie: an indexed canvas, the fixed
//! palette, the frame layout, and the encoders (PNG frames, GIF/APNG/MP4/WebM).

pub mod canvas;
pub mod dot;
pub mod encode;
pub mod frame;
pub mod palette;

pub use canvas::Canvas;
pub use encode::{open_movie, png_bytes, MovieFormat, MovieSpec, MovieWriter};
pub use frame::{Arrangement, ChartPoint, FrameLayout, FrameStyle};
