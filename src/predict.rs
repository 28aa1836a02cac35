//! *Internal:* Classifying a user's own digit image: decode it (PNG or JPEG, any size), prepare it the
//! way MNIST prepared its digits (LeCun et al.: ink bright on black, the digit's bounding
//! box scaled to fit 20x20 keeping its aspect ratio, then placed in a 28x28 field so that
//! its centre of mass is at the centre), and run the CPU forward pass on it.
//!
//! Nothing here panics on any image: zero-size, 1x1, blank, or 1000x1 inputs give either a
//! prepared digit or an `Err` that says why not.

use crate::cpu::{Workspace, input_forward, pattern_forward, predict};
use crate::model::RBF_CENTERS;
use crate::{Error, Result};
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, ImageBuffer, Luma};
use std::path::Path;

/// Side of a prepared digit, as in MNIST.
pub const SIDE: usize = 28;

/// The larger side of the digit's bounding box after scaling, as in MNIST.
const BOX: f32 = 20.0;

/// Why a blank image is refused.
const BLANK: &str = "the image is blank (no ink found)";

/// Below this grey range (on a 0..1 scale) between the background and the brightest pixel
/// there is no ink to speak of: the image is blank or uniform (about 2 levels of 255, so
/// rounding and JPEG dither of a plain page are not taken for a digit).
const MIN_CONTRAST: f32 = 2.0 / 255.0;

/// Grey levels this fraction of the way from the background to the brightest pixel, or
/// closer to the background, are set to background: paper texture, scanner noise and JPEG
/// dither stay black, as MNIST's background is.
const BACKGROUND_MARGIN: f32 = 0.05;

/// Which percentile of the strong pixels is taken as the ink level (see step 3).
const INK_PERCENTILE: f32 = 0.9;

/// A pixel is ink, for the bounding box, when it is brighter than this fraction of the
/// ink level after stretching: faint halos (anti-aliasing, JPEG ringing around the
/// strokes) then do not widen the box and shrink the digit.
const INK: f32 = 0.10;

/// A digit image prepared as MNIST prepares its own: 28x28 u8, row-major, ink bright (255)
/// on black (0).
///
/// Errors (as a reason, for the caller to attach to a file name): the image has no pixels,
/// or it holds no ink ("the image is blank (no ink found)").
pub fn preprocess(img: &DynamicImage) -> std::result::Result<[u8; SIDE * SIDE], String> {
    prepare(img).map(|p| p.pixels)
}

/// A prepared digit and, when the picture held too little to be a digit worth reading,
/// a warning saying so (the digit is still classified).
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub pixels: [u8; SIDE * SIDE],
    pub warning: Option<String>,
}

/// Below this many pixels on its longer side the digit's ink was blown up from almost
/// nothing to 20x20 (a 3x3 picture, a dot): MNIST's digits span 20 pixels.
const MIN_INK_SIDE: usize = 8;

/// Below this many ink pixels in the picture there is hardly a stroke to read.
const MIN_INK_PIXELS: usize = 12;

/// [`preprocess`], with the low-ink warning.
pub fn prepare(img: &DynamicImage) -> std::result::Result<Prepared, String> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(format!("the image has no pixels ({w}x{h})"));
    }
    let mut grey = grey_levels(img);
    make_ink_bright(&mut grey, w, h);
    stretch_ink(&mut grey, w, h)?;
    let (x0, y0, cw, ch) = ink_box(&grey, w)?;
    let warning = low_ink_warning(&grey, cw, ch);
    let crop = crop(&grey, w, (x0, y0, cw, ch));
    drop(grey);
    let small = scale_to_box(crop, cw, ch)?;
    let pixels = centre_by_mass(&small)?;
    Ok(Prepared { pixels, warning })
}

/// Whether pixel `i` of a `w` x `h` image lies on its outermost ring.
fn on_border(i: usize, w: usize, h: usize) -> bool {
    let (x, y) = (i % w, i / w);
    x == 0 || y == 0 || x == w - 1 || y == h - 1
}

/// Step 1: grey levels in 0..1 (Rec. 601 luma), row-major, alpha composited over white: a
/// transparent pixel is paper, not ink, whatever colour it happens to store. Read pixel by
/// pixel so a large image is not copied whole into another pixel format first.
fn grey_levels(img: &DynamicImage) -> Vec<f32> {
    let w = img.width() as usize;
    let mut grey = vec![0f32; w * img.height() as usize];
    for (x, y, p) in img.pixels() {
        let [r, g, b, a] = p.0.map(|c| c as f32 / 255.0);
        let luma = 0.299 * r + 0.587 * g + 0.114 * b;
        grey[y as usize * w + x as usize] = a * luma + (1.0 - a);
    }
    grey
}

/// Step 2, polarity: the outermost ring of pixels is almost all background. MNIST has bright
/// ink on black, so an image whose border is light on average (dark ink on paper, the usual
/// case) is inverted.
fn make_ink_bright(grey: &mut [f32], w: usize, h: usize) {
    let border_mean = {
        let (mut s, mut n) = (0f64, 0usize);
        for (i, &v) in grey.iter().enumerate() {
            if on_border(i, w, h) {
                s += v as f64;
                n += 1;
            }
        }
        s / n.max(1) as f64
    };
    if border_mean > 127.0 / 255.0 {
        for v in grey {
            *v = 1.0 - *v;
        }
    }
}

/// Step 3, background to 0 and ink to full range: the border's median is the background
/// level (the median, so ink touching the edge does not move it); levels within a small
/// margin above it become 0, so paper texture and JPEG noise stay black as MNIST's
/// background is. The ink level, which becomes 255, is the 90th percentile of the strong
/// pixels (those past halfway to the brightest), not the single brightest one, so one dark
/// speck cannot leave the real strokes faint; a pencil digit on grey paper ends up with
/// MNIST's contrast.
fn stretch_ink(grey: &mut [f32], w: usize, h: usize) -> std::result::Result<(), String> {
    let mut border: Vec<f32> = grey
        .iter()
        .enumerate()
        .filter(|&(i, _)| on_border(i, w, h))
        .map(|(_, &v)| v)
        .collect();
    let mid = border.len() / 2;
    let (_, &mut background, _) = border.select_nth_unstable_by(mid, f32::total_cmp);
    drop(border);
    let brightest = grey.iter().copied().fold(0f32, f32::max);
    let range = brightest - background;
    if range.is_nan() || range < MIN_CONTRAST {
        return Err(BLANK.into());
    }
    let floor = background + BACKGROUND_MARGIN * range;
    let half = floor + 0.5 * (brightest - floor);
    let mut strong: Vec<f32> = grey.iter().copied().filter(|&v| v >= half).collect();
    let ink = match strong.len() {
        0 => brightest,
        n => {
            let k = ((n - 1) as f32 * INK_PERCENTILE).round() as usize;
            *strong
                .select_nth_unstable_by(k.min(n - 1), f32::total_cmp)
                .1
        }
    };
    drop(strong);
    let span = (ink - floor).max(f32::MIN_POSITIVE);
    for v in grey {
        *v = ((*v - floor) / span).clamp(0.0, 1.0);
    }
    Ok(())
}

/// Step 4, the bounding box of the ink as (x0, y0, width, height): MNIST normalised the
/// digit's own extent, not the page's, so margins of any size must not matter.
fn ink_box(grey: &[f32], w: usize) -> std::result::Result<(usize, usize, usize, usize), String> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
    for (i, &v) in grey.iter().enumerate() {
        if v > INK {
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 || y0 > y1 {
        return Err(BLANK.into());
    }
    Ok((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// The warning for a digit of too little ink: a box of `cw` x `ch` pixels, or few ink pixels.
fn low_ink_warning(grey: &[f32], cw: usize, ch: usize) -> Option<String> {
    let ink_pixels = grey.iter().filter(|&&v| v > INK).count();
    (cw.max(ch) < MIN_INK_SIDE || ink_pixels < MIN_INK_PIXELS).then(|| {
        format!(
            "very little ink: the digit spans {cw}x{ch} pixels ({ink_pixels} of them ink) and was \
             enlarged to MNIST's 20 pixels, so this answer may mean little; a digit written \
             larger, or a picture of higher resolution, reads better"
        )
    })
}

/// The (x0, y0, width, height) box of the `w`-wide image `grey`, row-major.
fn crop(grey: &[f32], w: usize, (x0, y0, cw, ch): (usize, usize, usize, usize)) -> Vec<f32> {
    let mut crop = Vec::with_capacity(cw * ch);
    for y in y0..y0 + ch {
        crop.extend_from_slice(&grey[y * w + x0..y * w + x0 + cw]);
    }
    crop
}

/// Step 5: the `cw` x `ch` crop scaled so its larger side is 20 pixels, keeping the aspect
/// ratio (a "1" stays thin). Lanczos3 weighs every source pixel an output pixel covers (no
/// aliasing when shrinking a photo) and keeps strokes sharp, which gives the anti-aliased
/// but crisp edges MNIST's digits have; its slight ringing below black is clipped to 0
/// later. (It reproduced rendered MNIST digits more closely than Triangle or CatmullRom.)
fn scale_to_box(
    crop: Vec<f32>,
    cw: usize,
    ch: usize,
) -> std::result::Result<ImageBuffer<Luma<f32>, Vec<f32>>, String> {
    let scale = BOX / cw.max(ch) as f32;
    let side = |n: usize| ((n as f32 * scale).round() as u32).clamp(1, BOX as u32);
    let (sw, sh) = (side(cw), side(ch));
    let crop: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_raw(cw as u32, ch as u32, crop).ok_or("internal: crop size")?;
    Ok(image::imageops::resize(&crop, sw, sh, FilterType::Lanczos3))
}

/// Step 6: the scaled digit in a black 28x28 field with its intensity-weighted centre of
/// mass on pixel (14, 14), as MNIST did (its test digits' centres of mass average 14.0 in
/// both axes): the network was trained on digits centred that way, not by their bounding
/// box. The shift is rounded to whole pixels (no resampling blur); what falls outside the
/// field is clipped.
fn centre_by_mass(
    small: &ImageBuffer<Luma<f32>, Vec<f32>>,
) -> std::result::Result<[u8; SIDE * SIDE], String> {
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (x, y, p) in small.enumerate_pixels() {
        let v = p.0[0] as f64;
        m += v;
        mx += v * x as f64;
        my += v * y as f64;
    }
    if !(m > 0.0 && m.is_finite()) {
        return Err(BLANK.into());
    }
    let centre = (SIDE / 2) as f64;
    let dx = (centre - mx / m).round() as i64;
    let dy = (centre - my / m).round() as i64;
    let mut out = [0u8; SIDE * SIDE];
    for (x, y, p) in small.enumerate_pixels() {
        let (tx, ty) = (x as i64 + dx, y as i64 + dy);
        if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
            out[ty as usize * SIDE + tx as usize] = (p.0[0].clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    if out.iter().all(|&v| v == 0) {
        return Err(BLANK.into());
    }
    Ok(out)
}

/// Opens and decodes an image file (PNG or JPEG, any size; the format is read from the
/// file's first bytes, so a misnamed file still works), then [`preprocess`]es it.
///
/// Errors name the file: [`Error::Io`] when it cannot be read, [`Error::Image`] when it is
/// empty, not a decodable PNG/JPEG, or blank.
pub fn load(path: &Path) -> Result<[u8; SIDE * SIDE]> {
    load_prepared(path).map(|p| p.pixels)
}

/// [`load`], with the low-ink warning of [`prepare`].
pub fn load_prepared(path: &Path) -> Result<Prepared> {
    let bad = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(bad("is a directory, expected a PNG or JPEG image".into()));
    }
    if meta.len() == 0 {
        return Err(bad("the file is empty (0 bytes)".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes).map_err(bad)
}

/// A PNG or JPEG picture in memory, decoded and prepared as [`prepare`] prepares it (the
/// same steps as for a file: `predict` and `serve` read a picture alike). Errors say why,
/// for the caller to attach to where the bytes came from.
pub fn decode(bytes: &[u8]) -> std::result::Result<Prepared, String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("not a readable PNG or JPEG image: {e}");
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(&e))?;
    // A header may claim any size: a digit needs no picture over 8192 a side or 256 MiB.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            unreadable(&"the file is truncated")
        }
        e => unreadable(&e),
    })?;
    prepare(&img)
}

/// The low-ink warning of [`prepare`] for a digit given as 28x28 grey values (ink high),
/// as the JSON API takes them: the same thresholds, on the pixels as they are.
pub fn ink_warning(pixels: &[u8; SIDE * SIDE]) -> Option<String> {
    let grey: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    match ink_box(&grey, SIDE) {
        Ok((_, _, cw, ch)) => low_ink_warning(&grey, cw, ch),
        Err(blank) => Some(blank),
    }
}

/// What the network makes of one digit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The class with the smallest distance (the first on ties).
    pub digit: u8,
    /// The ten RBF outputs: squared distance of F6's output to each class's centre.
    pub distances: [f32; 10],
}

/// The CPU reference forward pass on a prepared 28x28 digit: every layer's outputs.
pub fn forward(params: &[f32], img: &[u8; SIDE * SIDE]) -> Workspace<f32> {
    let mut ws = Workspace::<f32>::default();
    input_forward(img, SIDE, &mut ws.x0);
    pattern_forward(params, &RBF_CENTERS, &mut ws);
    ws
}

/// Runs the CPU reference forward pass on a prepared 28x28 digit.
///
/// Panics if `params` is not a full parameter buffer (`crate::model::params::N_PARAMS` values).
pub fn classify(params: &[f32], img: &[u8; SIDE * SIDE]) -> Prediction {
    assert_eq!(
        params.len(),
        crate::model::params::N_PARAMS,
        "classify needs a full parameter buffer"
    );
    let ws = forward(params, img);
    let mut distances = [0f32; 10];
    distances.copy_from_slice(&ws.y[..10]);
    Prediction {
        digit: predict(&distances) as u8,
        distances,
    }
}
