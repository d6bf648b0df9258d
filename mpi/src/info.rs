//! Info objects (MPI_Info): ordered key/value pairs of bytes. SNOO reads no hints from them yet;
//! programs build, query and pass them as with any MPI library. The length limits are the face's
//! (MPI_MAX_INFO_KEY, MPI_MAX_INFO_VAL): [`Info::set`] takes them.

use crate::error::{err, Class, MpiResult};

/// An info object: its pairs in the order their keys were first set (MPI_Info_get_nthkey's
/// order, as in MPICH).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Info {
    /// An info holding `pairs`, in order (MPI_INFO_ENV's).
    pub fn of(pairs: &[(&str, &str)]) -> Info {
        Info {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// Sets `key` to `value` (replacing its value if it has one). MPI_ERR_INFO_KEY for an empty
    /// key or one longer than `max_key` bytes, MPI_ERR_INFO_VALUE for a value longer than
    /// `max_value` (an empty one is a value, as in MPICH).
    pub fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        max_key: usize,
        max_value: usize,
    ) -> MpiResult<()> {
        check_key(key, max_key)?;
        if value.len() > max_value {
            return err(
                Class::InfoValue,
                format!(
                    "info value of {} bytes (at most MPI_MAX_INFO_VAL = {max_value})",
                    value.len()
                ),
            );
        }
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_vec(),
            None => self.pairs.push((key.to_vec(), value.to_vec())),
        }
        Ok(())
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Removes `key`: MPI_ERR_INFO_NOKEY if it has no value.
    pub fn delete(&mut self, key: &[u8], max_key: usize) -> MpiResult<()> {
        check_key(key, max_key)?;
        match self.pairs.iter().position(|(k, _)| k == key) {
            Some(i) => {
                self.pairs.remove(i);
                Ok(())
            }
            None => err(
                Class::InfoNokey,
                format!("no info key {:?}", String::from_utf8_lossy(key)),
            ),
        }
    }

    /// Keys with a value.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True if no key has a value.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The `n`-th key (from 0): MPI_ERR_ARG when there are not that many.
    pub fn nth_key(&self, n: usize) -> MpiResult<&[u8]> {
        match self.pairs.get(n) {
            Some((k, _)) => Ok(k),
            None => err(
                Class::Arg,
                format!("key number {n} of an info with {} keys", self.pairs.len()),
            ),
        }
    }
}

/// A key as MPI allows it: 1 to `max` bytes.
pub fn check_key(key: &[u8], max: usize) -> MpiResult<()> {
    if key.is_empty() || key.len() > max {
        return err(
            Class::InfoKey,
            format!(
                "info key of {} bytes (1 to MPI_MAX_INFO_KEY = {max})",
                key.len()
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_first_order_and_values_are_replaced() {
        let mut i = Info::default();
        i.set(b"b", b"1", 8, 8).unwrap();
        i.set(b"a", b"2", 8, 8).unwrap();
        i.set(b"b", b"3", 8, 8).unwrap();
        assert_eq!(
            (i.len(), i.nth_key(0).unwrap(), i.get(b"b")),
            (2, &b"b"[..], Some(&b"3"[..]))
        );
        i.delete(b"b", 8).unwrap();
        assert_eq!(i.nth_key(0).unwrap(), b"a");
        assert_eq!(i.delete(b"b", 8).unwrap_err().class, Class::InfoNokey);
        assert_eq!(i.nth_key(1).unwrap_err().class, Class::Arg);
    }

    #[test]
    fn limits_are_the_faces() {
        let mut i = Info::default();
        assert_eq!(i.set(b"", b"v", 4, 4).unwrap_err().class, Class::InfoKey);
        assert_eq!(
            i.set(b"12345", b"v", 4, 4).unwrap_err().class,
            Class::InfoKey
        );
        assert_eq!(
            i.set(b"k", b"12345", 4, 4).unwrap_err().class,
            Class::InfoValue
        );
        i.set(b"1234", b"1234", 4, 4).unwrap();
        assert!(i.get(b"k").is_none() && !i.is_empty());
    }
}
