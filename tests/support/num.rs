//! A number in a PyTorch fixture file: JSON has no NaN or infinities, so the generators write
//! those as strings (`"NaN"`, `"Infinity"`, `"-Infinity"`, or Python's `"nan"`, `"inf"`,
//! `"-inf"`). One reader for every fixture test (`#[path = "support/num.rs"] mod num;`).

use serde::Deserialize;

/// A JSON number, or one of the strings a generator writes for a non-finite value.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum Num {
    /// A finite number.
    Finite(f64),
    /// NaN or an infinity, by name.
    Named(String),
}

impl Num {
    /// The value.
    ///
    /// # Panics
    /// On a string that names no number: the fixture file is broken.
    pub fn value(&self) -> f64 {
        match self {
            Num::Finite(v) => *v,
            Num::Named(name) => match name.as_str() {
                "NaN" | "nan" => f64::NAN,
                "Infinity" | "inf" => f64::INFINITY,
                "-Infinity" | "-inf" => f64::NEG_INFINITY,
                other => panic!("unknown number {other:?} in the fixtures"),
            },
        }
    }
}
