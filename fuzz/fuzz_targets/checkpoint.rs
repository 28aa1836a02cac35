//! The checkpoint loader (`checkpoint::parse`), strict (`--resume`) and for plain weights
//! (`eval`, `predict`): every input gives Ok or an error, never a panic; what loads is a
//! whole parameter buffer of finite values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for plain in [false, true] {
        if let Ok(ck) = lenet_gpu::checkpoint::parse(bytes, plain) {
            assert_eq!(ck.params.len(), lenet_gpu::model::params::N_PARAMS);
            assert!(ck.params.iter().all(|v| v.is_finite()));
            assert_eq!(ck.centers.len(), 840);
        }
    }
});
