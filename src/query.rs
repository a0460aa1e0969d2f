//! A store URL's query (`?name=value&…`): its parameters, each named once. Every driver's URL
//! parser and [`open`](crate::open) read their parameters through it, so a parameter given
//! twice (`memory://?max_bytes=1GiB&max_bytes=1KiB`) is an error everywhere rather than the
//! last one silently winning.

use crate::{Error, Result};

/// The parameters of `query` (the text after `?`, without it), in order: a name and its value
/// (empty for a bare `name`); empty pairs (`a=1&&b=2`) are skipped. `what` names the store
/// in errors (`memory store`, `Redis`).
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) naming a parameter given twice.
pub(crate) fn parameters<'q>(query: &'q str, what: &str) -> Result<Vec<(&'q str, &'q str)>> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if pairs.iter().any(|&(seen, _)| seen == name) {
            return Err(Error::invalid_url(format!(
                "{what} parameter `{}` is given twice",
                crate::error::shorten(name)
            )));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parameters_are_named_once() {
        assert_eq!(
            parameters("a=1&&b=&c", "test").unwrap(),
            [("a", "1"), ("b", ""), ("c", "")]
        );
        assert!(parameters("", "test").unwrap().is_empty());
        let error = parameters("a=1&b=2&a=3", "memory store").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl);
        assert!(
            error
                .to_string()
                .contains("memory store parameter `a` is given twice"),
            "{error}"
        );
    }
}
