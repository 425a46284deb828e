//! The runtime half of the generated enum types (`generated::enums`): the error for a string that
//! is not one of an enum's wire values, and the macro that gives every generated enum its
//! `FromStr`, `TryFrom<&str>`, `Display` and serde impls.
//!
//! Guarantees: an enum value serialises as exactly its model wire string (so JSON written by an
//! older ssmd that stored the plain string reads back, and JSON written now is byte-identical to
//! it); parsing accepts exactly the wire strings, case-sensitively, and anything else is an
//! [`UnknownEnumValue`] (a serde error when deserialising), never a panic.

use std::fmt;

/// A string that is not one of an enum's wire values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEnumValue {
    /// The model's name for the enum shape (e.g. `CommandStatus`).
    pub enum_name: &'static str,
    /// The rejected value.
    pub value: String,
}

impl fmt::Display for UnknownEnumValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a valid {} value", self.value, self.enum_name)
    }
}

impl std::error::Error for UnknownEnumValue {}

/// Implements the string conversions and serde for a generated enum that has inherent
/// `NAME`, `from_wire` and `as_str` items. (The signatures name the error type instead of
/// `Self::Err`/`Self::Error`: an enum may have a variant called `Error`.)
macro_rules! wire_enum_impls {
    ($name:ident) => {
        impl ::std::str::FromStr for $name {
            type Err = $crate::wire_enum::UnknownEnumValue;
            fn from_str(s: &str) -> Result<Self, $crate::wire_enum::UnknownEnumValue> {
                Self::from_wire(s)
                    .ok_or_else(|| $crate::wire_enum::UnknownEnumValue { enum_name: Self::NAME, value: s.to_string() })
            }
        }

        impl ::std::convert::TryFrom<&str> for $name {
            type Error = $crate::wire_enum::UnknownEnumValue;
            fn try_from(s: &str) -> Result<Self, $crate::wire_enum::UnknownEnumValue> {
                s.parse()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        write!(f, "a {} value", $name::NAME)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}
pub(crate) use wire_enum_impls;

#[cfg(test)]
mod tests {
    use crate::enums::{CommandStatus, DocumentType, ImpactType, ParameterTier, SourceType};
    use std::collections::BTreeMap;

    #[test]
    fn wire_strings_round_trip() {
        for e in DocumentType::ALL {
            assert_eq!(e.as_str().parse::<DocumentType>().unwrap(), *e);
            let json = serde_json::to_string(e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
            assert_eq!(serde_json::from_str::<DocumentType>(&json).unwrap(), *e);
        }
        assert_eq!(DocumentType::AutomationChangeTemplate.as_str(), "Automation.ChangeTemplate");
        assert_eq!(ParameterTier::IntelligentTiering.to_string(), "Intelligent-Tiering");
        assert_eq!(SourceType::AwsEc2Instance.as_str(), "AWS::EC2::Instance");
    }

    #[test]
    fn unknown_values_are_errors_naming_the_enum() {
        let err = "Running".parse::<CommandStatus>().unwrap_err();
        assert_eq!(err.to_string(), "'Running' is not a valid CommandStatus value");
        assert!(CommandStatus::try_from("inprogress").is_err());
        let err = serde_json::from_str::<CommandStatus>("\"Nope\"").unwrap_err();
        assert!(err.to_string().contains("'Nope' is not a valid CommandStatus value"), "{err}");
        assert!(serde_json::from_str::<CommandStatus>("5").is_err());
    }

    #[test]
    fn enums_work_as_map_keys() {
        let m: BTreeMap<ImpactType, i32> = serde_json::from_str(r#"{"Mutating": 2, "Undetermined": 1}"#).unwrap();
        assert_eq!(m[&ImpactType::Mutating], 2);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"Mutating":2,"Undetermined":1}"#);
    }
}
