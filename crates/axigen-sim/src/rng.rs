//! A small deterministic pseudo-random generator (SplitMix64).
//!
//! Generated data must stay the same for a seed across builds and crate
//! upgrades, so the simulator carries its own generator instead of relying on
//! a library whose algorithm may change between versions.

/// SplitMix64: 64 bits of state, one add and a mixing function per output.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a value in `0..bound`; `bound` must be positive.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        // The modulo bias is below 2^-40 for the small bounds used here.
        self.next_u64() % bound
    }

    /// Returns a value in `low..=high`.
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// Returns true with the given probability in percent.
    pub(crate) fn percent(&mut self, chance: u64) -> bool {
        self.below(100) < chance
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut first = SplitMix64::new(7);
        let mut second = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(first.next_u64(), second.next_u64());
        }
    }

    #[test]
    fn range_stays_inside_bounds() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..1000 {
            let value = rng.range(3, 5);
            assert!((3..=5).contains(&value), "value {value} outside 3..=5");
        }
    }
}
