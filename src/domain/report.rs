//! The arithmetic of SLA reports, kept apart from the SQL that counts.

/// `numerator ÷ denominator`, or `None` when there is nothing to divide by (never NaN).
pub fn rate(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The nearest-rank position (1-based) of the `percent`-th percentile among `n` values:
/// ⌈n·p/100⌉. The SQL uses the same integer formula, `(n·p + 99) / 100`.
pub fn nearest_rank(n: i64, percent: i64) -> i64 {
    (n * percent + 99) / 100
}

/// The composite score: the weighted mean of the rates that exist, re-weighted over them.
pub fn score(rates: [Option<f64>; 3], weights: [f64; 3]) -> Option<f64> {
    let (sum, weight) = rates
        .iter()
        .zip(weights)
        .filter_map(|(rate, weight)| rate.map(|r| (r * weight, weight)))
        .fold((0.0, 0.0), |(s, w), (rs, rw)| (s + rs, w + rw));
    (weight > 0.0).then(|| sum / weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_never_divide_by_zero() {
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(0, 0), None);
    }

    #[test]
    fn nearest_rank_positions() {
        assert_eq!(nearest_rank(1, 50), 1);
        assert_eq!(nearest_rank(2, 50), 1);
        assert_eq!(nearest_rank(2, 90), 2);
        assert_eq!(nearest_rank(10, 90), 9);
        assert_eq!(nearest_rank(11, 50), 6);
    }

    #[test]
    fn score_reweights_over_present_rates() {
        let weights = [0.2, 0.4, 0.4];
        assert_eq!(score([Some(1.0), Some(1.0), Some(1.0)], weights), Some(1.0));
        let s = score([Some(0.5), None, Some(1.0)], weights).expect("score");
        assert!((s - (0.1 + 0.4) / 0.6).abs() < 1e-12);
        assert_eq!(score([None, None, None], weights), None);
    }
}
