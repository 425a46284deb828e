//! The types of the generated shape table (`generated::schema::SHAPES`).

pub use crate::generated::schema::{SHAPES, ids};

/// Index of a shape in `SHAPES`.
pub type ShapeId = usize;

/// What kind of value a shape holds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string (possibly with an enum).
    String,
    /// A 32-bit integer.
    Integer,
    /// A 64-bit integer.
    Long,
    /// A boolean.
    Boolean,
    /// Epoch seconds as a JSON number.
    Timestamp,
    /// Base64 text.
    Blob,
    /// A list of the given member shape.
    List(ShapeId),
    /// A map from the key shape to the value shape.
    Map(ShapeId, ShapeId),
    /// A structure with these members.
    Structure(&'static [Member]),
}

/// One member of a structure.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// The member's wire name.
    pub name: &'static str,
    /// Its target shape.
    pub shape: ShapeId,
    /// Whether the model requires it.
    pub required: bool,
}

/// A shape and its constraints.
#[derive(Debug)]
pub struct Shape {
    /// The shape's name in the model.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Minimum length (strings, lists, maps) or value (numbers).
    pub min: Option<i64>,
    /// Maximum length (strings, lists, maps) or value (numbers).
    pub max: Option<i64>,
    /// A regular expression strings must match.
    pub pattern: Option<&'static str>,
    /// The allowed values of an enum string (empty: any).
    pub enum_values: &'static [&'static str],
    /// Whether values must not be echoed back (in validation messages, for instance).
    pub sensitive: bool,
}

/// The shape with this id.
pub fn shape(id: ShapeId) -> &'static Shape {
    &SHAPES[id]
}
