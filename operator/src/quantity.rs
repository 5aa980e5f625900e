//! Parsing Kubernetes quantities (`4Gi`, `500M`, `1e9`) into bytes, for
//! `PHOTO_CACHE_MAX_BYTES` and for validating sizes before the API server sees them.

/// Bytes in a quantity, rounded down.
pub fn parse_bytes(q: &str) -> Result<u64, String> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    if num.is_empty() {
        return Err(format!("{q:?} is not a quantity"));
    }
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{q:?} is not a quantity"))?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..]
                .parse()
                .map_err(|_| format!("{q:?} is not a quantity"))?;
            10f64.powi(exp)
        }
        _ => return Err(format!("{q:?} has an unknown suffix {suffix:?}")),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(format!("{q:?} is not a non-negative size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_bytes("4Gi"), Ok(4 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_bytes("1e3"), Ok(1000));
        assert_eq!(parse_bytes("1.5Ki"), Ok(1536));
        assert_eq!(parse_bytes("123"), Ok(123));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("4GB").is_err());
        assert!(parse_bytes("").is_err());
    }
}
