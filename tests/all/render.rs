//! Frames and movies, checked by decoding what was written: pixel colours at the
//! computed positions of known blocks, empty cells for free runs, the header read
//! back from its pixels against the `snapshots` table, and the GIF/APNG/MP4 files
//! decoded with the gif and png crates and ffprobe.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use arrow::array::{Array, Float64Array, Int64Array};
use heapvis::decode::Category;
use heapvis::pipeline::{AnalyzeOptions, RenderOptions, Silent};
use heapvis::render::{Arrangement, Canvas, FrameLayout, FrameStyle};
use heapvis::synth::Board;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{capture, decode_all, session};

/// The reference's Graphviz colours (X11), written out independently of the palette.
fn x11(kind: Category) -> [u8; 3] {
    match kind.reference_colour() {
        "red" => [255, 0, 0],
        "yellow" => [255, 255, 0],
        "blue" => [0, 0, 255],
        "orange" => [255, 165, 0],
        "skyblue" => [135, 206, 235],
        "pink" => [255, 192, 203],
        "purple" => [160, 32, 240],
        "green" => [0, 255, 0],
        "tomato" => [255, 99, 71],
        "plum" => [221, 160, 221],
        "gold" => [255, 215, 0],
        "hotpink" => [255, 105, 180],
        "lightseagreen" => [32, 178, 170],
        "lightsalmon" => [255, 160, 122],
        "gray" => [190, 190, 190],
        other => panic!("no X11 value for {other}"),
    }
}

/// Decodes a PNG file to (width, height, palette indices, palette).
fn read_png(path: &Path) -> (u32, u32, Vec<u8>, Vec<[u8; 3]>) {
    let d = png::Decoder::new(std::io::BufReader::new(File::open(path).unwrap()));
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let palette: Vec<[u8; 3]> = r.info().palette.as_ref().unwrap().chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, palette)
}

fn render_options() -> RenderOptions {
    RenderOptions { frames: true, ..RenderOptions::default() }
}

/// Blocks per column of the default arrangement, worked out independently:
/// columns twice as wide as a block is tall, a map of 16:9 wants
/// `2·(blocks / per_column) / per_column = 16 / 9`, rounded up to 8.
fn fill_column(blocks: u64) -> u64 {
    let exact = (blocks as f64 * 9.0 * 2.0 / 16.0).sqrt();
    ((exact.ceil() as u64).div_ceil(8) * 8).max(16)
}

#[test]
fn frame_pixels_show_each_kind_where_its_block_is_and_free_runs_empty() {
    let c = capture(Board::Samd21, 260, 4, 0);
    let s = session(&c.inputs);
    let reports = decode_all(&s);
    let last = reports.last().unwrap();
    let blocks = last.geometry.pool_blocks();
    for (arrangement, per_column) in [(Arrangement::Reference, 64), (Arrangement::Fill, fill_column(blocks))] {
        let out = c.dir.path().join(format!("out-{arrangement:?}"));
        let options = AnalyzeOptions {
            render: Some(RenderOptions { arrangement, ..render_options() }),
            ..AnalyzeOptions::default()
        };
        s.analyze(&out, &options, &Silent).unwrap();
        let (w, h, pixels, palette) = read_png(&out.join(format!("frames/heap_layout{:06}.png", last.index)));
        // The documented layout: `per_column` blocks per column, first block
        // top-left, a block cell 2·scale wide and scale tall plus a grid line;
        // block 0 at (map_x, map_y).
        let style = FrameStyle { arrangement, ..FrameStyle::new(8, 0..260, 260) };
        let layout = FrameLayout::new(&last.geometry, &style, &[]);
        assert_eq!((w, h, layout.per_column), (layout.width, layout.height, per_column));
        let (cw, ch) = (16, 8);
        let cell = |b: u64| ((b / per_column) as u32 * cw + layout.map_x, (b % per_column) as u32 * ch + layout.map_y);
        let at = |(x, y): (u32, u32)| -> [u8; 3] { palette[pixels[(y * w + x) as usize] as usize] };
        let centre = |b: u64| at((cell(b).0 + cw / 2, cell(b).1 + ch / 2));
        let mut kinds_seen = 0;
        for kind in Category::ALL {
            if let Some(b) = last.blocks.iter().find(|b| b.category == kind) {
                for block in b.start_block..b.start_block + b.blocks {
                    assert_eq!(centre(block), x11(kind), "{kind:?} block {block} of allocation 0x{:08x}", b.address);
                }
                kinds_seen += 1;
            }
        }
        assert!(kinds_seen >= 10, "the snapshot shows most kinds ({kinds_seen})");
        // The longest free run: empty cells, outlined in the chart's colour
        // for the largest free run (its first cell's top edge, its last cell's
        // bottom edge).
        let free = last.free_runs.iter().reduce(|a, b| if b.blocks > a.blocks { b } else { a }).unwrap();
        for block in free.start_block..free.start_block + free.blocks {
            assert_eq!(centre(block), [252, 252, 252], "free block {block}");
        }
        let orange = palette[heapvis::render::palette::CHART_LARGEST as usize];
        let first = cell(free.start_block);
        assert_eq!(at((first.0 + cw / 2, first.1)), orange, "{arrangement:?}: the run's top edge");
        let end = cell(free.start_block + free.blocks - 1);
        assert_eq!(at((end.0 + cw / 2, end.1 + ch)), orange, "{arrangement:?}: the run's bottom edge");
    }
}

/// A SAMD51 heap fills a frame of about 16:9 in the default arrangement, and
/// the reference's 64-block columns remain an option.
#[test]
fn a_large_heap_fills_the_frame() {
    let c = capture(Board::Samd51, 3, 1, 0);
    let s = session(&c.inputs);
    let g = &decode_all(&s)[0].geometry;
    let fill = FrameLayout::new(g, &FrameStyle::new(4, 0..3, 3), &[]);
    let map_w = g.pool_blocks().div_ceil(fill.per_column) * 8;
    let map_h = fill.per_column * 4;
    let aspect = map_w as f64 / map_h as f64;
    assert!((1.5..2.0).contains(&aspect), "fill: {map_w}×{map_h}");
    let reference =
        FrameLayout::new(g, &FrameStyle { arrangement: Arrangement::Reference, ..FrameStyle::new(4, 0..3, 3) }, &[]);
    assert_eq!(reference.per_column, 64);
    let ref_w = g.pool_blocks().div_ceil(64) * 8;
    assert!(ref_w as f64 / (64.0 * 4.0) > 3.5 && reference.width > fill.width, "the reference's strip: {ref_w} wide");
}

/// The strip chart covers the whole dump whatever the range rendered: a run of
/// one snapshot draws the free-space curve across the chart, its range shaded
/// at the cursor, with y values and x ticks read back as text.
#[test]
fn the_strip_chart_covers_the_whole_dump_with_axes() {
    let c = capture(Board::Samd21, 200, 9, 0);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    let options = AnalyzeOptions {
        selection: "150..151".parse().unwrap(),
        render: Some(render_options()),
        ..AnalyzeOptions::default()
    };
    s.analyze(&out, &options, &Silent).unwrap();
    let (w, h, pixels, _) = read_png(&out.join("frames/heap_layout000150.png"));
    let g = &decode_all(&s)[0].geometry;
    let layout = FrameLayout::new(g, &FrameStyle::new(8, 150..151, 200), &[]);
    let canvas = Canvas { width: w, height: h, pixels };
    // (Where free and largest free are equal, the second curve covers the first.)
    let curves = [heapvis::render::palette::CHART_FREE, heapvis::render::palette::CHART_LARGEST];
    let columns_with_curve = (layout.chart_x..layout.chart_x + layout.chart_w)
        .filter(|&x| {
            (layout.chart_y..layout.chart_y + layout.chart_h)
                .any(|y| canvas.get(x, y).is_some_and(|p| curves.contains(&p)))
        })
        .count() as u32;
    assert!(
        columns_with_curve > layout.chart_w * 9 / 10,
        "the curve spans the dump: {columns_with_curve} of {}",
        layout.chart_w
    );
    let cursor = layout.chart_x_of(150);
    assert_eq!(canvas.get(cursor, layout.chart_y + 1), Some(heapvis::render::palette::CURSOR));
    // y values: the pool's size at the top; x ticks: 0 and round numbers.
    let top = canvas.read_text(
        layout.chart_x - 8 * 8 - 4 + (8 * 8 - 8 * heapvis::render::frame::bytes_label(g.pool_bytes()).len() as u32),
        layout.chart_y,
        6,
        heapvis::render::palette::TEXT,
    );
    assert!(top.starts_with(&heapvis::render::frame::bytes_label(g.pool_bytes())), "{top:?}");
    // Snapshots 0..=199 in about six steps: every 50, centred on its tick.
    for t in [0u64, 50, 100, 150] {
        let label = t.to_string();
        let x = layout.chart_x_of(t).saturating_sub(label.len() as u32 * 4).max(layout.chart_x);
        let text =
            canvas.read_text(x, layout.chart_y + layout.chart_h + 4, label.len(), heapvis::render::palette::TEXT);
        assert_eq!(text, label, "tick {t}");
    }
}

#[test]
fn frame_header_reads_back_as_the_snapshots_table_row() {
    let c = capture(Board::Samd21, 200, 6, 4);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    let mut r = render_options();
    r.step = 37;
    let options = AnalyzeOptions { render: Some(r), ..AnalyzeOptions::default() };
    s.analyze(&out, &options, &Silent).unwrap();
    let frames: Vec<_> = std::fs::read_dir(out.join("frames")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(frames.len(), 200usize.div_ceil(37), "every 37th snapshot");

    let [part] = &crate::common::table_files(&out, "snapshots")[..] else { panic!("one part") };
    let file = File::open(part).unwrap();
    let batches: Vec<_> =
        ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(|b| b.unwrap()).collect();
    let col = |name: &str| -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column_by_name(name).unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
            })
            .collect()
    };
    let frag: Vec<Option<f64>> = batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name("fragmentation").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i)))
        })
        .collect();
    let (snap, used, free, max_free) =
        (col("snapshot"), col("used_bytes"), col("free_bytes"), col("gc_max_free_bytes"));
    for i in (0..200).step_by(37) {
        let (w, h, pixels, _) = read_png(&out.join(format!("frames/heap_layout{i:06}.png")));
        let canvas = Canvas { width: w, height: h, pixels };
        let line1 = canvas.read_text(8, 8, 16, heapvis::render::palette::TEXT);
        let line2 = canvas.read_text(8, 20, 84, heapvis::render::palette::TEXT);
        assert!(line1.starts_with(&format!("snapshot {} ", snap[i])), "{line1:?}");
        let f = frag[i].map_or("-".to_string(), |f| format!("{:.1}%", 100.0 * f));
        let expected =
            format!("used {} B  free {} B  gc max free {} B  fragmentation {f}", used[i], free[i], max_free[i]);
        assert_eq!(line2.trim_end(), expected);
    }
}

#[test]
fn gif_and_apng_decode_back_to_the_frames() {
    let c = capture(Board::Samd21, 40, 2, 0);
    let s = session(&c.inputs);
    let out = c.dir.path().join("out");
    for movie in ["heap.gif", "heap.png"] {
        let mut r = render_options();
        r.movie = Some(out.join(movie));
        r.step = 3;
        let options = AnalyzeOptions { render: Some(r), ..AnalyzeOptions::default() };
        s.analyze(&out, &options, &Silent).unwrap();
    }
    let frame6 = read_png(&out.join("frames/heap_layout000006.png"));
    let rgb = |(_, _, px, pal): &(u32, u32, Vec<u8>, Vec<[u8; 3]>)| -> Vec<[u8; 3]> {
        px.iter().map(|i| pal[*i as usize]).collect()
    };

    // GIF: 14 frames (0, 3, ..., 39; none identical), the size, frame 2 = snapshot 6.
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    let mut d = opts.read_info(File::open(out.join("heap.gif")).unwrap()).unwrap();
    assert_eq!((d.width() as u32, d.height() as u32), (frame6.0, frame6.1));
    let palette: Vec<[u8; 3]> = d.global_palette().unwrap().chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let mut frames = Vec::new();
    while let Some(f) = d.read_next_frame().unwrap() {
        frames.push(f.buffer.iter().map(|i| palette[*i as usize]).collect::<Vec<_>>());
    }
    assert_eq!(frames.len(), 14);
    assert!(frames[2] == rgb(&frame6), "GIF frame 2 is snapshot 6");

    // APNG: declared and stored frame count, the size, frame 2 = snapshot 6.
    let dec = png::Decoder::new(std::io::BufReader::new(File::open(out.join("heap.png")).unwrap()));
    let mut r = dec.read_info().unwrap();
    assert_eq!(r.info().animation_control().unwrap().num_frames, 14);
    assert_eq!((r.info().width, r.info().height), (frame6.0, frame6.1));
    let pal: Vec<[u8; 3]> = r.info().palette.as_ref().unwrap().chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let mut n = 0;
    let mut third = Vec::new();
    while let Ok(info) = r.next_frame(&mut buf) {
        if n == 2 {
            third = buf[..info.buffer_size()].iter().map(|i| pal[*i as usize]).collect();
        }
        n += 1;
    }
    assert_eq!(n, 14);
    assert!(third == rgb(&frame6), "APNG frame 2 is snapshot 6");
}

#[test]
fn mp4_has_one_frame_per_rendered_snapshot() {
    let c = capture(Board::Samd21, 30, 3, 0);
    let out = c.dir.path().join("out");
    let movie = out.join("heap.mp4");
    let st = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .args([
            "analyze",
            c.dir.path().to_str().unwrap(),
            "-q",
            "-o",
            out.to_str().unwrap(),
            "--movie",
            movie.to_str().unwrap(),
            "--frame-step",
            "2",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&movie)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "15");
}

#[test]
fn mp4_without_ffmpeg_names_the_package_to_install() {
    let c = capture(Board::Samd21, 3, 3, 0);
    let out = c.dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .env("PATH", "")
        .args(["analyze", c.dir.path().to_str().unwrap(), "-q", "-o", out.to_str().unwrap(), "--movie", "x.mp4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ffmpeg") && err.contains("apt-get install ffmpeg"), "{err}");
    assert!(!out.join("snapshots").exists(), "fails before writing anything");
}

#[test]
fn ownership_graph_has_a_node_per_block_and_root_and_renders_with_dot() {
    let c = capture(Board::Samd21, 150, 5, 0);
    let s = session(&c.inputs);
    let r = decode_all(&s).pop().unwrap();
    let text = heapvis::render::dot::ownership_dot(&r);
    // One node per allocated block, one per distinct root name.
    let block_nodes = text.lines().filter(|l| l.trim_start().starts_with('b') && l.contains("[label=<")).count();
    assert_eq!(block_nodes, r.blocks.len());
    let roots: std::collections::BTreeSet<&str> =
        r.edges.iter().filter(|e| e.to_alloc_address.is_some()).filter_map(|e| e.root_name.as_deref()).collect();
    let root_nodes = text.lines().filter(|l| l.trim_start().starts_with('r') && l.contains("shape=box")).count();
    assert_eq!(root_nodes, roots.len());
    // Every dict key shows as a port of its table, and strings show their text.
    for e in r.edges.iter().filter(|e| e.map_key.is_some()) {
        assert!(
            text.contains(&format!("b{:08x}:w{} ->", e.from_address.unwrap(), e.from_word.unwrap())),
            "edge from key port"
        );
    }
    let s0 = r.strings.iter().find(|s| s.text.len() > 4).unwrap();
    assert!(text.contains(&s0.text[..4]));
    // Each node says what the block is, in the words of the tables' `kind`
    // (lists and modules too), and dark fills get white text.
    for b in &r.blocks {
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("b{:08x} [", b.address))).unwrap();
        assert!(line.contains(&format!("0x{:08x} {} {}B", b.address, b.kind, b.blocks * 16)), "{line}");
        let dark = matches!(b.category.reference_colour(), "red" | "blue" | "purple");
        assert_eq!(line.contains("fontcolor=\"white\""), dark, "{line}");
    }
    for kind in ["list", "module", "dict"] {
        assert!(r.blocks.iter().any(|b| b.kind == kind), "a {kind} in the graph");
    }
    // Graphviz renders it (CI installs graphviz): the SVG has every node.
    let svg = c.dir.path().join("g.svg");
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .args(["graph", c.dir.path().to_str().unwrap(), "--snapshot", "last", "-o", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stderr);
    let dot_path = c.dir.path().join("g.dot");
    assert!(
        said.contains(&format!("wrote {} and {}", dot_path.display(), svg.display())),
        "names the files it wrote: {said}"
    );
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(svg_text.matches("class=\"node\"").count(), r.blocks.len() + roots.len());
    assert!(c.dir.path().join("g.dot").is_file());
}

#[test]
fn a_writer_that_fails_mid_run_ends_the_run_with_its_error() {
    // The movie's encoder dies after a few frames (an `ffmpeg` that reads 20 MB
    // and exits): the writer stops there while workers are decoding runs ahead
    // of it. The run must end, with that error, not wait for the writer, and
    // publish nothing: no tables, no frames, no movie.
    let c = capture(Board::Samd21, 200, 4, 0);
    let bin = c.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("ffmpeg");
    std::fs::write(&fake, "#!/bin/sh\ncase \"$1\" in -version) exit 0;; esac\nhead -c 20000000 >/dev/null\nexit 1\n")
        .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for threads in ["1", "2", "4"] {
        let out = c.dir.path().join(format!("out{threads}"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_heapvis"))
            .args(["analyze", c.dir.path().to_str().unwrap(), "-q", "--frames", "--threads", threads, "-o"])
            .arg(&out)
            .arg("--movie")
            .arg(out.join("m.mp4"))
            .env("PATH", &path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{threads} thread(s): the run waits for a writer that has stopped");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{threads} thread(s): {err}");
        assert!(err.contains("m.mp4") || err.contains("ffmpeg"), "{threads} thread(s): {err}");
        let visible: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        let published =
            |n: &&std::ffi::OsString| !n.to_str().unwrap().starts_with('.') && *n != "heapvis-manifest.toml";
        assert!(!visible.iter().any(|n| published(&n)), "{threads} thread(s): nothing published: {visible:?}");
    }
}
