//! Probabilistic early refresh (XFetch, Vattani et al., "Optimal
//! Probabilistic Cache Stampede Prevention"): a reader refreshes an entry
//! before it expires with a probability that grows as expiry nears and
//! with how long the value took to compute, so one reader (not all of
//! them at the instant of expiry) reloads a hot key.
//!
//! Refresh when `now - delta * beta * ln(u) >= expiry`, u uniform in (0, 1].

use std::time::Duration;

/// β = 1 is the paper's optimum for most workloads.
pub const DEFAULT_BETA: f64 = 1.0;

/// Whether a reader should refresh an entry now, given the time until it
/// expires, the time its value took to compute, β, and a uniform sample
/// `u` in (0, 1].
pub fn should_refresh(remaining: Duration, delta: Duration, beta: f64, u: f64) -> bool {
    if beta <= 0.0 || delta.is_zero() {
        return false;
    }
    if remaining.is_zero() {
        return true;
    }
    let u = u.clamp(f64::MIN_POSITIVE, 1.0);
    let early = delta.as_secs_f64() * beta * -u.ln();
    early >= remaining.as_secs_f64()
}

/// [`should_refresh`] with a fresh random sample.
pub fn roll(remaining: Duration, delta: Duration, beta: f64) -> bool {
    if beta <= 0.0 || delta.is_zero() {
        return false;
    }
    let u: f64 = 1.0 - rand::random::<f64>();
    should_refresh(remaining, delta, beta, u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_from_expiry_almost_never_near_expiry_often() {
        let d = Duration::from_millis(5);
        // 60 s left, a 5 ms load: needs ln(u) < -12000, i.e. never.
        assert!(!should_refresh(Duration::from_secs(60), d, 1.0, 1e-300));
        // 5 ms left: refresh when -ln(u) >= 1, i.e. u <= 1/e.
        assert!(should_refresh(d, d, 1.0, 0.3));
        assert!(!should_refresh(d, d, 1.0, 0.5));
        assert!(should_refresh(Duration::ZERO, d, 1.0, 1.0));
        assert!(!should_refresh(Duration::ZERO, d, 0.0, 0.1), "β 0: off");
        let n = (0..10_000)
            .filter(|_| roll(Duration::from_millis(10), d, 1.0))
            .count();
        // P = e^{-2} ≈ 13.5 %.
        assert!((800..2000).contains(&n), "{n}");
    }
}
