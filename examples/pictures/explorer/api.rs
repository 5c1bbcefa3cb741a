//! The explorer's answers, without a socket: [`handle`] takes a request's path and query and
//! returns the response, so tests call it directly and the server only moves bytes.
//!
//! `GET /api/explore?rank=2&size=5&stride=2&...` answers JSON with everything the page draws,
//! each number computed here by the library (sizes by `geometry`, `A` and `Aᵀ` by
//! `views::conv_matrix` / `conv_transpose_matrix`, the zero-insertion steps by
//! `views::conv_transpose_by_zero_insertion`, the gradient by `Tape::backward_with`, the overlap
//! maps by `views::coverage`); the page's JavaScript only draws. A setting the explorer or the
//! library refuses answers HTTP 400 with `{"error", "param", "value"}`: the library's own
//! message when the library refused, and the query parameter that set the refused value.

use adjoint::Tape;
use adjoint::ops::conv::geometry::{tf_same, tf_transpose_default_size, tf_transpose_sizes, tf_valid};
use adjoint::ops::conv::views::{
    Upsampling, conv_matrix, conv_transpose_by_zero_insertion, conv_transpose_matrix, coverage,
};
use adjoint::ops::conv::{
    AxisGeometry, ConvOptions, ConvTransposeOptions, conv, conv_output_shape, conv_transpose,
    conv_transpose_output_shape,
};
use ndarray::{Array, ArrayD, Dimension, IxDyn};
use serde_json::{Value, json};

/// The page, served at `/`.
const PAGE_HTML: &str = include_str!("page.html");
/// The page's drawing code, served at `/explorer.js`.
const PAGE_JS: &str = include_str!("page.js");

/// The most cells one drawn array (a matrix, a padded input, the frames of a view) may have:
/// past it a picture is all hairlines and the JSON megabytes, so it is left out with a note.
pub const MAX_DRAWN: usize = 20_000;

/// The side of the square input of the overlap maps (`views::coverage`), and the largest side
/// their output may reach after the stacked layers.
const COVERAGE_INPUT: usize = 4;
const COVERAGE_MAX_SIDE: usize = 160;

/// One answer: status, content type, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status: 200, 400 for refused settings, 404 for an unknown path.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Response {
    fn json(status: u16, body: &Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
}

/// A refused request: the parameter, the value it was given, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The query parameter (or `path` for an unknown page).
    pub param: String,
    /// Its value as given (cut to 40 characters: the answer does not echo a long query back).
    pub value: String,
    /// The rule it breaks; the library's own message when the library refused.
    pub message: String,
}

impl ApiError {
    fn new(param: &str, value: &str, message: impl Into<String>) -> Self {
        ApiError {
            param: clip(param),
            value: clip(value),
            message: message.into(),
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Answers one request, by path and query (`/api/explore?stride=2`). Never panics: every
/// parameter is parsed and bounded before the library sees it.
pub fn handle(path_and_query: &str) -> Response {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    match path {
        "/" | "/index.html" => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: PAGE_HTML.to_string(),
        },
        "/explorer.js" => Response {
            status: 200,
            content_type: "text/javascript; charset=utf-8",
            body: PAGE_JS.to_string(),
        },
        "/api/explore" => match Settings::parse(query).and_then(|s| explore(&s)) {
            Ok(answer) => Response::json(200, &answer),
            Err(e) => error_response(400, &e),
        },
        _ => error_response(
            404,
            &ApiError::new(
                "path",
                path,
                "no such page: the explorer serves /, /explorer.js and /api/explore",
            ),
        ),
    }
}

fn error_response(status: u16, e: &ApiError) -> Response {
    Response::json(status, &json!({"error": e.message, "param": e.param, "value": e.value}))
}

/// How the conv is padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `pad_before` / `pad_after` zeros on every axis, and the transposed conv with the
    /// `output_padding` asked for.
    Explicit,
    /// TensorFlow's `SAME` (output `⌈i/s⌉`, asymmetric padding), its transposed conv given the
    /// conv's input size as the output shape.
    TfSame,
    /// TensorFlow's `VALID` (no padding), likewise.
    TfValid,
}

/// The explorer's settings, each bounded so every picture stays drawable. Values the library
/// checks itself (a stride of 0, an output padding too large, groups that do not divide the
/// channels) pass through, so the page shows the library's own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// 1 or 2 spatial axes; every axis has the same settings (square in 2-D).
    pub rank: usize,
    /// Input size `i` of the conv.
    pub size: usize,
    /// Kernel size `k`.
    pub kernel: usize,
    /// Stride `s`.
    pub stride: usize,
    /// Dilation `d`.
    pub dilation: usize,
    /// Padding mode.
    pub mode: Mode,
    /// Zeros before the input (explicit mode).
    pub pad_before: usize,
    /// Zeros after the input (explicit mode).
    pub pad_after: usize,
    /// The transposed conv's output padding; `None` (`auto`) picks `a`, which gives back `i`.
    pub output_padding: Option<usize>,
    /// Channel groups.
    pub groups: usize,
    /// Conv input channels.
    pub c_in: usize,
    /// Conv output channels.
    pub c_out: usize,
    /// Stacked upsampling layers of the overlap maps.
    pub layers: usize,
    /// The query's raw values, to name what was given in an error.
    raw: Vec<(String, String)>,
}

/// Every numeric parameter: name, default, largest value accepted.
const NUMBERS: [(&str, usize, usize); 11] = [
    ("rank", 1, 2),
    ("size", 7, 64),
    ("kernel", 3, 16),
    ("stride", 2, 16),
    ("dilation", 1, 16),
    ("pad_before", 0, 32),
    ("pad_after", 0, 32),
    ("groups", 1, 8),
    ("c_in", 1, 8),
    ("c_out", 1, 8),
    ("layers", 2, 4),
];

impl Settings {
    /// Parses a query string (`rank=2&stride=2`); missing parameters take their defaults.
    ///
    /// # Errors
    /// An unknown or repeated parameter, a value that is not a whole number, or one above its
    /// bound, naming the parameter and the value.
    pub fn parse(query: &str) -> Result<Settings, ApiError> {
        let mut raw: Vec<(String, String)> = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let known = NUMBERS.iter().any(|(n, ..)| *n == key) || key == "mode" || key == "output_padding";
            if !known {
                return Err(ApiError::new(key, value, format!("unknown parameter {:?}", clip(key))));
            }
            if raw.iter().any(|(k, _)| k == key) {
                return Err(ApiError::new(key, value, "given twice"));
            }
            raw.push((key.to_string(), value.to_string()));
        }
        let get = |name: &str| raw.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let mut numbers = [0usize; NUMBERS.len()];
        for (slot, &(name, default, max)) in numbers.iter_mut().zip(&NUMBERS) {
            *slot = match get(name) {
                None => default,
                Some(v) => number(name, v, max)?,
            };
        }
        let [
            rank,
            size,
            kernel,
            stride,
            dilation,
            pad_before,
            pad_after,
            groups,
            c_in,
            c_out,
            layers,
        ] = numbers;
        if rank == 0 {
            return Err(ApiError::new("rank", "0", "must be 1 (1-D) or 2 (2-D)"));
        }
        let mode = match get("mode").unwrap_or("explicit") {
            "explicit" => Mode::Explicit,
            "tf_same" => Mode::TfSame,
            "tf_valid" => Mode::TfValid,
            other => {
                return Err(ApiError::new("mode", other, "must be explicit, tf_same or tf_valid"));
            }
        };
        let output_padding = match get("output_padding") {
            None | Some("") | Some("auto") => None,
            Some(v) => Some(number("output_padding", v, 16)?),
        };
        Ok(Settings {
            rank,
            size,
            kernel,
            stride,
            dilation,
            mode,
            pad_before,
            pad_after,
            output_padding,
            groups,
            c_in,
            c_out,
            layers,
            raw,
        })
    }

    /// The value given for `param`, or the setting's value if it took its default.
    fn given(&self, param: &str) -> String {
        if let Some((_, v)) = self.raw.iter().find(|(k, _)| k == param) {
            return v.clone();
        }
        match param {
            "size" => self.size.to_string(),
            "kernel" => self.kernel.to_string(),
            "stride" => self.stride.to_string(),
            "dilation" => self.dilation.to_string(),
            "groups" => self.groups.to_string(),
            "c_in" => self.c_in.to_string(),
            "layers" => self.layers.to_string(),
            "pad_before" => self.pad_before.to_string(),
            "output_padding" => self.output_padding.map_or("auto".into(), |v| v.to_string()),
            _ => String::new(),
        }
    }
}

fn number(name: &str, value: &str, max: usize) -> Result<usize, ApiError> {
    let n: usize = value
        .parse()
        .map_err(|_| ApiError::new(name, value, format!("{name} must be a whole number from 0 to {max}")))?;
    if n > max {
        return Err(ApiError::new(
            name,
            value,
            format!("{name} must be at most {max} (the explorer keeps every picture drawable)"),
        ));
    }
    Ok(n)
}

/// The library's error, with the query parameter that set the refused value.
fn refused(e: &adjoint::Error, s: &Settings) -> ApiError {
    let param = match e {
        adjoint::Error::InvalidArgument { param, .. } => match *param {
            "padding" => "pad_before",
            "output_size" => "size",
            other => other,
        },
        adjoint::Error::BadShape { input: "w", .. } => "kernel",
        adjoint::Error::BadShape { .. } => "size",
        adjoint::Error::ShapeMismatch { .. } => "c_in",
        _ => "settings",
    };
    ApiError::new(param, &s.given(param), e.to_string())
}

/// The conv, the transposed conv that is its adjoint, and the one the user asked for.
struct Ops {
    conv: ConvOptions,
    /// Gives back exactly the conv's input size: the backward of the conv.
    adjoint: ConvTransposeOptions,
    /// With the user's output padding (the adjoint's in TensorFlow's modes).
    chosen: ConvTransposeOptions,
    /// The padding the conv ends up with, per axis (TensorFlow's is computed).
    pads: (usize, usize),
    /// The chosen transposed conv's output padding: the user's, or `a`.
    output_padding: usize,
    /// One spatial axis of the conv (every axis has the same settings).
    axis: AxisGeometry,
}

/// The settings as the library's options: TensorFlow's modes become the padding they compute
/// for the conv, and an output shape for the transposed conv.
fn ops(s: &Settings) -> Ops {
    let (k, st, d) = (s.kernel, s.stride, s.dilation);
    let pads = match s.mode {
        Mode::Explicit => (s.pad_before, s.pad_after),
        // Sizes are bounded, so TensorFlow's padding always fits.
        Mode::TfSame => tf_same(s.size, k, st, d).map_or((0, 0), |(_, b, a)| (b, a)),
        Mode::TfValid => (0, 0),
    };
    let axis = AxisGeometry {
        kernel: k,
        stride: st,
        dilation: d,
        pad_before: pads.0,
        pad_after: pads.1,
    };
    let conv = ConvOptions::new()
        .stride(st)
        .dilation(d)
        .groups(s.groups)
        .padding_asymmetric(&[pads]);
    let a = axis.past_last_window(s.size).unwrap_or(0);
    let output_padding = match s.mode {
        Mode::Explicit => s.output_padding.unwrap_or(a),
        // TensorFlow's output shape `i` amounts to `a`.
        _ => a,
    };
    let base = ConvTransposeOptions::new().stride(st).dilation(d).groups(s.groups);
    let (adjoint, chosen) = match s.mode {
        Mode::Explicit => {
            let explicit = base.padding_asymmetric(&[pads]);
            (
                explicit.clone().output_padding(a),
                explicit.output_padding(output_padding),
            )
        }
        // TensorFlow's transposed conv takes an output shape: the conv's input size.
        Mode::TfSame => {
            let tf = base.tf_same().output_size(vec![s.size; s.rank]);
            (tf.clone(), tf)
        }
        Mode::TfValid => {
            let tf = base.tf_valid().output_size(vec![s.size; s.rank]);
            (tf.clone(), tf)
        }
    };
    Ops {
        conv,
        adjoint,
        chosen,
        pads,
        output_padding,
        axis,
    }
}

/// Everything the page draws, computed by the library.
fn explore(s: &Settings) -> Result<Value, ApiError> {
    let lib = |e: adjoint::Error| refused(&e, s);
    let ops = ops(s);
    let r = s.rank;
    // The conv's weight `[c_out, c_in/g, k..]`, numbered 1, 2, … so every entry of A names
    // the tap it comes from. groups = 0 is refused by the library below, before w is used.
    let c_in_g = s.c_in.checked_div(s.groups).unwrap_or(1);
    let w_shape: Vec<usize> = [s.c_out, c_in_g].into_iter().chain(vec![s.kernel; r]).collect();
    let x_shape: Vec<usize> = [1, s.c_in].into_iter().chain(vec![s.size; r]).collect();
    // The library validates everything first, in PyTorch's order, and its message is shown.
    let y_shape = conv_output_shape(&x_shape, &w_shape, &ops.conv).map_err(lib)?;
    let o = y_shape[2];
    let t_shape = conv_transpose_output_shape(&y_shape, &w_shape, &ops.chosen).map_err(lib)?;
    let w = numbered(&w_shape);
    // The output paddings the library accepts, asked one by one (TensorFlow's modes take an
    // output shape instead: see "tf").
    let legal: Vec<usize> = match s.mode {
        Mode::Explicit => (0..=16)
            .filter(|&op| {
                let opts = ops.adjoint.clone().output_padding(op);
                conv_transpose_output_shape(&y_shape, &w_shape, &opts).is_ok()
            })
            .collect(),
        _ => vec![],
    };
    let sizes = json!({
        "input": vec![s.size; r],
        "padding": [ops.pads.0, ops.pads.1],
        "effective_kernel": ops.axis.effective_kernel(),
        "conv_output": &y_shape[2..],
        "past_last_window": ops.axis.past_last_window(s.size),
        "output_padding": ops.output_padding,
        "transpose_output": &t_shape[2..],
        "legal_output_paddings": legal,
        "same_output_inputs": ops.axis.conv_input_sizes(o).map(|run| [*run.start(), *run.end()]),
        "unread_inputs": ops.axis.unread_inputs(s.size),
        "unread_cells": ops.axis.unread_cells(s.size),
        "tf": tensorflow(s, o),
        "x_shape": x_shape,
        "w_shape": w_shape,
        "y_shape": y_shape,
        "t_shape": t_shape,
    });
    // The transposed conv's input: the upstream gradient `g`, small integers, not all ones
    // (all ones would hide a transposed index).
    let g = pattern(&y_shape, &[1.0, -2.0, 3.0, 2.0, -1.0, -3.0]);
    let x = pattern(&x_shape, &[2.0, -1.0, 1.0, 3.0, -2.0, 1.0, -3.0]);
    let matrices = matrices(s, &ops, &w, o, &g)?;
    Ok(json!({
        "settings": settings_json(s),
        "sizes": sizes,
        "w": array(&w),
        "matrix": matrices,
        "sliding": sliding(s, &ops, o),
        "zero_insertion": zero_insertion(s, &ops, &w, &g, &t_shape)?,
        "duality": duality(s, &ops, &w, &x, &g)?,
        "coverage": overlap_maps(s)?,
    }))
}

fn settings_json(s: &Settings) -> Value {
    json!({
        "rank": s.rank, "size": s.size, "kernel": s.kernel, "stride": s.stride,
        "dilation": s.dilation, "pad_before": s.pad_before, "pad_after": s.pad_after,
        "mode": match s.mode { Mode::Explicit => "explicit", Mode::TfSame => "tf_same", Mode::TfValid => "tf_valid" },
        "output_padding": s.output_padding, "groups": s.groups, "c_in": s.c_in, "c_out": s.c_out,
        "layers": s.layers,
    })
}

/// TensorFlow's sizes for the same kernel, stride and dilation: `SAME`, `VALID`, and what its
/// transposed conv of the conv's output gives by default and accepts as an output shape.
fn tensorflow(s: &Settings, o: usize) -> Value {
    let (i, k, st, d) = (s.size, s.kernel, s.stride, s.dilation);
    let range = |same| tf_transpose_sizes(same, o, k, st, d).map(|r| [*r.start(), *r.end()]);
    json!({
        "same_output": tf_same(i, k, st, d).map(|(o, ..)| o),
        "same_padding": tf_same(i, k, st, d).map(|(_, b, a)| [b, a]),
        "valid_output": tf_valid(i, k, st, d),
        "same_transpose_default": tf_transpose_default_size(true, o, k, st, d),
        "valid_transpose_default": tf_transpose_default_size(false, o, k, st, d),
        "same_transpose_sizes": range(true),
        "valid_transpose_sizes": range(false),
    })
}

/// An array of `shape` numbered `1, 2, …` in row-major order.
fn numbered(shape: &[usize]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (1..=n).map(|v| v as f64).collect()).expect("n values for n cells")
}

/// An array of `shape` filled by repeating `cycle`.
fn pattern(shape: &[usize], cycle: &[f64]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|v| cycle[v % cycle.len()]).collect())
        .expect("n values for n cells")
}

/// `{shape, data}`, row-major, for an array of any rank (the matrices too).
fn array<D: Dimension>(a: &Array<f64, D>) -> Value {
    json!({"shape": a.shape(), "data": a.iter().copied().collect::<Vec<_>>()})
}

fn too_large(what: &str, cells: usize) -> Value {
    json!({"note": format!("{what} would have {cells} cells, more than the {MAX_DRAWN} drawn: pick smaller settings")})
}

fn largest_difference<'a>(a: impl IntoIterator<Item = &'a f64>, b: impl IntoIterator<Item = &'a f64>) -> f64 {
    a.into_iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max)
}

/// `A` (`views::conv_matrix`), the chosen transposed conv's matrix
/// (`views::conv_transpose_matrix`), and the scatter view read off the latter: its column `j`
/// times `g_j` is the copy of the kernel that input cell `j` stamps on the output.
fn matrices(s: &Settings, ops: &Ops, w: &ArrayD<f64>, o: usize, g: &ArrayD<f64>) -> Result<Value, ApiError> {
    let lib = |e: adjoint::Error| refused(&e, s);
    let spatial = |n: usize| n.pow(s.rank as u32);
    let rows = s.c_out * spatial(o);
    let cols = s.c_in * spatial(s.size);
    if rows * cols > MAX_DRAWN {
        return Ok(json!({"a": too_large("A", rows * cols), "at": null, "scatter": null}));
    }
    let input: Vec<usize> = [s.c_in].into_iter().chain(vec![s.size; s.rank]).collect();
    let out: Vec<usize> = [s.c_out].into_iter().chain(vec![o; s.rank]).collect();
    let a = conv_matrix(w, &input, &ops.conv).map_err(lib)?;
    let at = conv_transpose_matrix(w, &out, &ops.chosen).map_err(lib)?;
    // Aᵀ is the transposed matrix of A exactly when the transposed conv gives back `i` cells.
    let transposes = (at.shape() == a.t().shape()).then(|| largest_difference(at.iter(), a.t().iter()));
    if at.len() > MAX_DRAWN {
        return Ok(json!({"a": array(&a), "at": too_large("Aᵀ", at.len()), "scatter": null}));
    }
    // The scatter view: y' = Aᵀ g = Σ_j g_j · (column j of Aᵀ), one stamp per input cell.
    let g_flat: Vec<f64> = g.iter().copied().collect();
    let mut sum = vec![0.0; at.nrows()];
    let frames: Vec<Value> = g_flat
        .iter()
        .enumerate()
        .map(|(j, &gj)| {
            let stamp: Vec<f64> = at.column(j).iter().map(|&v| gj * v).collect();
            for (acc, v) in sum.iter_mut().zip(&stamp) {
                *acc += v;
            }
            json!({"stamp": stamp, "sum": sum})
        })
        .collect();
    let tape = Tape::<f64>::new();
    let forward = conv_transpose(tape.constant(g.clone()), tape.constant(w.clone()), None, &ops.chosen).map_err(lib)?;
    let forward = forward.value();
    Ok(json!({
        "a": array(&a),
        "at": array(&at),
        "at_minus_a_transposed": transposes,
        "scatter": {
            "g": array(g),
            "frames": frames,
            "forward": array(&forward),
            "max_difference": largest_difference(sum.iter(), forward.iter()),
        },
    }))
}

/// Every index of a grid of `side` cells on each of `rank` axes, row-major.
fn grid(side: usize, rank: usize) -> Vec<Vec<usize>> {
    ndarray::indices(vec![side; rank])
        .into_iter()
        .map(|index| index.slice().to_vec())
        .collect()
}

/// One frame per output cell of the conv: where each tap (in the kernel's row-major order)
/// lands on the *padded* input, and whether that is an input cell. Positions come from the
/// library's index map `AxisGeometry::source`: on the axis without padding it is the padded
/// position `o·s + t·d`.
fn sliding(s: &Settings, ops: &Ops, o: usize) -> Value {
    let taps = grid(s.kernel, s.rank);
    let outs = grid(o, s.rank);
    if outs.len() * taps.len() > MAX_DRAWN {
        return too_large("the sliding view", outs.len() * taps.len());
    }
    let unpadded = AxisGeometry {
        pad_before: 0,
        pad_after: 0,
        ..ops.axis
    };
    let padded = ops.axis.padded_size(s.size).unwrap_or(0);
    let frames: Vec<Value> = outs
        .iter()
        .map(|out| {
            let cells: Vec<Value> = taps
                .iter()
                .map(|t| {
                    let pos: Vec<Option<usize>> = out
                        .iter()
                        .zip(t)
                        .map(|(&oa, &ta)| unpadded.source(oa, ta, padded))
                        .collect();
                    let input = out
                        .iter()
                        .zip(t)
                        .all(|(&oa, &ta)| ops.axis.source(oa, ta, s.size).is_some());
                    json!({"pos": pos, "input": input})
                })
                .collect();
            json!({"out": out, "taps": cells})
        })
        .collect();
    json!({"padded": padded, "offset": ops.pads.0, "frames": frames})
}

/// The zero-insertion recipe of the chosen transposed conv, on `g`: the stretched and padded
/// input with each cell's kind per axis, the flipped kernel, the result, and one frame per
/// output cell with the window's positions on the padded input (a stride-1 conv, dilation kept).
fn zero_insertion(
    s: &Settings,
    ops: &Ops,
    w: &ArrayD<f64>,
    g: &ArrayD<f64>,
    t_shape: &[usize],
) -> Result<Value, ApiError> {
    let lib = |e: adjoint::Error| refused(&e, s);
    let o = g.shape()[2];
    let stretched = (o - 1) * s.stride + 1;
    // d·(k − 1) − p_b before the stretched input (cropping if negative); the rest after, up to
    // the size the conv of the padded input needs: the transposed conv's output + d·(k − 1).
    let reach = ops.axis.effective_kernel() - 1;
    let padded = t_shape[2] + reach;
    if s.c_out * padded.pow(s.rank as u32) > MAX_DRAWN {
        return Ok(too_large("the padded input", s.c_out * padded.pow(s.rank as u32)));
    }
    let outs = grid(t_shape[2], s.rank);
    let taps = grid(s.kernel, s.rank);
    if outs.len() * taps.len() > MAX_DRAWN {
        return Ok(too_large("the zero-insertion view", outs.len() * taps.len()));
    }
    let steps = conv_transpose_by_zero_insertion(g, w, &ops.chosen).map_err(lib)?;
    let before = reach as i64 - ops.pads.0 as i64;
    let output_padding = ops.output_padding;
    let kinds: Vec<&str> = (0..padded as i64)
        .map(|q| {
            let j = q - before;
            if (0..stretched as i64).contains(&j) {
                if (j as usize).is_multiple_of(s.stride) {
                    "x"
                } else {
                    "zero"
                }
            } else if j >= stretched as i64 && q >= (padded - output_padding.min(padded)) as i64 {
                "output_padding"
            } else {
                "padding"
            }
        })
        .collect();
    let step1 = AxisGeometry::new(s.kernel, 1, 0, s.dilation);
    let frames: Vec<Value> = outs
        .iter()
        .map(|out| {
            let pos: Vec<Vec<Option<usize>>> = taps
                .iter()
                .map(|t| {
                    out.iter()
                        .zip(t)
                        .map(|(&oa, &ta)| step1.source(oa, ta, padded))
                        .collect()
                })
                .collect();
            json!({"out": out, "taps": pos})
        })
        .collect();
    Ok(json!({
        "stretched_shape": steps.stretched.shape(),
        "padded": array(&steps.padded),
        "kinds": kinds,
        "flipped_w": array(&steps.flipped_w),
        "y": array(&steps.y),
        "frames": frames,
    }))
}

/// The duality on the tape: the conv's input gradient for upstream gradient `g`
/// (`Tape::backward_with`), next to the adjoint transposed conv's forward of `g`.
fn duality(s: &Settings, ops: &Ops, w: &ArrayD<f64>, x: &ArrayD<f64>, g: &ArrayD<f64>) -> Result<Value, ApiError> {
    let lib = |e: adjoint::Error| refused(&e, s);
    let tape = Tape::<f64>::new();
    let xv = tape.param(x.clone());
    let wv = tape.param(w.clone());
    let y = conv(xv, wv, None, &ops.conv).map_err(lib)?;
    let y_value = (*y.value()).clone();
    let grads = tape.backward_with(y, g.clone()).map_err(lib)?;
    let grad_x = grads.get(xv).cloned().unwrap_or_else(|| ArrayD::zeros(x.raw_dim()));
    let forward = conv_transpose(tape.constant(g.clone()), wv, None, &ops.adjoint).map_err(lib)?;
    let forward = (*forward.value()).clone();
    let max_difference = (forward.shape() == grad_x.shape()).then(|| largest_difference(grad_x.iter(), forward.iter()));
    Ok(json!({
        "x": array(x),
        "y": array(&y_value),
        "g": array(g),
        "grad_x": array(&grad_x),
        "conv_transpose_g": array(&forward),
        "max_difference": max_difference,
        "output_padding": match s.mode {
            Mode::Explicit => ops.axis.past_last_window(s.size),
            _ => None,
        },
    }))
}

/// Whether both overlap maps fit the drawing: the output side after `layers` upsampling steps
/// of a `COVERAGE_INPUT` input at most `COVERAGE_MAX_SIDE` for both kinds of upsampling, and
/// not smaller than `views::coverage`'s border margin `(k − 1)·(1 + s + … + s^(layers−1))`
/// (past it `coverage` has no interior to compare, and its ratio is NaN: the page says why
/// instead).
fn coverage_fits(s: &Settings) -> Result<(), String> {
    let (mut transposed, mut resized, mut margin, mut reach) = (COVERAGE_INPUT, COVERAGE_INPUT, 0, 1);
    for _ in 0..s.layers {
        transposed = (transposed - 1) * s.stride + s.kernel;
        resized *= s.stride;
        margin += s.kernel.saturating_sub(1) * reach;
        reach *= s.stride;
        if transposed.max(resized) > COVERAGE_MAX_SIDE {
            return Err(format!(
                "{} layers of kernel {} and stride {} from {COVERAGE_INPUT}×{COVERAGE_INPUT} would exceed {COVERAGE_MAX_SIDE}×{COVERAGE_MAX_SIDE}: pick fewer layers or a smaller stride",
                s.layers, s.kernel, s.stride
            ));
        }
    }
    if margin > transposed.min(resized) {
        return Err(format!(
            "{} layers of kernel {} and stride {} from {COVERAGE_INPUT}×{COVERAGE_INPUT}: the borders ({margin} pixels) cover the whole {resized}×{resized} resize-conv output, so there is no interior to compare: pick a larger stride or a smaller kernel",
            s.layers, s.kernel, s.stride
        ));
    }
    Ok(())
}

/// The overlap maps of `layers` stacked 2-D upsampling steps with this kernel and stride
/// (`views::coverage`): transposed convs against resize-convs.
fn overlap_maps(s: &Settings) -> Result<Value, ApiError> {
    if let Err(note) = coverage_fits(s) {
        return Ok(json!({ "note": note }));
    }
    let map = |how| -> Result<Value, ApiError> {
        let c = coverage(COVERAGE_INPUT, s.kernel, s.stride, s.layers, how).map_err(|e| refused(&e, s))?;
        let counts = c.counts.into_dyn();
        Ok(json!({"counts": array(&counts), "interior_ratio": c.interior_ratio}))
    };
    Ok(json!({
        "input": COVERAGE_INPUT,
        "transposed": map(Upsampling::Transposed)?,
        "resize_conv": map(Upsampling::ResizeConv)?,
    }))
}
