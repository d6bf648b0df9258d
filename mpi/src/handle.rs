//! Object tables: every MPI object a program holds (communicator, group, datatype, request, …)
//! lives in one, named by an [`Id`] that carries a generation, so a freed handle, or a forged
//! one, is refused instead of naming another object.

/// An object's name in its table: slot (low 16 bits) and generation (next 8). Fits in 24 bits,
/// so either face can put it in its handle format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Id(u32);

/// Most objects of one kind alive at once.
pub const MAX_OBJECTS: usize = 1 << 16;

impl Id {
    /// The id of predefined object `slot` (generation 0, never freed).
    pub const fn predefined(slot: u16) -> Id {
        Id(slot as u32)
    }

    /// The id as a 24-bit number, for a handle.
    pub fn raw(self) -> u32 {
        self.0
    }

    /// An id from a handle's number; `None` if it has bits above 24 (not one of ours).
    pub fn from_raw(raw: u32) -> Option<Id> {
        (raw < 1 << 24).then_some(Id(raw))
    }

    fn slot(self) -> usize {
        (self.0 & 0xffff) as usize
    }

    fn generation(self) -> u8 {
        (self.0 >> 16) as u8
    }
}

/// A table of objects of one kind. The first `predefined` slots hold the predefined objects,
/// which cannot be removed.
pub struct Table<T> {
    slots: Vec<(u8, Option<T>)>,
    free: Vec<u16>,
    predefined: usize,
}

impl<T> Table<T> {
    /// A table holding the predefined objects `pre`, at slots 0, 1, ….
    pub fn new(pre: impl IntoIterator<Item = T>) -> Table<T> {
        let slots: Vec<(u8, Option<T>)> = pre.into_iter().map(|t| (0, Some(t))).collect();
        let predefined = slots.len();
        Table {
            slots,
            free: Vec::new(),
            predefined,
        }
    }

    /// The object `id` names, if it is alive.
    #[inline]
    pub fn get(&self, id: Id) -> Option<&T> {
        match self.slots.get(id.slot()) {
            Some((g, Some(t))) if *g == id.generation() => Some(t),
            _ => None,
        }
    }

    /// The object `id` names, mutably.
    #[inline]
    pub fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        match self.slots.get_mut(id.slot()) {
            Some((g, Some(t))) if *g == id.generation() => Some(t),
            _ => None,
        }
    }

    /// Stores `t`; `None` when the table is full.
    pub fn insert(&mut self, t: T) -> Option<Id> {
        if let Some(s) = self.free.pop() {
            let (g, v) = &mut self.slots[s as usize];
            *v = Some(t);
            return Some(Id(u32::from(*g) << 16 | u32::from(s)));
        }
        let s = self.slots.len();
        if s >= MAX_OBJECTS {
            return None;
        }
        self.slots.push((0, Some(t)));
        Some(Id(s as u32))
    }

    /// Removes the object `id` names; `None` if it is not alive or is predefined.
    pub fn remove(&mut self, id: Id) -> Option<T> {
        let s = id.slot();
        if s < self.predefined {
            return None;
        }
        match self.slots.get_mut(s) {
            Some((g, v)) if *g == id.generation() && v.is_some() => {
                // The next object in this slot gets a new generation: stale ids stop matching.
                *g = g.wrapping_add(1);
                self.free.push(s as u16);
                v.take()
            }
            _ => None,
        }
    }

    /// True if `id` is one of the predefined objects.
    pub fn is_predefined(&self, id: Id) -> bool {
        id.slot() < self.predefined && id.generation() == 0
    }

    /// Every live object.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|(_, v)| v.as_ref())
    }

    /// Objects alive that are not predefined.
    pub fn live(&self) -> usize {
        self.slots.len() - self.predefined - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_forged_ids_name_nothing() {
        let mut t = Table::new(["world"]);
        assert_eq!(t.get(Id::predefined(0)), Some(&"world"));
        assert_eq!(t.remove(Id::predefined(0)), None, "predefined objects stay");
        let a = t.insert("a").unwrap();
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert("b").unwrap();
        assert_eq!(
            t.get(a),
            None,
            "a freed id must not name the slot's next object"
        );
        assert_eq!(t.get(b), Some(&"b"));
        assert_eq!(t.get(Id::from_raw(0xff_fff0).unwrap()), None);
        assert_eq!(Id::from_raw(1 << 24), None);
        assert_eq!(t.live(), 1);
    }
}
