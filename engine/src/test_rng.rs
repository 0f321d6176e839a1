//! Deterministic noise for the engine's statistical tests, without a dependency.

/// SplitMix64: the same stream on every platform.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in ±`spread`.
    pub(crate) fn noise(&mut self, spread: f64) -> f64 {
        spread * (2.0 * self.next_f64() - 1.0)
    }
}
