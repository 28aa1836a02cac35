//! Turns `data/rbf_centers.txt` (ten 7x12 pictures, `#` ink, `.` background; lines starting
//! with "# " are comments) into the
//! constant `RBF_CENTERS: [f32; 840]`, so a malformed picture fails the build, not a run.

use std::{env, fs, path::Path};

fn main() {
    let src = "data/rbf_centers.txt";
    println!("cargo:rerun-if-changed={src}");
    let text = fs::read_to_string(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let mut values = Vec::with_capacity(840);
    let mut digit = 0usize;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with("# "));
    while let Some((n, head)) = lines.next() {
        let expect = format!("digit {digit}");
        assert_eq!(head.trim(), expect, "{src}:{}: expected '{expect}'", n + 1);
        for _ in 0..12 {
            let (n, row) = lines
                .next()
                .unwrap_or_else(|| panic!("{src}: digit {digit} has fewer than 12 rows"));
            let row = row.trim_end();
            assert_eq!(row.len(), 7, "{src}:{}: a row must be 7 characters", n + 1);
            for ch in row.chars() {
                values.push(match ch {
                    '#' => 1.0f32,
                    '.' => -1.0,
                    _ => panic!(
                        "{src}:{}: only '#' and '.' are allowed, found {ch:?}",
                        n + 1
                    ),
                });
            }
        }
        digit += 1;
    }
    assert_eq!(digit, 10, "{src}: expected 10 digits, found {digit}");
    let body: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("rbf_centers.rs");
    fs::write(
        out,
        format!(
            "/// The fixed RBF centres, (10,84), from data/rbf_centers.txt.\npub const RBF_CENTERS: [f32; 840] = [{}];\n",
            body.join(", ")
        ),
    )
    .unwrap();
}
