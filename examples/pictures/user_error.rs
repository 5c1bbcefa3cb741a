//! The library's errors in the words of an example's command line.
//!
//! The library names the function that refused and its parameter (`conv2d: invalid stride =
//! [0, 0]: must be at least 1`); a user typed a flag. This puts the flag and the value given
//! first, keeps the library's parameter, value and rule, and drops the function's name.

use adjoint::Error;

/// `e` in user terms. `flags` maps the library's names — a parameter (`stride`, `padding`,
/// `dilation`, `output_padding`) or an input (`x`, `w`) — to the flag that sets it and the value
/// given: `("w", "--kernel", 3)`.
pub fn in_flag_terms(e: &Error, flags: &[(&str, &str, usize)]) -> String {
    let flag = |name: &str| {
        flags
            .iter()
            .find(|(p, ..)| *p == name)
            .map_or(String::new(), |(_, f, v)| format!("{f} {v}: "))
    };
    match e {
        Error::InvalidArgument {
            param, value, reason, ..
        } => format!("{}{param} = {value}: {reason}", flag(param)),
        Error::BadShape {
            input, shape, reason, ..
        } => {
            let noun = match *input {
                "x" => "the input",
                "w" => "the kernel",
                other => other,
            };
            format!("{}{noun} has shape {shape:?}: {reason}", flag(input))
        }
        other => other.to_string(),
    }
}
