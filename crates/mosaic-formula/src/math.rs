//! Math functions on exact decimals. Transcendental functions go through
//! rust_decimal's series implementations; results stay decimals.

use rust_decimal::prelude::*;
use rust_decimal::{MathematicalOps, RoundingStrategy};

use crate::builtins::Args;
use crate::eval::{overflow, power, RtResult};
use crate::functions::Func;
use crate::value::FValue;

pub(crate) fn handles(f: Func) -> bool {
    matches!(
        f,
        Func::Abs
            | Func::Ceiling
            | Func::Floor
            | Func::MCeiling
            | Func::MFloor
            | Func::Round
            | Func::Trunc
            | Func::Max
            | Func::Min
            | Func::Mod
            | Func::Sqrt
            | Func::Exp
            | Func::Ln
            | Func::Log
            | Func::Power
            | Func::Pi
            | Func::Sin
            | Func::Cos
            | Func::Tan
            | Func::Asin
            | Func::Acos
            | Func::Atan
            | Func::Atan2
            | Func::Sign
            | Func::Sum
            | Func::Average
            | Func::Distance
    )
}

/// Rounds to `digits` places (negative: to the left of the point).
pub(crate) fn round_to(n: Decimal, digits: i64, strategy: RoundingStrategy) -> Option<Decimal> {
    if digits >= 0 {
        return Some(
            n.round_dp_with_strategy(u32::try_from(digits.min(28)).unwrap_or(28), strategy),
        );
    }
    let places = digits.unsigned_abs();
    if places > 28 {
        return Some(Decimal::ZERO);
    }
    let factor = Decimal::from_i128_with_scale(10i128.pow(u32::try_from(places).unwrap_or(28)), 0);
    let scaled = n.checked_div(factor)?.round_dp_with_strategy(0, strategy);
    scaled.checked_mul(factor)
}

/// Arc tangent by argument halving and the Maclaurin series.
pub(crate) fn atan(x: Decimal) -> Option<Decimal> {
    if x.is_sign_negative() {
        return atan(-x).map(|v| -v);
    }
    if x > Decimal::ONE {
        let inv = Decimal::ONE.checked_div(x)?;
        return Decimal::HALF_PI.checked_sub(atan(inv)?);
    }
    // atan(x) = 2 atan(x / (1 + sqrt(1 + x^2))), twice: |x| <= ~0.2.
    let mut y = x;
    for _ in 0..2 {
        let root = Decimal::ONE.checked_add(y.checked_mul(y)?)?.sqrt()?;
        y = y.checked_div(Decimal::ONE.checked_add(root)?)?;
    }
    let y2 = y.checked_mul(y)?;
    let mut term = y;
    let mut sum = y;
    let tolerance = Decimal::new(1, 27);
    for k in 1..200u32 {
        term = term.checked_mul(y2)?;
        let t = term.checked_div(Decimal::from(2 * k + 1))?;
        if k % 2 == 1 {
            sum = sum.checked_sub(t)?;
        } else {
            sum = sum.checked_add(t)?;
        }
        if t.abs() < tolerance {
            break;
        }
    }
    sum.checked_mul(Decimal::from(4))
}

fn asin(x: Decimal) -> Option<Decimal> {
    if x.abs() > Decimal::ONE {
        return None;
    }
    if x.abs() == Decimal::ONE {
        return Some(if x.is_sign_negative() {
            -Decimal::HALF_PI
        } else {
            Decimal::HALF_PI
        });
    }
    let denom = Decimal::ONE.checked_sub(x.checked_mul(x)?)?.sqrt()?;
    atan(x.checked_div(denom)?)
}

/// ATAN2(x, y): the angle of the point (x, y).
fn atan2(x: Decimal, y: Decimal) -> Option<Decimal> {
    if x.is_zero() {
        if y.is_zero() {
            return None;
        }
        return Some(if y.is_sign_negative() {
            -Decimal::HALF_PI
        } else {
            Decimal::HALF_PI
        });
    }
    let base = atan(y.checked_div(x)?)?;
    if x.is_sign_positive() {
        Some(base)
    } else if y.is_sign_negative() {
        base.checked_sub(Decimal::PI)
    } else {
        base.checked_add(Decimal::PI)
    }
}

fn extreme(a: &Args, want_max: bool) -> RtResult {
    let mut best: Option<FValue> = None;
    for v in &a.0 {
        if v.is_null() {
            return Ok(FValue::Null);
        }
        let better = match &best {
            None => true,
            Some(b) => {
                let gt = crate::eval::compare(crate::node::Cmp::Gt, false, v, b);
                let lt = crate::eval::compare(crate::node::Cmp::Lt, false, v, b);
                if want_max {
                    gt
                } else {
                    lt
                }
            }
        };
        if better {
            best = Some(v.clone());
        }
    }
    Ok(best.unwrap_or(FValue::Null))
}

pub(crate) fn call(f: Func, a: &Args) -> RtResult {
    let num = |n: Option<Decimal>| Ok(n.map_or(FValue::Null, FValue::Number));
    if f == Func::Pi {
        return num(Some(Decimal::PI));
    }
    if matches!(f, Func::Max | Func::Min) {
        return extreme(a, f == Func::Max);
    }
    if matches!(f, Func::Sum | Func::Average) {
        let mut total = Decimal::ZERO;
        let mut count = 0u32;
        for v in &a.0 {
            if let FValue::Number(n) = v {
                total = total.checked_add(*n).ok_or_else(|| overflow(f.name()))?;
                count += 1;
            }
        }
        if f == Func::Sum {
            return num(Some(total));
        }
        return if count == 0 {
            Ok(FValue::Null)
        } else {
            num(total.checked_div(Decimal::from(count)))
        };
    }
    if f == Func::Distance {
        return distance(a);
    }
    let Some(x) = a.num(0) else {
        return Ok(FValue::Null);
    };
    match f {
        Func::Abs => num(Some(x.abs())),
        Func::Ceiling => num(Some(if x.is_sign_negative() {
            x.floor()
        } else {
            x.ceil()
        })),
        Func::Floor => num(Some(x.trunc())),
        Func::MCeiling => num(Some(x.ceil())),
        Func::MFloor => num(Some(x.floor())),
        Func::Round => match a.int(1) {
            Some(d) => num(round_to(x, d, RoundingStrategy::MidpointAwayFromZero)),
            None => Ok(FValue::Null),
        },
        Func::Trunc => {
            let d = if a.len() > 1 { a.int(1) } else { Some(0) };
            match d {
                Some(d) => num(round_to(x, d, RoundingStrategy::ToZero)),
                None => Ok(FValue::Null),
            }
        }
        Func::Mod => match a.num(1) {
            Some(d) if !d.is_zero() => num(x.checked_rem(d)),
            _ => Ok(FValue::Null),
        },
        Func::Sqrt => num(x.sqrt()),
        Func::Exp => match x.checked_exp() {
            Some(v) => num(Some(v)),
            None if x.is_sign_negative() => num(Some(Decimal::ZERO)),
            None => Err(overflow("EXP")),
        },
        Func::Ln => num(if x > Decimal::ZERO {
            x.checked_ln()
        } else {
            None
        }),
        Func::Log => num(if x > Decimal::ZERO {
            x.checked_log10()
        } else {
            None
        }),
        Func::Power => match a.num(1) {
            Some(e) => power(x, e),
            None => Ok(FValue::Null),
        },
        Func::Sin => num(x.checked_sin()),
        Func::Cos => num(x.checked_cos()),
        Func::Tan => num(x.checked_tan()),
        Func::Asin => num(asin(x)),
        Func::Acos => num(asin(x).and_then(|v| Decimal::HALF_PI.checked_sub(v))),
        Func::Atan => num(atan(x)),
        Func::Atan2 => match a.num(1) {
            Some(y) => num(atan2(x, y)),
            None => Ok(FValue::Null),
        },
        Func::Sign => num(Some(if x.is_zero() {
            Decimal::ZERO
        } else if x.is_sign_negative() {
            Decimal::NEGATIVE_ONE
        } else {
            Decimal::ONE
        })),
        _ => Ok(FValue::Null),
    }
}

/// Mean Earth radius in kilometres (IUGG), the sphere the haversine uses.
pub(crate) const EARTH_RADIUS_KM: Decimal = Decimal::from_parts(63_710_088, 0, 0, false, 4);
/// Kilometres in an international mile.
pub(crate) const KM_PER_MILE: Decimal = Decimal::from_parts(1_609_344, 0, 0, false, 6);

/// DISTANCE(lat1, lon1, lat2, lon2, unit) as the checker lowers it: the
/// haversine great-circle distance on exact decimals. Null when a part is
/// null; the unit was checked to be `mi` or `km` at compile time.
fn distance(a: &Args) -> RtResult {
    let (Some(lat1), Some(lon1), Some(lat2), Some(lon2)) = (a.num(0), a.num(1), a.num(2), a.num(3))
    else {
        return Ok(FValue::Null);
    };
    let miles = a.text(4).eq_ignore_ascii_case("mi");
    let out = haversine_km(lat1, lon1, lat2, lon2).and_then(|km| {
        if miles {
            km.checked_div(KM_PER_MILE)
        } else {
            Some(km)
        }
    });
    match out {
        Some(d) => Ok(FValue::Number(d)),
        None => Err(overflow("DISTANCE")),
    }
}

/// Great-circle distance in kilometres between two points given in degrees:
/// `2 R asin(sqrt(sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2)))`.
pub(crate) fn haversine_km(
    lat1: Decimal,
    lon1: Decimal,
    lat2: Decimal,
    lon2: Decimal,
) -> Option<Decimal> {
    let rad = |d: Decimal| d.checked_mul(Decimal::PI)?.checked_div(Decimal::from(180));
    let (p1, p2) = (rad(lat1)?, rad(lat2)?);
    let dphi = rad(lat2.checked_sub(lat1)?)?;
    let dlambda = rad(lon2.checked_sub(lon1)?)?;
    let two = Decimal::TWO;
    let s1 = dphi.checked_div(two)?.checked_sin()?;
    let s2 = dlambda.checked_div(two)?.checked_sin()?;
    let h = s1.checked_mul(s1)?.checked_add(
        p1.checked_cos()?
            .checked_mul(p2.checked_cos()?)?
            .checked_mul(s2.checked_mul(s2)?)?,
    )?;
    // Rounding can push h a hair past 1 for antipodal points.
    let h = h.clamp(Decimal::ZERO, Decimal::ONE);
    let central = asin(h.sqrt()?)?.checked_mul(two)?;
    central.checked_mul(EARTH_RADIUS_KM)
}
