//! Twilio-style SIDs from the simulator's seeded RNG: two uppercase letters and 32 lowercase hex.

use rand::Rng;

/// A new SID with `prefix` (`WT`, `WR`, `EV`…).
pub fn generate(rng: &mut impl Rng, prefix: &str) -> String {
    format!("{prefix}{:032x}", rng.gen::<u128>())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    #[test]
    fn sids_are_34_chars_and_deterministic() {
        let mut a = rand::rngs::SmallRng::seed_from_u64(7);
        let mut b = rand::rngs::SmallRng::seed_from_u64(7);
        let sid = super::generate(&mut a, "WT");
        assert!(taskrouter_protocol::sid::has_form(&sid, "WT"), "{sid}");
        assert_eq!(sid, super::generate(&mut b, "WT"));
    }
}
