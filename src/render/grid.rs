//! The error grid: every misclassified digit, labelled true->predicted.

use super::*;

// ---------------------------------------------------------------------------------------
// Error grid.

pub(super) fn grid_header(n: usize) -> String {
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
    check_grid_input(images, truth, predicted, indices)?;
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
        let label = (truth[i], predicted[i], indices.map(|ix| ix[i]));
        draw_error_cell(&mut img, (x as i32, y as i32), &images[i], label);
    }
    save_png(&img, out)
}

/// The lists must be equally long and the digits 0 to 9.
fn check_grid_input(
    images: &[[u8; 784]],
    truth: &[u8],
    predicted: &[u8],
    indices: Option<&[usize]>,
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
    Ok(())
}

/// One cell, its 56x56 digit at (x, y): the frame, the digit (dark ink on white) and its
/// label "T->P" with, when given, its test-set index under it.
fn draw_error_cell(
    img: &mut RgbImage,
    (x, y): (i32, i32),
    digit: &[u8; 784],
    (truth, predicted, index): (u8, u8, Option<usize>),
) {
    fill_rect(
        img,
        x - 4,
        y - 4,
        GRID_CELL_W as i32 - 4,
        GRID_CELL_H as i32 - 4,
        WHITE,
    );
    outline(
        img,
        x - 4,
        y - 4,
        GRID_CELL_W as i32 - 4,
        GRID_CELL_H as i32 - 4,
        [200, 200, 200],
    );
    for (k, &v) in digit.iter().enumerate() {
        let g = 255 - v;
        fill_rect(
            img,
            x + (k % 28) as i32 * 2,
            y + (k / 28) as i32 * 2,
            2,
            2,
            [g, g, g],
        );
    }
    let (t, p) = (truth.to_string(), predicted.to_string());
    let lw = text_width(&format!("{t}->{p}"), 2);
    let mut lx = x + (56 - lw) / 2;
    let ly = y + 56 + 4;
    lx += draw_text(img, lx, ly, 2, &t, INK);
    lx += draw_text(img, lx, ly, 2, "->", MUTED);
    draw_text(img, lx, ly, 2, &p, TEST_COLOR);
    if let Some(ix) = index {
        let label = ix.to_string();
        let lx = x + (56 - text_width(&label, 1)) / 2;
        draw_text(img, lx, ly + 28, 1, &label, MUTED);
    }
}
