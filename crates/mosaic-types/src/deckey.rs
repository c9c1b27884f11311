//! Order-preserving text keys for exact decimals.
//!
//! SQLite has no exact decimal type: storing numbers as REAL would lose
//! digits, storing them as plain text would sort `10` before `9`. A key made
//! here compares (bytewise) exactly as the numbers compare, so indexes,
//! range filters, ORDER BY, MIN and MAX work in SQL, and it decodes back to
//! the identical decimal.
//!
//! Layout: a sign class byte (`0` negative, `1` zero, `2` positive), then for
//! non-zero values a 3-digit exponent and the significant digits. For
//! negative values exponent and digits are complemented and the key ends in
//! `~`, so that a longer negative mantissa sorts before its prefix.

use rust_decimal::Decimal;

const EXP_BIAS: i32 = 500;

/// Encode `d` as an order-preserving key. Scale (trailing zeros) is not
/// preserved: `1.50` and `1.5` have the same key; see [`decode`].
pub fn encode(d: &Decimal) -> String {
    if d.is_zero() {
        return "1".to_string();
    }
    let neg = d.is_sign_negative();
    let abs = d.abs().normalize();
    // abs = mantissa * 10^-scale; digits string of mantissa
    let digits = abs.mantissa().to_string();
    let scale = abs.scale() as i32;
    // value = 0.d1d2... * 10^exp where exp = len(digits) - scale
    let exp = digits.len() as i32 - scale;
    let mut out = String::with_capacity(digits.len() + 6);
    if neg {
        out.push('0');
        let e = EXP_BIAS - exp;
        out.push_str(&format!("{e:03}"));
        for c in digits.bytes() {
            out.push((b'9' - (c - b'0')) as char);
        }
        out.push('~');
    } else {
        out.push('2');
        let e = EXP_BIAS + exp;
        out.push_str(&format!("{e:03}"));
        out.push_str(&digits);
    }
    out
}

/// Decode a key made by [`encode`]. Returns `None` for malformed keys.
pub fn decode(key: &str) -> Option<Decimal> {
    let b = key.as_bytes();
    match b.first()? {
        b'1' if b.len() == 1 => Some(Decimal::ZERO),
        b'2' => {
            let exp: i32 = key.get(1..4)?.parse().ok()?;
            let digits = key.get(4..)?;
            build(digits, exp - EXP_BIAS, false)
        }
        b'0' => {
            let exp: i32 = key.get(1..4)?.parse().ok()?;
            let body = key.get(4..)?.strip_suffix('~')?;
            let digits: String = body
                .bytes()
                .map(|c| {
                    if c.is_ascii_digit() {
                        Some((b'9' - (c - b'0')) as char)
                    } else {
                        None
                    }
                })
                .collect::<Option<String>>()?;
            build(&digits, EXP_BIAS - exp, true)
        }
        _ => None,
    }
}

fn build(digits: &str, exp: i32, neg: bool) -> Option<Decimal> {
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mantissa: i128 = digits.parse().ok()?;
    let scale = digits.len() as i32 - exp;
    let mut d = if scale >= 0 {
        Decimal::try_from_i128_with_scale(mantissa, u32::try_from(scale).ok()?).ok()?
    } else {
        let m = Decimal::try_from_i128_with_scale(mantissa, 0).ok()?;
        let mut p = Decimal::ONE;
        for _ in 0..(-scale) {
            p = p.checked_mul(Decimal::TEN)?;
        }
        m.checked_mul(p)?
    };
    if neg {
        d.set_sign_negative(true);
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn known_orders() {
        let vals = [
            "-1000",
            "-999.99",
            "-10",
            "-9",
            "-0.51",
            "-0.5",
            "-0.0001",
            "0",
            "0.0001",
            "0.5",
            "0.51",
            "9",
            "10",
            "999.99",
            "1000",
            "79228162514264337593543950335",
        ];
        for w in vals.windows(2) {
            assert!(encode(&d(w[0])) < encode(&d(w[1])), "{} < {}", w[0], w[1]);
        }
        for v in vals {
            assert_eq!(decode(&encode(&d(v))).unwrap(), d(v).normalize());
        }
    }

    #[test]
    fn malformed_keys_decode_to_none() {
        for k in ["", "2", "3001", "2abc1", "0500", "0xyz~", "1x"] {
            assert!(decode(k).is_none(), "{k}");
        }
    }

    fn arb_dec() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0u32..20).prop_map(|(m, s)| Decimal::new(m, s))
    }

    proptest! {
        #[test]
        fn order_and_round_trip(a in arb_dec(), b in arb_dec()) {
            prop_assert_eq!(decode(&encode(&a)).unwrap(), a.normalize());
            prop_assert_eq!(a.cmp(&b), encode(&a).cmp(&encode(&b)));
        }
    }
}
