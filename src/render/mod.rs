//! Heap-layout frames and the fragmentation movie: an indexed canvas, the fixed
//! palette, the frame layout, and the encoders (PNG frames, GIF/APNG/MP4/WebM).

pub mod frame;
crate::internal! {
    canvas;
    dot;
    encode;
    palette;
}

pub use frame::{Arrangement, ChartPoint, FrameLayout, FrameStyle};
crate::internal_use!(
    canvas::Canvas,
    encode::open_movie,
    encode::png_bytes,
    encode::MovieFormat,
    encode::MovieSpec,
    encode::MovieWriter,
);
