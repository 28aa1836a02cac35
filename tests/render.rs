//! The PNG pictures of `lenet_gpu::render`: each is written, read back with the `image`
//! crate and checked for its size and content. Set LENET_RENDER_EXAMPLES=DIR to keep one
//! example of each picture in DIR for a look.

use lenet_gpu::Error;
use lenet_gpu::render::{self, CurvePoint};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A fresh, empty folder for one test, removed when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("lenet-render-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Copies a picture into $LENET_RENDER_EXAMPLES when that is set.
fn keep_example(png: &Path) {
    if let Some(dir) = std::env::var_os("LENET_RENDER_EXAMPLES") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(png, dir.join(png.file_name().unwrap())).unwrap();
    }
}

fn load(png: &Path) -> image::RgbImage {
    image::open(png)
        .unwrap_or_else(|e| panic!("{}: {e}", png.display()))
        .to_rgb8()
}

fn colours(img: &image::RgbImage) -> HashSet<[u8; 3]> {
    img.pixels().map(|p| p.0).collect()
}

fn count(img: &image::RgbImage, c: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == c).count()
}

/// Only the named files in `dir`: no temporary file left behind.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

/// Test digits with their labels: real MNIST (LENET_DATA, else data/mnist) when present,
/// else digits drawn from the RBF bitmaps.
fn digits(n: usize) -> Vec<([u8; 784], u8)> {
    let dir = lenet_gpu::data::data_dir(None);
    let dir = if dir.is_absolute() {
        dir
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
    };
    if let Ok((_, test)) = lenet_gpu::data::load_mnist(&dir)
        && test.side == 28
    {
        return (0..n)
            .map(|i| (test.image(i).try_into().unwrap(), test.labels[i]))
            .collect();
    }
    (0..n)
        .map(|i| {
            let d = i % 10;
            let mut img = [0u8; 784];
            for r in 0..12 {
                for c in 0..7 {
                    if lenet_gpu::model::RBF_CENTERS[d * 84 + r * 7 + c] > 0.0 {
                        for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            img[(2 + 2 * r + dr) * 28 + 7 + 2 * c + dc] = 255;
                        }
                    }
                }
            }
            (img, d as u8)
        })
        .collect()
}

/// A plausible training log: 20 passes, errors falling towards the paper's.
fn training_log() -> Vec<CurvePoint> {
    (1..=20)
        .map(|e| {
            let t = e as f64;
            CurvePoint {
                epoch: e,
                train_error: 0.0035 + 0.03 * (-0.35 * (t - 1.0)).exp(),
                test_error: 0.0098 + 0.016 * (-0.45 * (t - 1.0)).exp(),
            }
        })
        .collect()
}

#[test]
fn learning_curve_shows_both_lines_and_the_reference() {
    let dir = temp_dir("curve");
    let png = dir.join("learning_curve.png");
    render::learning_curve(&training_log(), &png).unwrap();
    let img = load(&png);
    assert_eq!(img.dimensions(), render::CURVE_SIZE);
    assert!(colours(&img).len() >= 6, "too few colours: a blank chart?");
    assert!(count(&img, render::TEST_COLOR) > 200, "no test-error line");
    assert!(
        count(&img, render::TRAIN_COLOR) > 200,
        "no train-error line"
    );
    assert!(count(&img, render::PAPER_COLOR) > 100, "no reference line");
    assert_only(&dir, &["learning_curve.png"]);
    keep_example(&png);
}

#[test]
fn learning_curve_handles_edge_values() {
    let dir = temp_dir("curve-edges");
    let png = dir.join("learning_curve_one_pass.png");
    // One pass, a perfect training score (drawn at the log axis' floor), the worst test.
    let one = [CurvePoint {
        epoch: 0,
        train_error: 0.0,
        test_error: 1.0,
    }];
    render::learning_curve(&one, &png).unwrap();
    let img = load(&png);
    assert_eq!(img.dimensions(), render::CURVE_SIZE);
    assert!(count(&img, render::TEST_COLOR) > 10);
    keep_example(&png);

    // Not fractions.
    for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        let p = [CurvePoint {
            epoch: 1,
            train_error: 0.01,
            test_error: bad,
        }];
        match render::learning_curve(&p, &dir.join("bad.png")) {
            Err(Error::Config(msg)) => assert!(msg.contains("test error"), "{msg}"),
            other => panic!("{bad}: expected a Config error, got {other:?}"),
        }
    }
    assert_only(&dir, &["learning_curve_one_pass.png"]);
}

#[test]
fn learning_curve_without_points_says_so() {
    let dir = temp_dir("curve-empty");
    let png = dir.join("learning_curve_empty.png");
    render::learning_curve(&[], &png).unwrap();
    let img = load(&png);
    assert_eq!(img.dimensions(), render::CURVE_SIZE);
    assert!(colours(&img).len() >= 2, "blank picture");
    keep_example(&png);
}

/// Dark pixels in the 56x56 square at (x, y).
fn ink_in(img: &image::RgbImage, (x, y): (u32, u32)) -> usize {
    let mut n = 0;
    for yy in y..y + 56 {
        for xx in x..x + 56 {
            if img.get_pixel(xx, yy).0[0] < 100 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn error_grid_has_one_cell_per_error() {
    let dir = temp_dir("grid");
    let png = dir.join("errors.png");
    let ds = digits(3);
    let images: Vec<[u8; 784]> = ds.iter().map(|d| d.0).collect();
    let truth: Vec<u8> = ds.iter().map(|d| d.1).collect();
    let predicted: Vec<u8> = truth.iter().map(|t| (t + 1) % 10).collect();
    render::error_grid(&images, &truth, &predicted, &png).unwrap();
    let img = load(&png);

    // One row of three cells.
    assert_eq!(img.dimensions(), render::error_grid_size(3));
    let (w, h) = img.dimensions();
    assert_eq!(render::error_grid_columns(3), 3);
    assert_eq!(
        h,
        2 * render::GRID_MARGIN + render::GRID_HEADER_H + render::GRID_CELL_H
    );
    assert!(w >= 2 * render::GRID_MARGIN + 3 * render::GRID_CELL_W);
    for i in 0..3 {
        let at = render::error_grid_cell(i, 3);
        assert!(ink_in(&img, at) > 50, "cell {i} at {at:?} holds no digit");
    }
    // Nothing where a fourth cell would go.
    let (x4, y4) = render::error_grid_cell(3, 4);
    if x4 + 56 <= w {
        assert_eq!(ink_in(&img, (x4, y4)), 0, "a fourth cell?");
    }
    assert!(colours(&img).len() >= 3);
    assert!(
        count(&img, render::TEST_COLOR) > 0,
        "no predicted digit drawn"
    );
    assert_only(&dir, &["errors.png"]);
    keep_example(&png);
}

#[test]
fn error_grid_wraps_rows_within_the_width() {
    let dir = temp_dir("grid-rows");
    let png = dir.join("errors.png");
    let ds = digits(30);
    let images: Vec<[u8; 784]> = ds.iter().map(|d| d.0).collect();
    let truth: Vec<u8> = ds.iter().map(|d| d.1).collect();
    let predicted: Vec<u8> = truth.iter().map(|t| (t + 3) % 10).collect();
    render::error_grid(&images, &truth, &predicted, &png).unwrap();
    let img = load(&png);
    let cols = render::error_grid_columns(30);
    let rows = 30u32.div_ceil(cols);
    assert!(rows >= 2);
    assert!(img.width() <= render::GRID_MAX_WIDTH);
    assert_eq!(img.dimensions(), render::error_grid_size(30));
    assert_eq!(
        img.height(),
        2 * render::GRID_MARGIN + render::GRID_HEADER_H + rows * render::GRID_CELL_H
    );
    for i in 0..30 {
        assert!(
            ink_in(&img, render::error_grid_cell(i, 30)) > 50,
            "cell {i}"
        );
    }
}

#[test]
fn error_grid_empty_and_mismatched_inputs() {
    let dir = temp_dir("grid-edges");
    let png = dir.join("errors_none.png");
    render::error_grid(&[], &[], &[], &png).unwrap();
    let img = load(&png);
    assert_eq!(img.dimensions(), render::error_grid_size(0));
    assert!(colours(&img).len() >= 2, "no note drawn");
    keep_example(&png);

    let img = [[0u8; 784]; 2];
    for (truth, pred) in [(&[1u8][..], &[2u8, 3][..]), (&[1, 2], &[3])] {
        match render::error_grid(&img, truth, pred, &dir.join("x.png")) {
            Err(Error::Config(msg)) => assert!(msg.contains("must match"), "{msg}"),
            other => panic!("expected a Config error, got {other:?}"),
        }
    }
    match render::error_grid(&img, &[1, 10], &[2, 3], &dir.join("x.png")) {
        Err(Error::Config(msg)) => assert!(msg.contains("0 to 9"), "{msg}"),
        other => panic!("expected a Config error, got {other:?}"),
    }
    assert_only(&dir, &["errors_none.png"]);
}

fn region(name: &str) -> render::Region {
    render::feature_maps_regions()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no region {name}"))
}

fn crop(img: &image::RgbImage, r: render::Region) -> Vec<[u8; 3]> {
    let mut v = Vec::new();
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w {
            v.push(img.get_pixel(x, y).0);
        }
    }
    v
}

#[test]
fn feature_maps_follow_the_digit() {
    let dir = temp_dir("maps");
    let params = lenet_gpu::model::params::init(1);
    let ds = digits(2);
    assert_ne!(ds[0].0, ds[1].0);
    let (a, b) = (dir.join("feature_maps.png"), dir.join("b.png"));
    render::feature_maps(&params, &ds[0].0, &a).unwrap();
    render::feature_maps(&params, &ds[1].0, &b).unwrap();
    let (ia, ib) = (load(&a), load(&b));
    assert_eq!(ia.dimensions(), render::feature_maps_size());
    assert!(colours(&ia).len() >= 32, "too few grey levels");

    let names: Vec<&str> = render::feature_maps_regions()
        .iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["input", "C1 kernels", "C1", "S2", "C3", "S4"]);
    for r in render::feature_maps_regions() {
        assert!(r.x + r.w <= ia.width() && r.y + r.h <= ia.height(), "{r:?}");
    }
    // Other digit, other maps; same parameters, same kernels.
    assert_ne!(crop(&ia, region("input")), crop(&ib, region("input")));
    assert_ne!(crop(&ia, region("C1")), crop(&ib, region("C1")));
    assert_ne!(crop(&ia, region("C3")), crop(&ib, region("C3")));
    assert_ne!(crop(&ia, region("S2")), crop(&ib, region("S2")));
    assert_ne!(crop(&ia, region("S4")), crop(&ib, region("S4")));
    assert_eq!(
        crop(&ia, region("C1 kernels")),
        crop(&ib, region("C1 kernels"))
    );
    assert_only(&dir, &["feature_maps.png", "b.png"]);
    keep_example(&a);

    match render::feature_maps(&params[1..], &ds[0].0, &dir.join("x.png")) {
        Err(Error::Config(msg)) => assert!(msg.contains("60000"), "{msg}"),
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn a_missing_folder_is_an_error_naming_the_path() {
    let dir = temp_dir("missing");
    let png = dir.join("no/such/folder/x.png");
    let check = |r: lenet_gpu::Result<()>| match r {
        Err(Error::Io { path, .. }) => assert_eq!(path, png),
        other => panic!("expected an Io error, got {other:?}"),
    };
    check(render::learning_curve(&training_log(), &png));
    check(render::learning_curve(&[], &png));
    let ds = digits(1);
    check(render::error_grid(&[ds[0].0], &[ds[0].1], &[0], &png));
    check(render::feature_maps(
        &lenet_gpu::model::params::init(1),
        &ds[0].0,
        &png,
    ));
    assert_only(&dir, &[]);
}
