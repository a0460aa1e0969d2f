//! A store URL's query (`?name=value&…`): its parameters, each named once. Every driver's URL
//! parser and [`open`](crate::open()) read their parameters through it, so a parameter given
//! twice (`memory://?max_bytes=1GiB&max_bytes=1KiB`) is an error everywhere rather than the
//! last one silently winning.

use std::borrow::Cow;

use crate::{Error, Result};

/// One parameter of a query: its name and value with their `%XX` escapes decoded, and its
/// text as written (`name=value`), for a caller that passes it on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parameter<'q> {
    pub(crate) name: Cow<'q, str>,
    pub(crate) value: Cow<'q, str>,
    pub(crate) text: &'q str,
}

/// The parameters of `query` (the text after `?`, without it), in order: a name and its value
/// (empty for a bare `name`), each `%`-decoded (a `+` stays a `+`); empty pairs (`a=1&&b=2`)
/// are skipped. `what` names the store in errors (`memory store`, `Redis`).
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) naming a parameter given twice, or
/// one with a malformed `%`-escape or bytes that are not UTF-8.
pub(crate) fn parameters<'q>(query: &'q str, what: &str) -> Result<Vec<Parameter<'q>>> {
    let mut parameters: Vec<Parameter<'q>> = Vec::new();
    for text in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = text.split_once('=').unwrap_or((text, ""));
        let malformed = || {
            Error::invalid_url(format!(
                "{what} parameter `{}` has a malformed %-escape or is not UTF-8",
                crate::error::shorten(name)
            ))
        };
        let name = percent_decode(name).ok_or_else(malformed)?;
        let value = percent_decode(value).ok_or_else(malformed)?;
        if parameters.iter().any(|seen| seen.name == name) {
            return Err(Error::invalid_url(format!(
                "{what} parameter `{}` is given twice",
                crate::error::shorten(&name)
            )));
        }
        parameters.push(Parameter { name, value, text });
    }
    Ok(parameters)
}

/// The first `?` of `url` that begins a parameter named in `known` (`?name=`, `?name&`, `?name`
/// at the end): where the query starts, unless a password holds that `?` (see
/// [`credentials_end`]).
pub(crate) fn named_query(url: &str, known: &[&str]) -> Option<usize> {
    url.match_indices('?').map(|(at, _)| at).find(|&at| {
        let rest = &url[at + 1..];
        known.iter().any(|name| {
            rest.strip_prefix(name)
                .is_some_and(|after| after.is_empty() || after.starts_with(['=', '&', '#']))
        })
    })
}

/// Where the credentials of `url` (the text after `scheme://`) may end, the likelier first: a
/// user or password may hold `?`, `#`, `/` and `@` unescaped, so they run to the last `@`; but
/// a parameter's value may hold an `@` too (`tls_ca_file=/etc/redis@6380/ca.pem`), so when a
/// `?` naming a parameter in `known` comes before that last `@`, the last `@` before that `?`
/// is tried first. Each is the index of an `@`, or `None` for no credentials. The caller parses
/// with each in turn and keeps the first that parses; when none does, it reports the last
/// one's error, which reads the credentials as running to the last `@` and so never quotes
/// them (another reading's error might: it may read a part of a password as a host or a
/// value), with [`AT_IN_A_VALUE`] when there were two.
pub(crate) fn credentials_end(url: &str, known: &[&str]) -> Vec<Option<usize>> {
    let last = url.rfind('@');
    match (named_query(url, known), last) {
        (Some(query), Some(at)) if query < at => vec![url[..query].rfind('@'), last],
        _ => vec![last],
    }
}

/// What an error about a URL read two ways adds: the reading reported may not be the one meant.
pub(crate) const AT_IN_A_VALUE: &str = concat!(
    " (read with the credentials running to the last `@`;",
    " a parameter's value holding an `@` writes it `%40`)"
);

/// Decodes `%XX` escapes (RFC 3986); the text itself when it has none. `None` for a malformed
/// escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains('%') {
        return Some(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parameters_are_named_once() {
        let pairs = |query| {
            parameters(query, "test")
                .unwrap()
                .into_iter()
                .map(|p| (p.name.into_owned(), p.value.into_owned(), p.text))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pairs("a=1&&b=&c"),
            [
                ("a".into(), "1".into(), "a=1"),
                ("b".into(), "".into(), "b="),
                ("c".into(), "".into(), "c")
            ]
        );
        assert_eq!(
            pairs("path=%2Ftmp%2Fa%3Fb%20c&x=1+2"),
            [
                (
                    "path".into(),
                    "/tmp/a?b c".into(),
                    "path=%2Ftmp%2Fa%3Fb%20c"
                ),
                ("x".into(), "1+2".into(), "x=1+2")
            ]
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
        // The same name, once escaped.
        let error = parameters("max_bytes=1&max%5Fbytes=2", "memory store").unwrap_err();
        assert!(error.to_string().contains("given twice"), "{error}");
    }

    #[test]
    fn escapes_are_decoded_or_refused() {
        assert_eq!(percent_decode("plain").unwrap(), "plain");
        assert_eq!(percent_decode("%41%62%2525").unwrap(), "Ab%25");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "\u{e9}");
        for bad in ["%", "%4", "%zz", "%+1", "%-1", "%FF", "a%C3"] {
            assert!(percent_decode(bad).is_none(), "{bad}");
            let error = parameters(&format!("v={bad}"), "redb").unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidUrl);
            assert!(
                error
                    .to_string()
                    .contains("redb parameter `v` has a malformed %-escape"),
                "{error}"
            );
        }
    }
}
