//! The operation mix: class shares (`read=80,write=20`) and weights inside
//! each class, turned into a table that picks an operation per request.

use super::operation::{Availability, Class, Operation};

/// Upper bound of any one weight, so sums never overflow.
const MAX_WEIGHT: u32 = 1_000_000;

/// Weights as configured by `--mix` (before availability is known).
#[derive(Debug, Clone)]
pub struct MixSpec {
    pub read_share: u32,
    pub write_share: u32,
    pub weights: [u32; Operation::COUNT],
}

impl Default for MixSpec {
    fn default() -> Self {
        MixSpec {
            read_share: 80,
            write_share: 20,
            weights: Operation::ALL.map(Operation::default_weight),
        }
    }
}

impl MixSpec {
    /// Parses `--mix` values: comma-separated `key=weight` pairs where a key
    /// is `read`, `write` (the class shares) or an operation name (its
    /// weight inside its class; 0 leaves it out).
    pub fn parse(items: &[String]) -> Result<MixSpec, String> {
        let mut spec = MixSpec::default();
        for pair in items
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--mix: expected key=weight, got {pair:?}"))?;
            let w: u32 = value
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= MAX_WEIGHT)
                .ok_or_else(|| {
                    format!(
                        "--mix: weight of {key} must be an integer 0..={MAX_WEIGHT}, got {value:?}"
                    )
                })?;
            match key.trim() {
                "read" => spec.read_share = w,
                "write" => spec.write_share = w,
                name => match Operation::from_name(name) {
                    Some(op) => spec.weights[op.index()] = w,
                    None => {
                        let known: Vec<_> = Operation::ALL.iter().map(|o| o.name()).collect();
                        return Err(format!(
                            "--mix: unknown key {name:?}; use read, write or one of {}",
                            known.join(", ")
                        ));
                    }
                },
            }
        }
        if spec.read_share == 0 && spec.write_share == 0 {
            return Err("--mix: read and write shares are both 0".into());
        }
        Ok(spec)
    }
}

/// Per-operation probabilities once availability is known; picks operations.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Cumulative thresholds in parts per `scale`.
    cumulative: Vec<(u64, Operation)>,
    scale: u64,
    /// Share of each operation in the mix (0..=1), for the report.
    pub shares: [f64; Operation::COUNT],
}

impl Mix {
    /// Normalises each class over its available operations; a class without
    /// any available operation gives its share to the other class.
    pub fn new(
        spec: &MixSpec,
        availability: &[Availability; Operation::COUNT],
    ) -> Result<Mix, String> {
        let class_sum = |class: Class| -> u64 {
            Operation::ALL
                .iter()
                .filter(|o| o.class() == class && availability[o.index()].is_available())
                .map(|o| u64::from(spec.weights[o.index()]))
                .sum()
        };
        let (reads, writes) = (class_sum(Class::Read), class_sum(Class::Write));
        let read_share = if reads > 0 {
            f64::from(spec.read_share)
        } else {
            0.0
        };
        let write_share = if writes > 0 {
            f64::from(spec.write_share)
        } else {
            0.0
        };
        let total_share = read_share + write_share;
        if total_share == 0.0 {
            return Err("the mix has no available operation with a non-zero weight".into());
        }
        let mut shares = [0.0; Operation::COUNT];
        for op in Operation::ALL {
            if !availability[op.index()].is_available() {
                continue;
            }
            let (class_share, class_total) = match op.class() {
                Class::Read => (read_share, reads),
                Class::Write => (write_share, writes),
            };
            if class_total > 0 {
                shares[op.index()] = class_share / total_share
                    * f64::from(spec.weights[op.index()])
                    / class_total as f64;
            }
        }
        const SCALE: u64 = 1 << 32;
        let mut cumulative = Vec::new();
        let mut acc = 0u64;
        for op in Operation::ALL {
            let parts = (shares[op.index()] * SCALE as f64).round() as u64;
            if parts > 0 {
                acc += parts;
                cumulative.push((acc, op));
            }
        }
        assert!(
            !cumulative.is_empty(),
            "a mix with a positive share has an operation"
        );
        Ok(Mix {
            cumulative,
            scale: acc,
            shares,
        })
    }

    /// The operation for a uniform random number.
    pub fn pick(&self, random: u64) -> Operation {
        let x = random % self.scale;
        let i = self.cumulative.partition_point(|(upto, _)| *upto <= x);
        self.cumulative[i.min(self.cumulative.len() - 1)].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_available() -> [Availability; Operation::COUNT] {
        std::array::from_fn(|_| Availability::Available)
    }

    #[test]
    fn default_mix_is_80_20_and_unavailable_operations_give_their_share_to_their_class() {
        let mut avail = all_available();
        avail[Operation::RecordWriteWorkflows.index()] = Availability::Unavailable("n/a".into());
        avail[Operation::PageRender.index()] = Availability::Unavailable("n/a".into());
        let mix = Mix::new(&MixSpec::default(), &avail).unwrap();
        let reads: f64 = Operation::ALL
            .iter()
            .filter(|o| o.class() == Class::Read)
            .map(|o| mix.shares[o.index()])
            .sum();
        assert!((reads - 0.8).abs() < 1e-9, "{reads}");
        assert!((mix.shares[Operation::RecordWriteSimple.index()] - 0.2).abs() < 1e-9);
        assert_eq!(mix.shares[Operation::PageRender.index()], 0.0);
        let mut seen = [0u32; Operation::COUNT];
        for i in 0..100_000u64 {
            seen[mix.pick(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).index()] += 1;
        }
        assert_eq!(seen[Operation::RecordWriteWorkflows.index()], 0);
        let writes = f64::from(seen[Operation::RecordWriteSimple.index()]) / 100_000.0;
        assert!((writes - 0.2).abs() < 0.01, "{writes}");
    }

    #[test]
    fn mix_flags_set_shares_and_weights_and_reject_typos() {
        let spec = MixSpec::parse(&["read=50,write=50".into(), "query_complex=0".into()]).unwrap();
        assert_eq!((spec.read_share, spec.write_share), (50, 50));
        assert_eq!(spec.weights[Operation::QueryComplex.index()], 0);
        assert!(MixSpec::parse(&["reed=1".into()]).is_err());
        assert!(MixSpec::parse(&["read=x".into()]).is_err());
        assert!(MixSpec::parse(&["read=0,write=0".into()]).is_err());
    }
}
