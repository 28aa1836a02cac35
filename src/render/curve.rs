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

pub(super) fn draw_curve(points: &[CurvePoint], out: &Path) -> Result<RgbImage> {
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
