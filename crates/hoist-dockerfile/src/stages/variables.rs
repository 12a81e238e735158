//! ARG and ENV variables in declaration order, stored in persistent
//! collections so that a stage built `FROM` another stage shares its
//! variables instead of copying them.

use rpds::HashTrieMapSync;
use serde::Serialize;

/// A name and value in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    /// Name.
    pub name: String,
    /// Value; `None` for an ARG declared without a value.
    pub value: Option<String>,
}

/// Variables in declaration order, with an index by name.
///
/// Cloning costs O(1) and setting a variable O(log n), because the map
/// shares its unchanged parts with the original. A chain of stages that each
/// add variables therefore costs time and memory in proportion to the
/// variables, not to stages times variables. Listing the variables in
/// order sorts them, which costs O(n log n).
#[derive(Debug, Clone, Default)]
pub struct Variables {
    entries: HashTrieMapSync<String, Entry>,
    bytes: usize,
}

/// A value with the position of its first declaration.
#[derive(Debug, Clone)]
struct Entry {
    position: usize,
    variable: Variable,
}

impl Variables {
    /// Returns the number of variables.
    pub fn len(&self) -> usize {
        self.entries.size()
    }

    /// Returns true when there are no variables.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the variables in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = &Variable> {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_unstable_by_key(|entry| entry.position);
        entries.into_iter().map(|entry| &entry.variable)
    }

    /// Returns the variable called `name`.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.entries.get(name).map(|entry| &entry.variable)
    }

    /// Returns the total length in bytes of all names and values.
    pub fn total_bytes(&self) -> usize {
        self.bytes
    }

    /// Sets `name` to `value`. A name set again keeps its first position.
    pub(crate) fn set(&mut self, name: String, value: Option<String>) {
        let variable = Variable { name, value };
        let (position, old_bytes) = match self.entries.get(&variable.name) {
            Some(entry) => (entry.position, variable_bytes(&entry.variable)),
            None => (self.entries.size(), 0),
        };
        self.bytes = self.bytes - old_bytes + variable_bytes(&variable);
        self.entries
            .insert_mut(variable.name.clone(), Entry { position, variable });
    }
}

fn variable_bytes(variable: &Variable) -> usize {
    variable.name.len() + variable.value.as_ref().map_or(0, String::len)
}

impl PartialEq for Variables {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Variables {}

/// Serializes as a list of variables in declaration order.
impl Serialize for Variables {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_index_every_name_once() {
        let mut variables = Variables::default();
        for index in 0..20_000 {
            variables.set(format!("A{index}"), Some(index.to_string()));
        }
        variables.set("A0".to_owned(), Some("again".to_owned()));
        assert_eq!(variables.len(), 20_000);
        assert_eq!(
            variables.get("A19999").map(|v| v.value.as_deref()),
            Some(Some("19999"))
        );
        assert_eq!(
            variables.iter().next().and_then(|v| v.value.as_deref()),
            Some("again")
        );
    }

    #[test]
    fn clone_is_unchanged_by_later_sets() {
        let mut base = Variables::default();
        base.set("A".to_owned(), Some("1".to_owned()));
        let mut child = base.clone();
        child.set("A".to_owned(), Some("2".to_owned()));
        child.set("B".to_owned(), None);
        assert_eq!(base.get("A").and_then(|v| v.value.as_deref()), Some("1"));
        assert!(base.get("B").is_none());
        assert_eq!(child.get("A").and_then(|v| v.value.as_deref()), Some("2"));
        assert_eq!(child.len(), 2);
    }

    #[test]
    fn total_bytes_follow_updates() {
        let mut variables = Variables::default();
        variables.set("NAME".to_owned(), Some("value".to_owned()));
        assert_eq!(variables.total_bytes(), 9);
        variables.set("NAME".to_owned(), Some("v".to_owned()));
        assert_eq!(variables.total_bytes(), 5);
        variables.set("UNSET".to_owned(), None);
        assert_eq!(variables.total_bytes(), 10);
    }
}
