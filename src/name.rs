//! Namespace names: the validated pair (`root`, `domain`) and what a store reports about a
//! namespace (SPEC 1.1, 1.2). Shared by the driver trait and the typed namespace layer.

use std::fmt;
use std::sync::Arc;

use crate::Result;
use crate::error::Error;

/// The longest `root` or `domain`, in bytes (SPEC 1.2).
pub const MAX_NAME_LEN: usize = 64;

/// A validated namespace name: the pair (`root`, `domain`) and its key prefix
/// `root:domain:` (SPEC 1.1, 1.2).
///
/// ```
/// use namestore::NamespaceName;
///
/// let name = NamespaceName::new("app", "sessions").unwrap();
/// assert_eq!(name.prefix(), "app:sessions:");
/// assert!(NamespaceName::new("app", "a:b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NamespaceName {
    prefix: Arc<str>,
    root_len: usize,
}

impl NamespaceName {
    /// Validates `root` and `domain`: each 1 to 64 bytes of ASCII letters, digits, `-`, `_`
    /// and `.`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) naming the part and what is wrong with it.
    pub fn new(root: &str, domain: &str) -> Result<Self> {
        validate_name("root", root)?;
        validate_name("domain", domain)?;
        Ok(NamespaceName {
            prefix: format!("{root}:{domain}:").into(),
            root_len: root.len(),
        })
    }

    /// The `root` part.
    pub fn root(&self) -> &str {
        &self.prefix[..self.root_len]
    }

    /// The `domain` part.
    pub fn domain(&self) -> &str {
        &self.prefix[self.root_len + 1..self.prefix.len() - 1]
    }

    /// The key prefix, `root:domain:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full stored key of a business key, `root:domain:key`.
    pub fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }
}

impl fmt::Debug for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamespaceName({}:{})", self.root(), self.domain())
    }
}

impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.root(), self.domain())
    }
}

/// A namespace present in a store and how many live keys it holds: one item of
/// [`Driver::namespaces`](crate::Driver::namespaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    name: NamespaceName,
    keys: u64,
}

impl NamespaceInfo {
    /// A namespace and its live-key count; for driver authors.
    pub fn new(name: NamespaceName, keys: u64) -> Self {
        NamespaceInfo { name, keys }
    }

    /// The namespace.
    pub fn name(&self) -> &NamespaceName {
        &self.name
    }

    /// How many live keys it held when it was counted.
    pub fn keys(&self) -> u64 {
        self.keys
    }
}

/// Splits a stored key `root:domain:key` into its namespace and business key. `None` when the
/// key was not written by namestore: fewer than two `:`, or an invalid `root` or `domain`.
/// The business key may be empty; callers that need a key check it.
pub(crate) fn split_full_key(full: &str) -> Option<(NamespaceName, &str)> {
    let (root, rest) = full.split_once(':')?;
    let (domain, key) = rest.split_once(':')?;
    Some((NamespaceName::new(root, domain).ok()?, key))
}

fn validate_name(part: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        "cannot be empty"
    } else if value.len() > MAX_NAME_LEN {
        "is at most 64 bytes"
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "may hold only ASCII letters, digits, `-`, `_` and `.`"
    } else {
        return Ok(());
    };
    Err(Error::invalid_namespace(part, value, reason))
}
