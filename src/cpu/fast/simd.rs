//! The builds of the block passes (portable, AVX2, AVX-512): which one this process runs,
//! and the dispatch of a block pass to it.

/// The builds of the block passes, widest first. Each is the same code compiled for a
/// vector width: the lane loops run over eight patterns (one 256-bit vector), or, with
/// AVX-512, over two positions of eight patterns at once (one 512-bit vector).
///
/// Arithmetic. The portable and AVX2 builds contain no fused multiply-adds (Rust never
/// contracts a * b + c on its own), so they compute the same per-lane arithmetic and give
/// bit-identical results; their GEMMs for C5 and F6 are `matrixmultiply`'s, which picks
/// its own kernels by CPU. The AVX-512 build has its own kernels for the hot passes (C1
/// and C3 forward, C3's input gradient, the C1 and C3 weight gradients, and C5 and F6 as
/// matrix-vector and outer products), all with fused multiply-adds, and sums even and odd
/// positions of the weight gradients apart: it agrees with the other two to rounding, not
/// bit for bit. On one machine and build a seed gives the same weights whatever the
/// thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    Portable,
    Avx2,
    Avx512,
}

impl Simd {
    /// The name the run banner and `bench` print.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "AVX2",
            Simd::Avx512 => "AVX-512",
        }
    }

    /// The builds this CPU can run, widest first (the portable one always).
    pub fn available() -> Vec<Simd> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let has = |f: &str| match f {
                "avx2" => std::arch::is_x86_feature_detected!("avx2"),
                "fma" => std::arch::is_x86_feature_detected!("fma"),
                "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
                _ => false,
            };
            if ["avx512f", "avx512vl", "avx2", "fma"]
                .iter()
                .all(|f| has(f))
            {
                v.push(Simd::Avx512);
            }
            if has("avx2") && has("fma") {
                v.push(Simd::Avx2);
            }
        }
        v.push(Simd::Portable);
        v
    }
}

/// The build of the block passes this process runs, chosen once: the widest the CPU has,
/// unless `LENET_CPU_PORTABLE=1` (the portable build) or `LENET_CPU_AVX2=1` (AVX2, where the
/// CPU has it) says otherwise, so that the tests can check the builds against each other.
pub fn simd() -> Simd {
    if let Some(s) = FORCED.with(|f| f.get()) {
        return s;
    }
    static SIMD: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *SIMD.get_or_init(|| {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| v == "1");
        let have = Simd::available();
        if set("LENET_CPU_PORTABLE") {
            Simd::Portable
        } else if set("LENET_CPU_AVX2") && have.contains(&Simd::Avx2) {
            Simd::Avx2
        } else {
            have[0]
        }
    })
}

thread_local! {
    static FORCED: std::cell::Cell<Option<Simd>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the block passes of this thread in build `s` (one of `Simd::available()`),
/// whatever `simd()` chose for the process: the tests check each build against the
/// reference in one process this way. Only this thread: work `f` hands to rayon's threads
/// runs the process's build.
pub fn with_simd<T>(s: Simd, f: impl FnOnce() -> T) -> T {
    assert!(
        Simd::available().contains(&s),
        "this CPU cannot run the {} build",
        s.name()
    );
    let before = FORCED.with(|c| c.replace(Some(s)));
    let out = f();
    FORCED.with(|c| c.set(before));
    out
}

/// Runs `$any` (an `#[inline(always)]` method) through the build `simd()` chose: `$avx512`
/// and `$avx2` are wrappers that compile the same code with those target features.
macro_rules! dispatch {
    ($self:ident . $any:ident / $avx2:ident / $avx512:ident ( $($arg:expr),* )) => {{
        #[cfg(target_arch = "x86_64")]
        match $crate::cpu::fast::simd() {
            // SAFETY: `simd()` chose the build from the CPU's features (checked at run time).
            $crate::cpu::fast::Simd::Avx512 => return unsafe { $self.$avx512($($arg),*) },
            $crate::cpu::fast::Simd::Avx2 => return unsafe { $self.$avx2($($arg),*) },
            $crate::cpu::fast::Simd::Portable => {}
        }
        $self.$any($($arg),*)
    }};
}
