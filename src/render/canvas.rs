//! An indexed-colour canvas with the few drawing operations frames need: rectangles,
//! lines, and text in an embedded 8×8 bitmap font (font8x8, public domain), so text
//! looks the same on every machine and needs no system font.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Width and height of a glyph.
pub const GLYPH: u32 = 8;

impl Canvas {
    pub fn new(width: u32, height: u32, fill: u8) -> Self {
        Canvas { width, height, pixels: vec![fill; width as usize * height as usize] }
    }

    pub fn get(&self, x: u32, y: u32) -> Option<u8> {
        (x < self.width && y < self.height).then(|| self.pixels[(y * self.width + x) as usize])
    }

    /// Fills `w`×`h` at (`x`, `y`), clipped to the canvas.
    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, colour: u8) {
        let x1 = (x.saturating_add(w)).min(self.width);
        let y1 = (y.saturating_add(h)).min(self.height);
        if x >= x1 {
            return;
        }
        for row in y..y1 {
            let start = (row * self.width + x) as usize;
            self.pixels[start..start + (x1 - x) as usize].fill(colour);
        }
    }

    pub fn hline(&mut self, x: u32, y: u32, w: u32, colour: u8) {
        self.fill_rect(x, y, w, 1, colour);
    }

    pub fn vline(&mut self, x: u32, y: u32, h: u32, colour: u8) {
        self.fill_rect(x, y, 1, h, colour);
    }

    /// Outline of a rectangle.
    pub fn frame_rect(&mut self, x: u32, y: u32, w: u32, h: u32, colour: u8) {
        if w == 0 || h == 0 {
            return;
        }
        self.hline(x, y, w, colour);
        self.hline(x, y + h - 1, w, colour);
        self.vline(x, y, h, colour);
        self.vline(x + w - 1, y, h, colour);
    }

    /// Draws ASCII `text` with its top-left at (`x`, `y`); other characters as `?`.
    /// Returns the x just past the text.
    pub fn text(&mut self, x: u32, y: u32, text: &str, colour: u8) -> u32 {
        let mut cx = x;
        for ch in text.chars() {
            let code = if ch.is_ascii() { ch as usize } else { '?' as usize };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8u32 {
                    if bits >> col & 1 == 1 {
                        let (px, py) = (cx + col, y + row as u32);
                        if px < self.width && py < self.height {
                            self.pixels[(py * self.width + px) as usize] = colour;
                        }
                    }
                }
            }
            cx += GLYPH;
        }
        cx
    }

    /// Reads back text drawn with [`Canvas::text`] (for tests and for checking a
    /// frame without OCR): each 8×8 cell is matched against the font.
    pub fn read_text(&self, x: u32, y: u32, chars: usize, colour: u8) -> String {
        (0..chars as u32)
            .map(|i| {
                let mut cell = [0u8; 8];
                for (row, bits) in cell.iter_mut().enumerate() {
                    for col in 0..8u32 {
                        if self.get(x + i * GLYPH + col, y + row as u32) == Some(colour) {
                            *bits |= 1 << col;
                        }
                    }
                }
                (32u8..127)
                    .find(|c| font8x8::legacy::BASIC_LEGACY[*c as usize] == cell)
                    .map_or('\u{fffd}', |c| c as char)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_back() {
        let mut c = Canvas::new(200, 20, 0);
        let end = c.text(3, 5, "used 1234 B: 12.5%", 4);
        assert_eq!(end, 3 + 18 * 8);
        assert_eq!(c.read_text(3, 5, 18, 4), "used 1234 B: 12.5%");
    }

    #[test]
    fn drawing_is_clipped() {
        let mut c = Canvas::new(10, 10, 0);
        c.fill_rect(8, 8, 100, 100, 1);
        assert_eq!(c.get(9, 9), Some(1));
        assert_eq!(c.get(7, 7), Some(0));
        assert_eq!(c.get(10, 10), None);
        // Text and rectangles past the edge are cut, not a panic.
        c.text(7, 7, "WW", 2);
        c.fill_rect(20, 20, 5, 5, 3);
        assert_eq!(c.pixels.len(), 100);
    }
}
