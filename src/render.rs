//! Pictures for people, as PNG files: the learning curve, the grid of misclassified digits
//! (like figure 8 of the paper) and the feature maps of the network looking at one digit.
//!
//! No font files are needed. Digits are drawn with the network's own RBF centre bitmaps
//! (7x12, `data/rbf_centers.txt`), every other glyph with the small 5x7 bitmap font below.
//! The learning curve's grid, lines, markers and legend box are drawn by `plotters` into an
//! RGB buffer and its text by that font afterwards: plotters is built without a font backend
//! and must never be asked to draw text (it would panic).
//!
//! Every file is written atomically: into a temporary file in the same folder, then renamed.

use crate::cpu::{self, SQUASH_A, Workspace};
use crate::params::{C1_W, N_PARAMS};
use crate::{Error, RBF_CENTERS, Result};
use image::{ImageEncoder, RgbImage};
use plotters::element::DashedPathElement;
use plotters::prelude::{
    BitMapBackend, ChartBuilder, Circle, Color as _, IntoDrawingArea, IntoLogRange, LineSeries,
    PathElement, RGBColor, Rectangle, ShapeStyle,
};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// An RGB colour.
pub type Rgb = [u8; 3];

/// One pass of a training log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub epoch: u32,
    /// Fraction of the training set misclassified (0.0035 = 0.35%).
    pub train_error: f64,
    /// Fraction of the test set misclassified (0.0112 = 1.12%).
    pub test_error: f64,
}

/// The paper's test error of LeNet-5 on MNIST without distortions (LeCun et al. 1998).
pub const PAPER_TEST_ERROR: f64 = 0.0095;

/// Size of the learning-curve picture.
pub const CURVE_SIZE: (u32, u32) = (800, 500);
/// Colour of the training-error line.
pub const TRAIN_COLOR: Rgb = [31, 119, 180];
/// Colour of the test-error line.
pub const TEST_COLOR: Rgb = [214, 39, 40];
/// Colour of the paper's dashed reference line.
pub const PAPER_COLOR: Rgb = [60, 140, 60];

/// Error-grid layout: each cell holds one 28x28 digit scaled 2x and its "T->P" label.
pub const GRID_CELL_W: u32 = 68;
pub const GRID_CELL_H: u32 = 116;
pub const GRID_MARGIN: u32 = 12;
pub const GRID_HEADER_H: u32 = 40;
/// The grid gets as many columns as fit in this width.
pub const GRID_MAX_WIDTH: u32 = 1000;
/// At most this many errors are drawn (the header says how many there were).
pub const GRID_MAX_CELLS: usize = 1000;

const INK: Rgb = [30, 30, 30];
const MUTED: Rgb = [110, 110, 110];
const WHITE: Rgb = [255, 255, 255];

// ---------------------------------------------------------------------------------------
// The bitmap font.

/// Height of a line of text in font pixels (times the scale): digits use rows 0..12 (ink in
/// rows 1..=10), letters rows 4..=10, descenders rows 11..=12.
const LINE_H: i32 = 13;
/// Line row of the top of a 5x7 glyph, so that its baseline meets the digits'.
const LETTER_TOP: i32 = 4;
/// Advance of a space, in font pixels.
const SPACE_W: i32 = 3;

/// 5x7 glyphs (rows 0..7), with two more rows for descenders where needed; capitals and a
/// few signs are 10 rows tall, as tall as the digits.
fn glyph5x7(ch: char) -> Option<&'static [&'static str]> {
    Some(match ch {
        'a' => &[
            ".....", ".....", ".###.", "....#", ".####", "#...#", ".####",
        ],
        'b' => &[
            "#....", "#....", "####.", "#...#", "#...#", "#...#", "####.",
        ],
        'c' => &[
            ".....", ".....", ".###.", "#....", "#....", "#...#", ".###.",
        ],
        'd' => &[
            "....#", "....#", ".####", "#...#", "#...#", "#...#", ".####",
        ],
        'e' => &[
            ".....", ".....", ".###.", "#...#", "#####", "#....", ".###.",
        ],
        'f' => &[
            "..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...",
        ],
        'g' => &[
            ".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###.",
        ],
        'h' => &[
            "#....", "#....", "####.", "#...#", "#...#", "#...#", "#...#",
        ],
        'i' => &[
            "..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.",
        ],
        'j' => &[
            "...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..",
        ],
        'k' => &[
            "#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.",
        ],
        'l' => &[
            ".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
        'm' => &[
            ".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#",
        ],
        'n' => &[
            ".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#",
        ],
        'o' => &[
            ".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.",
        ],
        'p' => &[
            ".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#....",
        ],
        'q' => &[
            ".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#",
        ],
        'r' => &[
            ".....", ".....", "#.##.", "##..#", "#....", "#....", "#....",
        ],
        's' => &[
            ".....", ".....", ".####", "#....", ".###.", "....#", "####.",
        ],
        't' => &[
            ".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.",
        ],
        'u' => &[
            ".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#",
        ],
        'v' => &[
            ".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..",
        ],
        'w' => &[
            ".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.",
        ],
        'x' => &[
            ".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#",
        ],
        'y' => &[
            ".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###.",
        ],
        'z' => &[
            ".....", ".....", "#####", "...#.", "..#..", ".#...", "#####",
        ],
        'C' => &[
            "..###..", ".#...#.", "#......", "#......", "#......", "#......", "#......", "#......",
            ".#...#.", "..###..",
        ],
        'E' => &[
            "######", "#.....", "#.....", "#.....", "#####.", "#.....", "#.....", "#.....",
            "#.....", "######",
        ],
        'F' => &[
            "######", "#.....", "#.....", "#.....", "#####.", "#.....", "#.....", "#.....",
            "#.....", "#.....",
        ],
        'I' => &[
            "###", ".#.", ".#.", ".#.", ".#.", ".#.", ".#.", ".#.", ".#.", "###",
        ],
        'L' => &[
            "#.....", "#.....", "#.....", "#.....", "#.....", "#.....", "#.....", "#.....",
            "#.....", "######",
        ],
        'M' => &[
            "#.....#", "##...##", "#.#.#.#", "#..#..#", "#.....#", "#.....#", "#.....#", "#.....#",
            "#.....#", "#.....#",
        ],
        'N' => &[
            "#....#", "##...#", "##...#", "#.#..#", "#.#..#", "#..#.#", "#..#.#", "#...##",
            "#...##", "#....#",
        ],
        'P' => &[
            "#####.", "#....#", "#....#", "#....#", "#####.", "#.....", "#.....", "#.....",
            "#.....", "#.....",
        ],
        'R' => &[
            "#####.", "#....#", "#....#", "#....#", "#####.", "#..#..", "#...#.", "#...#.",
            "#....#", "#....#",
        ],
        'S' => &[
            ".####.", "#....#", "#.....", "#.....", ".####.", ".....#", ".....#", ".....#",
            "#....#", ".####.",
        ],
        'T' => &[
            "#######", "...#...", "...#...", "...#...", "...#...", "...#...", "...#...", "...#...",
            "...#...", "...#...",
        ],
        '-' => &["....", "....", "....", "####", "....", "....", "...."],
        '>' => &["#...", ".#..", "..#.", "...#", "..#.", ".#..", "#..."],
        '<' => &["...#", "..#.", ".#..", "#...", ".#..", "..#.", "...#"],
        '%' => &[
            "##....#", "##...#.", ".....#.", "....#..", "...#...", "...#...", "..#....", ".#.....",
            ".#...##", "#....##",
        ],
        '.' => &["..", "..", "..", "..", "..", "##", "##"],
        ',' => &["..", "..", "..", "..", "..", "##", "##", ".#", "#."],
        ':' => &["..", "##", "##", "..", "..", "##", "##"],
        '(' => &[
            "..#", ".#.", ".#.", "#..", "#..", "#..", "#..", "#..", ".#.", ".#.", "..#",
        ],
        ')' => &[
            "#..", ".#.", ".#.", "..#", "..#", "..#", "..#", "..#", ".#.", ".#.", "#..",
        ],
        '/' => &[
            "....#", "....#", "...#.", "..#..", ".#...", "#....", "#....",
        ],
        '=' => &[
            ".....", ".....", "#####", ".....", "#####", ".....", ".....",
        ],
        '@' => &[
            ".###.", "#...#", "#.###", "#.#.#", "#.###", "#....", ".###.",
        ],
        '?' => &[
            ".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#..",
        ],
        _ => return None,
    })
}

/// Ink pixels (x, line row) of one glyph, shifted so its first inked column is 0, and its
/// width. Digits come from the RBF centres; unknown characters draw as '?'.
fn glyph(ch: char) -> (i32, Vec<(i32, i32)>) {
    let mut px = Vec::new();
    if let Some(d) = ch.to_digit(10) {
        let d = d as usize;
        for r in 0..12 {
            for c in 0..7 {
                if RBF_CENTERS[d * 84 + r * 7 + c] > 0.0 {
                    px.push((c as i32, r as i32));
                }
            }
        }
    } else if !ch.is_whitespace() {
        let rows = glyph5x7(ch)
            .or_else(|| glyph5x7(ch.to_ascii_lowercase()))
            .or_else(|| glyph5x7('?'))
            .unwrap_or(&[]);
        // Tall glyphs (capitals, '%', parentheses) stand as high as the digits.
        let top = if rows.len() >= 10 { 1 } else { LETTER_TOP };
        for (r, row) in rows.iter().enumerate() {
            for (c, b) in row.bytes().enumerate() {
                if b == b'#' {
                    px.push((c as i32, r as i32 + top));
                }
            }
        }
    }
    let Some(lo) = px.iter().map(|p| p.0).min() else {
        return (SPACE_W, px);
    };
    let hi = px.iter().map(|p| p.0).max().unwrap_or(lo);
    for p in &mut px {
        p.0 -= lo;
    }
    (hi - lo + 1, px)
}

/// Width in pixels of `text` drawn at `scale`.
fn text_width(text: &str, scale: i32) -> i32 {
    let w: i32 = text.chars().map(|c| glyph(c).0 + 1).sum();
    (w - 1).max(0) * scale
}

/// Draws `text` with its line box's top-left corner at (x, y); returns the advance (the
/// width plus one font pixel of spacing), so differently coloured pieces can follow.
fn draw_text(img: &mut RgbImage, x: i32, y: i32, scale: i32, text: &str, color: Rgb) -> i32 {
    let mut cx = x;
    for ch in text.chars() {
        let (w, px) = glyph(ch);
        for (gx, gy) in px {
            fill_rect(img, cx + gx * scale, y + gy * scale, scale, scale, color);
        }
        cx += (w + 1) * scale;
    }
    cx - x
}

/// Pixel rows above the vertical middle of a digit in a line drawn at `scale`.
fn digit_mid(scale: i32) -> i32 {
    (11 * scale) / 2 + scale / 2
}

// ---------------------------------------------------------------------------------------
// Pixel helpers on an RgbImage (clipped to it).

fn fill_rect(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, color: Rgb) {
    let (iw, ih) = (img.width() as i32, img.height() as i32);
    for yy in y.max(0)..(y + h).min(ih) {
        for xx in x.max(0)..(x + w).min(iw) {
            img.put_pixel(xx as u32, yy as u32, image::Rgb(color));
        }
    }
}

/// A one-pixel outline just outside the rectangle (x, y, w, h).
fn outline(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, color: Rgb) {
    fill_rect(img, x - 1, y - 1, w + 2, 1, color);
    fill_rect(img, x - 1, y + h, w + 2, 1, color);
    fill_rect(img, x - 1, y, 1, h, color);
    fill_rect(img, x + w, y, 1, h, color);
}

/// Draws `values` (rows x cols, row-major) scaled by `scale`, each value through `grey`.
fn draw_map(
    img: &mut RgbImage,
    (x, y): (i32, i32),
    (rows, cols): (usize, usize),
    scale: i32,
    values: &[f32],
    grey: impl Fn(f32) -> u8,
) {
    for r in 0..rows {
        for c in 0..cols {
            let g = grey(values[r * cols + c]);
            fill_rect(
                img,
                x + c as i32 * scale,
                y + r as i32 * scale,
                scale,
                scale,
                [g, g, g],
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writing.

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `img` as a PNG to `out` through a temporary file in the same folder.
fn save_png(img: &RgbImage, out: &Path) -> Result<()> {
    let name = out.file_name().ok_or_else(|| {
        Error::Config(format!(
            "{}: not a file name to write a PNG image to",
            out.display()
        ))
    })?;
    let tmp = out.with_file_name(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        image::codecs::png::PngEncoder::new(&mut w)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(std::io::Error::other)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, out)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(out, e)
    })
}

fn draw_error(out: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(
        out,
        std::io::Error::other(format!("drawing the learning curve: {e}")),
    )
}

// ---------------------------------------------------------------------------------------
// Learning curve.

/// Errors below this (in %) are drawn at it: a log axis has no zero.
const CURVE_FLOOR_PCT: f64 = 0.01;

/// A labelled tick value on the log axis, e.g. 0.05 -> "0.05", 20 -> "20".
fn tick_label(v: f64) -> String {
    let decimals = (-v.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Learning curve: train and test error (%) per pass on a log y axis, the paper's 0.95%
/// test error as a dashed reference line labelled "paper 0.95%", and a legend (800x500).
/// No points: a picture that says so. Errors must be fractions in [0, 1].
pub fn learning_curve(points: &[CurvePoint], out: &Path) -> Result<()> {
    for p in points {
        for (what, v) in [("train", p.train_error), ("test", p.test_error)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Config(format!(
                    "learning curve: pass {} has {what} error {v}; errors must be fractions \
                     between 0 and 1",
                    p.epoch
                )));
            }
        }
    }
    let img = if points.is_empty() {
        empty_curve()
    } else {
        draw_curve(points, out)?
    };
    save_png(&img, out)
}

/// Plot area of the learning curve: (left, top, right, bottom) in pixels.
fn curve_plot_area() -> (i32, i32, i32, i32) {
    let (w, h) = (CURVE_SIZE.0 as i32, CURVE_SIZE.1 as i32);
    (92, 84, w - 28, h - 78)
}

const CURVE_TITLE: &str = "LeNet-5 on MNIST: error per pass";

fn empty_curve() -> RgbImage {
    let mut img = RgbImage::from_pixel(CURVE_SIZE.0, CURVE_SIZE.1, image::Rgb(WHITE));
    let (l, t, r, b) = curve_plot_area();
    draw_text(&mut img, l, 14, 2, CURVE_TITLE, INK);
    outline(&mut img, l, t, r - l, b - t, MUTED);
    let note = "no passes logged yet";
    let w = text_width(note, 3);
    draw_text(&mut img, (l + r - w) / 2, (t + b) / 2 - 20, 3, note, MUTED);
    img
}

/// Points along a pixel polyline, about every 2 pixels, for collision tests.
fn sample_polyline(line: &[(i32, i32)], into: &mut Vec<(i32, i32)>) {
    into.extend(line.first());
    for s in line.windows(2) {
        let (a, b) = (s[0], s[1]);
        let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) / 2).max(1);
        for i in 1..=n {
            into.push((a.0 + (b.0 - a.0) * i / n, a.1 + (b.1 - a.1) * i / n));
        }
    }
}

/// How many of `pts` fall inside the rectangle (x, y, w, h) grown by `pad`.
fn hits(pts: &[(i32, i32)], (x, y, w, h): (i32, i32, i32, i32), pad: i32) -> usize {
    pts.iter()
        .filter(|p| p.0 >= x - pad && p.0 < x + w + pad && p.1 >= y - pad && p.1 < y + h + pad)
        .count()
}

fn overlaps(a: (i32, i32, i32, i32), b: (i32, i32, i32, i32)) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

fn draw_curve(points: &[CurvePoint], out: &Path) -> Result<RgbImage> {
    let (w, h) = CURVE_SIZE;
    let (left, top, right, bottom) = curve_plot_area();
    let pct = |v: f64| (v * 100.0).max(CURVE_FLOOR_PCT);
    let mut pts: Vec<(f64, f64, f64)> = points
        .iter()
        .map(|p| (p.epoch as f64, pct(p.train_error), pct(p.test_error)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let paper = PAPER_TEST_ERROR * 100.0;

    // y: whole decades around the data and the reference line.
    let lo = pts.iter().map(|p| p.1.min(p.2)).fold(paper, f64::min);
    let hi = pts.iter().map(|p| p.1.max(p.2)).fold(paper, f64::max);
    let ylo = 10f64.powf((lo / 1.15).log10().floor());
    let yhi = 10f64
        .powf((hi * 1.15).log10().ceil())
        .min(100.0)
        .max(ylo * 10.0);
    let (k0, k1) = (ylo.log10().round() as i32, yhi.log10().round() as i32);
    let major: &[f64] = if k1 - k0 <= 3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };

    // x: the passes, a little padded.
    let (e0, e1) = (pts[0].0, pts[pts.len() - 1].0);
    let pad = ((e1 - e0) * 0.03).max(0.5);
    let (x0, x1) = (e0 - pad, e1 + pad);
    let step = [1u64, 2, 5]
        .iter()
        .flat_map(|&m| (0..10).map(move |k| m * 10u64.pow(k)))
        .filter(|&s| (e1 - e0) / s as f64 <= 10.0)
        .min()
        .unwrap_or(1) as f64;
    let x_ticks: Vec<f64> = {
        let first = (e0 / step).ceil() as u64;
        let last = (e1 / step).floor() as u64;
        (first..=last).map(|i| i as f64 * step).collect()
    };

    let rgb = |c: Rgb| RGBColor(c[0], c[1], c[2]);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let mut y_labels = Vec::new();
    let mut x_labels = Vec::new();
    let mut texts: Vec<(i32, i32, String, Rgb)> = Vec::new();
    {
        let e = |e| draw_error(out, e);
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let area = root.margin(top, h as i32 - bottom, left, w as i32 - right);
        let mut chart = ChartBuilder::on(&area)
            .build_cartesian_2d(x0..x1, (ylo..yhi).log_scale())
            .map_err(e)?;
        let plot = chart.plotting_area();

        // Grid: every 1..9 x 10^k, darker where labelled; a vertical line per x tick.
        for k in k0..=k1 {
            for m in 1..=9 {
                let v = m as f64 * 10f64.powi(k);
                if v < ylo * 0.999 || v > yhi * 1.001 {
                    continue;
                }
                let labelled = major.contains(&(m as f64));
                let g = if labelled { 205 } else { 232 };
                plot.draw(&PathElement::new(vec![(x0, v), (x1, v)], RGBColor(g, g, g)))
                    .map_err(e)?;
                if labelled {
                    let (_, py) = chart.backend_coord(&(x0, v));
                    y_labels.push((py, tick_label(v)));
                }
            }
        }
        for &t in &x_ticks {
            plot.draw(&PathElement::new(
                vec![(t, ylo), (t, yhi)],
                RGBColor(232, 232, 232),
            ))
            .map_err(e)?;
            let (px, _) = chart.backend_coord(&(t, ylo));
            x_labels.push((px, format!("{}", t as u64)));
        }

        // The paper's reference, then the curves, test on top.
        let paper_style = ShapeStyle::from(&rgb(PAPER_COLOR)).stroke_width(2);
        plot.draw(&DashedPathElement::new(
            vec![(x0, paper), (x1, paper)],
            10,
            7,
            paper_style,
        ))
        .map_err(e)?;
        let mut curve_px = Vec::new();
        for (color, get) in [
            (
                TRAIN_COLOR,
                (|p: &(f64, f64, f64)| p.1) as fn(&(f64, f64, f64)) -> f64,
            ),
            (TEST_COLOR, |p| p.2),
        ] {
            let c = rgb(color);
            let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, get(p))).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))
                .map_err(e)?;
            if pts.len() <= 60 {
                chart
                    .draw_series(line.iter().map(|&q| Circle::new(q, 3, c.filled())))
                    .map_err(e)?;
            }
            let line_px: Vec<(i32, i32)> = line.iter().map(|q| chart.backend_coord(q)).collect();
            sample_polyline(&line_px, &mut curve_px);
        }
        root.draw(&Rectangle::new(
            [(left - 1, top - 1), (right, bottom)],
            RGBColor(80, 80, 80),
        ))
        .map_err(e)?;
        for (py, _) in &y_labels {
            root.draw(&PathElement::new(
                vec![(left - 6, *py), (left - 1, *py)],
                RGBColor(80, 80, 80),
            ))
            .map_err(e)?;
        }
        for (px, _) in &x_labels {
            root.draw(&PathElement::new(
                vec![(*px, bottom), (*px, bottom + 5)],
                RGBColor(80, 80, 80),
            ))
            .map_err(e)?;
        }

        // The reference line's label, where it covers the least of the curves.
        let (_, paper_py) = chart.backend_coord(&(x0, paper));
        let label = format!("paper {:.2}%", paper);
        let (lw, lh) = (text_width(&label, 2), LINE_H * 2);
        let inside = |r: &(i32, i32, i32, i32)| r.1 >= top + 2 && r.1 + r.3 <= bottom - 2;
        let label_rect = [right - 10 - lw, left + 10, (left + right - lw) / 2]
            .iter()
            .flat_map(|&x| [(x, paper_py - lh - 3, lw, lh), (x, paper_py + 4, lw, lh)])
            .filter(inside)
            .min_by_key(|r| hits(&curve_px, *r, 3))
            .unwrap_or((right - 10 - lw, paper_py + 4, lw, lh));
        texts.push((label_rect.0, label_rect.1, label, PAPER_COLOR));

        // The legend, in the corner where it hides the least.
        // The last pass's errors as logged, not as floored for the log axis.
        let last = points
            .iter()
            .max_by_key(|p| p.epoch)
            .copied()
            .unwrap_or(points[0]);
        let entries = [
            (
                format!("train (last {:.2}%)", last.train_error * 100.0),
                TRAIN_COLOR,
                false,
            ),
            (
                format!("test (last {:.2}%)", last.test_error * 100.0),
                TEST_COLOR,
                false,
            ),
            ("paper (LeCun 1998)".to_string(), PAPER_COLOR, true),
        ];
        let row_h = 28;
        let tw = entries
            .iter()
            .map(|en| text_width(&en.0, 2))
            .max()
            .unwrap_or(0);
        let (bw, bh) = (8 + 32 + 10 + tw + 10, 8 + row_h * entries.len() as i32 + 2);
        let mut line_px = Vec::new();
        sample_polyline(&[(left, paper_py), (right, paper_py)], &mut line_px);
        let legend = [
            (right - 10 - bw, top + 10),
            (left + 10, top + 10),
            (right - 10 - bw, bottom - 10 - bh),
            (left + 10, bottom - 10 - bh),
        ]
        .into_iter()
        .map(|(x, y)| (x, y, bw, bh))
        .min_by_key(|r| {
            10 * hits(&curve_px, *r, 2)
                + hits(&line_px, *r, 2)
                + if overlaps(*r, label_rect) { 100_000 } else { 0 }
        })
        .unwrap_or((right - 10 - bw, top + 10, bw, bh));
        let (bx, by) = (legend.0, legend.1);
        root.draw(&Rectangle::new(
            [(bx, by), (bx + bw, by + bh)],
            RGBColor(255, 255, 255).filled(),
        ))
        .map_err(e)?;
        root.draw(&Rectangle::new(
            [(bx, by), (bx + bw, by + bh)],
            RGBColor(170, 170, 170),
        ))
        .map_err(e)?;
        for (i, (text, color, dashed)) in entries.into_iter().enumerate() {
            let ey = by + 6 + i as i32 * row_h;
            let (sy, sx0, sx1) = (ey + digit_mid(2), bx + 8, bx + 40);
            let style = ShapeStyle::from(&rgb(color)).stroke_width(2);
            if dashed {
                root.draw(&DashedPathElement::new(
                    vec![(sx0, sy), (sx1, sy)],
                    10,
                    7,
                    style,
                ))
                .map_err(e)?;
            } else {
                root.draw(&PathElement::new(vec![(sx0, sy), (sx1, sy)], style))
                    .map_err(e)?;
                root.draw(&Circle::new(((sx0 + sx1) / 2, sy), 3, rgb(color).filled()))
                    .map_err(e)?;
            }
            texts.push((bx + 50, ey, text, INK));
        }
        root.present().map_err(e)?;
    }

    let mut img = RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| draw_error(out, "the chart buffer has the wrong size"))?;
    draw_text(&mut img, left, 14, 2, CURVE_TITLE, INK);
    draw_text(&mut img, 14, top - 34, 2, "error (%, log scale)", INK);
    for (py, label) in &y_labels {
        let tw = text_width(label, 2);
        draw_text(&mut img, left - 10 - tw, py - digit_mid(2), 2, label, INK);
    }
    for (px, label) in &x_labels {
        let tw = text_width(label, 2);
        draw_text(&mut img, px - tw / 2, bottom + 8, 2, label, INK);
    }
    let tw = text_width("pass", 2);
    draw_text(
        &mut img,
        (left + right - tw) / 2,
        bottom + 44,
        2,
        "pass",
        INK,
    );
    for (x, y, text, color) in texts {
        draw_text(&mut img, x, y, 2, &text, color);
    }
    Ok(img)
}

// ---------------------------------------------------------------------------------------
// Error grid.

fn grid_header(n: usize) -> String {
    match n {
        0 => "no misclassified digits".to_string(),
        1 => "1 error (true->predicted)".to_string(),
        n if n > GRID_MAX_CELLS => {
            format!("first {GRID_MAX_CELLS} of {n} errors (true->predicted)")
        }
        n => format!("{n} errors (true->predicted)"),
    }
}

/// Number of grid columns for `n_errors`: as many as fit in [`GRID_MAX_WIDTH`], at least 1.
pub fn error_grid_columns(n_errors: usize) -> u32 {
    let fit = (GRID_MAX_WIDTH - 2 * GRID_MARGIN) / GRID_CELL_W;
    fit.min(n_errors.min(GRID_MAX_CELLS) as u32).max(1)
}

/// (width, height) of the error grid for `n_errors`: the cells, and at least the header.
pub fn error_grid_size(n_errors: usize) -> (u32, u32) {
    let shown = n_errors.min(GRID_MAX_CELLS) as u32;
    let cols = error_grid_columns(n_errors);
    let rows = shown.div_ceil(cols);
    let header_w = text_width(&grid_header(n_errors), 2) as u32;
    let w = (2 * GRID_MARGIN + cols * GRID_CELL_W).max(2 * GRID_MARGIN + header_w);
    (w, 2 * GRID_MARGIN + GRID_HEADER_H + rows * GRID_CELL_H)
}

/// Top-left corner of cell `i`'s 56x56 digit in the grid of `n_errors`.
pub fn error_grid_cell(i: usize, n_errors: usize) -> (u32, u32) {
    let cols = error_grid_columns(n_errors) as usize;
    let (col, row) = ((i % cols) as u32, (i / cols) as u32);
    (
        GRID_MARGIN + col * GRID_CELL_W + 6,
        GRID_MARGIN + GRID_HEADER_H + row * GRID_CELL_H + 6,
    )
}

/// Grid of misclassified digits (like figure 8 of the paper): each cell the 28x28 image
/// scaled 2x with "T->P" under it (T the true digit, P the predicted one), as many columns
/// as fit in [`GRID_MAX_WIDTH`]; at most [`GRID_MAX_CELLS`] cells. No errors: a picture
/// that says so.
pub fn error_grid(images: &[[u8; 784]], truth: &[u8], predicted: &[u8], out: &Path) -> Result<()> {
    error_grid_indexed(images, truth, predicted, None, out)
}

/// [`error_grid`], with each cell's test-set index drawn under its label (grey), to be
/// handed to `visualize --index`.
pub fn error_grid_indexed(
    images: &[[u8; 784]],
    truth: &[u8],
    predicted: &[u8],
    indices: Option<&[usize]>,
    out: &Path,
) -> Result<()> {
    if indices.is_some_and(|ix| ix.len() != images.len()) {
        return Err(Error::Config(format!(
            "error grid: {} images but {} test indices; they must match",
            images.len(),
            indices.map_or(0, |ix| ix.len())
        )));
    }
    if truth.len() != images.len() || predicted.len() != images.len() {
        return Err(Error::Config(format!(
            "error grid: {} images but {} true labels and {} predictions; they must match",
            images.len(),
            truth.len(),
            predicted.len()
        )));
    }
    if let Some(i) = (0..images.len()).find(|&i| truth[i] > 9 || predicted[i] > 9) {
        return Err(Error::Config(format!(
            "error grid: error {i} has true label {} and prediction {}; digits are 0 to 9",
            truth[i], predicted[i]
        )));
    }
    let n = images.len();
    let (w, h) = error_grid_size(n);
    let mut img = RgbImage::from_pixel(w, h, image::Rgb([236, 236, 236]));
    draw_text(
        &mut img,
        GRID_MARGIN as i32,
        GRID_MARGIN as i32 + 4,
        2,
        &grid_header(n),
        INK,
    );
    for i in 0..n.min(GRID_MAX_CELLS) {
        let (x, y) = error_grid_cell(i, n);
        let (x, y) = (x as i32, y as i32);
        fill_rect(
            &mut img,
            x - 4,
            y - 4,
            GRID_CELL_W as i32 - 4,
            GRID_CELL_H as i32 - 4,
            WHITE,
        );
        outline(
            &mut img,
            x - 4,
            y - 4,
            GRID_CELL_W as i32 - 4,
            GRID_CELL_H as i32 - 4,
            [200, 200, 200],
        );
        for (k, &v) in images[i].iter().enumerate() {
            let g = 255 - v;
            fill_rect(
                &mut img,
                x + (k % 28) as i32 * 2,
                y + (k / 28) as i32 * 2,
                2,
                2,
                [g, g, g],
            );
        }
        let (t, p) = (truth[i].to_string(), predicted[i].to_string());
        let lw = text_width(&format!("{t}->{p}"), 2);
        let mut lx = x + (56 - lw) / 2;
        let ly = y + 56 + 4;
        lx += draw_text(&mut img, lx, ly, 2, &t, INK);
        lx += draw_text(&mut img, lx, ly, 2, "->", MUTED);
        draw_text(&mut img, lx, ly, 2, &p, TEST_COLOR);
        if let Some(ix) = indices {
            let label = ix[i].to_string();
            let lx = x + (56 - text_width(&label, 1)) / 2;
            draw_text(&mut img, lx, ly + 28, 1, &label, MUTED);
        }
    }
    save_png(&img, out)
}

// ---------------------------------------------------------------------------------------
// Feature maps.

/// A named rectangle of the feature-map picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub name: &'static str,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

const FM_MARGIN: i32 = 16;
const FM_TITLE_H: i32 = 32;
const FM_ROW_GAP: i32 = 18;
const FM_GAP: i32 = 12;
const FM_INPUT_SCALE: i32 = 4;
const FM_C1_SCALE: i32 = 4;
const FM_KERNEL_SCALE: i32 = 16;
const FM_C3_SCALE: i32 = 8;
const FM_S2_SCALE: i32 = 4;
const FM_S4_SCALE: i32 = 8;

/// The title drawn over each row: the block's name and size, as the paper writes them.
fn fm_title(name: &str) -> &'static str {
    match name {
        "input" => "input 32x32",
        "C1 kernels" => "C1 kernels 6@5x5",
        "C1" => "C1 6@28x28",
        "S2" => "S2 6@14x14",
        "C3" => "C3 16@10x10",
        _ => "S4 16@5x5",
    }
}

/// Where everything goes: the picture's size and its rows.
struct FmLayout {
    size: (u32, u32),
    rows: Vec<FmRow>,
}

/// One row of the feature-map picture: its region, where its title goes, and the top-left
/// corner of each of its maps.
struct FmRow {
    region: Region,
    title: (i32, i32),
    maps: Vec<(i32, i32)>,
}

fn fm_layout() -> FmLayout {
    let c1_side = 28 * FM_C1_SCALE;
    let c1_pitch = c1_side + FM_GAP;
    let c1_w = 6 * c1_side + 5 * FM_GAP;
    let mut y = FM_MARGIN;
    let mut rows = Vec::new();
    let mut push = |name, title_y: i32, maps: Vec<(i32, i32)>, size: i32| {
        let x0 = maps.iter().map(|m| m.0).min().unwrap_or(0);
        let y0 = maps.iter().map(|m| m.1).min().unwrap_or(0);
        let x1 = maps.iter().map(|m| m.0 + size).max().unwrap_or(0);
        let y1 = maps.iter().map(|m| m.1 + size).max().unwrap_or(0);
        let region = Region {
            name,
            x: x0 as u32,
            y: y0 as u32,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        };
        rows.push(FmRow {
            region,
            title: (FM_MARGIN, title_y),
            maps,
        });
        y1
    };
    // input
    let side = 32 * FM_INPUT_SCALE;
    y = push("input", y, vec![(FM_MARGIN, y + FM_TITLE_H)], side) + FM_ROW_GAP;
    // the C1 kernels, each centred over the map it makes
    let side = 5 * FM_KERNEL_SCALE;
    let maps = (0..6)
        .map(|i| {
            (
                FM_MARGIN + i * c1_pitch + (c1_side - side) / 2,
                y + FM_TITLE_H,
            )
        })
        .collect();
    y = push("C1 kernels", y, maps, side) + FM_ROW_GAP;
    // C1
    let maps = (0..6)
        .map(|i| (FM_MARGIN + i * c1_pitch, y + FM_TITLE_H))
        .collect();
    y = push("C1", y, maps, c1_side) + FM_ROW_GAP;
    // S2, each under its C1 map
    let side = 14 * FM_S2_SCALE;
    let maps = (0..6)
        .map(|i| {
            (
                FM_MARGIN + i * c1_pitch + (c1_side - side) / 2,
                y + FM_TITLE_H,
            )
        })
        .collect();
    y = push("S2", y, maps, side) + FM_ROW_GAP;
    // C3, two rows of eight
    let side = 10 * FM_C3_SCALE;
    let maps = (0..16)
        .map(|i| {
            (
                FM_MARGIN + (i % 8) * (side + FM_GAP),
                y + FM_TITLE_H + (i / 8) * (side + FM_GAP),
            )
        })
        .collect();
    y = push("C3", y, maps, side) + FM_ROW_GAP;
    // S4, two rows of eight, each where its C3 map is
    let pitch = side + FM_GAP;
    let side4 = 5 * FM_S4_SCALE;
    let maps = (0..16)
        .map(|i| {
            (
                FM_MARGIN + (i % 8) * pitch + (side - side4) / 2,
                y + FM_TITLE_H + (i / 8) * (side4 + FM_GAP),
            )
        })
        .collect();
    y = push("S4", y, maps, side4);
    FmLayout {
        size: ((c1_w + 2 * FM_MARGIN) as u32, (y + FM_MARGIN) as u32),
        rows,
    }
}

/// The regions of the feature-map picture ("input", "C1 kernels", "C1", "S2", "C3", "S4"),
/// each the bounding box of its maps.
pub fn feature_maps_regions() -> Vec<Region> {
    fm_layout().rows.into_iter().map(|r| r.region).collect()
}

/// Size of the feature-map picture.
pub fn feature_maps_size() -> (u32, u32) {
    fm_layout().size
}

/// One picture of the network looking at a digit: the 32x32 input, the 6 C1 kernels (5x5,
/// each grey-mapped symmetrically around 0 by its own max |w|), the 6 C1 maps (28x28) and
/// the 16 C3 maps (10x10), maps grey-mapped from [-1.7159, 1.7159] (dark = high). Runs the
/// CPU forward pass itself and prints the network's answer next to the input.
pub fn feature_maps(params: &[f32], image: &[u8; 784], out: &Path) -> Result<()> {
    feature_maps_captioned(params, image, None, out)
}

/// [`feature_maps`], with a caption under the network's answer (for example "test digit
/// 7, label 9").
pub fn feature_maps_captioned(
    params: &[f32],
    image: &[u8; 784],
    caption: Option<&str>,
    out: &Path,
) -> Result<()> {
    if params.len() != N_PARAMS {
        return Err(Error::Config(format!(
            "feature maps: {} parameters given, LeNet-5 has {N_PARAMS}",
            params.len()
        )));
    }
    let mut ws = Workspace::<f32>::default();
    cpu::input_forward(image, 28, &mut ws.x0);
    cpu::pattern_forward(params, &RBF_CENTERS[..], &mut ws);
    let answer =
        ws.y.iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);

    let a = SQUASH_A as f32;
    let act = move |v: f32| (255.0 - ((v + a) / (2.0 * a)).clamp(0.0, 1.0) * 255.0).round() as u8;
    let layout = fm_layout();
    let mut img = RgbImage::from_pixel(layout.size.0, layout.size.1, image::Rgb([226, 232, 240]));
    let kernels = C1_W.of(params);
    for FmRow {
        region,
        title: (tx, ty),
        maps,
    } in &layout.rows
    {
        draw_text(&mut img, *tx, *ty, 2, fm_title(region.name), INK);
        for (i, &(x, y)) in maps.iter().enumerate() {
            let (side, scale, values, per_kernel): (usize, i32, &[f32], bool) = match region.name {
                "input" => (32, FM_INPUT_SCALE, &ws.x0[..], false),
                "C1 kernels" => (5, FM_KERNEL_SCALE, &kernels[i * 25..(i + 1) * 25], true),
                "C1" => (28, FM_C1_SCALE, &ws.x1[i * 784..(i + 1) * 784], false),
                "S2" => (14, FM_S2_SCALE, &ws.x2[i * 196..(i + 1) * 196], false),
                "C3" => (10, FM_C3_SCALE, &ws.x3[i * 100..(i + 1) * 100], false),
                _ => (5, FM_S4_SCALE, &ws.x4[i * 25..(i + 1) * 25], false),
            };
            let n = side as i32 * scale;
            outline(&mut img, x, y, n, n, [140, 140, 150]);
            if per_kernel {
                let m = values.iter().fold(0f32, |m, w| m.max(w.abs()));
                let grey = move |w: f32| {
                    if m > 0.0 && m.is_finite() {
                        (255.0 - (0.5 + w / (2.0 * m)).clamp(0.0, 1.0) * 255.0).round() as u8
                    } else {
                        128
                    }
                };
                draw_map(&mut img, (x, y), (side, side), scale, values, grey);
            } else {
                draw_map(&mut img, (x, y), (side, side), scale, values, act);
            }
        }
        if region.name == "input" {
            let x = (region.x + region.w) as i32 + 24;
            let y = region.y as i32 + region.h as i32 / 2 - LINE_H;
            let dx = draw_text(&mut img, x, y, 2, "network says ", INK);
            draw_text(&mut img, x + dx, y, 2, &answer.to_string(), TEST_COLOR);
            let legend = "dark = high, light = low";
            draw_text(&mut img, x, y + LINE_H * 2 + 8, 2, legend, MUTED);
            if let Some(c) = caption {
                draw_text(&mut img, x, y - LINE_H * 2 - 8, 2, c, INK);
            }
        }
    }
    save_png(&img, out)
}
