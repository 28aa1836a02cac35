//! The feature maps: a digit, the C1 kernels, and the maps of C1, S2, C3 and S4.

use super::*;

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

pub(super) const FM_MARGIN: i32 = 16;
pub(super) const FM_TITLE_H: i32 = 32;
pub(super) const FM_ROW_GAP: i32 = 18;
pub(super) const FM_GAP: i32 = 12;
pub(super) const FM_INPUT_SCALE: i32 = 4;
pub(super) const FM_C1_SCALE: i32 = 4;
pub(super) const FM_KERNEL_SCALE: i32 = 16;
pub(super) const FM_C3_SCALE: i32 = 8;
pub(super) const FM_S2_SCALE: i32 = 4;
pub(super) const FM_S4_SCALE: i32 = 8;

/// The title drawn over each row: the block's name and size, as the paper writes them.
pub(super) fn fm_title(name: &str) -> &'static str {
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
pub(super) struct FmLayout {
    size: (u32, u32),
    rows: Vec<FmRow>,
}

/// One row of the feature-map picture: its region, where its title goes, and the top-left
/// corner of each of its maps.
pub(super) struct FmRow {
    region: Region,
    title: (i32, i32),
    maps: Vec<(i32, i32)>,
}

/// The rows of the feature-map picture, top to bottom.
const FM_ROWS: [&str; 6] = ["input", "C1 kernels", "C1", "S2", "C3", "S4"];

pub(super) fn fm_layout() -> FmLayout {
    let c1_w = 6 * 28 * FM_C1_SCALE + 5 * FM_GAP;
    let mut y = FM_MARGIN;
    let mut rows = Vec::new();
    for (i, name) in FM_ROWS.into_iter().enumerate() {
        if i > 0 {
            y += FM_ROW_GAP;
        }
        let (maps, side) = fm_row_maps(name, y + FM_TITLE_H);
        let (row, bottom) = fm_row(name, y, maps, side);
        rows.push(row);
        y = bottom;
    }
    FmLayout {
        size: ((c1_w + 2 * FM_MARGIN) as u32, (y + FM_MARGIN) as u32),
        rows,
    }
}

/// The top-left corners of the maps of row `name` whose maps start at `top`, and the side
/// of each map in pixels.
fn fm_row_maps(name: &str, top: i32) -> (Vec<(i32, i32)>, i32) {
    let c1_side = 28 * FM_C1_SCALE;
    let c1_pitch = c1_side + FM_GAP;
    let c3_side = 10 * FM_C3_SCALE;
    // Centred in the column of C1 map i.
    let under_c1 = |i: i32, side: i32| (FM_MARGIN + i * c1_pitch + (c1_side - side) / 2, top);
    match name {
        "input" => (vec![(FM_MARGIN, top)], 32 * FM_INPUT_SCALE),
        // the C1 kernels, each centred over the map it makes
        "C1 kernels" => {
            let side = 5 * FM_KERNEL_SCALE;
            ((0..6).map(|i| under_c1(i, side)).collect(), side)
        }
        "C1" => (
            (0..6).map(|i| (FM_MARGIN + i * c1_pitch, top)).collect(),
            c1_side,
        ),
        // S2, each under its C1 map
        "S2" => {
            let side = 14 * FM_S2_SCALE;
            ((0..6).map(|i| under_c1(i, side)).collect(), side)
        }
        // C3, two rows of eight
        "C3" => {
            let maps = (0..16)
                .map(|i| {
                    (
                        FM_MARGIN + (i % 8) * (c3_side + FM_GAP),
                        top + (i / 8) * (c3_side + FM_GAP),
                    )
                })
                .collect();
            (maps, c3_side)
        }
        // S4, two rows of eight, each where its C3 map is
        _ => {
            let pitch = c3_side + FM_GAP;
            let side4 = 5 * FM_S4_SCALE;
            let maps = (0..16)
                .map(|i| {
                    (
                        FM_MARGIN + (i % 8) * pitch + (c3_side - side4) / 2,
                        top + (i / 8) * (side4 + FM_GAP),
                    )
                })
                .collect();
            (maps, side4)
        }
    }
}

/// Row `name` with its title at `title_y` and its maps (each `size` pixels square) at
/// `maps`; its region is their bounding box. Returns it with the region's bottom edge.
fn fm_row(name: &'static str, title_y: i32, maps: Vec<(i32, i32)>, size: i32) -> (FmRow, i32) {
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
    let row = FmRow {
        region,
        title: (FM_MARGIN, title_y),
        maps,
    };
    (row, y1)
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
