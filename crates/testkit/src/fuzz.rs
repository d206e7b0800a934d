//! Fuzzing on stable Rust with proptest: input strategies (arbitrary bytes, and seeds with
//! random edits, which reach deeper into a parser than noise does) and a counter that prints
//! how many inputs a target ran.
//!
//! `CF_ALLOW_FUZZ_CASES` sets the number of inputs per target (default 256, the bounded run
//! of `make test`; `make fuzz` runs many more). proptest keeps every failing input in
//! `<target>.regressions` next to the target's source, and replays it first on every run.

use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;

/// Inputs per target: `CF_ALLOW_FUZZ_CASES`, else 256.
pub fn cases() -> u32 {
    std::env::var("CF_ALLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(256)
}

/// The proptest config of a fuzz target.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2_000,
        // `<target file>.regressions` next to the target, committed with it.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// Counts a target's inputs and prints `fuzz NAME: N inputs` after the last one.
pub struct Counter {
    name: &'static str,
    count: AtomicU32,
}

impl Counter {
    /// A counter for the target `name`.
    pub const fn new(name: &'static str) -> Counter {
        Counter {
            name,
            count: AtomicU32::new(0),
        }
    }

    /// Counts one input.
    pub fn tick(&self) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n == cases() {
            println!("fuzz {}: {n} inputs", self.name);
        }
    }
}

/// Arbitrary bytes, up to `max` long.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// One of `seeds` with up to 8 random edits (a byte replaced, inserted or removed, or a
/// slice duplicated), or arbitrary bytes (one input in four).
pub fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<u8>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        0u8..4,
    );
    let edited = (
        prop::sample::select(seeds),
        proptest::collection::vec(edit, 0..8),
    )
        .prop_map(|(seed, edits)| {
            let mut bytes = seed.as_bytes().to_vec();
            for (byte, at, to, kind) in edits {
                let len = bytes.len();
                match kind {
                    0 if len > 0 => bytes[at.index(len)] = byte,
                    1 => bytes.insert(at.index(len + 1), byte),
                    2 if len > 0 => {
                        bytes.remove(at.index(len));
                    }
                    _ if len > 0 => {
                        let (a, b) = (at.index(len), to.index(len));
                        let (a, b) = (a.min(b), a.max(b));
                        let copy = bytes[a..b].to_vec();
                        bytes.splice(a..a, copy);
                    }
                    _ => bytes.push(byte),
                }
            }
            bytes
        });
    prop_oneof![3 => edited, 1 => bytes(512)]
}
