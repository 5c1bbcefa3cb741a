//! The tape: a Wengert list of every operation, replayed in reverse by `backward`.
//!
//! Each node holds its value, the ids of its inputs and the [`Op`] that made it. Ids are positions
//! in recording order, so an input always has a smaller id than its output and a single reverse
//! sweep visits every node after all of its consumers: that is all reverse mode needs.
//!
//! Gradient rules are written with the same differentiable ops as the forward pass. The default
//! [`Tape::backward`] runs them with recording switched off and then drops the nodes it made, so
//! the tape ends as long as it started. [`Tape::backward_graph`] keeps recording (PyTorch's
//! `create_graph=True`): the gradients are ordinary [`Var`]s, and differentiating them again gives
//! second derivatives.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::ArrayD;

use crate::error::{Error, Result};
use crate::float::Float;

/// A differentiable operation: how it prints and how it sends a gradient back to its inputs.
///
/// The forward computation happens before recording (see [`Tape::record`]); an `Op` keeps only
/// the settings its backward needs, since input values are reachable as `inputs`.
/// Implement it to add your own op, then check it with [`crate::gradcheck`].
pub trait Op<T: Float>: 'static {
    /// The name shown when the tape is printed, with any settings (`"leaky_relu(0.01)"`).
    fn name(&self) -> String;

    /// Given `grad_y`, the gradient of the final output with respect to this op's output `y`,
    /// returns the gradient with respect to each input (in order; `None` for an input that needs
    /// none — check [`Var::requires_grad`] to skip work).
    ///
    /// Write it with `Var` operations: the engine then records it when asked for a gradient
    /// graph, which is what makes second derivatives work.
    ///
    /// # Errors
    /// Only if an op used inside fails; a correct rule on a recorded forward never does.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], y: Var<'t, T>, grad_y: Var<'t, T>)
    -> Result<Vec<Option<Var<'t, T>>>>;
}

/// What a node is, for printing and for deciding what `backward` does at it.
enum Kind<T: Float> {
    /// A leaf that wants its gradient (a parameter or a differentiated input).
    Param,
    /// A leaf that does not (data, a detached value, a constant).
    Constant,
    /// The output of an op.
    Op(Rc<dyn Op<T>>),
}

struct Node<T: Float> {
    value: Rc<ArrayD<T>>,
    inputs: Vec<usize>,
    kind: Kind<T>,
    requires_grad: bool,
}

/// The record of a computation. Create one per training step, or reuse one with [`Tape::clear`].
///
/// A `Tape` is cheap to create. Values recorded on it are reached through [`Var`] handles that
/// borrow it, so the borrow checker guarantees no handle outlives a `clear`.
pub struct Tape<T: Float = f32> {
    nodes: RefCell<Vec<Node<T>>>,
    recording: Cell<bool>,
    /// Unique per tape and per `clear`, so a parameter bound to an old recording is never
    /// mistaken for a node of the new one.
    key: Cell<u64>,
}

fn fresh_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape, recording.
    pub fn new() -> Self {
        Tape {
            nodes: RefCell::new(Vec::new()),
            recording: Cell::new(true),
            key: Cell::new(fresh_key()),
        }
    }

    /// A leaf whose gradient `backward` will return (a trainable parameter).
    pub fn param(&self, value: ArrayD<T>) -> Var<'_, T> {
        self.push(Rc::new(value), Vec::new(), Kind::Param, true)
    }

    /// A parameter leaf sharing `value` without copying it (how [`crate::nn::Parameter`] binds).
    pub fn param_shared(&self, value: Rc<ArrayD<T>>) -> Var<'_, T> {
        self.push(value, Vec::new(), Kind::Param, true)
    }

    /// Identifies this tape's current recording (changes on [`Tape::clear`]).
    pub(crate) fn key(&self) -> u64 {
        self.key.get()
    }

    /// The handle of node `id`, if this tape has one.
    pub(crate) fn var_at(&self, id: usize) -> Option<Var<'_, T>> {
        (id < self.len()).then_some(Var { tape: self, id })
    }

    /// A leaf that needs no gradient (input data, targets, constants).
    pub fn constant(&self, value: ArrayD<T>) -> Var<'_, T> {
        self.push(Rc::new(value), Vec::new(), Kind::Constant, false)
    }

    /// Records an op's output. `value` was computed from `inputs`; `op` knows the way back.
    ///
    /// When recording is off (inside [`Tape::no_grad`]) or no input needs a gradient, the node is
    /// kept for its value and printing but `backward` passes through it without work.
    ///
    /// # Errors
    /// [`Error::MixedTapes`] if an input lives on another tape. Node ids are positions on one
    /// tape, so recording a foreign input would make `backward` send its gradient to whatever
    /// node of this tape has the same id: a wrong answer with no error.
    pub fn record<'t>(&'t self, value: ArrayD<T>, inputs: &[Var<'t, T>], op: impl Op<T>) -> Result<Var<'t, T>> {
        // The op's name (a formatted string) only on the error path: this runs for every node.
        if let Some(k) = self.foreign_input(inputs) {
            return Err(mixed_tapes(op.name(), inputs, k));
        }
        let requires_grad = self.recording.get() && inputs.iter().any(|v| v.requires_grad());
        let ids = inputs.iter().map(|v| v.id).collect();
        Ok(self.push(Rc::new(value), ids, Kind::Op(Rc::new(op)), requires_grad))
    }

    /// Refuses `inputs` not all on this tape, as [`Tape::record`] does, for an op that records
    /// several nodes: checked up front, so it fails before recording any of them.
    pub(crate) fn check_inputs(&self, op: &str, inputs: &[Var<'_, T>]) -> Result<()> {
        match self.foreign_input(inputs) {
            None => Ok(()),
            Some(k) => Err(mixed_tapes(op.to_string(), inputs, k)),
        }
    }

    /// The position of the first input recorded on another tape, if any.
    fn foreign_input(&self, inputs: &[Var<'_, T>]) -> Option<usize> {
        inputs.iter().position(|v| !std::ptr::eq(v.tape, self))
    }

    fn push(&self, value: Rc<ArrayD<T>>, inputs: Vec<usize>, kind: Kind<T>, requires_grad: bool) -> Var<'_, T> {
        // Kernels index raw memory row-major; this is the one place that guarantees it.
        let value = if value.is_standard_layout() {
            value
        } else {
            Rc::new(value.as_standard_layout().into_owned())
        };
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            value,
            inputs,
            kind,
            requires_grad,
        });
        Var {
            tape: self,
            id: nodes.len() - 1,
        }
    }

    /// Runs `f` with recording switched off: ops compute values but keep no way back.
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        let before = self.recording.replace(false);
        let out = f();
        self.recording.set(before);
        out
    }

    /// Whether ops are currently being recorded for differentiation.
    pub fn is_recording(&self) -> bool {
        self.recording.get()
    }

    /// Number of nodes on the tape.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every node, keeping the allocation, so one tape serves a whole training run with
    /// flat memory. Needs `&mut self`: no [`Var`] of this tape may still be alive.
    pub fn clear(&mut self) {
        self.nodes.get_mut().clear();
        self.recording.set(true);
        self.key.set(fresh_key());
    }

    /// Gradients of the scalar `y` with respect to every parameter it depends on.
    ///
    /// Gradient rules run with recording off, and the tape is cut back to its length before the
    /// call, so a backward pass leaves no trace.
    ///
    /// # Errors
    /// [`Error::NonScalarBackward`] if `y` has more than one element (use [`Tape::backward_with`]).
    ///
    /// # Example
    /// ```
    /// use adjoint::Tape;
    /// use ndarray::arr1;
    ///
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(arr1(&[1.0, 2.0, 3.0]).into_dyn());
    /// let y = x.mul(x)?.sum()?; // y = Σ x², so dy/dx = 2x
    /// let grads = tape.backward(y)?;
    /// assert_eq!(grads[x], arr1(&[2.0, 4.0, 6.0]).into_dyn());
    /// # Ok::<(), adjoint::Error>(())
    /// ```
    pub fn backward(&self, y: Var<'_, T>) -> Result<Grads<T>> {
        let seed = scalar_seed(y)?;
        self.backward_with(y, seed)
    }

    /// Like [`Tape::backward`], with an explicit seed `∂L/∂y` of `y`'s shape (for non-scalar `y`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `seed`'s shape differs from `y`'s.
    pub fn backward_with(&self, y: Var<'_, T>, seed: ArrayD<T>) -> Result<Grads<T>> {
        check_seed(self, y, &seed)?;
        let start = self.len();
        let recording = self.recording.replace(false);
        let seed = self.constant(seed);
        let result = self.sweep(y, seed);
        self.recording.set(recording);
        // Take the arrays out before the nodes holding them are dropped.
        let grads = result.map(|grads| Grads {
            tape_key: self.key(),
            by_id: grads.into_iter().map(|g| g.map(|g| g.value())).collect(),
        });
        self.nodes.borrow_mut().truncate(start);
        grads
    }

    /// Gradients as recorded [`Var`]s (PyTorch's `create_graph=True`): differentiate them again
    /// for second derivatives, or print the tape to see the backward graph.
    ///
    /// `seed` is `∂L/∂y`; `None` means 1 for a scalar `y`.
    ///
    /// # Errors
    /// As [`Tape::backward`] and [`Tape::backward_with`].
    pub fn backward_graph<'t>(&'t self, y: Var<'t, T>, seed: Option<ArrayD<T>>) -> Result<GradVars<'t, T>> {
        let seed = match seed {
            Some(s) => s,
            None => scalar_seed(y)?,
        };
        check_seed(self, y, &seed)?;
        let seed = self.constant(seed);
        let by_id = self.sweep(y, seed)?;
        Ok(GradVars { tape: self, by_id })
    }

    /// The reverse sweep shared by both forms of backward. Returns, per node id up to `y`, the
    /// gradient of each leaf parameter.
    fn sweep<'t>(&'t self, y: Var<'t, T>, seed: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let mut grads: Vec<Option<Var<'t, T>>> = vec![None; y.id + 1];
        if !y.requires_grad() {
            return Ok(grads);
        }
        grads[y.id] = Some(seed);
        for id in (0..=y.id).rev() {
            let Some(grad_y) = grads[id] else { continue };
            let nodes = self.nodes.borrow();
            let node = &nodes[id];
            let Kind::Op(op) = &node.kind else { continue };
            if !node.requires_grad {
                continue;
            }
            let inputs: Vec<Var<'t, T>> = node.inputs.iter().map(|&id| Var { tape: self, id }).collect();
            // Release the borrow before the rule runs: the rule records new nodes.
            let rule = Rc::clone(op);
            drop(nodes);
            let input_grads = rule.backward(&inputs, Var { tape: self, id }, grad_y)?;
            check_rule(&*rule, &inputs, &input_grads)?;
            for (x, grad_x) in inputs.iter().zip(input_grads) {
                if let (Some(grad_x), true) = (grad_x, x.requires_grad()) {
                    accumulate(&mut grads[x.id], grad_x)?;
                }
            }
            // Intermediate gradients are consumed; keep only the leaves'.
            grads[id] = None;
        }
        let nodes = self.nodes.borrow();
        for (id, g) in grads.iter_mut().enumerate() {
            if !matches!(nodes[id].kind, Kind::Param) {
                *g = None;
            }
        }
        Ok(grads)
    }

    fn value(&self, id: usize) -> Rc<ArrayD<T>> {
        Rc::clone(&self.nodes.borrow()[id].value)
    }
}

/// [`Error::MixedTapes`] for input `k` of `op`.
fn mixed_tapes<T: Float>(op: String, inputs: &[Var<'_, T>], k: usize) -> Error {
    Error::MixedTapes {
        op,
        input: k,
        id: inputs[k].id,
    }
}

/// A gradient rule (possibly a user's [`Op`]) must give one gradient per input, each on this
/// tape and of its input's shape; anything else would be summed into the wrong place silently.
fn check_rule<'t, T: Float>(rule: &dyn Op<T>, inputs: &[Var<'t, T>], grads: &[Option<Var<'t, T>>]) -> Result<()> {
    let bad = |reason: String| Error::BadGradientRule {
        op: rule.name(),
        reason,
    };
    if grads.len() != inputs.len() {
        return Err(bad(format!(
            "returned {} gradients for {} inputs",
            grads.len(),
            inputs.len()
        )));
    }
    for (k, (x, g)) in inputs.iter().zip(grads).enumerate() {
        let Some(g) = g else { continue };
        if !std::ptr::eq(g.tape, x.tape) {
            return Err(bad(format!("the gradient of input {k} lives on another tape")));
        }
        let nodes = x.tape.nodes.borrow();
        let (g_shape, x_shape) = (nodes[g.id].value.shape(), nodes[x.id].value.shape());
        if g_shape != x_shape {
            return Err(bad(format!(
                "the gradient of input {k} has shape {g_shape:?}, the input {x_shape:?}"
            )));
        }
    }
    Ok(())
}

/// The one place gradients meet: a value used twice receives the sum of both uses.
fn accumulate<'t, T: Float>(slot: &mut Option<Var<'t, T>>, grad: Var<'t, T>) -> Result<()> {
    *slot = Some(match *slot {
        None => grad,
        Some(sum) => sum.add(grad)?,
    });
    Ok(())
}

fn scalar_seed<T: Float>(y: Var<'_, T>) -> Result<ArrayD<T>> {
    let shape = y.shape();
    if shape.iter().product::<usize>() != 1 {
        return Err(Error::NonScalarBackward { shape });
    }
    Ok(ArrayD::from_elem(shape, T::one()))
}

fn check_seed<T: Float>(tape: &Tape<T>, y: Var<'_, T>, seed: &ArrayD<T>) -> Result<()> {
    if !std::ptr::eq(tape, y.tape) {
        return Err(crate::error::invalid(
            "backward",
            "y",
            format!("%{}", y.id),
            "belongs to another tape: call backward on the tape that recorded it",
        ));
    }
    if seed.shape() != y.shape().as_slice() {
        return Err(Error::ShapeMismatch {
            op: "backward",
            lhs: y.shape(),
            rhs: seed.shape().to_vec(),
            reason: "the seed gradient must have the output's shape".into(),
        });
    }
    Ok(())
}

/// A handle to a value on a [`Tape`]: two words, `Copy`, cheap to pass around.
///
/// Ops are methods (`x.mul(w)?.sum()?`) and return `Result`, since shapes are only known at run
/// time; they record themselves on the tape the handle belongs to.
#[derive(Clone, Copy)]
pub struct Var<'t, T: Float = f32> {
    tape: &'t Tape<T>,
    id: usize,
}

impl<'t, T: Float> Var<'t, T> {
    /// The tape this value lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Position on the tape (its line number when printed).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The value, shared (no copy).
    pub fn value(&self) -> Rc<ArrayD<T>> {
        self.tape.value(self.id)
    }

    /// The value's shape.
    pub fn shape(&self) -> Vec<usize> {
        self.tape.nodes.borrow()[self.id].value.shape().to_vec()
    }

    /// The value's number of axes.
    pub fn ndim(&self) -> usize {
        self.tape.nodes.borrow()[self.id].value.ndim()
    }

    /// Whether gradients flow back through this value.
    pub fn requires_grad(&self) -> bool {
        self.tape.nodes.borrow()[self.id].requires_grad
    }

    /// The same value as a constant: gradients stop here.
    pub fn detach(&self) -> Var<'t, T> {
        let value = self.value();
        self.tape.push(value, Vec::new(), Kind::Constant, false)
    }

    /// A constant on the same tape (shorthand for `self.tape().constant(..)`).
    pub fn constant(&self, value: ArrayD<T>) -> Var<'t, T> {
        self.tape.constant(value)
    }
}

impl<T: Float> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var(%{}, {:?})", self.id, self.shape())
    }
}

/// Leaf gradients from [`Tape::backward`], as plain arrays. Index with the leaf's `Var`.
#[derive(Debug)]
pub struct Grads<T: Float> {
    tape_key: u64,
    by_id: Vec<Option<Rc<ArrayD<T>>>>,
}

impl<T: Float> Grads<T> {
    /// The gradient of `x`, or `None` if `x` is not a parameter the output depends on.
    pub fn get(&self, x: Var<'_, T>) -> Option<&ArrayD<T>> {
        // Ids restart on every tape and after `clear`: only the recording these gradients came
        // from may look them up.
        self.get_id(x.tape.key(), x.id)
    }

    /// The gradient of node `id` of the recording `tape_key` (for parameters bound by id).
    pub(crate) fn get_id(&self, tape_key: u64, id: usize) -> Option<&ArrayD<T>> {
        if tape_key != self.tape_key {
            return None;
        }
        self.by_id.get(id).and_then(|g| g.as_deref())
    }

    /// Moves the gradient of `x` out (avoiding a copy when it is not shared).
    pub fn take(&mut self, x: Var<'_, T>) -> Option<ArrayD<T>> {
        if x.tape.key() != self.tape_key {
            return None;
        }
        let g = self.by_id.get_mut(x.id)?.take()?;
        Some(Rc::try_unwrap(g).unwrap_or_else(|g| (*g).clone()))
    }
}

impl<T: Float> std::ops::Index<Var<'_, T>> for Grads<T> {
    type Output = ArrayD<T>;

    /// # Panics
    /// If `x` has no gradient; use [`Grads::get`] to ask.
    fn index(&self, x: Var<'_, T>) -> &ArrayD<T> {
        self.get(x)
            .unwrap_or_else(|| panic!("no gradient for %{}: not a parameter the output depends on", x.id))
    }
}

/// Leaf gradients from [`Tape::backward_graph`], as recorded [`Var`]s.
pub struct GradVars<'t, T: Float> {
    tape: &'t Tape<T>,
    by_id: Vec<Option<Var<'t, T>>>,
}

impl<T: Float> fmt::Debug for GradVars<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GradVars").field("by_id", &self.by_id).finish()
    }
}

impl<'t, T: Float> GradVars<'t, T> {
    /// The gradient of `x` as a differentiable value, or `None` if the output does not depend on it.
    pub fn get(&self, x: Var<'t, T>) -> Option<Var<'t, T>> {
        // Ids restart on every tape: a value of another tape has no gradient here.
        if !std::ptr::eq(x.tape, self.tape) {
            return None;
        }
        self.by_id.get(x.id).copied().flatten()
    }
}

impl<T: Float> fmt::Display for Tape<T> {
    /// One line per node: id, what made it, its inputs and its shape; `*` marks nodes that
    /// gradients flow through.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = self.nodes.borrow();
        writeln!(f, "tape<{}>: {} nodes", T::NAME, nodes.len())?;
        for (id, node) in nodes.iter().enumerate() {
            let what = match &node.kind {
                Kind::Param => "param".to_string(),
                Kind::Constant => "constant".to_string(),
                Kind::Op(op) => {
                    let args: Vec<String> = node.inputs.iter().map(|i| format!("%{i}")).collect();
                    format!("{}({})", op.name(), args.join(", "))
                }
            };
            let mark = if node.requires_grad { "*" } else { " " };
            writeln!(f, "{mark} %{id:<4} = {what:<40} {:?}", node.value.shape())?;
        }
        Ok(())
    }
}
