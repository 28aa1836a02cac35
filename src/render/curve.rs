//! The learning curve: train and test error per pass, log axis, the paper's line.

use super::*;

// ---------------------------------------------------------------------------------------
// Learning curve.

/// Errors below this (in %) are drawn at it: a log axis has no zero.
pub(super) const CURVE_FLOOR_PCT: f64 = 0.01;

/// A labelled tick value on the log axis, e.g. 0.05 -> "0.05", 20 -> "20".
pub(super) fn tick_label(v: f64) -> String {
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
pub(super) fn curve_plot_area() -> (i32, i32, i32, i32) {
    let (w, h) = (CURVE_SIZE.0 as i32, CURVE_SIZE.1 as i32);
    (92, 84, w - 28, h - 78)
}

pub(super) const CURVE_TITLE: &str = "LeNet-5 on MNIST: error per pass";

pub(super) fn empty_curve() -> RgbImage {
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
pub(super) fn sample_polyline(line: &[(i32, i32)], into: &mut Vec<(i32, i32)>) {
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
pub(super) fn hits(pts: &[(i32, i32)], (x, y, w, h): (i32, i32, i32, i32), pad: i32) -> usize {
    pts.iter()
        .filter(|p| p.0 >= x - pad && p.0 < x + w + pad && p.1 >= y - pad && p.1 < y + h + pad)
        .count()
}

pub(super) fn overlaps(a: (i32, i32, i32, i32), b: (i32, i32, i32, i32)) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

/// The chart plotters draws the grid, the lines and the markers on: passes on x, error
/// (%) on a log y axis.
type CurveChart<'a, 'b> = plotters::chart::ChartContext<
    'a,
    BitMapBackend<'b>,
    plotters::coord::cartesian::Cartesian2d<
        plotters::coord::types::RangedCoordf64,
        plotters::coord::combinators::LogCoord<f64>,
    >,
>;

/// The whole picture as plotters sees it, in pixels.
type CurveRoot<'b> = plotters::drawing::DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>;

/// A text to draw at scale 2 once plotters is done: (x, y, text, colour).
type CurveText = (i32, i32, String, Rgb);

/// The labelled ticks, in pixels: (y, label) on the y axis and (x, label) on the x axis.
struct CurveTicks {
    y: Vec<(i32, String)>,
    x: Vec<(i32, String)>,
}

/// The learning curve's axes and the value of its reference line.
struct CurveAxes {
    /// x range (passes, padded) and the passes that get a tick.
    x0: f64,
    x1: f64,
    x_ticks: Vec<f64>,
    /// y range (%): whole decades 10^k0 to 10^k1.
    ylo: f64,
    yhi: f64,
    k0: i32,
    k1: i32,
    /// The mantissas of the labelled y grid lines.
    major: &'static [f64],
    /// The paper's test error (%).
    paper: f64,
}

/// Height of one legend row, in pixels.
const LEGEND_ROW_H: i32 = 28;

pub(super) fn draw_curve(points: &[CurvePoint], out: &Path) -> Result<RgbImage> {
    let (w, h) = CURVE_SIZE;
    let pts = curve_series(points);
    let axes = curve_axes(&pts);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let (ticks, texts) = draw_chart(&mut buf, points, &pts, &axes, out)?;
    let mut img = RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| draw_error(out, "the chart buffer has the wrong size"))?;
    draw_curve_text(&mut img, &ticks, texts);
    Ok(img)
}

/// (pass, train error %, test error %) per point, floored for the log axis, by pass.
fn curve_series(points: &[CurvePoint]) -> Vec<(f64, f64, f64)> {
    let pct = |v: f64| (v * 100.0).max(CURVE_FLOOR_PCT);
    let mut pts: Vec<(f64, f64, f64)> = points
        .iter()
        .map(|p| (p.epoch as f64, pct(p.train_error), pct(p.test_error)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// The axes around `pts` (not empty, sorted by pass) and the paper's line.
fn curve_axes(pts: &[(f64, f64, f64)]) -> CurveAxes {
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
    CurveAxes {
        x0,
        x1,
        x_ticks,
        ylo,
        yhi,
        k0,
        k1,
        major,
        paper,
    }
}

/// Everything plotters draws into `buf` (RGB, `CURVE_SIZE`): the grid, the paper's line,
/// the curves, the frame with its ticks and the legend box. Returns the ticks and the
/// texts to draw afterwards.
fn draw_chart(
    buf: &mut [u8],
    points: &[CurvePoint],
    pts: &[(f64, f64, f64)],
    axes: &CurveAxes,
    out: &Path,
) -> Result<(CurveTicks, Vec<CurveText>)> {
    let (w, h) = CURVE_SIZE;
    let (left, top, right, bottom) = curve_plot_area();
    let e = |e| draw_error(out, e);
    let root = BitMapBackend::with_buffer(buf, (w, h)).into_drawing_area();
    let area = root.margin(top, h as i32 - bottom, left, w as i32 - right);
    let mut chart = ChartBuilder::on(&area)
        .build_cartesian_2d(axes.x0..axes.x1, (axes.ylo..axes.yhi).log_scale())
        .map_err(e)?;
    let ticks = draw_grid(&chart, axes, out)?;
    let curve_px = draw_lines(&mut chart, pts, axes, out)?;
    draw_frame(&root, &ticks, out)?;
    let (_, paper_py) = chart.backend_coord(&(axes.x0, axes.paper));
    let (label, label_rect) = paper_label(axes.paper, paper_py, &curve_px);
    let mut texts = vec![(label_rect.0, label_rect.1, label, PAPER_COLOR)];
    let entries = legend_entries(points);
    let legend = legend_rect(&entries, paper_py, label_rect, &curve_px);
    draw_legend(&root, legend, entries, &mut texts, out)?;
    root.present().map_err(e)?;
    Ok((ticks, texts))
}

/// Grid: every 1..9 x 10^k, darker where labelled; a vertical line per x tick.
fn draw_grid(chart: &CurveChart, axes: &CurveAxes, out: &Path) -> Result<CurveTicks> {
    let e = |e| draw_error(out, e);
    let plot = chart.plotting_area();
    let (x0, x1, ylo, yhi) = (axes.x0, axes.x1, axes.ylo, axes.yhi);
    let mut ticks = CurveTicks {
        y: Vec::new(),
        x: Vec::new(),
    };
    for k in axes.k0..=axes.k1 {
        for m in 1..=9 {
            let v = m as f64 * 10f64.powi(k);
            if v < ylo * 0.999 || v > yhi * 1.001 {
                continue;
            }
            let labelled = axes.major.contains(&(m as f64));
            let g = if labelled { 205 } else { 232 };
            plot.draw(&PathElement::new(vec![(x0, v), (x1, v)], RGBColor(g, g, g)))
                .map_err(e)?;
            if labelled {
                let (_, py) = chart.backend_coord(&(x0, v));
                ticks.y.push((py, tick_label(v)));
            }
        }
    }
    for &t in &axes.x_ticks {
        plot.draw(&PathElement::new(
            vec![(t, ylo), (t, yhi)],
            RGBColor(232, 232, 232),
        ))
        .map_err(e)?;
        let (px, _) = chart.backend_coord(&(t, ylo));
        ticks.x.push((px, format!("{}", t as u64)));
    }
    Ok(ticks)
}

/// The plotters colour of `c`.
fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// The paper's reference, then the curves, test on top. Returns points along the curves
/// in pixels, for placing the label and the legend.
fn draw_lines(
    chart: &mut CurveChart,
    pts: &[(f64, f64, f64)],
    axes: &CurveAxes,
    out: &Path,
) -> Result<Vec<(i32, i32)>> {
    let e = |e| draw_error(out, e);
    let paper_style = ShapeStyle::from(&rgb(PAPER_COLOR)).stroke_width(2);
    chart
        .plotting_area()
        .draw(&DashedPathElement::new(
            vec![(axes.x0, axes.paper), (axes.x1, axes.paper)],
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
    Ok(curve_px)
}

/// The plot area's frame and a tick mark at each labelled value.
fn draw_frame(root: &CurveRoot, ticks: &CurveTicks, out: &Path) -> Result<()> {
    let e = |e| draw_error(out, e);
    let (left, top, right, bottom) = curve_plot_area();
    root.draw(&Rectangle::new(
        [(left - 1, top - 1), (right, bottom)],
        RGBColor(80, 80, 80),
    ))
    .map_err(e)?;
    for (py, _) in &ticks.y {
        root.draw(&PathElement::new(
            vec![(left - 6, *py), (left - 1, *py)],
            RGBColor(80, 80, 80),
        ))
        .map_err(e)?;
    }
    for (px, _) in &ticks.x {
        root.draw(&PathElement::new(
            vec![(*px, bottom), (*px, bottom + 5)],
            RGBColor(80, 80, 80),
        ))
        .map_err(e)?;
    }
    Ok(())
}

/// The reference line's label and its rectangle (x, y, w, h) by the line (at pixel row
/// `paper_py`), where it covers the least of the curves.
fn paper_label(
    paper: f64,
    paper_py: i32,
    curve_px: &[(i32, i32)],
) -> (String, (i32, i32, i32, i32)) {
    let (left, top, right, bottom) = curve_plot_area();
    let label = format!("paper {:.2}%", paper);
    let (lw, lh) = (text_width(&label, 2), LINE_H * 2);
    let inside = |r: &(i32, i32, i32, i32)| r.1 >= top + 2 && r.1 + r.3 <= bottom - 2;
    let label_rect = [right - 10 - lw, left + 10, (left + right - lw) / 2]
        .iter()
        .flat_map(|&x| [(x, paper_py - lh - 3, lw, lh), (x, paper_py + 4, lw, lh)])
        .filter(inside)
        .min_by_key(|r| hits(curve_px, *r, 3))
        .unwrap_or((right - 10 - lw, paper_py + 4, lw, lh));
    (label, label_rect)
}

/// The legend's rows: (text, colour, dashed). The last pass's errors as logged, not as
/// floored for the log axis.
fn legend_entries(points: &[CurvePoint]) -> [(String, Rgb, bool); 3] {
    let last = points
        .iter()
        .max_by_key(|p| p.epoch)
        .copied()
        .unwrap_or(points[0]);
    [
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
    ]
}

/// The legend's rectangle (x, y, w, h): the corner where it hides the least of the
/// curves and of the paper's line, and not the paper's label.
fn legend_rect(
    entries: &[(String, Rgb, bool)],
    paper_py: i32,
    label_rect: (i32, i32, i32, i32),
    curve_px: &[(i32, i32)],
) -> (i32, i32, i32, i32) {
    let (left, top, right, bottom) = curve_plot_area();
    let tw = entries
        .iter()
        .map(|en| text_width(&en.0, 2))
        .max()
        .unwrap_or(0);
    let (bw, bh) = (
        8 + 32 + 10 + tw + 10,
        8 + LEGEND_ROW_H * entries.len() as i32 + 2,
    );
    let mut line_px = Vec::new();
    sample_polyline(&[(left, paper_py), (right, paper_py)], &mut line_px);
    [
        (right - 10 - bw, top + 10),
        (left + 10, top + 10),
        (right - 10 - bw, bottom - 10 - bh),
        (left + 10, bottom - 10 - bh),
    ]
    .into_iter()
    .map(|(x, y)| (x, y, bw, bh))
    .min_by_key(|r| {
        10 * hits(curve_px, *r, 2)
            + hits(&line_px, *r, 2)
            + if overlaps(*r, label_rect) { 100_000 } else { 0 }
    })
    .unwrap_or((right - 10 - bw, top + 10, bw, bh))
}

/// The legend box at `rect` with a line sample per entry; its texts go into `texts`.
fn draw_legend(
    root: &CurveRoot,
    (bx, by, bw, bh): (i32, i32, i32, i32),
    entries: [(String, Rgb, bool); 3],
    texts: &mut Vec<CurveText>,
    out: &Path,
) -> Result<()> {
    let e = |e| draw_error(out, e);
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
        let ey = by + 6 + i as i32 * LEGEND_ROW_H;
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
    Ok(())
}

/// The text plotters cannot draw: the title, the axis names, the tick labels, the
/// paper's label and the legend's texts.
fn draw_curve_text(img: &mut RgbImage, ticks: &CurveTicks, texts: Vec<CurveText>) {
    let (left, top, right, bottom) = curve_plot_area();
    draw_text(img, left, 14, 2, CURVE_TITLE, INK);
    draw_text(img, 14, top - 34, 2, "error (%, log scale)", INK);
    for (py, label) in &ticks.y {
        let tw = text_width(label, 2);
        draw_text(img, left - 10 - tw, py - digit_mid(2), 2, label, INK);
    }
    for (px, label) in &ticks.x {
        let tw = text_width(label, 2);
        draw_text(img, px - tw / 2, bottom + 8, 2, label, INK);
    }
    let tw = text_width("pass", 2);
    draw_text(img, (left + right - tw) / 2, bottom + 44, 2, "pass", INK);
    for (x, y, text, color) in texts {
        draw_text(img, x, y, 2, &text, color);
    }
}
