//! *Internal:* Pictures for people, as PNG files: the learning curve, the grid of misclassified digits
//! (like figure 8 of the paper) and the feature maps of the network looking at one digit.
//!
//! No font files are needed. Digits are drawn with the network's own RBF centre bitmaps
//! (7x12, `data/rbf_centers.txt`), every other glyph with the small 5x7 bitmap font below.
//! The learning curve's grid, lines, markers and legend box are drawn by `plotters` into an
//! RGB buffer and its text by that font afterwards: plotters is built without a font backend
//! and must never be asked to draw text (it would panic).
//!
//! Every file is written atomically: into a temporary file in the same folder, then renamed.

use crate::cpu::{self, Workspace};
use crate::model::RBF_CENTERS;
use crate::model::SQUASH_A;
use crate::model::params::{C1_W, N_PARAMS};
use crate::{Error, Result};
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

mod curve;
mod font;
mod grid;
mod maps;

pub use curve::*;
use font::*;
pub use grid::*;
pub use maps::*;

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
