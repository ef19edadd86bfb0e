//! Heap-layout frames and the fragmentation movie: an indexed canvas, the fixed
//! palette, the frame layout, and the encoders (PNG frames, GIF/APNG/MP4/WebM).

#[doc(hidden)]
pub mod canvas;
#[doc(hidden)]
pub mod dot;
#[doc(hidden)]
pub mod encode;
pub mod frame;
#[doc(hidden)]
pub mod palette;

pub use canvas::Canvas;
pub use encode::{open_movie, png_bytes, MovieFormat, MovieSpec, MovieWriter};
pub use frame::{Arrangement, ChartPoint, FrameLayout, FrameStyle};
