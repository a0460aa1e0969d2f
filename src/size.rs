//! Sizes as people write them (`256MiB`, `1.5gb`, `512k`), for the settings that take one:
//! a memory store's budget, a file store's cache.

/// Why a size did not parse ([`parse_size`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadSize {
    /// Not a number with a unit we know, or a fraction of a byte.
    Malformed,
    /// More bytes than a `u64` holds.
    TooLarge,
}

/// Parses a size as people write it: `256MiB`, `1gb`, `1.5GiB`, `512k`, `1048576`. As in
/// Redis's configuration, `k`/`m`/`g`/`t`/`p`/`e` are powers of 1000 and `kb`/`mb`/`gb`/`tb`/
/// `pb`/`eb` (also `kib`, `mib`, `gib`, `tib`, `pib`, `eib`) powers of 1024; case does not
/// matter, and a trailing `b` alone is bytes. A fraction (`1.5GiB`, `0.25mb`) is taken down to
/// a whole byte, its digits past the 20th dropped; a fraction of a byte itself (`1.5`, `1.5b`)
/// is refused, as nobody means it.
pub(crate) fn parse_size(text: &str) -> std::result::Result<u64, BadSize> {
    let text = text.trim();
    let number_len = text
        .find(|c: char| !c.is_ascii_digit() && c != '_' && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    let number = number.replace('_', "");
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(BadSize::Malformed);
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" | "kib" => 1 << 10,
        "m" => 1_000_000,
        "mb" | "mib" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" | "gib" => 1 << 30,
        "t" => 1_000_000_000_000,
        "tb" | "tib" => 1 << 40,
        "p" => 1_000_000_000_000_000,
        "pb" | "pib" => 1 << 50,
        "e" => 1_000_000_000_000_000_000,
        "eb" | "eib" => 1 << 60,
        _ => return Err(BadSize::Malformed),
    };
    let digits = |text: &str| -> std::result::Result<u128, BadSize> {
        text.bytes().try_fold(0u128, |n, digit| {
            n.checked_mul(10)
                .and_then(|n| n.checked_add(u128::from(digit - b'0')))
                .ok_or(BadSize::TooLarge)
        })
    };
    // Exact: whole × unit, plus fraction × unit / 10^digits taken down. The fraction's digits
    // past the 20th are dropped (they are worth less than a hundredth of a byte in any unit),
    // so that its 10^20 times an exbibyte fits the u128 it is computed in.
    let fraction = &fraction[..fraction.len().min(20)];
    let scale = 10u128.pow(fraction.len() as u32);
    let multiplier = u128::from(multiplier);
    let fraction_bytes = digits(fraction)? * multiplier;
    if multiplier == 1 && fraction_bytes % scale != 0 {
        return Err(BadSize::Malformed);
    }
    let bytes = digits(whole)?
        .checked_mul(multiplier)
        .ok_or(BadSize::TooLarge)?
        + fraction_bytes / scale;
    u64::try_from(bytes).map_err(|_| BadSize::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_people_write_them() {
        for (text, bytes) in [
            ("256MiB", 256 << 20),
            ("256mb", 256 << 20),
            ("256m", 256_000_000),
            ("1GiB", 1 << 30),
            ("512k", 512_000),
            ("512KB", 512 << 10),
            ("1048576", 1 << 20),
            ("10b", 10),
            ("1_000", 1000),
            ("1.5GiB", 3 << 29),
            ("0.25mb", 1 << 18),
            (".5k", 500),
            ("2.k", 2000),
            ("1.0", 1),
            ("0.3kib", 307),
            ("1.00000000000000000000000000001gb", 1 << 30),
            ("18446744073709551615", u64::MAX),
            ("16777215.999999999tib", u64::MAX - 1099),
            ("16777215.9999999999999tib", u64::MAX),
            ("2PiB", 1 << 51),
            ("3p", 3_000_000_000_000_000),
            ("15EiB", 15 << 60),
            ("15.99999999999999999999eib", u64::MAX),
            ("0.12345678901234567890123456789eb", 142_335_986_942_043_633),
            ("18e", 18_000_000_000_000_000_000),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in [
            "",
            "MiB",
            ".",
            "1..5k",
            "1.2.3mb",
            "1.5",
            "1.5b",
            "12 apples",
            "-1",
            "1e9",
        ] {
            assert_eq!(parse_size(bad), Err(BadSize::Malformed), "{bad}");
        }
        for huge in [
            "18446744073709551616",
            "99999999999999999999",
            "16777216tib",
            "16777216.0tib",
            "16EiB",
            "16384pib",
            "19e",
            "999999999999999999999999999999999999999999",
        ] {
            assert_eq!(parse_size(huge), Err(BadSize::TooLarge), "{huge}");
        }
    }
}
