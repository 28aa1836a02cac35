//! The checkpoint format's own pieces: the C3 table's dense form and tensor indices.

use super::*;

fn compact_ramp() -> Vec<f32> {
    (0..C3_COMPACT_LEN).map(|i| i as f32 + 1.0).collect()
}

#[test]
fn c3_dense_round_trip() {
    let compact = compact_ramp();
    let dense = c3_to_dense(&compact);
    assert_eq!(dense.len(), 2400);
    assert_eq!(c3_from_dense(&dense).unwrap(), compact);
    // Exactly the linked 60 x 25 entries are non-zero.
    assert_eq!(dense.iter().filter(|&&v| v != 0.0).count(), 1500);
    // C3 map 4 reads S2 maps 4, 5, 0: its third link (S2 map 0) sits at dense [4,0].
    let src = (c3_link_start(4) + 2) * 25;
    let dst = (4 * 6) * 25;
    assert_eq!(dense[dst..dst + 25], compact[src..src + 25]);
    // C3 map 0 does not read S2 map 3.
    assert!(dense[(3) * 25..4 * 25].iter().all(|&v| v == 0.0));
}

#[test]
fn c3_from_dense_rejects_non_links() {
    let mut dense = c3_to_dense(&compact_ramp());
    // C3 map 12 reads 0, 1, 3, 4: not S2 map 2.
    dense[(12 * 6 + 2) * 25 + 7] = 0.5;
    let err = c3_from_dense(&dense).unwrap_err();
    assert!(
        err.contains("C3 map 12") && err.contains("S2 map 2"),
        "{err}"
    );
    assert!(err.contains("[12,2,1,2]"), "{err}");

    let mut dense = c3_to_dense(&compact_ramp());
    dense[(6 + 5) * 25] = f32::NAN; // C3 map 1 reads 1, 2, 3
    assert!(c3_from_dense(&dense).unwrap_err().contains("S2 map 5"));

    // Negative zero counts as zero.
    let mut dense = c3_to_dense(&compact_ramp());
    dense[5 * 25] = -0.0;
    assert!(c3_from_dense(&dense).is_ok());

    assert!(c3_from_dense(&[0.0; 10]).is_err());
}

#[test]
fn index_strings() {
    assert_eq!(index_string(0, &[6]), "[0]");
    assert_eq!(index_string(5 * 25 + 7, &[16, 6, 5, 5]), "[0,5,1,2]");
    assert_eq!(index_string(121, &[84, 120]), "[1,1]");
}
