//! `heapvis report`, opened in a real browser: headless Chromium (Debian's)
//! loads the page from disk, runs its script, and the DOM it leaves is held to
//! DuckDB's reading of the same tables: a chart point per snapshot, the heap
//! layout's allocations and longest free run at a frame, and what hovering a
//! block says. No console error, nothing loaded from the network, and a
//! screenshot that decodes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::duck;

fn chromium() -> String {
    std::env::var("HEAPVIS_CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

/// Runs headless Chromium on `url` with `args`; its stdout and stderr.
fn browse(args: &[&str], url: &str) -> (String, String) {
    let o = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (Debian's `chromium`; `make test-deps` installs it)");
    assert!(o.status.success(), "chromium: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)).unwrap_or_else(|| panic!("{v}"))
}

/// The value of attribute `name` in the first tag of `dom` that has `marker`.
fn attribute(dom: &str, marker: &str, name: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let tag = &dom[dom[..at].rfind('<')?..at + dom[at..].find('>')?];
    let v = tag.split(&format!(" {name}=\"")).nth(1)?;
    Some(v[..v.find('"')?].to_string())
}

/// A leaking busy capture with its sidecar, analysed, and its report.
fn reported() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (dir, out) = crate::common::leaking_busy(1800, 11, true);
    let page = dir.path().join("report.html");
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis")).arg("report").arg(&out).arg("-o").arg(&page).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, out, page)
}

fn url(page: &Path, hash: &str) -> String {
    format!("file://{}{hash}", page.display())
}

#[test]
fn the_report_opens_in_a_browser_and_draws_what_the_tables_hold() {
    let (dir, out, page) = reported();
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing fetched from anywhere.
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import", "src=\"//"] {
        assert!(!html.contains(fetch), "the page loads {fetch}…");
    }
    let snapshots =
        u(&duck("select count(*) from read_parquet('{d}/snapshots/*.parquet') where status = 'ok'", &out)[0][0]);
    let (dom, log) = browse(&["--dump-dom"], &url(&page, "#probe=4:0"));
    assert!(dom.contains("<body data-ready=\"1\""), "the script ran to its end");
    assert!(!dom.contains("data-errors="), "a script error: {:?}", attribute(&dom, "<body", "data-errors"));
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "console: {console:#?}");

    // A point per snapshot in every series of every chart.
    let mut series = 0;
    for chunk in dom.split("<polyline class=\"series\"").skip(1) {
        let points = chunk.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count() as u64, snapshots, "{}", &chunk[..80]);
        series += 1;
    }
    assert!(series >= 3 + 1 + 3 + 2, "heap (3), fragmentation, kinds, owners: {series} series");
    for id in ["chart-heap", "chart-fragmentation", "chart-kinds", "chart-owners", "chart-free-runs"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert_eq!(attribute(&dom, "id=\"chart-free-runs\"", "data-columns").unwrap().parse::<u64>().unwrap(), snapshots);
    let columns: std::collections::BTreeSet<&str> =
        dom.split("<rect data-x=\"").skip(1).map(|c| c.split('"').next().unwrap()).collect();
    let with_runs =
        u(&duck("select count(distinct snapshot) from read_parquet('{d}/free_run_histogram/*.parquet')", &out)[0][0]);
    assert_eq!(columns.len() as u64, with_runs, "a heat-map column per snapshot with free runs");

    // The heap layout at frame 4: its allocations, its longest free run.
    let caption = dom.split("id=\"frame-caption\">").nth(1).unwrap().split('<').next().unwrap();
    let s: u64 = caption.strip_prefix("snapshot ").unwrap().split(' ').next().unwrap().parse().unwrap();
    let row = &duck(&format!("select pool_start, pool_end, block_bytes, longest_free_run_bytes from read_parquet('{{d}}/snapshots/*.parquet') where snapshot = {s}"), &out)[0];
    let (pool_start, pool_end, bpb, longest) = (u(&row[0]), u(&row[1]), u(&row[2]), u(&row[3]));
    let live = duck(&format!("select address, kind, first_snapshot, last_snapshot, blocks from read_parquet('{{d}}/allocations/*.parquet') where first_snapshot <= {s} and last_snapshot >= {s} and address >= {pool_start} and address < {pool_end} order by address"), &out);
    assert_eq!(attribute(&dom, "<canvas id=\"layout\"", "data-drawn").unwrap(), live.len().to_string());
    assert_eq!(
        attribute(&dom, "<canvas id=\"layout\"", "data-longest-free-blocks").unwrap(),
        (longest / bpb).to_string()
    );

    // Hovering: a free block, then the first block of an allocation.
    let tip = |dom: &str| {
        dom.split("<div id=\"tip\"")
            .nth(1)
            .unwrap()
            .split('>')
            .nth(1)
            .unwrap()
            .split("</div")
            .next()
            .unwrap()
            .to_string()
    };
    let mut free = None;
    let mut at = pool_start;
    for r in &live {
        if u(&r[0]) > at {
            free = Some((at - pool_start) / bpb);
            break;
        }
        at = u(&r[0]) + u(&r[4]) * bpb;
    }
    let free = free.unwrap_or((at - pool_start) / bpb);
    let (dom, _) = browse(&["--dump-dom"], &url(&page, &format!("#probe=4:{free}")));
    assert_eq!(tip(&dom), format!("free block at 0x{:08x}", pool_start + free * bpb));
    let a = &live[live.len() / 2];
    let block = (u(&a[0]) - pool_start) / bpb;
    let (dom, _) = browse(&["--dump-dom"], &url(&page, &format!("#probe=4:{block}")));
    let text = tip(&dom);
    assert!(text.starts_with(&format!("0x{:08x} {}", u(&a[0]), a[1].as_str().unwrap())), "{text}");
    assert!(text.contains(&format!("lives snapshots {}–{}", u(&a[2]), u(&a[3]))), "{text}");
    assert!(text.contains("held by "), "{text}");

    // A screenshot that decodes, and shows something.
    let shot = dir.path().join("shot.png");
    browse(&["--window-size=1100,2400", &format!("--screenshot={}", shot.display())], &url(&page, ""));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1100, 2400));
    let coloured = buf.chunks(info.line_size / info.width as usize).filter(|p| p[0] != p[1] || p[1] != p[2]).count();
    assert!(coloured > 10_000, "the charts are drawn in colour: {coloured} pixels");
}

/// A long run's page stays small: the charts sample, the frames are capped.
#[test]
fn a_long_run_is_sampled_not_dumped() {
    let (_dir, out, _) = reported();
    let options = heapvis::report::ReportOptions { max_points: 100, max_frames: 10, ..Default::default() };
    let html = heapvis::report::report(&out, &options, None).unwrap();
    for chunk in html.split("<polyline class=\"series\"").skip(1) {
        let points = chunk.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 100);
    }
    let full = heapvis::report::report(&out, &heapvis::report::ReportOptions::default(), None).unwrap();
    assert!(html.len() * 2 < full.len(), "{} vs {}", html.len(), full.len());
}
