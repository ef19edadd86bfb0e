//! Frame encoders: one PNG per frame, and one movie writer per format behind the
//! [`MovieWriter`] trait — GIF and APNG written natively, MP4/WebM by streaming raw
//! frames into `ffmpeg` on a pipe. Each holds at most one frame, so memory stays
//! bounded however many frames a run has.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::canvas::Canvas;
use super::palette;
use crate::error::{Error, Result};

fn flat_palette() -> Vec<u8> {
    palette::rgb().into_iter().flatten().collect()
}

fn movie_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Movie { path: path.into(), message: message.into() }
}

/// An indexed PNG of one frame.
pub fn png_bytes(canvas: &Canvas) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(canvas.pixels.len() / 4);
    {
        let mut e = png::Encoder::new(&mut out, canvas.width, canvas.height);
        e.set_color(png::ColorType::Indexed);
        e.set_depth(png::BitDepth::Eight);
        e.set_palette(flat_palette());
        e.set_compression(png::Compression::Fast);
        let mut w = e.write_header().map_err(|e| movie_error(Path::new("frame.png"), e.to_string()))?;
        w.write_image_data(&canvas.pixels).map_err(|e| movie_error(Path::new("frame.png"), e.to_string()))?;
    }
    Ok(out)
}

/// Receives frames in order and writes one movie file.
pub trait MovieWriter: Send {
    fn push(&mut self, frame: &Canvas) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

/// What a movie is to contain, known before the first frame.
#[derive(Clone, Debug)]
pub struct MovieSpec {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
}

/// The movie format a path asks for, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MovieFormat {
    Gif,
    Apng,
    Mp4,
    WebM,
}

impl MovieFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("gif") => Ok(MovieFormat::Gif),
            Some("png") | Some("apng") => Ok(MovieFormat::Apng),
            Some("mp4") => Ok(MovieFormat::Mp4),
            Some("webm") => Ok(MovieFormat::WebM),
            _ => Err(movie_error(path, "unknown movie format: use .gif, .png (APNG), .mp4 or .webm")),
        }
    }

    /// Fails early, before any decoding, when the format needs a program that is
    /// not installed.
    pub fn check_available(self, path: &Path) -> Result<()> {
        if matches!(self, MovieFormat::Mp4 | MovieFormat::WebM) && !ffmpeg_available() {
            return Err(movie_error(
                path,
                "writing MP4/WebM needs `ffmpeg` on PATH (Debian/Ubuntu: apt-get install ffmpeg); .gif and .png (APNG) need nothing",
            ));
        }
        Ok(())
    }
}

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn open_movie(spec: &MovieSpec) -> Result<Box<dyn MovieWriter>> {
    let format = MovieFormat::from_path(&spec.path)?;
    format.check_available(&spec.path)?;
    Ok(match format {
        MovieFormat::Gif => Box::new(GifMovie::create(spec)?),
        MovieFormat::Apng => Box::new(ApngMovie::create(spec)?),
        MovieFormat::Mp4 | MovieFormat::WebM => Box::new(FfmpegMovie::spawn(spec, format)?),
    })
}

/// Animated GIF. Every frame is kept: frames are never identical (each carries its
/// snapshot number and the chart cursor), so there is nothing to collapse.
pub struct GifMovie {
    path: PathBuf,
    encoder: gif::Encoder<BufWriter<File>>,
    centiseconds_per_frame: u16,
}

impl GifMovie {
    fn create(spec: &MovieSpec) -> Result<Self> {
        let (w, h) = (u16::try_from(spec.width), u16::try_from(spec.height));
        let (Ok(w), Ok(h)) = (w, h) else {
            return Err(movie_error(
                &spec.path,
                "GIF frames are limited to 65535 pixels a side; use a smaller --scale",
            ));
        };
        let file = File::create(&spec.path).map_err(|e| Error::io(&spec.path, e))?;
        let mut encoder = gif::Encoder::new(BufWriter::new(file), w, h, &flat_palette())
            .map_err(|e| movie_error(&spec.path, e.to_string()))?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(|e| movie_error(&spec.path, e.to_string()))?;
        // GIF delays are in hundredths of a second; 2 is the shortest browsers honour.
        let centiseconds_per_frame = (100 / spec.fps.max(1)).clamp(2, u16::MAX as u32) as u16;
        Ok(GifMovie { path: spec.path.clone(), encoder, centiseconds_per_frame })
    }
}

impl MovieWriter for GifMovie {
    fn push(&mut self, frame: &Canvas) -> Result<()> {
        let f = gif::Frame {
            width: frame.width as u16,
            height: frame.height as u16,
            delay: self.centiseconds_per_frame,
            buffer: std::borrow::Cow::Borrowed(&frame.pixels),
            ..gif::Frame::default()
        };
        self.encoder.write_frame(&f).map_err(|e| movie_error(&self.path, e.to_string()))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let path = self.path.clone();
        let mut out = self.encoder.into_inner().map_err(|e| movie_error(&path, e.to_string()))?;
        out.flush().map_err(|e| Error::io(&path, e))
    }
}

/// Animated PNG (APNG), every frame kept (the frame count is declared up front).
pub struct ApngMovie {
    path: PathBuf,
    writer: png::Writer<BufWriter<File>>,
}

impl ApngMovie {
    fn create(spec: &MovieSpec) -> Result<Self> {
        let err = |e: png::EncodingError| movie_error(&spec.path, e.to_string());
        let file = File::create(&spec.path).map_err(|e| Error::io(&spec.path, e))?;
        let mut e = png::Encoder::new(BufWriter::new(file), spec.width, spec.height);
        e.set_color(png::ColorType::Indexed);
        e.set_depth(png::BitDepth::Eight);
        e.set_palette(flat_palette());
        e.set_compression(png::Compression::Fast);
        let frames =
            u32::try_from(spec.frames.max(1)).map_err(|_| movie_error(&spec.path, "too many frames for APNG"))?;
        e.set_animated(frames, 0).map_err(err)?;
        e.set_frame_delay(1, spec.fps.clamp(1, u16::MAX as u32) as u16).map_err(err)?;
        let writer = e.write_header().map_err(err)?;
        Ok(ApngMovie { path: spec.path.clone(), writer })
    }
}

impl MovieWriter for ApngMovie {
    fn push(&mut self, frame: &Canvas) -> Result<()> {
        self.writer.write_image_data(&frame.pixels).map_err(|e| movie_error(&self.path, e.to_string()))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let path = self.path.clone();
        self.writer.finish().map_err(|e| movie_error(&path, e.to_string()))
    }
}

/// MP4 (H.264) or WebM (VP9) through `ffmpeg`, fed raw RGB frames on stdin.
pub struct FfmpegMovie {
    path: PathBuf,
    child: Option<Child>,
    stdin: Option<BufWriter<ChildStdin>>,
    rgb: Vec<u8>,
    palette: Vec<[u8; 3]>,
}

impl FfmpegMovie {
    fn spawn(spec: &MovieSpec, format: MovieFormat) -> Result<Self> {
        let codec: &[&str] = match format {
            MovieFormat::WebM => {
                &["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "0", "-crf", "35"]
            }
            _ => &["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"],
        };
        let mut child = Command::new("ffmpeg")
            .args(["-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{}x{}", spec.width, spec.height), "-r", &spec.fps.max(1).to_string(), "-i", "-"])
            .args(codec)
            .args(["-pix_fmt", "yuv420p"])
            .arg(&spec.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| movie_error(&spec.path, format!("cannot start ffmpeg: {e}")))?;
        let stdin = child.stdin.take().map(|s| BufWriter::with_capacity(1 << 20, s));
        Ok(FfmpegMovie { path: spec.path.clone(), child: Some(child), stdin, rgb: Vec::new(), palette: palette::rgb() })
    }
}

impl MovieWriter for FfmpegMovie {
    fn push(&mut self, frame: &Canvas) -> Result<()> {
        self.rgb.clear();
        self.rgb.extend(frame.pixels.iter().flat_map(|i| self.palette.get(*i as usize).copied().unwrap_or([0; 3])));
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        stdin.write_all(&self.rgb).map_err(|e| movie_error(&self.path, format!("ffmpeg stopped reading: {e}")))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        if let Some(mut s) = self.stdin.take() {
            s.flush().map_err(|e| movie_error(&self.path, format!("ffmpeg stopped reading: {e}")))?;
        }
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        let out = child.wait_with_output().map_err(|e| Error::io(&self.path, e))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(movie_error(&self.path, format!("ffmpeg failed: {}", msg.lines().last().unwrap_or(""))));
        }
        Ok(())
    }
}
