//! Convolution and transposed convolution.
